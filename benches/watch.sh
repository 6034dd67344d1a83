#!/usr/bin/env bash
# What the watcher (`wgfw-hook watch`, started by `up`) costs and how fast it repairs (#24).
# Not a test: it prints figures.
#
#   usage: sudo benches/watch.sh [--rounds N] [--backends "nft iptables-nft iptables-legacy"]
#
# In a network namespace of its own (deleted on exit), with a veth standing in for the tunnel,
# per backend:
#   1. repair: the hook's rules wiped (`nft flush ruleset`, or every iptables table's built-in
#      chains flushed) N times, one at a time; the time from the wipe until the hook's rules
#      are back (polled every 2 ms);
#   2. others' commits: 20 changes to another table, 200 ms apart (each a look of its own, none
#      a repair): the watcher's CPU time for them;
#   3. idle: its CPU time over 5 s with nothing happening, and its resident memory.
set -Eeuo pipefail

ROUNDS=20
BACKENDS="nft iptables-nft iptables-legacy"
while (($#)); do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	*) echo "usage: $0 [--rounds N] [--backends LIST]" >&2; exit 2 ;;
	esac
done
[[ $EUID -eq 0 ]] || { echo "run as root (it creates a network namespace)" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --locked -q)
BIN=$ROOT/target/release/wgfw-hook
[[ -n ${CARGO_TARGET_DIR:-} ]] && BIN=$CARGO_TARGET_DIR/release/wgfw-hook

NS=wgfw-bench-watch-$$
TMP=$(mktemp -d)
cleanup() {
	for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
	ip netns exec "$NS" "$BIN" down wgw0 >/dev/null 2>&1 || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link add wgw0 type veth peer name wgpeer
in_ns ip link add eth0 type veth peer name ethpeer
in_ns ip link set wgw0 up
in_ns ip link set eth0 up
in_ns ip addr add 203.0.113.2/24 dev eth0
in_ns ip route add default via 203.0.113.1
printf '[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n' >"$TMP/wgw0.conf"
chmod 600 "$TMP/wgw0.conf"

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# The median and the 90th percentile of the numbers in FILE, in ms.
stats() { sort -n "$1" | awk '{v[NR]=$1} END {printf "median %.1f ms, p90 %.1f ms (n=%d)", v[int((NR+1)/2)]/1000, v[int(NR*0.9+0.5)]/1000, NR}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
watcher_pid() { in_ns "$BIN" status wgw0 | sed -n 's/^  watcher: pid \([0-9]*\),.*/\1/p'; }

present() {
	case $1 in
	nft) in_ns nft list tables 2>/dev/null | grep -q 'inet wgfw' ;;
	iptables-*) in_ns "iptables-${1#iptables-}" -t mangle -S INPUT 2>/dev/null | grep -q WGFW ;;
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

echo "wgfw-hook watcher: $BIN, $ROUNDS rounds"
for b in $BACKENDS; do
	in_ns "$BIN" up wgw0 --config "$TMP/wgw0.conf" --backend "$b" >/dev/null 2>&1
	pid=
	for _ in $(seq 1 100); do pid=$(watcher_pid) && [[ -n $pid ]] && break; sleep 0.05; done
	[[ -n $pid ]] || { echo "$b: no watcher started" >&2; exit 1; }
	sleep 0.5
	: >"$TMP/repair"
	for _ in $(seq 1 "$ROUNDS"); do
		wipe "$b"
		s=$(now_us)
		for _ in $(seq 1 10000); do present "$b" && break; sleep 0.002; done
		echo $(($(now_us) - s)) >>"$TMP/repair"
		sleep 0.3
	done
	printf '%-16s repair after a wipe: %s\n' "$b" "$(stats "$TMP/repair")"
	in_ns nft add table inet bench-other
	sleep 0.5
	c0=$(cpu_ticks "$pid")
	for i in $(seq 1 20); do
		in_ns nft add chain inet bench-other "c$i"
		sleep 0.2
	done
	sleep 0.5
	c1=$(cpu_ticks "$pid")
	in_ns nft delete table inet bench-other
	printf '%-16s 20 commits of another table: %d ms of CPU (%.1f ms each)\n' "$b" $(((c1 - c0) * 10)) "$(echo "($c1 - $c0) * 10 / 20" | bc -l)"
	sleep 1
	c0=$(cpu_ticks "$pid")
	sleep 5
	c1=$(cpu_ticks "$pid")
	printf '%-16s idle 5 s: %d ms of CPU; resident %s\n' "$b" $(((c1 - c0) * 10)) "$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")"
	in_ns "$BIN" down wgw0 >/dev/null 2>&1
done
