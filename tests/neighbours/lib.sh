# lib.sh - helpers shared by the neighbour scripts.  Sourced, never run.
# (A copy of shared/neighbours/lib.sh, for wgfw-hook's tests.)
#
# Every neighbour script works on ONE network namespace that the caller made
# (ip netns add NS) and keeps its state in $NEIGHBOURS_STATE/NS/NAME
# (default /run/neighbours/NS/NAME).  Nothing here touches the root network
# namespace: each command runs under `ip netns exec NS`, and daemons get a
# private mount namespace (unshare -m) in which /run is a fresh tmpfs and
# their /etc directories are bind mounts of private copies.
#
# Environment understood by all scripts:
#   NEIGHBOURS_STATE       state root (default /run/neighbours)
#   NEIGHBOURS_NO_INSTALL  =1: never run apt-get; fail if a package is missing
#   NEIGHBOURS_QUIET       =1: no progress messages on stderr
#   KEEP_STATE             =1: `stop` keeps the state directory (logs, configs)

NB_STATE_ROOT=${NEIGHBOURS_STATE:-/run/neighbours}
NB_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

nb_err()  { echo "${NB_NAME:-neighbours}: error: $*" >&2; }
nb_die()  { nb_err "$@"; exit 1; }
nb_warn() { echo "${NB_NAME:-neighbours}: warning: $*" >&2; }
nb_log()  { [ -n "${NEIGHBOURS_QUIET:-}" ] || echo "${NB_NAME:-neighbours}: $*" >&2; }

nb_require_root() {
    [ "$(id -u)" = 0 ] || nb_die "must run as root"
    for t in ip unshare nsenter setsid mount; do
        command -v "$t" >/dev/null 2>&1 || nb_die "required tool '$t' not found"
    done
}

# nb_check_ns NS: NS must be an existing named network namespace that is not
# the root one.
nb_check_ns() {
    local ns=$1
    [ -n "$ns" ] || nb_die "missing network namespace name (usage: $0 COMMAND NS ...)"
    case $ns in
        *[!A-Za-z0-9_.-]*|.*) nb_die "bad network namespace name '$ns'" ;;
    esac
    [ -e "/run/netns/$ns" ] ||
        nb_die "network namespace '$ns' does not exist (create it first: ip netns add $ns)"
    local a b
    a=$(stat -L -c %i "/run/netns/$ns") || nb_die "cannot stat /run/netns/$ns"
    b=$(nb_root_ns net | tr -cd '0-9')
    [ -n "$b" ] || nb_die "cannot identify the root network namespace"
    [ "$a" != "$b" ] || nb_die "'$ns' is the root network namespace; refusing to touch it"
}

nb_state() { echo "$NB_STATE_ROOT/$1/$NB_NAME"; }

# nb_root_ns TYPE: the id (e.g. net:[4026531833]) of the initial namespace of
# TYPE, read from kthreadd (PID 2; PID 1 may not be readable).
nb_root_ns() {
    readlink "/proc/2/ns/$1" 2>/dev/null || readlink "/proc/1/ns/$1" 2>/dev/null
}

# ---------------------------------------------------------------- processes

# nb_alive PID: true while PID exists and is not a zombie.
nb_alive() {
    local pid=$1 st
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# nb_pidfile FILE: prints the PID in FILE (digits only) or nothing.
nb_pidfile() {
    local f=$1 p
    [ -r "$f" ] || return 0
    p=$(tr -cd '0-9' < "$f")
    [ -n "$p" ] && echo "$p"
}

# nb_cmdline PID: the command line with NULs turned into spaces.
nb_cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null; }

# nb_stop_pid PID MUST_CONTAIN TIMEOUT: SIGTERM, wait, then SIGKILL.  The PID
# is only signalled while its command line contains MUST_CONTAIN (protects
# against a recycled PID).
nb_stop_pid() {
    local pid=$1 want=$2 timeout=${3:-30} i
    [ -n "$pid" ] || return 0
    nb_alive "$pid" || return 0
    case "$(nb_cmdline "$pid")" in
        *"$want"*) ;;
        *) nb_warn "PID $pid is no longer '$want' (now: $(nb_cmdline "$pid" | cut -c1-80)); not signalling it"
           return 0 ;;
    esac
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        nb_alive "$pid" || return 0
        sleep 0.1
    done
    nb_warn "PID $pid ($want) ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        nb_alive "$pid" || return 0
        sleep 0.1
    done
    nb_err "PID $pid ($want) survived SIGKILL"
    return 1
}

