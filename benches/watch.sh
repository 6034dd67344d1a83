#!/usr/bin/env bash
# What the watcher (`wgfw-hook watch`, started by `up`) costs and how fast it repairs (#24).
# Not a test: it prints figures.
#
#   usage: sudo benches/watch.sh [--quick] [--rounds N] [--quiet-rounds N] [--legacy-rounds N]
#                                [--idle SECONDS]
#                                [--backends "nft iptables-nft iptables-legacy"] [--parts "1 2 3 5"]
#
# Builds the release binary (honours CARGO_TARGET_DIR), then, in two network namespaces of its
# own (deleted on exit, also on failure), "bench" (the hook) and "inet" (its uplink):
#
#   1. repair, per backend: a server's firewall (a veth standing in for the tunnel) wiped N times
#      (100; `nft flush ruleset`, or every table's built-in chains flushed in both families, 8
#      commands); the time from the wipe's end until the plan is whole again: nft: the hook's
#      table is back (one transaction); iptables-*: in both families every table that held jumps
#      to the hook's chains holds as many again (each family one restore). Polled as fast as a
#      listing goes (a few ms). Each wipe 2.1 s after the last repair: the watcher looks at once,
#      and once more right after a repair (for the commits that landed meanwhile); past 5 looks
#      within 2 s it coalesces (150 ms of quiet); that second case too, 20 wipes 0.3 s apart.
#      Median, p90, max; then `wgfw-hook check` once. A wipe not whole 1 s after its end is
#      counted as left half-repaired, with what is missing, and `up` (with a new watcher) mends
#      it before the next. iptables-legacy sends no notifications: the watcher asks the kernel
#      for its tables' sizes every 250 ms (--legacy-rounds, default as many as --rounds).
#      Next to it, "kernel:", the repair without the polls' granularity (nft, iptables-nft):
#      benches/commits.py, in the bench namespace, notes each nf_tables commit as announced
#      (NFT_MSG_NEWGEN: CLOCK_MONOTONIC when it read it, the committing program) and the bench's
#      marks (SIGUSR1 just before each wipe, SIGUSR2 when the poll saw the plan whole); per wipe,
#      the time from the wipe's last commit (nft: the first after the mark; iptables-nft: the
#      last of `iptables-nft` and `ip6tables-nft`) to the last repair commit (any other program:
#      the watcher's `nft`, `iptables-nft-restore`) before the whole mark; half-repaired wipes
#      left out. iptables-legacy makes no nf_tables commits: no such figure.
#      The polls compete with the watcher for the CPUs (each is a listing program): "unwatched",
#      N more wipes (--quiet-rounds, as many as --rounds) where the bench runs nothing until
#      0.5 s after the wipe, then looks once; only the kernel's figure is taken.
#   2. leaks, per backend: a client (`--role client`, the kill switch) whose firewall is wiped
#      while it sends UDP probes to 192.0.2.1 (outside the tunnel) at 1,000 a second; the probes
#      that reach "inet" are counted there by an nft counter of its own. First a control without
#      the hook (they arrive) and 0.5 s with the kill switch (none may). Then 20 wipes
#      (--legacy-wipes on iptables-legacy), 2.1 s apart: probes leaked per wipe (from just before
#      it until 50 ms after the plan is whole; mean, max) and all told; the repair, polled and
#      "kernel:" as in 1. On nft also a fight: five repairs more than 2 s apart, then a sixth wipe,
#      which a server's watcher would hold off and a kill switch's repairs at once.
#   3. idle, backend nft: the watcher's wakeups (voluntary + involuntary context switches of all
#      its threads) and CPU (utime + stime; the programs it ran apart) over --idle SECONDS (60)
#      of nothing happening, with a live wireguard-go interface: (a) 10 peers and no sections
#      (nothing to poll: only the 300 s safety net), (b) 10 peers and a [group] section (the
#      peers are polled), (c) 1,000 peers and sections.
#   4. memory: the watcher's VmRSS and VmHWM, in each case above.
#   5. a peer added without a hook, at 10 and 1,000 peers: `wg set IF peer KEY allowed-ips
#      10.77.200.1/32` for a key a section names; the time until the hook's map holds the address
#      (polled every 10 ms), and after `wg set ... remove` until it is gone; 10 rounds. And the
#      same through an edit of the wg-quick config and `wg syncconf` (3 rounds; the watcher polls
#      every 200 ms for 5 s after an edit). Each change is a repair to the watcher, counted
#      against a fight like a wipe: the later rounds show its hold-off (10, 20, 40 s).
#
# The watcher holds off a repair undone five times within a minute (README: "not fought"): so
# that the rounds measure repairs, not that, it is restarted (kill -TERM, `up` again; the
# firewall stays meanwhile) after every 4 wipes.
# The watcher's own log goes to syslog (nowhere here): what it did is read from `status`.
#
# All of it takes about 25 minutes; --parts runs some (e.g. "1", then "2 3 5"). Take the lock
# the end-to-end tests take: flock /tmp/wgfw-e2e.lock bash benches/watch.sh
set -Eeuo pipefail

