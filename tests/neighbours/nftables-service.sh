#!/bin/bash
# nftables-service.sh - do what Debian's nftables.service does, inside one
# network namespace:
#   ExecStart/ExecReload = /usr/sbin/nft -f /etc/nftables.conf
#   ExecStop             = /usr/sbin/nft flush ruleset
# with /etc/nftables.conf bind-mounted from a private copy (Debian's default
# file, which begins with `flush ruleset`, unless NFT_CONF names another).
#
# (A copy of shared/neighbours/nftables-service.sh, for wgfw-hook's tests.)
set -eu
NB_NAME=nftables-service
. "$(dirname "$(readlink -f "$0")")/lib.sh"

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS          nft -f /etc/nftables.conf      (ExecStart)
  reload NS         nft -f /etc/nftables.conf      (ExecReload)
  stop NS           nft flush ruleset              (ExecStop), drop private file
  cmd NS ARGS...    nft ARGS... with the private /etc/nftables.conf mounted
  conf NS           print the private /etc/nftables.conf

State: \$NEIGHBOURS_STATE/NS/nftables-service/nftables.conf.
NFT_CONF=FILE: use FILE as /etc/nftables.conf (copied at start).
$(nb_usage_common)
EOF
}

# Debian 12's /etc/nftables.conf as shipped by the nftables package.
debian_default() {
    cat <<'EOF'
#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter;
	}
	chain forward {
		type filter hook forward priority filter;
	}
	chain output {
		type filter hook output priority filter;
	}
}
EOF
}

prepare() {  # S
    local s=$1 want have
    mkdir -p "$s"
    if [ -n "${NFT_CONF:-}" ]; then
        [ -r "$NFT_CONF" ] || nb_die "NFT_CONF=$NFT_CONF is not readable"
        cp "$NFT_CONF" "$s/nftables.conf"; return 0
    fi
    [ -e "$s/nftables.conf" ] && return 0
    # The host's file when it is the untouched conffile, else Debian's default.
    want=$(dpkg-query -W -f='${Conffiles}\n' nftables 2>/dev/null | awk '$1=="/etc/nftables.conf"{print $2}')
    have=$(md5sum /etc/nftables.conf 2>/dev/null | cut -d' ' -f1)
    if [ -n "$want" ] && [ "$want" = "$have" ]; then
        cp /etc/nftables.conf "$s/nftables.conf"
    else
        debian_default > "$s/nftables.conf"
    fi
}

in_ctx() {  # NS S CMD...
    local ns=$1 s=$2; shift 2
    ip netns exec "$ns" unshare -m --propagation private /bin/sh -c "
set -e
[ -e /etc/nftables.conf ] || { echo 'no /etc/nftables.conf to mount over' >&2; exit 1; }
mount --bind '$s/nftables.conf' /etc/nftables.conf
exec \"\$@\"" sh "$@"
}

cmd=${1:-}; ns=${2:-}
case $cmd in -h|--help|help|"") usage; exit 0 ;; esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start|reload)
        nb_need_cmd nft nftables
        prepare "$S"
        in_ctx "$ns" "$S" /usr/sbin/nft -f /etc/nftables.conf ;;
    stop)
        [ -d "$S" ] || { nb_log "not started in $ns"; exit 0; }
        in_ctx "$ns" "$S" /usr/sbin/nft flush ruleset
        nb_rm_state "$S" ;;
    cmd)  [ -e "$S/nftables.conf" ] || nb_die "not started in $ns (run: $0 start $ns)"
          in_ctx "$ns" "$S" nft "$@" ;;
    conf) [ -e "$S/nftables.conf" ] || nb_die "not started in $ns"; cat "$S/nftables.conf" ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
