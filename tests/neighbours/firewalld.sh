#!/bin/bash
# firewalld.sh - run Debian's real firewalld (nftables backend) inside one
# network namespace, with its own D-Bus system bus, its own /etc/firewalld
# and its own /run.
#
# (A copy of shared/neighbours/firewalld.sh, for wgfw-hook's tests.)
set -eu
NB_NAME=firewalld
. "$(dirname "$(readlink -f "$0")")/lib.sh"

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS              start dbus-daemon + firewalld in network namespace NS
  stop NS               stop firewalld (it cleans up its rules) and its bus
  restart NS            stop and start again, keeping the permanent config
  reload NS             firewall-cmd --reload
  complete-reload NS    firewall-cmd --complete-reload
  cmd NS ARGS...        firewall-cmd ARGS... against this instance
  exec NS CMD...        run CMD in the instance's namespaces, with
                        DBUS_SYSTEM_BUS_ADDRESS set to its bus
  env NS                print DBUS_SYSTEM_BUS_ADDRESS=... for this instance
  status NS             exit 0 when running, 3 when not

State: \$NEIGHBOURS_STATE/NS/firewalld (etc/ = its /etc/firewalld, firewalld.log,
dbus/).  FIREWALLD_BACKEND=nftables|iptables (default nftables) is written
into the private firewalld.conf at the first start.
$(nb_usage_common)
EOF
}

bus_addr() { echo "unix:path=$1/dbus/system_bus_socket"; }

fw_pid()   { nb_pidfile "$1/firewalld.pid"; }
dbus_pid() { nb_pidfile "$1/dbus/dbus.pid"; }

running() {  # S
    local p; p=$(fw_pid "$1")
    [ -n "$p" ] && nb_alive "$p"
}

fwcmd() {   # S ARGS...
    local s=$1; shift
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_addr "$s") firewall-cmd "$@"
}

prepare_config() {  # S
    local s=$1
    mkdir -p "$s/dbus"
    if [ ! -e "$s/etc/firewalld.conf" ]; then
        mkdir -p "$s/etc"
        cp -a /etc/firewalld/. "$s/etc/"
        sed -i "s/^FirewallBackend=.*/FirewallBackend=${FIREWALLD_BACKEND:-nftables}/" "$s/etc/firewalld.conf"
        grep -q '^FirewallBackend=' "$s/etc/firewalld.conf" ||
            echo "FirewallBackend=${FIREWALLD_BACKEND:-nftables}" >> "$s/etc/firewalld.conf"
    fi
    # A private system bus: its own socket, no service activation, and a
    # policy that lets root own and call anything on it.
    cat > "$s/dbus/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$(bus_addr "$s")</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
}