ROUNDS=100 QUIET_ROUNDS= QUIET=0 QUIET_WAIT=0.5 LEGACY_ROUNDS= IDLE=60 WIPES=20 LEGACY_WIPES=20 ADDS=10 EDITS=3 SIZES="10 1000"
BACKENDS="nft iptables-nft iptables-legacy" FIGHT=1 PARTS="1 2 3 5" BURST=20
# The watcher coalesces changes within 2 s of a look (MAX_BURST in src/commands/watch.rs).
GAP=2.1
usage() { sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
	case $1 in
	--quick) ROUNDS=5 QUIET_ROUNDS=5 LEGACY_ROUNDS=2 IDLE=10 WIPES=5 LEGACY_WIPES=2 ADDS=3 EDITS=1 SIZES="10 100" BURST=5 ;;
	--rounds) ROUNDS=$2; shift ;;
	--quiet-rounds) QUIET_ROUNDS=$2; shift ;;
	--legacy-rounds) LEGACY_ROUNDS=$2; shift ;;
	--idle) IDLE=$2; shift ;;
	--backends) BACKENDS=$2; shift ;;
	--parts) PARTS=$2; shift ;;
	-h | --help) sed -n '2,/^set -E/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) usage ;;
	esac
	shift
done
QUIET_ROUNDS=${QUIET_ROUNDS:-$ROUNDS}
[[ $EUID -eq 0 ]] || { echo "watch.sh: run as root (it creates network namespaces)" >&2; exit 2; }
missing=()
for c in ip nsenter wireguard-go wg wg-quick nft python3 iptables-nft ip6tables-nft iptables-legacy ip6tables-legacy cargo; do
	command -v "$c" >/dev/null || missing+=("$c")
