#!/bin/bash
# fail2ban.sh - run Debian's real fail2ban-server inside one network
# namespace with a private config directory (bind-mounted on /etc/fail2ban),
# socket, pidfile, log and an in-memory database.  Two jails watch a private
# log file with the stock sshd filter; one bans with the stock
# iptables-multiport action, the other with nftables-multiport.
#
# A copy of shared/neighbours/fail2ban.sh (with lib.sh beside it), for
# wgfw-hook's tests; one addition: F2B_IPTABLES=legacy makes the server's
# `iptables`/`ip6tables` the iptables-legacy ones (in its own mount namespace
# only), as on a host whose iptables alternative points there.
set -eu
NB_NAME=fail2ban
. "$(dirname "$(readlink -f "$0")")/lib.sh"

JAILS="sshd-iptables sshd-nftables"

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS              start fail2ban-server with jails: $JAILS
  ban NS ADDR [JAIL..]  fail2ban-client set JAIL banip ADDR (default: every jail)
  unban NS ADDR         fail2ban-client unban ADDR
  fail NS ADDR [N]      append N (default 6) sshd "Failed password" lines for
                        ADDR to the watched log, so the jails ban it themselves
  reload NS             fail2ban-client reload
  restart-jails NS      fail2ban-client reload --restart (jails stopped and
                        started: actionstop/actionstart run, bans restored)
  stop NS               fail2ban-client stop (actionstop removes its rules)
  cmd NS ARGS...        fail2ban-client ARGS... against this server
  exec NS CMD...        run CMD in the server's namespaces
  status NS             exit 0 when running, 3 when not

State: \$NEIGHBOURS_STATE/NS/fail2ban (etc/ = its /etc/fail2ban, auth.log is the
watched log, fail2ban.log).  F2B_PORT (default ssh) and F2B_PROTOCOL (default
tcp) set the jails' port/protocol.
$(nb_usage_common)
EOF
}

fpid()    { nb_pidfile "$1/launcher.pid"; }
running() { local p; p=$(fpid "$1"); [ -n "$p" ] && nb_alive "$p"; }

prepare() {  # S
    local s=$1
    [ -e "$s/etc/jail.local" ] && return 0
    mkdir -p "$s/etc"
    cp -a /etc/fail2ban/. "$s/etc/"
    touch "$s/auth.log"
    cat > "$s/etc/fail2ban.local" <<EOF
[Definition]
logtarget = $s/fail2ban.log
socket = $s/fail2ban.sock
pidfile = $s/fail2ban.pid
dbfile = :memory:
allowipv6 = auto
EOF
    cat > "$s/etc/jail.local" <<EOF
[DEFAULT]
backend = polling
bantime = 1h
findtime = 10m
maxretry = 5
port = ${F2B_PORT:-ssh}
protocol = ${F2B_PROTOCOL:-tcp}

# Debian enables [sshd] in jail.d/defaults-debian.conf; it has no log here.
[sshd]
enabled = false

[sshd-iptables]
enabled = true
filter = sshd
logpath = $s/auth.log
banaction = iptables-multiport

[sshd-nftables]
enabled = true
filter = sshd
logpath = $s/auth.log
banaction = nftables-multiport
EOF
}

f2bc() {  # S ARGS...
    local s=$1; shift
    fail2ban-client -c "$s/etc" -s "$s/fail2ban.sock" "$@"
}

do_start() {
    local ns=$1 s; s=$(nb_state "$ns")
    if running "$s"; then nb_die "already running in $ns (PID $(fpid "$s"))"; fi
    nb_need_cmd fail2ban-server fail2ban
    nb_need_cmd iptables iptables
    nb_need_cmd nft nftables
    prepare "$s"
    rm -f "$s/fail2ban.sock" "$s/launcher.pid" "$s/mntns"
    cat > "$s/launch.sh" <<EOF
$(nb_private_run_prologue "$NB_STATE_ROOT/$ns")
mount --bind '$s/etc' /etc/fail2ban
$( [ "${F2B_IPTABLES:-}" = legacy ] && echo "mount --bind /usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi" )
echo \$\$ > '$s/launcher.pid'
exec fail2ban-server -f -x -c /etc/fail2ban -s '$s/fail2ban.sock' -p '$s/fail2ban.pid'
EOF
    nb_launch "$s/fail2ban.out" ip netns exec "$ns" unshare -m --propagation private /bin/sh "$s/launch.sh"
    local i ok=
    for ((i = 0; i < 150; i++)); do
        nb_note_mntns "$s/launcher.pid" "$s/mntns"
        if [ "$(f2bc "$s" ping 2>/dev/null)" = "Server replied: pong" ]; then ok=1; break; fi
        if [ -s "$s/launcher.pid" ] && ! running "$s"; then break; fi
        sleep 0.2
    done
    if [ -z "$ok" ]; then
        nb_err "fail2ban-server did not answer in $ns"
        tail -n 20 "$s/fail2ban.out" "$s/fail2ban.log" >&2 2>/dev/null || true
        stop_procs "$s"; exit 1
    fi
    nb_log "running in $ns: fail2ban-server PID $(fpid "$s"), jails: $(f2bc "$s" status | sed -n 's/.*Jail list:[[:space:]]*//p')"
}