do_start() {
    local ns=$1 s; s=$(nb_state "$ns")
    if running "$s"; then nb_die "already running in $ns (PID $(fw_pid "$s"))"; fi
    nb_need_cmd firewalld firewalld
    nb_need_cmd firewall-cmd firewalld
    nb_need_cmd dbus-daemon dbus-daemon
    nb_need_cmd nft nftables
    prepare_config "$s"
    rm -f "$s/dbus/system_bus_socket" "$s/firewalld.pid" "$s/dbus/dbus.pid" "$s/firewalld.mntns" "$s/dbus/dbus.mntns"

    # 1. the private system bus (inside NS, in a mount namespace of its own)
    cat > "$s/dbus/launch.sh" <<EOF
$(nb_private_run_prologue "$NB_STATE_ROOT/$ns")
echo \$\$ > '$s/dbus/dbus.pid'
exec dbus-daemon --nofork --nopidfile --config-file='$s/dbus/bus.conf'
EOF
    nb_launch "$s/dbus/dbus.log" ip netns exec "$ns" unshare -m --propagation private /bin/sh "$s/dbus/launch.sh"
    if ! nb_wait 10 test -S "$s/dbus/system_bus_socket"; then
        nb_note_mntns "$s/dbus/dbus.pid" "$s/dbus/dbus.mntns"
        tail -n 20 "$s/dbus/dbus.log" >&2 || true
        do_stop_procs "$s"; nb_die "dbus-daemon did not come up in $ns"
    fi
    nb_note_mntns "$s/dbus/dbus.pid" "$s/dbus/dbus.mntns"

    # 2. firewalld with /etc/firewalld -> $s/etc and a private /run
    cat > "$s/launch.sh" <<EOF
$(nb_private_run_prologue "$NB_STATE_ROOT/$ns")
mount --bind '$s/etc' /etc/firewalld
export DBUS_SYSTEM_BUS_ADDRESS='$(bus_addr "$s")'
echo \$\$ > '$s/firewalld.pid'
exec firewalld --nofork --log-target file --log-file '$s/firewalld.log' ${FIREWALLD_DEBUG:+--debug=$FIREWALLD_DEBUG}
EOF
    nb_launch "$s/firewalld.out" ip netns exec "$ns" unshare -m --propagation private /bin/sh "$s/launch.sh"
    local i st=
    for ((i = 0; i < 300; i++)); do
        nb_note_mntns "$s/firewalld.pid" "$s/firewalld.mntns"
        st=$(fwcmd "$s" --state 2>/dev/null || true)
        [ "$st" = running ] && break
        if [ -s "$s/firewalld.pid" ] && ! running "$s"; then break; fi
        sleep 0.2
    done
    if [ "$st" != running ]; then
        nb_err "firewalld did not reach state 'running' in $ns (state: ${st:-none})"
        tail -n 20 "$s/firewalld.out" "$s/firewalld.log" >&2 2>/dev/null || true
        do_stop_procs "$s"; exit 1
    fi
    nb_log "running in $ns: firewalld PID $(fw_pid "$s"), dbus-daemon PID $(dbus_pid "$s"), bus $(bus_addr "$s")"
}

do_stop_procs() {  # S
    local s=$1 rc=0
    # SIGTERM: firewalld runs its CleanupOnExit (drops its table) and exits.
    nb_stop_pid "$(fw_pid "$s")" firewalld 40 || rc=1
    nb_reap_mntns "$(cat "$s/firewalld.mntns" 2>/dev/null)" "$ns" firewalld || rc=1
    nb_stop_pid "$(dbus_pid "$s")" dbus-daemon 10 || rc=1
    nb_reap_mntns "$(cat "$s/dbus/dbus.mntns" 2>/dev/null)" "$ns" dbus-daemon || rc=1
    rm -f "$s/firewalld.pid" "$s/dbus/dbus.pid" "$s/dbus/system_bus_socket"
    return $rc
}

do_stop() {
    local ns=$1 s; s=$(nb_state "$ns")
    [ -d "$s" ] || { nb_log "not running in $ns (no state at $s)"; return 0; }
    do_stop_procs "$s" || nb_die "could not stop everything in $ns"
    nb_log "stopped in $ns"
    [ "${2:-}" = keep ] || nb_rm_state "$s"
}

need_running() {
    local s; s=$(nb_state "$1")
    running "$s" || nb_die "firewalld is not running in $1 (start it: $0 start $1)"
}

cmd=${1:-}; ns=${2:-}
case $cmd in
    -h|--help|help|"") usage; exit 0 ;;
esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start)   do_start "$ns" ;;
    stop)    do_stop "$ns" ;;
    restart) do_stop "$ns" keep; do_start "$ns" ;;
    reload)  need_running "$ns"; fwcmd "$S" --reload ;;
    complete-reload) need_running "$ns"; fwcmd "$S" --complete-reload ;;
    cmd)     need_running "$ns"
             DBUS_SYSTEM_BUS_ADDRESS=$(bus_addr "$S") nb_nsenter "$(fw_pid "$S")" firewall-cmd "$@" ;;
    exec)    need_running "$ns"; [ $# -gt 0 ] || nb_die "exec needs a command"
             DBUS_SYSTEM_BUS_ADDRESS=$(bus_addr "$S") nb_nsenter "$(fw_pid "$S")" "$@" ;;
    env)     echo "DBUS_SYSTEM_BUS_ADDRESS=$(bus_addr "$S")" ;;
    status)  if running "$S"; then
                 echo "firewalld running in $ns: PID $(fw_pid "$S"), state $(fwcmd "$S" --state 2>&1)"
             else echo "firewalld not running in $ns"; exit 3; fi ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
