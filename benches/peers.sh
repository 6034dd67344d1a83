#!/usr/bin/env bash
# Per-peer policy and port forwarding at scale (issue #15), measured. Not a test: it prints figures.
#
#   usage: sudo benches/peers.sh [--quick] [--rounds N] [--sizes "10 1000 10000"]
#                                [--backends "nft iptables-nft iptables-legacy"] [--no-throughput]
#
# Builds the release binary, then, in network namespaces it creates and deletes:
#   1. a live wireguard-go interface with N peers (10, 1,000, 10,000), each with a /32 and a /128,
#      and per-peer policies in the settings file: half the peers in [group family] (the LAN),
#      the rest in [group guests] (lan = none, allow = udp/53) but five (one below 20 peers)
#      [peer adminK] sections (admin = yes);
#   2. first up: `wgfw-hook up` with nothing installed (then `down`), against the same ruleset
#      written by hand: the hook's own scripts (captured from -vv) submitted by a shell;
#   3. one peer added: `wg set` adds a peer that the family group names, then `wgfw-hook up`;
#      then it is removed and `up` runs again (both timed), against what a hand does for it:
#      one `nft -f` adding (deleting) its two map elements, or one `iptables-restore --noflush`
#      per family inserting (deleting) its jump; and the hook's own CPU time in that `up`, and
#      `wg show wgp0 allowed-ips` alone (what any tool that finds the change itself pays first);
#   4. TCP throughput (iperf3) from the "internet" through a port forward on the server to a
#      peer behind a real wireguard-go tunnel: the hook's --forward against the same forward
#      written by hand (iptables-nft DNAT, FORWARD accept, MASQUERADE).
# Prints medians with the 10th-90th percentile spread and the ratios the issue sets targets for:
# up at 1,000 peers within 2x of 10, and a one-peer change at 10,000 peers under 50 ms (nft).
#
# Topology ("$E2E_PREFIX-{srv,inet,peer}", deleted on exit):
#
#   srv: wgp0 (N peers, no endpoints: the policy's cost only), eth0 203.0.113.2 ── inet
#   (4) inet 203.0.113.1 ── srv eth0 203.0.113.2, wgf0 10.77.0.1 ═══ wg ═══ peer wgf1 10.77.0.2
#       iperf3 -c 203.0.113.2 -p 5201 (from inet)  →  DNAT  →  iperf3 -s on 10.77.0.2 (peer)
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# time_loop, floor_script, stats, bench_setup: the helpers of the main benchmark.
# shellcheck source=benches/bench.sh
source "$HERE/bench.sh" __lib

# gen N DIR BACKEND: DIR/keys (N + 1 public keys: the last is the peer added later),
# DIR/wgp0.conf (the first N peers) and DIR/wgp0.settings. Keys are 30 random bytes and a fixed
# tail, valid as WireGuard public keys (43 base64 characters, the last with its low bits zero).
gen() {
	local n=$1 dir=$2 backend=$3 admins=5
	((n >= 20)) || admins=1
	head -c $((30 * (n + 1))) /dev/urandom | base64 -w 40 | sed 's/$/AAA=/' >"$dir/keys"
	{
		printf '[Interface]\nAddress = 10.66.0.1/16, fd66::1/64\nListenPort = 51820\n'
		printf 'PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n'
		awk -v n="$n" 'NR <= n { i = NR + 1; printf "\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.66.%d.%d/32, fd66::%x/128\n", $1, int(i / 256), i % 256, i }' "$dir/keys"
	} >"$dir/wgp0.conf"
	{
		echo "backend = $backend"
		echo "lan = 192.168.1.0/24"
		echo "[group family]"
		awk -v n="$n" 'NR <= n / 2 || NR == n + 1 { print "peer = " $1 }' "$dir/keys"
		echo "[group guests]"
		echo "lan = none"
		echo "allow = udp/53"
		awk -v n="$n" -v a="$admins" 'NR > n / 2 && NR <= n - a { print "peer = " $1 }' "$dir/keys"
		awk -v n="$n" -v a="$admins" 'NR > n - a && NR <= n { printf "[peer admin%d]\npeer = %s\nadmin = yes\n", NR, $1 }' "$dir/keys"
	} >"$dir/wgp0.settings"
	chmod 600 "$dir/wgp0.conf" "$dir/wgp0.settings"
}