stop_procs() {  # S
    local s=$1 rc=0
    nb_stop_pid "$(fpid "$s")" fail2ban-server 30 || rc=1
    nb_reap_mntns "$(cat "$s/mntns" 2>/dev/null)" "$ns" fail2ban || rc=1
    rm -f "$s/launcher.pid" "$s/fail2ban.sock"
    return $rc
}

do_stop() {
    local ns=$1 s i; s=$(nb_state "$ns")
    [ -d "$s" ] || { nb_log "not running in $ns (no state at $s)"; return 0; }
    if running "$s"; then
        # The orderly way: the server runs every jail's actionstop.
        f2bc "$s" stop >/dev/null 2>&1 || nb_warn "fail2ban-client stop failed; signalling the server"
        for ((i = 0; i < 100; i++)); do running "$s" || break; sleep 0.1; done
    fi
    stop_procs "$s" || nb_die "could not stop everything in $ns"
    nb_log "stopped in $ns"
    nb_rm_state "$s"
}

need_running() {
    running "$(nb_state "$1")" || nb_die "fail2ban is not running in $1 (start it: $0 start $1)"
}

cmd=${1:-}; ns=${2:-}
case $cmd in -h|--help|help|"") usage; exit 0 ;; esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start)  do_start "$ns" ;;
    stop)   do_stop "$ns" ;;
    ban)    need_running "$ns"; [ $# -ge 1 ] || nb_die "usage: $0 ban NS ADDR [JAIL...]"
            addr=$1; shift; jails=${*:-$JAILS}
            for j in $jails; do f2bc "$S" set "$j" banip "$addr" >/dev/null || nb_die "banning $addr in $j failed"; done
            nb_log "banned $addr in: $jails" ;;
    unban)  need_running "$ns"; [ $# -ge 1 ] || nb_die "usage: $0 unban NS ADDR"
            f2bc "$S" unban "$1" ;;
    fail)   need_running "$ns"; [ $# -ge 1 ] || nb_die "usage: $0 fail NS ADDR [N]"
            n=${2:-6}
            for ((k = 0; k < n; k++)); do
                echo "$(date '+%b %e %H:%M:%S') nb sshd[$((1000 + k))]: Failed password for root from $1 port $((40000 + k)) ssh2" >> "$S/auth.log"
            done ;;
    reload) need_running "$ns"; f2bc "$S" reload ;;
    restart-jails)
            need_running "$ns"
            # The jails' actions re-run asynchronously after the reply; wait
            # (max 10 s) until the jails that had bans have their rules back.
            had_ipt=; had_nft=
            ip netns exec "$ns" iptables -S f2b-sshd-iptables 2>/dev/null | grep -q -- '-s ' && had_ipt=1
            ip netns exec "$ns" nft list set inet f2b-table addr-set-sshd-nftables 2>/dev/null | grep -q elements && had_nft=1
            f2bc "$S" reload --restart
            sleep 0.3
            for ((k = 0; k < 50; k++)); do
                { [ -z "$had_ipt" ] || ip netns exec "$ns" iptables -S f2b-sshd-iptables 2>/dev/null | grep -q -- '-s '; } &&
                { [ -z "$had_nft" ] || ip netns exec "$ns" nft list set inet f2b-table addr-set-sshd-nftables 2>/dev/null | grep -q elements; } &&
                break
                sleep 0.2
            done ;;
    cmd)    need_running "$ns"; f2bc "$S" "$@" ;;
    exec)   need_running "$ns"; [ $# -gt 0 ] || nb_die "exec needs a command"
            nb_nsenter "$(fpid "$S")" "$@" ;;
    status) if running "$S"; then echo "fail2ban-server running in $ns: PID $(fpid "$S")"; f2bc "$S" status
            else echo "fail2ban not running in $ns"; exit 3; fi ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
