#!/bin/bash
# dockerd.sh - run Debian's real dockerd (docker.io) inside one network
# namespace, with a private data-root, exec-root, pidfile, socket, /etc/docker
# and /run, so that its iptables rules land in that namespace only.
#
# (A copy of shared/neighbours/dockerd.sh, for wgfw-hook's tests.)
set -eu
NB_NAME=dockerd
. "$(dirname "$(readlink -f "$0")")/lib.sh"

IMAGE=nb/busybox:latest

usage() {
    cat <<EOF
usage: $0 COMMAND NS [ARGS...]

  start NS                  start dockerd (--iptables=true) in NS
  stop NS                   remove containers, stop dockerd (its iptables
                            rules and bridges stay, as with a real dockerd)
  restart NS                stop dockerd and start it again with the same
                            data-root (networks and stopped containers kept)
  reload NS                 SIGHUP (dockerd re-reads its daemon.json)
  network NS NAME [ARGS]    docker network create [ARGS] NAME (user bridge)
  publish NS HOSTPORT [NAME]
                            run a tiny busybox httpd container with
                            -p HOSTPORT:80 (needs cgroups + overlayfs)
  cmd NS ARGS...            docker ARGS... against this daemon
  exec NS CMD...            run CMD in dockerd's namespaces (DOCKER_HOST set)
  env NS                    print DOCKER_HOST=... for this daemon
  status NS                 exit 0 when running, 3 when not

State: \$NEIGHBOURS_STATE/NS/dockerd (data/, exec/, dockerd.log, docker.sock).
DOCKERD_ARGS adds daemon flags (e.g. "--bip 198.18.0.1/24");
DOCKERD_CONFIG=FILE is used as its daemon.json (default: {}).
DOCKERD_WITH_FIREWALLD=auto|yes|no (default auto): when firewalld.sh runs in
the same NS, dockerd is put on firewalld's D-Bus bus, as on a real host.
$(nb_usage_common)
EOF
}

dpid()    { nb_pidfile "$1/launcher.pid"; }
running() { local p; p=$(dpid "$1"); [ -n "$p" ] && nb_alive "$p"; }
dk()      { local s=$1; shift; DOCKER_HOST="unix://$s/docker.sock" docker "$@"; }

do_start() {
    local ns=$1 s; s=$(nb_state "$ns")
    if running "$s"; then nb_die "already running in $ns (PID $(dpid "$s"))"; fi
    nb_need_cmd dockerd docker.io
    nb_need_cmd docker docker.io
    nb_need_cmd iptables iptables
    [ -d /etc/docker ] || nb_die "/etc/docker is missing (is docker.io installed?)"
    mkdir -p "$s/data" "$s/exec" "$s/etc-docker"
    if [ -n "${DOCKERD_CONFIG:-}" ]; then cp "$DOCKERD_CONFIG" "$s/daemon.json"
    elif [ ! -e "$s/daemon.json" ]; then echo '{}' > "$s/daemon.json"; fi
    rm -f "$s/docker.sock" "$s/launcher.pid" "$s/dockerd.pid" "$s/mntns"
    # As on a real host, dockerd talks to firewalld when firewalld is on the
    # system bus: here, when firewalld.sh runs in the same namespace.
    local fws=$NB_STATE_ROOT/$ns/firewalld/dbus/system_bus_socket busline="unset DBUS_SYSTEM_BUS_ADDRESS"
    case ${DOCKERD_WITH_FIREWALLD:-auto} in
        auto) [ -S "$fws" ] && busline="export DBUS_SYSTEM_BUS_ADDRESS='unix:path=$fws'" ;;
        yes)  [ -S "$fws" ] || nb_die "DOCKERD_WITH_FIREWALLD=yes but firewalld.sh is not running in $ns"
              busline="export DBUS_SYSTEM_BUS_ADDRESS='unix:path=$fws'" ;;
        no)   ;;
        *)    nb_die "DOCKERD_WITH_FIREWALLD must be auto, yes or no" ;;
    esac
    cat > "$s/launch.sh" <<EOF
$(nb_private_run_prologue "$NB_STATE_ROOT/$ns")
$(nb_cgroup_mounts)
mount --bind '$s/etc-docker' /etc/docker
$busline
echo \$\$ > '$s/launcher.pid'
exec dockerd --config-file '$s/daemon.json' --iptables=true \\
    --data-root '$s/data' --exec-root '$s/exec' --pidfile '$s/dockerd.pid' \\
    -H 'unix://$s/docker.sock' --cgroup-parent '/neighbours-$ns' ${DOCKERD_ARGS:-}