# The added peer's addresses (peer number N + 1).
added_addrs() {
	local i=$(($1 + 2))
	printf '10.66.%d.%d %s\n' $((i / 256)) $((i % 256)) "$(printf 'fd66::%x' "$i")"
}

# ---------------------------------------------------------------------------------------------
# The worker: runs inside the server's namespace (`peers.sh __worker ...`), where /etc/wgfw is
# the namespace's own.

# hand_change add|del BACKEND A4 A6: the one-peer change written by hand.
hand_change() {
	local op=$1 backend=$2 a4=$3 a6=$4
	case "$backend" in
	nft)
		if [[ $op == add ]]; then
			nft -f - <<-EOF
				add element inet wgfw WGFW-wgp0-PEERS-A-v4 { $a4 : jump WGFW-wgp0-P1-v4 }
				add element inet wgfw WGFW-wgp0-PEERS-A-v6 { $a6 : jump WGFW-wgp0-P1-v6 }
			EOF
		else
			nft -f - <<-EOF
				delete element inet wgfw WGFW-wgp0-PEERS-A-v4 { $a4 }
				delete element inet wgfw WGFW-wgp0-PEERS-A-v6 { $a6 }
			EOF
		fi
		;;
	*)
		local v=${backend#iptables-} flag=-I pos=" 4"
		[[ $op == del ]] && flag=-D pos=
		printf '*filter\n%s WGFW-wgp0-FWD%s -s %s/32 -i wgp0 -j WGFW-wgp0-P1\nCOMMIT\n' "$flag" "$pos" "$a4" |
			"iptables-$v-restore" --noflush
		printf '*filter\n%s WGFW-wgp0-FWD%s -s %s/128 -i wgp0 -j WGFW-wgp0-P1\nCOMMIT\n' "$flag" "$pos" "$a6" |
			"ip6tables-$v-restore" --noflush
		;;
	esac
}

worker() {
	local backend=$1 n=$2 rounds=$3 out=$4 bin=$5 dir=$6 base key a4 a6 i t0 t1
	base=$out/$backend.$n
	key=$(sed -n "$((n + 1))p" "$dir/keys")
	read -r a4 a6 < <(added_addrs "$n")
	# (2) first up, and the floor: the hook's own scripts, captured once, replayed by a shell.
	"$bin" up wgp0 -c "$dir/wgp0.conf" -vv 2>"$base.log-up" >/dev/null ||
		{ echo "bench: up failed: $(grep -v '^\[DEBUG\]\|^    ' "$base.log-up" | tail -3)" >&2; return 1; }
	"$bin" down wgp0 -vv 2>"$base.log-down" >/dev/null
	floor_script "$base.log-up" >"$base.floor-up.sh"
	floor_script "$base.log-down" >"$base.floor-down.sh"
	time_loop "$base.first" "$rounds" "'$bin' up wgp0 -c '$dir/wgp0.conf'" "'$bin' down wgp0"
	time_loop "$base.floor" "$rounds" "bash '$base.floor-up.sh'" "bash '$base.floor-down.sh'"
	# (3) one peer added and removed with wg set, then up; and the same change by hand.
	"$bin" up wgp0 -c "$dir/wgp0.conf" >/dev/null 2>&1
	: >"$base.add.up"
	: >"$base.add.down"
	: >"$base.add.cpu"
	local TIMEFORMAT='%3U %3S'
	for ((i = 0; i <= rounds; i++)); do
		wg set wgp0 peer "$key" allowed-ips "$a4/32,$a6/128"
		t0=$(now_us)
		{ time "$bin" up wgp0 -c "$dir/wgp0.conf" >/dev/null 2>"$base.err"; } 2>"$base.cpu-one" ||
			{ echo "bench: up after wg set failed: $(head -3 "$base.err")" >&2; return 1; }
		t1=$(now_us)
		((i == 0)) || echo $((t1 - t0)) >>"$base.add.up"
		# The hook's own CPU time (user and system, with the nft it runs): what the change costs
		# where the peers' answer is instant. wireguard-go's work is not in it.
		((i == 0)) || awk '{ printf "%d\n", ($1 + $2) * 1000000 }' "$base.cpu-one" >>"$base.add.cpu"
		wg set wgp0 peer "$key" remove
		t0=$(now_us)
		"$bin" up wgp0 -c "$dir/wgp0.conf" >/dev/null 2>"$base.err" || { echo "bench: up after wg set remove failed: $(head -3 "$base.err")" >&2; return 1; }
		t1=$(now_us)
		((i == 0)) || echo $((t1 - t0)) >>"$base.add.down"
	done
	time_loop "$base.hand" "$rounds" "hand_change add $backend $a4 $a6" "hand_change del $backend $a4 $a6"
	# What any tool that finds the change itself pays first: asking WireGuard for its peers.
	time_loop "$base.ask" "$rounds" "wg show wgp0 allowed-ips" ":"
	# What the one-peer change costs inside: the hook's steps, from -vv (after an up that
	# records the table as the hand left it: the hand's commits changed its generation).
	"$bin" up wgp0 -c "$dir/wgp0.conf" >/dev/null 2>&1
	wg set wgp0 peer "$key" allowed-ips "$a4/32,$a6/128"
	"$bin" up wgp0 -c "$dir/wgp0.conf" -vv 2>&1 | sed -n 's/^\[DEBUG\] \(.*\) done after \(.*\) ms.*/\1 \2/p' >"$base.steps"
	wg set wgp0 peer "$key" remove
	"$bin" down wgp0 >/dev/null 2>&1
}