done
((${#missing[@]} == 0)) || { echo "watch.sh: missing: ${missing[*]}" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --locked -q)
TARGET=${CARGO_TARGET_DIR:-target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
BIN=$TARGET/release/wgfw-hook
PY=$(python3 -c 'import sys; print(sys.executable)') # not a pyenv shim: the sender starts at once
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go

NS=wgfw-bw$$ INET=wgfw-bw$$-i
IF=wgw$$ # wireguard-go's control socket path is shared by all namespaces: a name of our own
TMP=$(mktemp -d /tmp/wgfw-bench-watch.XXXXXX)
CONF=$TMP/conf/$IF.conf # in a directory of its own: the watcher watches the config's directory
SETTINGS_DIR=/etc/netns/$NS/wgfw # `ip netns exec` binds it on /etc/wgfw
SENDER= WGGO=
LISTENER= LISTEN_OUT= MARKS=0 # benches/commits.py: its pid, its file, the wipes marked in it
# /etc/netns and /etc/wgfw (the mount point) are made with the end-to-end tests' markers when
# missing, and removed by the last run that finds nothing else in them (tests/e2e/lib.sh).
ETC_NETNS_MARK=/etc/netns/.made-by-wgfw-e2e-tests ETC_WGFW_MARK=/etc/wgfw/.made-by-wgfw-e2e-tests

cleanup() {
	local rc=$? pid ns d
	trap - EXIT INT TERM ERR
	set +e
	[[ -n $SENDER ]] && kill "$SENDER" 2>/dev/null
	[[ -n $LISTENER ]] && kill "$LISTENER" 2>/dev/null
	if [[ -e /run/netns/$NS ]]; then
		ip netns exec "$NS" "$BIN" down "$IF" >/dev/null 2>&1
		ip -n "$NS" link del "$IF" 2>/dev/null # wireguard-go exits when its link goes
	fi
	[[ -n $WGGO ]] && kill "$WGGO" 2>/dev/null
	sleep 0.3
	for ns in "$NS" "$INET"; do
		# Anything left in our namespaces was started by this run (a watcher `down` missed).
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.2
	for ns in "$NS" "$INET"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf -- "/etc/netns/$NS" "$TMP"
	if [[ -f $ETC_WGFW_MARK ]]; then
		for d in /etc/netns/*/wgfw; do [[ -e $d ]] && break; done
		if [[ ! -e $d && $(find /etc/wgfw -mindepth 1 | wc -l) -eq 1 ]]; then
			rm -f -- "$ETC_WGFW_MARK"
			rmdir /etc/wgfw
		fi
	fi
	if [[ -f $ETC_NETNS_MARK && $(find /etc/netns -mindepth 1 | wc -l) -eq 1 ]]; then
		rm -f -- "$ETC_NETNS_MARK"
		rmdir /etc/netns
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "watch.sh: line $LINENO: $BASH_COMMAND failed" >&2' ERR
if [[ ! -d /etc/netns ]] && mkdir -m 755 /etc/netns 2>/dev/null; then : >"$ETC_NETNS_MARK"; fi
if [[ ! -d /etc/wgfw ]] && mkdir -m 755 /etc/wgfw 2>/dev/null; then : >"$ETC_WGFW_MARK"; fi
mkdir -m 700 -p "$SETTINGS_DIR" "$TMP/conf"

# hook ARGS: the hook in the bench namespace (with its /etc/wgfw); in_ns/in_inet CMD: a command
# in a namespace (nsenter: only the network namespace, cheaper to enter for the polls).
hook() { ip netns exec "$NS" "$BIN" "$@"; }
in_ns() { nsenter --net="/run/netns/$NS" "$@"; }
in_inet() { nsenter --net="/run/netns/$INET" "$@"; }

# ---------------------------------------------------------------------------------------------
# Topology: bench eth0 203.0.113.2/24 ── inet to-bench 203.0.113.1/24, 192.0.2.1/32 on its lo.
ip netns add "$NS"
ip netns add "$INET"
ip -n "$NS" link set lo up
ip -n "$INET" link set lo up
ip -n "$NS" link add eth0 type veth peer name to-bench netns "$INET"
ip -n "$NS" addr add 203.0.113.2/24 dev eth0
ip -n "$NS" link set eth0 up
ip -n "$NS" route add default via 203.0.113.1
ip -n "$INET" addr add 203.0.113.1/24 dev to-bench
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" link set to-bench up
in_inet nft -f - <<-'EOF'
	table ip wgfw-bench-count {
		counter probes { }
		chain pre {
			type filter hook prerouting priority raw; policy accept;
			ip daddr 192.0.2.1 udp dport 9 counter name probes
		}
	}
EOF
in_ns ping -c 1 -W 2 203.0.113.1 >/dev/null || { echo "watch.sh: the bench namespace cannot reach inet" >&2; exit 1; }

# The probe sender: COUNT UDP probes to 192.0.2.1:9 at RATE a second (bounded), each sendto's
# refusal (the kill switch's drop in output) ignored.
cat >"$TMP/send.py" <<-'EOF'
	import socket, sys, time
	count, rate = int(sys.argv[1]), int(sys.argv[2])
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	t0 = time.monotonic()
	for i in range(count):
	    wait = t0 + i / rate - time.monotonic()
	    if wait > 0:
	        time.sleep(wait)
	    try:
	        s.sendto(b"wgfw-bench", ("192.0.2.1", 9))
	    except OSError:
	        pass
EOF
# probes_arrived: the probes counted in inet so far.
probes_arrived() { in_inet nft list counter ip wgfw-bench-count probes | awk '{ for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
# probe COUNT: sends COUNT probes at 1,000 a second and waits; prints how many arrived.
probe() {
	local c0
	c0=$(probes_arrived)
	in_ns "$PY" "$TMP/send.py" "$1" 1000
	sleep 0.1
	echo $(($(probes_arrived) - c0))
}

# ---------------------------------------------------------------------------------------------
# Helpers.

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# stats FILE [DIV] [UNIT]: "median M, p90 P, max X UNIT (n=N)" of the numbers in FILE over DIV.
stats() {
	sort -n "$1" | awk -v d="${2:-1000}" -v u="${3:-ms}" '{ v[NR] = $1 } END {
		if (NR == 0) { print "no samples"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "median %.1f, p90 %.1f, max %.1f %s (n=%d)", m / d, v[int((NR - 1) * 0.9 + 0.5) + 1] / d, v[NR] / d, u, NR }'
}
CLK_TCK=$(getconf CLK_TCK)
watcher_pid() { hook status "$IF" 2>/dev/null | sed -n 's/^  watcher: pid \([0-9]*\),.*/\1/p'; }
# wait_watcher [OLD]: waits (5 s at most) for a watcher other than OLD; sets PID.
wait_watcher() {
	local i
	PID=
	for ((i = 0; i < 100; i++)); do
		PID=$(watcher_pid)
		[[ -n $PID && $PID != "${1:-}" ]] && return 0
		sleep 0.05
	done
	echo "watch.sh: no watcher started for $IF" >&2
	hook status "$IF" >&2 || true
	exit 1
}
repairs_of() { hook status "$IF" 2>/dev/null | sed -n 's/^  watcher: pid [0-9]*, since [^,]*, \([0-9]*\) repairs\{0,1\},.*/\1/p'; }
# restart_watcher: TERM (the firewall stays), `up` again with UP_ARGS, a new watcher, settled.
# Adds the old one's repairs to REPAIRS.
restart_watcher() {
	local old=$PID i r
	r=$(repairs_of)
	REPAIRS=$((REPAIRS + ${r:-0}))
	kill -TERM "$old"
	for ((i = 0; i < 100; i++)); do [[ -e /proc/$old ]] || break; sleep 0.05; done
	[[ ! -e /proc/$old ]] || { echo "watch.sh: watcher $old did not stop" >&2; exit 1; }
	hook up "$IF" "${UP_ARGS[@]}" >/dev/null 2>"$TMP/up.err" || { cat "$TMP/up.err" >&2; exit 1; }
	wait_watcher "$old"
	sleep 0.3
}
# Of a process (all its threads): context switches; CPU in ticks: its own, its children's;
# on-CPU nanoseconds (schedstat); memory.
ctxt() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }'; }
cpu() { awk '{ print $14 + $15, $16 + $17 }' "/proc/$1/stat"; }
oncpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
mem() { awk '/^VmRSS|^VmHWM/ { printf "%s%s %d kB", (n++ ? ", " : ""), $1, $2 } /^Threads/ { t = $2 } END { printf ", %d thread%s", t, (t == 1 ? "" : "s") }' "/proc/$1/status"; }
ms_of_ticks() { echo $(($1 * 1000 / CLK_TCK)); }

# The hook's rules of a backend, as the polls see them: nft: its table; iptables-*: per family
# and table, how many jumps (and gotos) to its chains (a wipe leaves the chains, flushed).
rules_of() {
	case $1 in
	nft) in_ns nft list tables | grep -c '^table inet wgfw$' || true ;;
	iptables-nft) in_ns nft list ruleset 2>/dev/null | awk '/^table / { t = $2 " " $3 } /(jump|goto) WGFW/ { c[t]++ } END { for (k in c) print k, c[k] }' | sort ;;
	iptables-legacy)
		local x
		for x in iptables ip6tables; do
			in_ns "$x-legacy-save" | awk -v f="$x" '/^\*/ { t = substr($0, 2) } /-[jg] WGFW/ { c[t]++ } END { for (k in c) print f, k, c[k] }'
		done | sort
		;;
	esac
}
wipe() {
	case $1 in
	nft) in_ns nft flush ruleset ;;
	iptables-*)
		local t x
		for t in filter mangle nat raw; do
			for x in iptables ip6tables; do in_ns "$x-${1#iptables-}" -t $t -F; done
		done
		;;
	esac
}
# wait_whole BACKEND REF SECONDS: polls until the hook's rules are REF again; false when not
# within SECONDS.
wait_whole() {
	local deadline
	deadline=$(($(now_us) + $(awk -v s="$3" 'BEGIN { printf "%d", s * 1000000 }')))
	while [[ $(rules_of "$1") != "$2" ]]; do
		(($(now_us) < deadline)) || return 1
		sleep 0.002
	done
}
check_line() {
	if hook check "$IF" >"$TMP/check" 2>&1; then echo "whole (check exit 0)"; else echo "DRIFTED: $(head -3 "$TMP/check" | tr '\n' ' ')"; fi
}

