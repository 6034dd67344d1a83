#!/bin/bash
# ufw.sh - run Debian's real ufw against one network namespace, with private
# /etc/ufw, /lib/ufw, /etc/default/ufw and /run (bind mounts inside a
# throwaway mount namespace for every call).
#
# (A copy of shared/neighbours/ufw.sh, for wgfw-hook's tests.)
set -eu
NB_NAME=ufw
. "$(dirname "$(readlink -f "$0")")/lib.sh"

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS          ufw --force enable (fresh Debian default config on first use)
  reload NS         ufw reload
  stop NS           ufw disable, then drop the private config
  cmd NS ARGS...    ufw ARGS... (e.g. cmd NS allow 51820/udp)
  exec NS CMD...    run CMD with the private ufw files mounted, inside NS
  status NS         ufw status verbose; exit 0 when enabled, 3 when not

State: \$NEIGHBOURS_STATE/NS/ufw (etc-ufw/, lib-ufw/, default-ufw).
$(nb_usage_common)
EOF
}

prepare() {  # S
    local s=$1 f
    [ -e "$s/etc-ufw/ufw.conf" ] && return 0
    mkdir -p "$s/etc-ufw" "$s/lib-ufw"
    cp -a /etc/ufw/. "$s/etc-ufw/"
    # Debian's pristine rules and ufw.conf (ENABLED=no), whatever the host has.
    for f in before.rules after.rules user.rules before6.rules after6.rules user6.rules ufw.conf; do
        [ -e "/usr/share/ufw/$f" ] && cp "/usr/share/ufw/$f" "$s/etc-ufw/$f"
    done
    cp -a /lib/ufw/. "$s/lib-ufw/"
    cp /etc/default/ufw "$s/default-ufw"
}

in_ctx() {  # NS S CMD...
    local ns=$1 s=$2; shift 2
    ip netns exec "$ns" unshare -m --propagation private /bin/sh -c "
set -e
mount --bind '$s/etc-ufw' /etc/ufw
mount --bind '$s/lib-ufw' /lib/ufw
mount --bind '$s/default-ufw' /etc/default/ufw
mount -t tmpfs -o mode=0755,size=16m nb-run /run
mkdir -p /run/lock
exec \"\$@\"" sh "$@"
}

enabled() { grep -q '^ENABLED=yes' "$1/etc-ufw/ufw.conf" 2>/dev/null; }

need_state() {
    [ -e "$S/etc-ufw/ufw.conf" ] || nb_die "ufw was not started in $1 (run: $0 start $1)"
}

cmd=${1:-}; ns=${2:-}
case $cmd in -h|--help|help|"") usage; exit 0 ;; esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start)
        if ! command -v ufw >/dev/null 2>&1 && nb_pkg_installed netfilter-persistent; then
            nb_die "ufw is not installed and cannot be while netfilter-persistent is (Debian's ufw Breaks it)"
        fi
        nb_need_cmd ufw ufw
        nb_need_cmd iptables iptables
        prepare "$S"
        in_ctx "$ns" "$S" ufw --force enable
        ;;
    reload)  need_state "$ns"; in_ctx "$ns" "$S" ufw reload ;;
    stop)
        [ -d "$S" ] || { nb_log "not started in $ns"; exit 0; }
        in_ctx "$ns" "$S" ufw disable
        nb_rm_state "$S"
        ;;
    cmd)     need_state "$ns"; in_ctx "$ns" "$S" ufw "$@" ;;
    exec)    need_state "$ns"; [ $# -gt 0 ] || nb_die "exec needs a command"; in_ctx "$ns" "$S" "$@" ;;
    status)  need_state "$ns"; in_ctx "$ns" "$S" ufw status verbose; enabled "$S" || exit 3 ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