if [[ ${1:-} == __worker ]]; then
	shift
	trap 'echo "peers.sh worker: line $LINENO: $BASH_COMMAND failed" >&2' ERR
	worker "$@"
	exit
fi

# ---------------------------------------------------------------------------------------------
# The driver.

ROUNDS=11 SIZES="10 1000 10000" BACKENDS="nft iptables-nft iptables-legacy" THROUGHPUT=1
while (($#)); do
	case "$1" in
	--quick) ROUNDS=5 BACKENDS=nft ;;
	--rounds) ROUNDS=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--backends) BACKENDS=$2; shift ;;
	--no-throughput) THROUGHPUT=0 ;;
	-h | --help) sed -n '2,/^set -E/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "peers.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

bench_setup peers.sh iptables nftables wireguard-tools wireguard-go iproute2 iperf3 bc
require_free_ifaces wgp0 wgf0 wgf1

trap 'echo "peers.sh: line $LINENO: $BASH_COMMAND failed" >&2' ERR
SRV=$E2E_PREFIX-srv INET=$E2E_PREFIX-inet PEER=$E2E_PREFIX-peer
OUT=$E2E_TMP
ensure_etc_wgfw
E2E_CLEANUP_HOOKS+=('remove_etc_wgfw "/etc/netns/$SRV/wgfw"')
mkdir -p "/etc/netns/$SRV/wgfw"
chmod 700 "/etc/netns/$SRV/wgfw"

step "topology: $SRV, $INET, $PEER"
for ns in "$SRV" "$INET" "$PEER"; do ns_add "$ns"; done
ip link add to-srv netns "$INET" type veth peer name eth0 netns "$SRV"
ip link add to-peer netns "$INET" type veth peer name eth0 netns "$PEER"
in_ns "$INET" sysctl -q -w net.ipv4.ip_forward=1
in_ns "$INET" ip addr add 203.0.113.1/24 dev to-srv
in_ns "$INET" ip -6 addr add 2001:db8:1::1/64 dev to-srv nodad
in_ns "$INET" ip addr add 198.51.100.1/24 dev to-peer
for l in to-srv to-peer; do in_ns "$INET" ip link set "$l" up; done
in_ns "$SRV" ip addr add 203.0.113.2/24 dev eth0
in_ns "$SRV" ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad
in_ns "$SRV" ip link set eth0 up
in_ns "$SRV" ip route add default via 203.0.113.1
in_ns "$SRV" ip -6 route add default via 2001:db8:1::1 dev eth0
in_ns "$PEER" ip addr add 198.51.100.2/24 dev eth0
in_ns "$PEER" ip link set eth0 up
in_ns "$PEER" ip route add default via 198.51.100.1