# tunnel_veth: the tunnel a veth (parts 1, 2).
tunnel_veth() {
	in_ns ip link add "$IF" type veth peer name "wgx$$"
	in_ns ip link set "$IF" up
}
KEY=$(wg genkey)
SERVER_CONF="[Interface]
Address = 10.66.0.1/24, fd66::1/64
ListenPort = 51820
PrivateKey = $KEY"
CLIENT_CONF="[Interface]
Address = 10.66.0.2/32, fd66::2/128
PrivateKey = $KEY

[Peer]
PublicKey = $(wg genkey | wg pubkey)
Endpoint = 203.0.113.1:51820
AllowedIPs = 0.0.0.0/0, ::/0"
write_conf() { printf '%s\n' "$1" >"$CONF"; chmod 600 "$CONF"; }

# start_listener OUT SECONDS: benches/commits.py in the bench namespace, noting its nf_tables
# commits in OUT (SECONDS at most; it goes with this script too); LISTENER: its pid (nsenter
# execs it). Without it (it did not start) the kernel's figures are left out, said so.
start_listener() {
	local i
	LISTEN_OUT=$1 MARKS=0
	: >"$LISTEN_OUT"
	nsenter --net="/run/netns/$NS" "$PY" "$ROOT/benches/commits.py" "$LISTEN_OUT" "$2" &
	LISTENER=$!
	for ((i = 0; i < 100; i++)); do
		grep -q '^[0-9]* ready ' "$LISTEN_OUT" && return 0
		[[ -e /proc/$LISTENER ]] || break
		sleep 0.05
	done
	echo "watch.sh: benches/commits.py did not start: no kernel-side figures" >&2
	stop_listener
}
stop_listener() {
	[[ -n $LISTENER ]] || return 0
	kill "$LISTENER" 2>/dev/null || true
	wait "$LISTENER" 2>/dev/null || true
	LISTENER=
}
# mark wipe|whole: a mark in the listener's file, in its clock (a signal: bash's kill, no fork).
mark() {
	[[ -n $LISTENER ]] || return 0
	if [[ $1 == wipe ]]; then
		MARKS=$((MARKS + 1))
		kill -USR1 "$LISTENER" 2>/dev/null || true
	else
		kill -USR2 "$LISTENER" 2>/dev/null || true
	fi
}
# kernel_line OUT: wipe_rounds' figure from the commits, when there is one.
kernel_line() {
	[[ -f $1.kernel ]] || return 0
	printf "kernel: wipe's last commit to repair's last commit: %s%s" "$(stats "$1.kernel")" "$(cat "$1.knote")"
}

