#!/bin/bash
# netfilter-persistent.sh - run Debian's real netfilter-persistent (with the
# iptables-persistent plugins) against one network namespace, without
# installing it: Debian's ufw package Breaks netfilter-persistent, so both
# cannot be installed at once.  The two .debs are unpacked with dpkg-deb -x
# into a cache, and every call runs in a throwaway mount namespace where
#   /etc       = overlay(package's etc, host /etc) + private writable layer
#                (so /etc/iptables/rules.v4 and /etc/default/netfilter-persistent
#                are private to NS),
#   /usr/share = overlay(package's usr/share, host /usr/share)   (plugins.d),
#   /usr/sbin  = overlay(package's usr/sbin, host /usr/sbin),
#   /run       = private tmpfs.
#
# (A copy of shared/neighbours/netfilter-persistent.sh, for wgfw-hook's tests.)
set -eu
NB_NAME=netfilter-persistent
. "$(dirname "$(readlink -f "$0")")/lib.sh"

CACHE=${NEIGHBOURS_CACHE:-/var/cache/neighbours}/netfilter-persistent
PKGROOT=$CACHE/root

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS          netfilter-persistent start (loads saved rules, if any)
  save NS           netfilter-persistent save  -> private /etc/iptables/rules.v4/v6
  reload NS         netfilter-persistent reload (= iptables-restore of the saved files)
  flush NS          netfilter-persistent flush
  stop NS           netfilter-persistent stop, then drop the private files
  rules NS          print the saved rules.v4 and rules.v6
  cmd NS ARGS...    netfilter-persistent ARGS...
  exec NS CMD...    run CMD in the same mount setup, inside NS

State: \$NEIGHBOURS_STATE/NS/netfilter-persistent (etc-upper/ holds the private
/etc changes, e.g. etc-upper/iptables/rules.v4).  Package cache: $CACHE
(NEIGHBOURS_CACHE).  NETFILTER_PERSISTENT_SET="KEY=VALUE ..." is appended to
the private /etc/default/netfilter-persistent at start (e.g.
"IPTABLES_RESTORE_NOFLUSH=yes" or "FLUSH_ON_STOP=1").
$(nb_usage_common)
EOF
}

fetch_pkg() {
    [ -x "$PKGROOT/usr/sbin/netfilter-persistent" ] &&
        [ -x "$PKGROOT/usr/share/netfilter-persistent/plugins.d/15-ip4tables" ] && return 0
    command -v dpkg-deb >/dev/null || nb_die "dpkg-deb is needed"
    if ! ls "$CACHE"/debs/netfilter-persistent_*.deb "$CACHE"/debs/iptables-persistent_*.deb >/dev/null 2>&1; then
        [ -z "${NEIGHBOURS_NO_INSTALL:-}" ] ||
            nb_die "netfilter-persistent .debs not in $CACHE/debs and NEIGHBOURS_NO_INSTALL is set"
        mkdir -p "$CACHE/debs"
        nb_log "downloading netfilter-persistent and iptables-persistent (not installing them)"
        ( cd "$CACHE/debs" &&
          { apt-get download -o APT::Sandbox::User=root netfilter-persistent iptables-persistent ||
            { apt-get update -q && apt-get download -o APT::Sandbox::User=root netfilter-persistent iptables-persistent; }; }
        ) >"$CACHE/download.log" 2>&1 || { tail -n 5 "$CACHE/download.log" >&2; nb_die "apt-get download failed"; }
    fi
    rm -rf "$PKGROOT.tmp"; mkdir -p "$PKGROOT.tmp"
    local d
    for d in "$CACHE"/debs/netfilter-persistent_*.deb "$CACHE"/debs/iptables-persistent_*.deb; do
        dpkg-deb -x "$d" "$PKGROOT.tmp"
    done
    rm -rf "$PKGROOT"; mv "$PKGROOT.tmp" "$PKGROOT"
}

prepare() {  # S
    local s=$1 kv
    mkdir -p "$s/etc-upper" "$s/etc-work"
    if [ -n "${NETFILTER_PERSISTENT_SET:-}" ] && [ ! -e "$s/etc-upper/default/netfilter-persistent" ]; then
        mkdir -p "$s/etc-upper/default"
        cp "$PKGROOT/etc/default/netfilter-persistent" "$s/etc-upper/default/netfilter-persistent"
        for kv in $NETFILTER_PERSISTENT_SET; do echo "$kv" >> "$s/etc-upper/default/netfilter-persistent"; done
    fi
}

in_ctx() {  # NS S CMD...
    local ns=$1 s=$2; shift 2
    ip netns exec "$ns" unshare -m --propagation private /bin/sh -c "
set -e
mount -t overlay nb-etc -o 'lowerdir=$PKGROOT/etc:/etc,upperdir=$s/etc-upper,workdir=$s/etc-work' /etc
mount -t overlay nb-share -o 'lowerdir=$PKGROOT/usr/share:/usr/share' /usr/share
mount -t overlay nb-sbin -o 'lowerdir=$PKGROOT/usr/sbin:/usr/sbin' /usr/sbin
mount -t tmpfs -o mode=0755,size=16m nb-run /run
mkdir -p /run/lock
exec \"\$@\"" sh "$@"
}

need_state() {
    [ -d "$S/etc-upper" ] || nb_die "not started in $1 (run: $0 start $1)"
}

cmd=${1:-}; ns=${2:-}
case $cmd in -h|--help|help|"") usage; exit 0 ;; esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start)   nb_need_cmd iptables-restore iptables; nb_need_cmd run-parts debianutils
             fetch_pkg; prepare "$S"; in_ctx "$ns" "$S" netfilter-persistent start ;;
    save|reload|flush)
             need_state "$ns"; in_ctx "$ns" "$S" netfilter-persistent "$cmd" ;;
    stop)    [ -d "$S" ] || { nb_log "not started in $ns"; exit 0; }
             in_ctx "$ns" "$S" netfilter-persistent stop
             nb_rm_state "$S" ;;
    rules)   need_state "$ns"
             for f in rules.v4 rules.v6; do
                 echo "### /etc/iptables/$f"
                 cat "$S/etc-upper/iptables/$f" 2>/dev/null || echo "(none saved)"
             done ;;
    cmd)     need_state "$ns"; in_ctx "$ns" "$S" netfilter-persistent "$@" ;;
    exec)    need_state "$ns"; [ $# -gt 0 ] || nb_die "exec needs a command"; in_ctx "$ns" "$S" "$@" ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