for backend in $BACKENDS; do
	for n in $SIZES; do
		step "$backend, $n peers: first up and the floor, one peer added and removed, by hand; $ROUNDS rounds"
		gen "$n" "$OUT" "$backend"
		cp "$OUT/wgp0.settings" "/etc/netns/$SRV/wgfw/wgp0.conf"
		grep -v '^Address' "$OUT/wgp0.conf" >"$OUT/wgp0.stripped"
		in_ns "$SRV" wireguard-go wgp0 >/dev/null 2>&1
		in_ns "$SRV" wg setconf wgp0 "$OUT/wgp0.stripped"
		in_ns "$SRV" ip addr add 10.66.0.1/16 dev wgp0
		in_ns "$SRV" ip addr add fd66::1/64 dev wgp0
		in_ns "$SRV" ip link set wgp0 up
		in_ns "$SRV" bash "$0" __worker "$backend" "$n" "$ROUNDS" "$OUT" "$BIN" "$OUT"
		in_ns "$SRV" ip link del wgp0
		# wireguard-go takes a moment to go, and its socket with it.
		wait_for 30 bash -c "[[ ! -e /var/run/wireguard/wgp0.sock ]]" || { echo "peers.sh: wireguard-go for wgp0 did not exit" >&2; exit 1; }
	done
done

med() { stats "$1" | cut -d' ' -f1; }
cell() { stats "$1" | awk '{ printf "%7s [%6s-%7s]", $1, $2, $3 }'; }

printf '\n[+] up with per-peer policies (ms: median [p10-p90]); the floor is the same scripts by hand\n\n'
printf '%-16s %6s | %-24s | %-24s | %-24s | %-24s\n' backend peers "first up (hook)" "first up (floor)" "peer added: up" "peer added: by hand"
for backend in $BACKENDS; do
	for n in $SIZES; do
		b=$OUT/$backend.$n
		printf '%-16s %6s | %s | %s | %s | %s\n' "$backend" "$n" "$(cell "$b.first.up")" "$(cell "$b.floor.up")" \
			"$(cell "$b.add.up")" "$(cell "$b.hand.up")"
	done
done
printf '\n[+] removed again (ms, medians): up / by hand; down after a first up / floor\n\n'
for backend in $BACKENDS; do
	for n in $SIZES; do
		b=$OUT/$backend.$n
		printf '%-16s %6s | peer removed: up %7s / hand %7s | down %7s / floor %7s\n' "$backend" "$n" \
			"$(med "$b.add.down")" "$(med "$b.hand.down")" "$(med "$b.first.down")" "$(med "$b.floor.down")"
	done