# wipe_rounds BACKEND N GAP OUT [leaks]: N wipes, each GAP seconds after the plan was whole
# again; the microseconds from each wipe's end until whole in OUT.repair, the wipe's own in
# OUT.wipe; with "leaks" the probes that reached inet from just before each wipe until 50 ms
# after whole in OUT.leak. A wipe not whole within HALF_AFTER seconds is
# noted in OUT.half (what is missing), and `up` mends it. The watcher is restarted after every
# 4 wipes and after such a one (see the header); REPAIRS: what its status counted. REF: the
# hook's rules as whole. With a listener, from its commits the microseconds from each wipe's last
# commit to the repair's last in OUT.kernel, what was left out in OUT.knote.
HALF_AFTER=1
wipe_rounds() {
	local b=$1 n=$2 gap=$3 out=$4 leaks=${5:-} i since t0 t1 c0= r half deadline=$HALF_AFTER first=$MARKS
	rm -f -- "$out.kernel" "$out.knote"
	: >"$out.repair"
	: >"$out.wipe"
	: >"$out.leak"
	: >"$out.half"
	REPAIRS=0
	for ((i = 1, since = 0; i <= n; i++, since++)); do
		((since < 4)) || { restart_watcher; since=0; }
		sleep "$gap"
		[[ -z $leaks ]] || c0=$(probes_arrived)
		mark wipe
		t0=$(now_us)
		wipe "$b"
		t1=$(now_us)
		# Unwatched (QUIET=1): nothing of the bench runs while the watcher repairs (a listing every
		# few ms competes with it for the 2 CPUs); one look after QUIET_WAIT; the kernel's clock says
		# when the repair landed.
		if ((QUIET)) && { sleep "$QUIET_WAIT"; [[ $(rules_of "$b") == "$REF" ]]; }; then
			mark whole
			half=
		elif ((!QUIET)) && wait_whole "$b" "$REF" "$deadline"; then
			mark whole
			echo $(($(now_us) - t1)) >>"$out.repair"
			half=
		else
			# Left half-repaired: noted (what is missing); then `up` again with a new watcher (a
			# SIGHUP would do, but its repair counts against a fight: the next would be held off).
			{ diff <(echo "$REF") <(rules_of "$b") || true; } | sed -n 's/^< //p' | paste -sd ';' >>"$out.half"
			half=" (half-repaired)"
			restart_watcher
			since=0
			wait_whole "$b" "$REF" 5 || { echo "watch.sh: $b: wipe $i: not whole after up either: $(rules_of "$b" | paste -sd ';')" >&2; hook check "$IF" >&2 || true; exit 1; }
		fi
		echo $((t1 - t0)) >>"$out.wipe"
		[[ -z $leaks ]] || { sleep 0.05; echo "$(($(probes_arrived) - c0))$half" >>"$out.leak"; }
	done
	r=$(repairs_of)
	REPAIRS=$((REPAIRS + ${r:-0}))
	if [[ -n $LISTENER ]]; then
		# The wiping programs: `nft flush ruleset` is one commit; iptables-*: one a command.
		local wipers=(nft)
		[[ $b == nft ]] || wipers=("iptables-${b#iptables-}" "ip6tables-${b#iptables-}")
		sleep 0.1 # the last mark written
		"$PY" "$ROOT/benches/commits.py" heal "$LISTEN_OUT" "$first" "$n" "$out.kernel" "${wipers[@]}" >"$out.knote" ||
			{ : >"$out.kernel"; echo "; $LISTEN_OUT NOT read (commits.py failed)" >"$out.knote"; }
	fi
}
# up_watched: `up` with UP_ARGS, its watcher (PID) settled, REF.
up_watched() {
	hook up "$IF" "${UP_ARGS[@]}" >/dev/null 2>"$TMP/up.err" || { cat "$TMP/up.err" >&2; exit 1; }
	wait_watcher
	sleep 0.5
	REF=$(rules_of "$1")
	[[ -n $REF && $REF != 0 ]] || { echo "watch.sh: $1: none of the hook's rules seen after up" >&2; exit 1; }
}
# half_note OUT: how many wipes were left half-repaired, and what was missing.
half_note() {
	local n
	n=$(wc -l <"$1.half")
	((n == 0)) || printf '; %d left HALF-REPAIRED (not whole after %s s; `up` then mended it), missing: %s' "$n" "$HALF_AFTER" "$(sort "$1.half" | uniq -c | awk '{ c = $1; $1 = ""; printf "%s%dx [%s ]", (NR > 1 ? ", " : ""), c, $0 }')"
}
stop_sender() {
	kill "$SENDER" 2>/dev/null || true
	wait "$SENDER" 2>/dev/null || true
	SENDER=
}
part() { [[ " $PARTS " == *" $1 "* ]]; }

legacy_note=
for b in $BACKENDS; do [[ $b == iptables-legacy ]] && legacy_note=" (${LEGACY_ROUNDS:-$ROUNDS} rounds, $LEGACY_WIPES wipes on iptables-legacy: no notifications, its tables asked every 250 ms)"; done
echo "wgfw-hook watcher bench: $BIN ($(cd "$ROOT" && git log -1 --format='%h %cd' --date=iso 2>/dev/null || true)$(cd "$ROOT" && git status --porcelain src 2>/dev/null | grep -q . && echo ', with uncommitted edits in src/'))"
echo "parts $PARTS; backends $BACKENDS; $ROUNDS wipe rounds, $WIPES wipes with probes$legacy_note; idle ${IDLE} s; sizes $SIZES"
echo "kernel $(uname -r), $(nproc) CPUs, $(nft --version), $(iptables-nft --version | head -1)"
START=$(now_us)
tunnel_veth