# nb_mntns PID: the mount namespace id (e.g. mnt:[4026532310]) of PID.
nb_mntns() { readlink "/proc/$1/ns/mnt" 2>/dev/null; }

# nb_note_mntns PIDFILE OUT: once PIDFILE names a live process, write its
# mount namespace id to OUT (used later to find leftovers of that daemon).
nb_note_mntns() {
    [ -s "$2" ] && return 0
    local p; p=$(nb_pidfile "$1")
    [ -n "$p" ] && nb_alive "$p" && nb_mntns "$p" > "$2"
    return 0
}

# nb_mntns_pids ID NS: PIDs of live processes whose mount namespace is ID and
# whose network namespace is NS.  (A mount namespace id can be reused once
# that namespace is gone; the named network namespace NS cannot, so both
# must match.)
nb_mntns_pids() {
    local id=$1 ns=$2 net d p
    [ -n "$id" ] && [ -n "$ns" ] || return 0
    [ "$id" != "$(nb_root_ns mnt)" ] || return 0             # never the root one
    [ "$id" != "$(readlink /proc/self/ns/mnt)" ] || return 0  # nor our own
    net=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) || return 0
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$id" ] || continue
        [ "$(readlink "$d/ns/net" 2>/dev/null)" = "net:[$net]" ] || continue
        nb_alive "$p" && echo "$p"
    done
}

# nb_reap_mntns ID NS LABEL: ends (by PID) every process still living in the
# daemon's private mount namespace ID inside network namespace NS; only
# processes started by this script can be there.
nb_reap_mntns() {
    local id=$1 ns=$2 label=$3 p left i
    [ -n "$id" ] || return 0
    left=$(nb_mntns_pids "$id" "$ns")
    [ -n "$left" ] || return 0
    nb_warn "$label: processes still in its mount namespace: $(echo $left); sending SIGTERM"
    for p in $left; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 100; i++)); do
        left=$(nb_mntns_pids "$id" "$ns"); [ -n "$left" ] || return 0; sleep 0.1
    done
    for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
    sleep 0.5
    left=$(nb_mntns_pids "$id" "$ns")
    [ -z "$left" ] || { nb_err "$label: could not end PIDs $(echo $left)"; return 1; }
}

# nb_launch LOG CMD...: start CMD detached (own session, stdin from
# /dev/null, output appended to LOG).  Returns at once.
nb_launch() {
    local log=$1; shift
    setsid -f "$@" </dev/null >>"$log" 2>&1
}