done
printf '\n[+] targets\n\n'
for backend in $BACKENDS; do
	first=${SIZES%% *} last=${SIZES##* }
	for n in $SIZES; do
		[[ $n == "$first" ]] && continue
		printf '%-16s first up at %s peers / at %s peers: %.2fx\n' "$backend" "$n" "$first" \
			"$(bc -l <<<"$(med "$OUT/$backend.$n.first.up") / $(med "$OUT/$backend.$first.first.up")")"
	done
	printf '%-16s one peer added at %s peers: %s ms; the hook'"'"'s CPU %s ms; `wg show allowed-ips` alone %s ms (steps: %s)\n' \
		"$backend" "$last" "$(med "$OUT/$backend.$last.add.up")" "$(med "$OUT/$backend.$last.add.cpu")" \
		"$(med "$OUT/$backend.$last.ask.up")" \
		"$(awk '{ printf "%s%s %s ms", (NR > 1 ? ", " : ""), $1, $2 }' "$OUT/$backend.$last.steps")"
done

((THROUGHPUT)) || exit 0

# ---------------------------------------------------------------------------------------------
TP_ROUNDS=5
step "TCP throughput through a port forward: inet → srv tcp/5201 → tunnel → peer (iperf3, $TP_ROUNDS × 5 s each, interleaved)"
srv_key=$(wg genkey) peer_key=$(wg genkey)
cat >"$OUT/wgf0.conf" <<EOF
[Interface]
Address = 10.77.0.1/24
ListenPort = 51821
PrivateKey = $srv_key

[Peer]
PublicKey = $(wg pubkey <<<"$peer_key")
AllowedIPs = 10.77.0.2/32
EOF
cat >"$OUT/wgf1.conf" <<EOF
[Interface]
Address = 10.77.0.2/32
PrivateKey = $peer_key

[Peer]
PublicKey = $(wg pubkey <<<"$srv_key")
Endpoint = 203.0.113.2:51821
AllowedIPs = 10.77.0.0/24
PersistentKeepalive = 5
EOF
chmod 600 "$OUT/wgf0.conf" "$OUT/wgf1.conf"
rm -f "/etc/netns/$SRV/wgfw/wgp0.conf"
in_ns "$SRV" wg-quick up "$OUT/wgf0.conf" >/dev/null 2>&1
in_ns "$PEER" wg-quick up "$OUT/wgf1.conf" >/dev/null 2>&1
in_ns "$PEER" ping -c 2 -W 2 10.77.0.1 >/dev/null || { echo "peers.sh: the tunnel does not come up" >&2; exit 1; }
bg "$PEER" "$OUT/iperf3.log" iperf3 -s -B 10.77.0.2 -p 5201
wait_tcp_listen "$PEER" 5201
HAND=(
	"iptables-nft -t nat -A PREROUTING -i eth0 -p tcp --dport 5201 -j DNAT --to-destination 10.77.0.2:5201"
	"iptables-nft -A FORWARD -i eth0 -o wgf0 -d 10.77.0.2 -p tcp --dport 5201 -j ACCEPT"
	"iptables-nft -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	"iptables-nft -P FORWARD DROP"
	"iptables-nft -t nat -A POSTROUTING -o wgf0 -d 10.77.0.2 -p tcp --dport 5201 -j MASQUERADE"
)
mode() {
	in_ns "$SRV" "$BIN" down wgf0 >/dev/null 2>&1 || true
	for t in nat filter; do in_ns "$SRV" iptables-nft -t "$t" -F; done
	in_ns "$SRV" iptables-nft -P FORWARD ACCEPT
	in_ns "$SRV" sysctl -q -w net.ipv4.ip_forward=1
	case "$1" in
	hook) in_ns "$SRV" "$BIN" up wgf0 --config "$OUT/wgf0.conf" --backend nft --forward tcp/5201=10.77.0.2 >/dev/null 2>&1 ;;
	hand) for c in "${HAND[@]}"; do in_ns "$SRV" $c; done ;;
	esac
}
for ((round = 1; round <= TP_ROUNDS; round++)); do
	for m in hand hook; do
		mode "$m"
		in_ns "$INET" timeout 30 iperf3 -c 203.0.113.2 -p 5201 -t 5 -O 1 -f m >"$OUT/iperf.$m.$round" 2>&1 || true
		awk '/receiver/ { print $7; found = 1 } END { if (!found) print 0 }' "$OUT/iperf.$m.$round" >>"$OUT/iperf.$m"
	done
done
mode none
for m in hand hook; do
	printf '    %-5s %s Mbit/s (runs: %s)\n' "$m" "$(sort -n "$OUT/iperf.$m" | sed -n "$(((TP_ROUNDS + 1) / 2))p")" "$(tr '\n' ' ' <"$OUT/iperf.$m")"
done
in_ns "$PEER" wg-quick down "$OUT/wgf1.conf" >/dev/null 2>&1 || true
in_ns "$SRV" wg-quick down "$OUT/wgf0.conf" >/dev/null 2>&1 || true