# ---------------------------------------------------------------------------------------------
if part 1; then
	echo
	echo "[1] repair after a wipe, server role (from the wipe's end until the plan is whole)"
	write_conf "$SERVER_CONF"
	for b in $BACKENDS; do
		UP_ARGS=(--config "$CONF" --backend "$b")
		up_watched "$b"
		[[ $b == iptables-legacy ]] || start_listener "$TMP/commits.p1.$b" $(((ROUNDS + QUIET_ROUNDS + BURST) * 15 + 300))
		if [[ $b == iptables-legacy ]]; then
			wipe_rounds "$b" "${LEGACY_ROUNDS:-$ROUNDS}" "$GAP" "$TMP/p1.$b"
			printf '  %-16s its tables asked every 250 ms: %s\n' "$b" "$(stats "$TMP/p1.$b.repair")"
		else
			wipe_rounds "$b" "$ROUNDS" "$GAP" "$TMP/p1.$b"
			printf '  %-16s after 2 s of quiet: %s\n' "$b" "$(stats "$TMP/p1.$b.repair")"
		fi
		printf '  %-16s   the wipe itself: %s; repairs counted: %d%s\n' "$b" "$(stats "$TMP/p1.$b.wipe")" "$REPAIRS" "$(half_note "$TMP/p1.$b")"
		[[ ! -f $TMP/p1.$b.kernel ]] || printf '  %-16s   %s\n' "$b" "$(kernel_line "$TMP/p1.$b")"
		if [[ -n $LISTENER ]] && ((QUIET_ROUNDS > 0)); then
			restart_watcher
			QUIET=1
			wipe_rounds "$b" "$QUIET_ROUNDS" "$GAP" "$TMP/p1q.$b"
			QUIET=0
			printf '  %-16s   unwatched (nothing of the bench runs until %s s after the wipe): %s%s\n' "$b" "$QUIET_WAIT" "$(kernel_line "$TMP/p1q.$b")" "$(half_note "$TMP/p1q.$b")"
		fi
		restart_watcher
		wipe_rounds "$b" "$BURST" 0.3 "$TMP/p1b.$b"
		stop_listener
		printf '  %-16s 0.3 s after the last repair: %s; repairs counted: %d%s\n' "$b" "$(stats "$TMP/p1b.$b.repair")" "$REPAIRS" "$(half_note "$TMP/p1b.$b")"
		[[ ! -f $TMP/p1b.$b.kernel ]] || printf '  %-16s   %s\n' "$b" "$(kernel_line "$TMP/p1b.$b")"
		printf '  %-16s then wgfw-hook check: %s; watcher: %s\n' "$b" "$(check_line)" "$(mem "$PID")"
		hook down "$IF" >/dev/null 2>&1
	done
fi

# ---------------------------------------------------------------------------------------------
if part 2; then
	echo
	echo "[2] probes a client leaks through a wipe (kill switch; UDP to 192.0.2.1 at 1,000/s, counted in inet)"
	write_conf "$CLIENT_CONF"
	printf '  control, no hook: %d of 500 probes arrived\n' "$(probe 500)"
	for b in $BACKENDS; do
		wipes=$WIPES gap=$GAP
		[[ $b == iptables-legacy ]] && wipes=$LEGACY_WIPES
		UP_ARGS=(--config "$CONF" --backend "$b" --role client)
		up_watched "$b"
		printf '  %-16s kill switch in place: %d of 500 probes arrived\n' "$b" "$(probe 500)"
		# One sender for all the wipes, bounded (9 s a wipe at most), stopped when they are done.
		# Not through in_ns (a function: $! would be a subshell's): $! is the sender itself.
		nsenter --net="/run/netns/$NS" "$PY" "$TMP/send.py" $(((wipes * 9 + 10) * 1000)) 1000 &
		SENDER=$!
		[[ $b == iptables-legacy ]] || start_listener "$TMP/commits.p2.$b" $((wipes * 15 + 300))
		sleep 0.3
		total=$(probes_arrived)
		wipe_rounds "$b" "$wipes" "$gap" "$TMP/p2.$b" leaks
		total=$(($(probes_arrived) - total))
		stop_sender
		stop_listener
		printf '  %-16s %d wipes%s: leaked per wipe: %s; all told %d (%d outside the wipes)\n' "$b" "$wipes" \
			"$([[ $gap == "$GAP" ]] && echo ", $GAP s apart")" \
			"$(awk '{ s += $1; if ($1 > m) m = $1; if (NF > 1) { h++; hs += $1 } } END { printf "mean %.1f, max %d", s / NR, m; if (h) printf " (%d of them in %d half-repaired wipes)", hs, h }' "$TMP/p2.$b.leak")" \
			"$total" "$((total - $(awk '{ s += $1 } END { print s + 0 }' "$TMP/p2.$b.leak")))"
		printf '  %-16s   repair: %s; the wipe itself %s; repairs counted: %d%s\n' "$b" "$(stats "$TMP/p2.$b.repair")" \
			"$(stats "$TMP/p2.$b.wipe" | sed 's/, p90.*//')" "$REPAIRS" "$(half_note "$TMP/p2.$b")"
		[[ ! -f $TMP/p2.$b.kernel ]] || printf '  %-16s   %s\n' "$b" "$(kernel_line "$TMP/p2.$b")"
		if [[ $b == nft ]] && ((FIGHT)); then
			# Five repairs more than 2 s apart (each counted against a fight), then a sixth wipe.
			restart_watcher
			for ((i = 1; i <= 5; i++)); do
				sleep 2.2
				wipe nft
				wait_whole nft "$REF" 20
			done
			nsenter --net="/run/netns/$NS" "$PY" "$TMP/send.py" 40000 1000 &
			SENDER=$!
			sleep 2.2
			c0=$(probes_arrived)
			wipe nft
			t1=$(now_us)
			if wait_whole nft "$REF" 35; then fight=$(awk -v u=$(($(now_us) - t1)) 'BEGIN { printf "repaired after %.1f s", u / 1e6 }'); else fight="NOT repaired within 35 s"; fi
			sleep 0.05
			leaked=$(($(probes_arrived) - c0))
			stop_sender
			printf '  %-16s a fight: a 6th wipe 2.2 s after 5 repairs (a kill switch is not held off): %s, %d probes leaked\n' "$b" "$fight" "$leaked"
		fi
		printf '  %-16s then wgfw-hook check: %s; watcher: %s\n' "$b" "$(check_line)" "$(mem "$PID")"
		hook down "$IF" >/dev/null 2>&1
	done