# nb_wait TIMEOUT_S CMD...: retry CMD every 0.2 s until it succeeds.
nb_wait() {
    local t=$1 i; shift
    for ((i = 0; i < t * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# nb_nsenter PID CMD...: run CMD in the network and mount namespaces of PID.
nb_nsenter() {
    local pid=$1 wd=/; shift
    case $PWD in /run|/run/*) ;; *) wd=$PWD ;; esac
    nsenter -t "$pid" -m -n --wdns="$wd" -- "$@"
}

# nb_private_run_prologue DIR: shell lines that, run inside `unshare -m`,
# mount a private tmpfs on /run and keep DIR (the namespace's state
# directory, which may lie under /run) reachable at the same path, so that
# neighbours in the same namespace still see each other's sockets.
nb_private_run_prologue() {
    local s=$1
    cat <<EOF
set -e
exec 9<'$s'
mount -t tmpfs -o mode=0755,size=64m nb-run /run
mkdir -p /run/lock '$s'
mount -c --bind /proc/self/fd/9 '$s'
exec 9<&-
EOF
}

# nb_cgroup_mounts: shell lines that re-create the host's /sys/fs/cgroup
# mounts (ip netns exec remounts /sys and so hides them).
nb_cgroup_mounts() {
    findmnt -rn -o TARGET,FSTYPE,FS-OPTIONS | while read -r tgt fst opts; do
        case $tgt in /sys/fs/cgroup|/sys/fs/cgroup/*) ;; *) continue ;; esac
        case $fst in
            tmpfs)   echo "mkdir -p '$tgt'; mount -t tmpfs -o mode=0755 cgroup-root '$tgt'" ;;
            cgroup)  echo "mkdir -p '$tgt'; mount -t cgroup -o '$opts' cgroup '$tgt'" ;;
            cgroup2) echo "mkdir -p '$tgt'; mount -t cgroup2 cgroup2 '$tgt'" ;;
        esac
    done
}

# ---------------------------------------------------------------- packages

nb_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# nb_ensure_pkgs PKG...: install the missing ones with apt-get, with a
# policy-rc.d that forbids starting services, then check that the install
# started no daemon in the root namespace (any such process is stopped by
# PID and reported).
nb_ensure_pkgs() {
    local missing=() p
    for p in "$@"; do nb_pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ -z "${NEIGHBOURS_NO_INSTALL:-}" ] ||
        nb_die "missing Debian packages: ${missing[*]} (NEIGHBOURS_NO_INSTALL is set)"
    command -v apt-get >/dev/null || nb_die "missing packages ${missing[*]} and no apt-get"
    nb_log "installing ${missing[*]} (services are not started)"

    local prc=/usr/sbin/policy-rc.d created=0 saved= rc=0 out
    if [ -e "$prc" ]; then
        "$prc" neighbours start >/dev/null 2>&1 || rc=$?
        if [ "$rc" != 101 ]; then saved=$prc.neighbours-saved; mv "$prc" "$saved"; fi
        rc=0
    fi
    if [ ! -e "$prc" ]; then
        printf '#!/bin/sh\n# written by neighbours/lib.sh during a package install\nexit 101\n' > "$prc"
        chmod 0755 "$prc"; created=1
    fi
    local before; before=$(ls /proc | grep -E '^[0-9]+$' | sort)
    out=$(mktemp)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1 || rc=$?
    if [ "$rc" != 0 ] && grep -qE 'Unable to locate|has no installation candidate|404' "$out"; then
        rc=0
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
              --no-install-recommends "${missing[@]}"; } >"$out" 2>&1 || rc=$?
    fi
    [ "$created" = 1 ] && rm -f "$prc"
    [ -n "$saved" ] && mv "$saved" "$prc"

    # Did the install start anything in the root network namespace?
    local after rootnet pkgs files newpid exe
    after=$(ls /proc | grep -E '^[0-9]+$' | sort)
    rootnet=$(nb_root_ns net)
    pkgs=$(sed -n 's/^Unpacking \([^ :]*\).*/\1/p' "$out")
    files=$(for p in $pkgs; do dpkg -L "$p" 2>/dev/null; done)
    for newpid in $(comm -13 <(echo "$before") <(echo "$after")); do
        nb_alive "$newpid" || continue
        [ "$(readlink "/proc/$newpid/ns/net" 2>/dev/null)" = "$rootnet" ] || continue
        exe=$(readlink "/proc/$newpid/exe" 2>/dev/null) || continue
        if grep -qxF "$exe" <<<"$files"; then
            nb_warn "the install of ${missing[*]} started PID $newpid ($exe) in the ROOT namespace; stopping it by PID"
            kill -TERM "$newpid" 2>/dev/null || true
        fi
    done
    if [ "$rc" != 0 ]; then
        tail -n 15 "$out" >&2; rm -f "$out"
        nb_die "apt-get install ${missing[*]} failed (exit $rc)"
    fi
    rm -f "$out"
}

# nb_need_cmd CMD PKG: make sure CMD exists, installing PKG if needed.
nb_need_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    nb_ensure_pkgs "$2"
    command -v "$1" >/dev/null 2>&1 || nb_die "'$1' still missing after installing $2"
}

# ---------------------------------------------------------------- misc

nb_iptables_variant() {
    case "$(iptables -V 2>/dev/null)" in
        *nf_tables*) echo iptables-nft ;;
        *legacy*)    echo iptables-legacy ;;
        *)           echo unknown ;;
    esac
}

# nb_rm_state DIR: remove a state directory unless KEEP_STATE=1.  Refuses
# while anything is still mounted below it.
nb_rm_state() {
    local d=$1
    [ -d "$d" ] || return 0
    if [ -n "${KEEP_STATE:-}" ]; then nb_log "state kept in $d"; return 0; fi
    if findmnt -rn -o TARGET | grep -q "^$d\(/\|$\)"; then
        nb_err "something is still mounted below $d; not removing it"; return 1
    fi
    rm -rf --one-file-system "$d"
    rmdir "$(dirname "$d")" 2>/dev/null || true
    rmdir "$NB_STATE_ROOT" 2>/dev/null || true
}

nb_usage_common() {
    cat <<EOF
Common environment: NEIGHBOURS_STATE (state root, default /run/neighbours),
NEIGHBOURS_NO_INSTALL=1 (never apt-get), KEEP_STATE=1 (stop keeps the state
directory), NEIGHBOURS_QUIET=1.
EOF
}