EOF
    nb_launch "$s/dockerd.log" ip netns exec "$ns" unshare -m --propagation private /bin/sh "$s/launch.sh"
    local i ok=
    for ((i = 0; i < 300; i++)); do
        nb_note_mntns "$s/launcher.pid" "$s/mntns"
        if dk "$s" version >/dev/null 2>&1; then ok=1; break; fi
        if [ -s "$s/launcher.pid" ] && ! running "$s"; then break; fi
        sleep 0.2
    done
    if [ -z "$ok" ]; then
        nb_err "dockerd did not answer on $s/docker.sock"
        tail -n 20 "$s/dockerd.log" >&2 || true
        stop_procs "$ns" "$s"; exit 1
    fi
    nb_log "running in $ns: dockerd PID $(dpid "$s"), DOCKER_HOST=unix://$s/docker.sock ($(nb_iptables_variant)$(case $busline in export*) echo ", on firewalld's bus";; esac))"
}

cgroup_cleanup() {  # NS
    local d
    for d in $(find /sys/fs/cgroup -maxdepth 2 -type d -name "neighbours-$1" 2>/dev/null); do
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [ ! -d "$d" ] || nb_warn "cgroup $d is not empty; left in place"
    done
}

stop_procs() {  # NS S
    local ns=$1 s=$2 rc=0
    nb_stop_pid "$(dpid "$s")" dockerd 60 || rc=1
    nb_reap_mntns "$(cat "$s/mntns" 2>/dev/null)" "$ns" dockerd || rc=1
    cgroup_cleanup "$ns"
    rm -f "$s/launcher.pid" "$s/docker.sock"
    return $rc
}

do_stop() {
    local ns=$1 keep=${2:-} s; s=$(nb_state "$ns")
    [ -d "$s" ] || { nb_log "not running in $ns (no state at $s)"; return 0; }
    if [ -z "$keep" ] && running "$s"; then
        # Containers are removed first so that dockerd need not wait for them.
        local c; c=$(dk "$s" ps -aq 2>/dev/null || true)
        [ -z "$c" ] || dk "$s" rm -f $c >/dev/null 2>&1 || true
    fi
    stop_procs "$ns" "$s" || nb_die "could not stop everything in $ns"
    nb_log "stopped in $ns"
    [ -n "$keep" ] || nb_rm_state "$s"
}

need_running() {
    running "$(nb_state "$1")" || nb_die "dockerd is not running in $1 (start it: $0 start $1)"
}

ensure_image() {  # S
    local s=$1 r lib
    dk "$s" image inspect "$IMAGE" >/dev/null 2>&1 && return 0
    nb_need_cmd busybox busybox
    r=$s/image-rootfs; rm -rf "$r"; mkdir -p "$r/bin" "$r/tmp"
    cp /usr/bin/busybox "$r/bin/busybox"
    for lib in $(ldd /usr/bin/busybox | grep -o '/[^ ]*'); do
        mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
    done
    ln -s busybox "$r/bin/sh"
    tar -C "$r" -c . | dk "$s" import - "$IMAGE" >/dev/null
    rm -rf "$r"
}

do_publish() {  # NS HOSTPORT [NAME]
    local s; s=$(nb_state "$1")
    local port=${2:-}; local name=${3:-web$port}
    [ -n "$port" ] || nb_die "usage: $0 publish NS HOSTPORT [NAME]"
    ensure_image "$s"
    local out
    if ! out=$(dk "$s" run -d --init --name "$name" -p "$port:80" "$IMAGE" \
                /bin/busybox httpd -f -p 80 2>&1); then
        nb_die "docker run failed: $(echo "$out" | tail -n 1)"
    fi
    echo "$out"
}

cmd=${1:-}; ns=${2:-}
case $cmd in -h|--help|help|"") usage; exit 0 ;; esac
nb_require_root
nb_check_ns "$ns"
S=$(nb_state "$ns")
shift 2
case $cmd in
    start)   do_start "$ns" ;;
    stop)    do_stop "$ns" ;;
    restart) do_stop "$ns" keep; do_start "$ns" ;;
    reload)  need_running "$ns"; kill -HUP "$(dpid "$S")"; nb_log "sent SIGHUP to dockerd $(dpid "$S")" ;;
    network) need_running "$ns"; [ $# -ge 1 ] || nb_die "usage: $0 network NS NAME [ARGS]"
             n=$1; shift; dk "$S" network create "$@" "$n" ;;
    publish) need_running "$ns"; do_publish "$ns" "$@" ;;
    cmd)     need_running "$ns"; dk "$S" "$@" ;;
    exec)    need_running "$ns"; [ $# -gt 0 ] || nb_die "exec needs a command"
             DOCKER_HOST="unix://$S/docker.sock" nb_nsenter "$(dpid "$S")" "$@" ;;
    env)     echo "DOCKER_HOST=unix://$S/docker.sock" ;;
    status)  if running "$S"; then echo "dockerd running in $ns: PID $(dpid "$S")"
             else echo "dockerd not running in $ns"; exit 3; fi ;;
    *) nb_err "unknown command '$cmd'"; usage >&2; exit 2 ;;
esac