fi
in_ns ip link del "$IF"

# ---------------------------------------------------------------------------------------------
# Parts 3 and 5: a live wireguard-go interface with N peers (keys: 30 random bytes and a fixed
# tail; peer i has 10.77.i/256.i%256/32), the last key kept out of it: the peer added later.
gen_peers() {
	local n=$1
	head -c $((30 * (n + 1))) /dev/urandom | base64 -w 40 | sed 's/$/AAA=/' >"$TMP/keys"
	{
		printf '%s\n' "$SERVER_CONF" | sed 's#^Address = .*#Address = 10.77.255.254/16, fd77::1/64#'
		awk -v n="$n" 'NR <= n { printf "\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.%d.%d/32\n", $1, int(NR / 256), NR % 256 }' "$TMP/keys"
	} >"$CONF"
	chmod 600 "$CONF"
	ADDED=$(sed -n "$((n + 1))p" "$TMP/keys")
}
# settings: half of the peers and the one added later in [group guests], one in [peer admin1].
write_settings() {
	local n=$1
	{
		echo "lan = 192.168.1.0/24"
		echo "[group guests]"
		echo "lan = none"
		awk -v n="$n" 'NR <= n / 2 || NR == n + 1 { print "peer = " $1 }' "$TMP/keys"
		echo "[peer admin1]"
		echo "admin = yes"
		sed -n "${n}p" "$TMP/keys" | sed 's/^/peer = /'
	} >"$SETTINGS_DIR/$IF.conf"
	chmod 600 "$SETTINGS_DIR/$IF.conf"
}
stop_wggo() {
	kill "$WGGO" 2>/dev/null || true
	wait "$WGGO" 2>/dev/null || true
	WGGO=
}
wg_up() {
	ip netns exec "$NS" wireguard-go -f "$IF" >"$TMP/wireguard-go.log" 2>&1 &
	WGGO=$!
	for ((i = 0; i < 100; i++)); do [[ -S /var/run/wireguard/$IF.sock ]] && break; sleep 0.05; done
	[[ -S /var/run/wireguard/$IF.sock ]] || { echo "watch.sh: wireguard-go $IF did not start" >&2; exit 1; }
	in_ns wg setconf "$IF" <(wg-quick strip "$CONF")
	in_ns ip addr add 10.77.255.254/16 dev "$IF"
	in_ns ip link set "$IF" up
}
# idle CASE: the watcher's wakeups, CPU and memory over IDLE seconds of nothing; and how many
# namespaces others added or deleted meanwhile (/run/netns is watched: each wakes it).
idle() {
	local s0 s1 c0 c1 o0 o1 n0 n1 w cpu_ms kids_ms
	sleep 6 # past the first look and any fast poll after an edit
	n0=$(ls /run/netns | md5sum)
	s0=$(ctxt "$PID")
	read -r c0 k0 < <(cpu "$PID")
	o0=$(oncpu "$PID")
	sleep "$IDLE"
	s1=$(ctxt "$PID")
	read -r c1 k1 < <(cpu "$PID")
	o1=$(oncpu "$PID")
	n1=$(ls /run/netns | md5sum)
	w=$((s1 - s0))
	cpu_ms=$(ms_of_ticks $((c1 - c0)))
	kids_ms=$(ms_of_ticks $((k1 - k0)))
	printf '  %-40s %5d wakeups (%.1f/min), CPU %d ms (%.2f ms/min on-CPU by schedstat), programs it ran %d ms; %s%s\n' \
		"$1" "$w" "$(bc -l <<<"$w * 60 / $IDLE")" "$cpu_ms" "$(bc -l <<<"($o1 - $o0) / 1000000 * 60 / $IDLE")" "$kids_ms" "$(mem "$PID")" \
		"$([[ $n0 == "$n1" ]] || echo "; NOTE: /run/netns changed meanwhile (others' namespaces)")"
}
# map_of: the hook's map holding a grouped peer's address (10.77.0.1), to poll.
# (No early exit in a pipe: under pipefail nft's SIGPIPE would fail it.)
map_of() { in_ns nft list table inet wgfw 2>/dev/null | awk '$1 == "map" { m = $2 } $1 == "}" { m = "" } m && !f && /10\.77\.0\.1[ ,:]/ { print m; f = 1 }'; }
in_map() { local m; m=$(in_ns nft list map inet wgfw "$MAP" 2>/dev/null) || return 1; [[ $m == *"10.77.200.1 "* || $m == *"10.77.200.1,"* ]]; }
# wait_map yes|no SECONDS: polls the map every 10 ms until it holds (or lacks) the added address.
wait_map() {
	local deadline=$(($(now_us) + $2 * 1000000))
	while true; do
		if in_map; then [[ $1 == yes ]] && return 0; else [[ $1 == no ]] && return 0; fi
		(($(now_us) < deadline)) || return 1
		sleep 0.01
	done
}
# added N: peer added with wg set and removed, ADDS times; then through an edit and wg syncconf.
added() {
	local n=$1 i t0 miss=0
	MAP=$(map_of)
	[[ -n $MAP ]] || { echo "watch.sh: no map of the hook holds 10.77.0.1" >&2; hook status "$IF" >&2; in_ns nft list ruleset >&2; exit 1; }
	: >"$TMP/add.$n"
	: >"$TMP/del.$n"
	for ((i = 0; i < ADDS; i++)); do
		in_ns wg set "$IF" peer "$ADDED" allowed-ips 10.77.200.1/32
		t0=$(now_us)
		if wait_map yes 70; then echo $(($(now_us) - t0)) >>"$TMP/add.$n"; else miss=$((miss + 1)); fi
		in_ns wg set "$IF" peer "$ADDED" remove
		t0=$(now_us)
		if wait_map no 70; then echo $(($(now_us) - t0)) >>"$TMP/del.$n"; else miss=$((miss + 1)); fi
	done
	printf '  %-36s added: %s\n' "$n peers, wg set" "$(stats "$TMP/add.$n")"
	printf '  %-36s removed: %s%s\n' "" "$(stats "$TMP/del.$n")" "$( ((miss)) && echo "; $miss NOT within 70 s")"
	: >"$TMP/edit.$n"
	for ((i = 0; i < EDITS; i++)); do
		cp "$CONF" "$TMP/conf.before"
		t0=$(now_us)
		printf '\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.200.1/32\n' "$ADDED" >>"$CONF"
		in_ns bash -c "wg syncconf '$IF' <(wg-quick strip '$CONF')"
		if wait_map yes 70; then echo $(($(now_us) - t0)) >>"$TMP/edit.$n"; else echo "  (edit $i: NOT within 70 s)"; fi
		cat "$TMP/conf.before" >"$CONF"
		in_ns bash -c "wg syncconf '$IF' <(wg-quick strip '$CONF')"
		wait_map no 70 || echo "  (edit $i undone: the address still in the map after 70 s)"
		sleep 5.5 # out of the fast poll that follows an edit
	done
	printf '  %-36s added: %s\n' "$n peers, config edit + wg syncconf" "$(stats "$TMP/edit.$n")"
}

if part 3 || part 5; then
	first=${SIZES%% *}
	gen_peers "$first"
	wg_up
	UP_ARGS=(--config "$CONF" --backend nft)
	: >"$TMP/results5"
	if part 3; then
		echo
		echo "[3] idle, nft, a wireguard-go interface: wakeups, CPU and memory of the watcher over ${IDLE} s"
		hook up "$IF" "${UP_ARGS[@]}" >/dev/null 2>"$TMP/up.err" || { cat "$TMP/up.err" >&2; exit 1; }
		wait_watcher
		idle "(a) $first peers, no sections"
		hook down "$IF" >/dev/null 2>&1
	fi
	for n in $SIZES; do
		if [[ $n != "$first" ]]; then
			in_ns ip link del "$IF"
			for ((i = 0; i < 100; i++)); do [[ -e /proc/$WGGO ]] || break; sleep 0.05; done
			stop_wggo
			gen_peers "$n"
			wg_up
		fi
		write_settings "$n"
		hook up "$IF" "${UP_ARGS[@]}" >/dev/null 2>"$TMP/up.err" || { cat "$TMP/up.err" >&2; exit 1; }
		wait_watcher
		! part 3 || idle "($([[ $n == "$first" ]] && echo b || echo c)) $n peers, [group] + [peer] sections"
		if part 5; then
			added "$n" >>"$TMP/results5"
			printf '  %-36s watcher after the adds: %s\n' "$n peers" "$(mem "$PID")" >>"$TMP/results5"
		fi
		hook down "$IF" >/dev/null 2>&1
		rm -f "$SETTINGS_DIR/$IF.conf"
	done
	if part 5; then
		echo
		echo "[5] a peer added without a hook (its key named in [group guests]): until the hook's map holds 10.77.200.1"
		cat "$TMP/results5"
	fi
fi
echo
awk -v u=$(($(now_us) - START)) 'BEGIN { printf "done in %d s\n", u / 1e6 }'
