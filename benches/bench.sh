#!/usr/bin/env bash
# The cost of wgfw-hook to wg-quick, measured (issue #7). Not a test: it prints figures.
#
#   usage: sudo benches/bench.sh [--quick] [--rounds N] [--sizes "0 5000 20000"]
#                                [--backends "nft iptables-nft iptables-legacy"] [--no-tunnel]
#
# Builds the release binary, then, in network namespaces it creates and deletes:
#   1. hook:  `wgfw-hook up` + `down` for a dual-stack server config, per backend;
#   2. guide: the same firewall the usual way, the hardening guide's rules as separate iptables,
#             ip6tables and sysctl commands in PostUp/PostDown (guide_up/guide_down below);
#   3. floor: the hook's own scripts (captured from `-vv`) submitted by a shell one-liner, one
#             restore (or nft -f) per family and one sysctl process, without the hook;
#   4. each of those with 0, 5,000 and 20,000 foreign rules loaded first;
#   5. `wg-quick up` + `down` of a real wireguard-go tunnel with and without the hook;
#   6. TCP throughput (iperf3) from a peer through the tunnel and the server to the "internet",
#      with no firewall, the guide's rules, the hook's rules (masquerading, and with --no-nat),
#      and the hook plus untracked outer UDP;
# and prints medians with the 10th-90th percentile spread, ratios against (2) and (3), the hook's
# peak memory (VmHWM) and that of the largest program it ran, and the binary's size.
#
# Topology ("$E2E_PREFIX-{inet,srv,cli}", deleted on exit):
#
#        cli 10.66.0.2 (wgb1) ═══ wg ═══ srv 10.66.0.1 (wgb0, udp/51820, the hook)
#          eth0 198.51.100.2                eth0 203.0.113.2 ── default route
#               └──────────── inet (router) ──────┘    inet: iperf3 on 192.0.2.1
#
# Foreign rules are Kubernetes-like: IPv4 only, 100-rule chains jumped from FORWARD, 4/5 of them
# in filter and 1/5 DNAT rules in nat; for the nft backend they are a native table of their own
# (`table inet foreign`) of the same shape. Timings run inside the server's namespace, so that
# `ip netns exec` is not part of them.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

# ---------------------------------------------------------------------------------------------
# The worker: runs inside the server's namespace (`bench.sh __worker ...`).

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# time_loop OUT ROUNDS UP DOWN: runs the shell commands UP and DOWN ROUNDS times (after one
# warm-up round), appending each one's microseconds to OUT.up and OUT.down.
time_loop() {
	local out=$1 rounds=$2 up=$3 down=$4 i t0 t1 t2
	eval "$up" >/dev/null 2>&1 && eval "$down" >/dev/null 2>&1
	: >"$out.up"
	: >"$out.down"
	for ((i = 0; i < rounds; i++)); do
		t0=$(now_us)
		eval "$up" >/dev/null 2>"$out.err" || { echo "bench: '$up' failed: $(head -3 "$out.err")" >&2; return 1; }
		t1=$(now_us)
		eval "$down" >/dev/null 2>"$out.err" || { echo "bench: '$down' failed: $(head -3 "$out.err")" >&2; return 1; }
		t2=$(now_us)
		echo $((t1 - t0)) >>"$out.up"
		echo $((t2 - t1)) >>"$out.down"
	done
}

# The hardening guide's server firewall, written the way its readers paste it into PostUp and
# PostDown: one process per rule, mirrored for IPv6 (no NAT there), and the guide's sysctls.
# $IPT/$IP6T are the iptables commands of the variant under test; WireGuard on wgb0, WAN eth0.
guide_up() {
	sysctl -q -w net.ipv4.ip_forward=1
	sysctl -q -w net.ipv6.conf.all.forwarding=1
	sysctl -q -w net.ipv4.conf.all.accept_redirects=0
	sysctl -q -w net.ipv4.conf.all.send_redirects=0
	sysctl -q -w net.ipv4.conf.default.rp_filter=1
	sysctl -q -w net.ipv4.conf.all.rp_filter=1
	sysctl -q -w net.ipv4.tcp_syncookies=1
	local ipt
	for ipt in "$IPT" "$IP6T"; do
		$ipt -P INPUT DROP
		$ipt -P FORWARD DROP
		$ipt -A INPUT -i lo -j ACCEPT
		$ipt -A OUTPUT -o lo -j ACCEPT
		$ipt -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		$ipt -A INPUT -m conntrack --ctstate INVALID -j DROP
		$ipt -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH
		$ipt -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 10 --name SSH -j DROP
		$ipt -A INPUT -p tcp --dport 22 -j ACCEPT
		$ipt -A INPUT -i eth0 -p udp --dport 51820 -m conntrack --ctstate NEW -m limit --limit 30/min --limit-burst 5 -j ACCEPT
		$ipt -A INPUT -p udp --dport 51820 -j DROP
		$ipt -A INPUT -i wgb0 -j ACCEPT
		$ipt -A FORWARD -i wgb0 -o eth0 -j ACCEPT
		$ipt -A FORWARD -i eth0 -o wgb0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		$ipt -t mangle -A FORWARD -i wgb0 -o eth0 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
		$ipt -A INPUT -m limit --limit 5/min -j LOG --log-prefix "iptables-input-drop: " --log-level 4
	done
	$IPT -t nat -A POSTROUTING -o eth0 -s 10.66.0.0/24 -j MASQUERADE
}

guide_down() {
	local ipt
	for ipt in "$IPT" "$IP6T"; do
		$ipt -D INPUT -i lo -j ACCEPT
		$ipt -D OUTPUT -o lo -j ACCEPT
		$ipt -D INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		$ipt -D INPUT -m conntrack --ctstate INVALID -j DROP
		$ipt -D INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --set --name SSH
		$ipt -D INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -m recent --update --seconds 60 --hitcount 10 --name SSH -j DROP
		$ipt -D INPUT -p tcp --dport 22 -j ACCEPT
		$ipt -D INPUT -i eth0 -p udp --dport 51820 -m conntrack --ctstate NEW -m limit --limit 30/min --limit-burst 5 -j ACCEPT
		$ipt -D INPUT -p udp --dport 51820 -j DROP
		$ipt -D INPUT -i wgb0 -j ACCEPT
		$ipt -D FORWARD -i wgb0 -o eth0 -j ACCEPT
		$ipt -D FORWARD -i eth0 -o wgb0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		$ipt -t mangle -D FORWARD -i wgb0 -o eth0 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
		$ipt -D INPUT -m limit --limit 5/min -j LOG --log-prefix "iptables-input-drop: " --log-level 4
		$ipt -P INPUT ACCEPT
		$ipt -P FORWARD ACCEPT
	done
	$IPT -t nat -D POSTROUTING -o eth0 -s 10.66.0.0/24 -j MASQUERADE
}

# floor_script LOG: turns the `[#] prog args` lines and `[DEBUG] prog script:` blocks of a `-vv`
# run into a shell script that submits the same scripts (and all sysctls in one process).
floor_script() {
	awk '
		function flush() { if (prog != "") { print prog " <<'"'"'EOF'"'"'"; printf "%s", body; print "EOF" } prog = ""; body = "" }
		/^\[#\] sysctl -q / { flush(); sub(/^\[#\] sysctl -q /, ""); sysctls = sysctls " " $0; next }
		/^\[#\] / { flush(); line = $0; sub(/^\[#\] /, "", line); sub(/ \(.*\)$/, "", line); pending = line; next }
		/^\[DEBUG\] .* script:$/ { prog = pending; inscript = 1; next }
		inscript && /^    / { body = body substr($0, 5) "\n"; next }
		{ inscript = 0 }
		END { flush(); if (sysctls != "") print "sysctl -q -w" sysctls }
	' "$1"
}

# snapshot: every ruleset view and the sysctls the hook touches, to check that a loop left the
# namespace as it found it.
snapshot() {
	{
		# Rules, user chains and policies; not empty tables with accepting built-in chains (a
		# legacy table, once used, stays; iptables-nft's empty ones the nft listing shows).
		for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
			echo "== $s"
			$s 2>/dev/null | sed -E -e '/^#/d' -e '/^\*/d' -e '/^COMMIT/d' -e '/^:[A-Z]+ ACCEPT/d' -e 's/ ?\[[0-9]+:[0-9]+\]//g'
		done
		echo "== nft"
		nft list ruleset 2>/dev/null | sed '/elements = /d'
		sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.rp_filter \
			net.ipv4.conf.all.send_redirects net.ipv4.conf.all.accept_redirects
	}
}

# foreign_rules BACKEND N: loads N unrelated rules (see the header).
foreign_rules() {
	local backend=$1 n=$2 chains i j f
	((n > 0)) || return 0
	chains=$((n / 100))
	f=$(mktemp)
	if [[ $backend == nft ]]; then
		{
			echo "table inet foreign {"
			echo "  chain from_forward { type filter hook forward priority 10; policy accept; }"
			echo "  chain from_prerouting { type nat hook prerouting priority -90; policy accept; }"
			for ((i = 0; i < chains; i++)); do
				echo "  chain c$i {"
				for ((j = 0; j < 100; j++)); do
					if ((i % 5 == 4)); then
						echo "    ip daddr 172.16.$((i % 250)).$j tcp dport $((1024 + j)) dnat ip to 10.200.$((i % 250)).$j"
					else
						echo "    ip saddr 172.16.$((i % 250)).$j tcp dport $((1024 + j)) return"
					fi
				done
				echo "  }"
				if ((i % 5 == 4)); then echo "  chain from_prerouting { jump c$i; }"; else echo "  chain from_forward { jump c$i; }"; fi
			done
			echo "}"
		} >"$f"
		nft -f "$f"
	else
		{
			echo "*filter"
			for ((i = 0; i < chains; i++)); do ((i % 5 == 4)) || echo ":F$i - [0:0]"; done
			for ((i = 0; i < chains; i++)); do
				((i % 5 == 4)) && continue
				echo "-A FORWARD -j F$i"
				for ((j = 0; j < 100; j++)); do
					echo "-A F$i -s 172.16.$((i % 250)).$j/32 -p tcp -m tcp --dport $((1024 + j)) -j RETURN"
				done
			done
			echo "COMMIT"
			echo "*nat"
			for ((i = 4; i < chains; i += 5)); do echo ":N$i - [0:0]"; done
			for ((i = 4; i < chains; i += 5)); do
				echo "-A PREROUTING -j N$i"
				for ((j = 0; j < 100; j++)); do
					echo "-A N$i -d 172.16.$((i % 250)).$j/32 -p tcp -m tcp --dport $((1024 + j)) -j DNAT --to-destination 10.200.$((i % 250)).$j"
				done
			done
			echo "COMMIT"
		} >"$f"
		"${IPT}-restore" <"$f"
	fi
	rm -f "$f"
}

clear_foreign() {
	local v
	nft delete table inet foreign 2>/dev/null || true
	for v in nft legacy; do
		for t in filter nat; do
			"iptables-$v" -t $t -F 2>/dev/null || true
			"iptables-$v" -t $t -X 2>/dev/null || true
		done
	done
	# iptables-nft leaves its (now empty) tables; the hook deletes only what it created.
	nft list tables 2>/dev/null | grep -q 'table ip ' && { nft flush ruleset; } || true
}

worker() {
	local backend=$1 sizes=$2 rounds=$3 out=$4 conf=$5 bin=$6 size base
	case "$backend" in
	iptables-legacy) IPT=iptables-legacy IP6T=ip6tables-legacy ;;
	*) IPT=iptables-nft IP6T=ip6tables-nft ;;
	esac
	for size in $sizes; do
		clear_foreign
		foreign_rules "$backend" "$size"
		base=$out/$backend.$size
		snapshot >"$base.before"
		# (3) the floor: this backend's own scripts, captured once, replayed by a shell.
		"$bin" up wgb0 --config "$conf" --backend "$backend" -vv 2>"$base.log-up" >/dev/null
		"$bin" down wgb0 -vv 2>"$base.log-down" >/dev/null
		floor_script "$base.log-up" >"$base.floor-up.sh"
		floor_script "$base.log-down" >"$base.floor-down.sh"
		time_loop "$base.hook" "$rounds" "'$bin' up wgb0 --config '$conf' --backend $backend" "'$bin' down wgb0"
		snapshot >"$base.after"
		cmp -s "$base.before" "$base.after" || { echo "bench: the hook's up+down changed the namespace ($backend, $size)" >&2; diff "$base.before" "$base.after" >&2 | head -20; return 1; }
		time_loop "$base.floor" "$rounds" "bash '$base.floor-up.sh'" "bash '$base.floor-down.sh'"
		time_loop "$base.guide" "$(((rounds + 1) / 2))" "guide_up" "guide_down"
		# Peak memory of the hook itself (VmHWM, KiB; the programs it runs are not counted).
		local rss='s/.*peak memory \([0-9]*\) KiB (the largest program it ran: \([0-9]*\) KiB)/\1 \2/p'
		"$bin" up wgb0 --config "$conf" --backend "$backend" -vv 2>&1 | sed -n "$rss" >"$base.rss-up"
		"$bin" down wgb0 -vv 2>&1 | sed -n "$rss" >"$base.rss-down"
	done
	clear_foreign
}

# bench_setup NAME PACKAGE...: as root, installs what is missing, builds the release binary
# (BIN), and starts the e2e library's namespace bookkeeping (cleanup on exit).
bench_setup() {
	local name=$1 p missing=()
	shift
	[[ $EUID -eq 0 ]] || { echo "$name: run as root (it creates network namespaces)" >&2; exit 2; }
	for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
	if ((${#missing[@]})); then
		echo "[+] installing ${missing[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	echo "[+] cargo build --release"
	(cd "$ROOT" && cargo build --release --locked -q)
	BIN=$ROOT/target/release/wgfw-hook
	# shellcheck source=tests/e2e/lib.sh
	source "$ROOT/tests/e2e/lib.sh"
	setup_traps
	export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
}

# stats FILE: "median p10 p90" in milliseconds.
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		lo = v[int((NR - 1) * 0.1) + 1]; hi = v[int((NR - 1) * 0.9 + 0.5) + 1]
		printf "%.1f %.1f %.1f\n", m / 1000, lo / 1000, hi / 1000 }'
}

# Sourced with __lib (the wg-quick loop uses time_loop): functions only.
if [[ ${1:-} == __lib ]]; then return 0; fi
if [[ ${1:-} == __worker ]]; then
	shift
	trap 'echo "bench.sh worker: line $LINENO: $BASH_COMMAND failed" >&2' ERR
	worker "$@"
	exit
fi

# ---------------------------------------------------------------------------------------------
# The driver: topology, loops, table.

QUICK=0 ROUNDS=21 SIZES="0 5000 20000" BACKENDS="nft iptables-nft iptables-legacy" TUNNEL=1
while (($#)); do
	case "$1" in
	--quick) QUICK=1 ROUNDS=7 SIZES="0 20000" ;;
	--rounds) ROUNDS=$2; shift ;;
	--sizes) SIZES=$2; shift ;;
	--backends) BACKENDS=$2; shift ;;
	--no-tunnel) TUNNEL=0 ;;
	-h | --help) sed -n '2,/^set -E/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

bench_setup bench.sh iptables nftables wireguard-tools wireguard-go iproute2 iperf3 socat bc file
require_free_ifaces wgb0 wgb1

INET=$E2E_PREFIX-inet SRV=$E2E_PREFIX-srv CLI=$E2E_PREFIX-cli
OUT=$E2E_TMP
step "topology: $INET, $SRV, $CLI"
for ns in "$INET" "$SRV" "$CLI"; do ns_add "$ns"; done
ip link add to-srv netns "$INET" type veth peer name eth0 netns "$SRV"
ip link add to-cli netns "$INET" type veth peer name eth0 netns "$CLI"
in_ns "$INET" sysctl -q -w net.ipv4.ip_forward=1
in_ns "$INET" ip addr add 203.0.113.1/24 dev to-srv
in_ns "$INET" ip addr add 198.51.100.1/24 dev to-cli
in_ns "$INET" ip addr add 192.0.2.1/32 dev lo
in_ns "$INET" ip -6 addr add 2001:db8:1::1/64 dev to-srv nodad
for l in to-srv to-cli; do in_ns "$INET" ip link set "$l" up; done
in_ns "$INET" ip route add 10.66.0.0/24 via 203.0.113.2
in_ns "$SRV" ip addr add 203.0.113.2/24 dev eth0
in_ns "$SRV" ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad
in_ns "$SRV" ip link set eth0 up
in_ns "$SRV" ip route add default via 203.0.113.1
in_ns "$SRV" ip -6 route add default via 2001:db8:1::1 dev eth0
in_ns "$CLI" ip addr add 198.51.100.2/24 dev eth0
in_ns "$CLI" ip link set eth0 up
in_ns "$CLI" ip route add default via 198.51.100.1

srv_key=$(wg genkey) cli_key=$(wg genkey)
CONF=$OUT/wgb0.conf
cat >"$CONF" <<EOF
[Interface]
Address = 10.66.0.1/24, fd66::1/64
ListenPort = 51820
PrivateKey = $srv_key

[Peer]
PublicKey = $(wg pubkey <<<"$cli_key")
AllowedIPs = 10.66.0.2/32, fd66::2/128
EOF
HOOKED=$OUT/hooked/wgb0.conf
mkdir -p "$OUT/hooked"
sed "/^PrivateKey/a PostUp = $BIN up %i --config $CONF\nPreDown = $BIN down %i" "$CONF" >"$HOOKED"
cat >"$OUT/wgb1.conf" <<EOF
[Interface]
Address = 10.66.0.2/32, fd66::2/128
PrivateKey = $cli_key

[Peer]
PublicKey = $(wg pubkey <<<"$srv_key")
Endpoint = 203.0.113.2:51820
AllowedIPs = 10.66.0.0/24, 192.0.2.0/24
EOF
chmod 600 "$CONF" "$HOOKED" "$OUT/wgb1.conf"
in_ns "$SRV" wg-quick up "$CONF" >/dev/null 2>&1
in_ns "$CLI" wg-quick up "$OUT/wgb1.conf" >/dev/null 2>&1

for backend in $BACKENDS; do
	step "$backend: hook, floor and guide at ${SIZES// /, } foreign rules, $ROUNDS rounds"
	in_ns "$SRV" bash "$0" __worker "$backend" "$SIZES" "$ROUNDS" "$OUT" "$CONF" "$BIN"
done

# sum_file A B: per-round sums of two files (up + down).
sum_file() { paste -d+ "$1" "$2" | bc; }

printf '\n[+] up + down (ms: median [p10-p90]); ratios of medians\n\n'
printf '%-16s %7s | %-22s | %-22s | %-22s | %12s | %10s\n' backend foreign hook floor guide "guide/hook" "hook/floor"
for backend in $BACKENDS; do
	for size in $SIZES; do
		base=$OUT/$backend.$size
		for k in hook floor guide; do sum_file "$base.$k.up" "$base.$k.down" >"$base.$k.total"; done
		read -r hm hl hh < <(stats "$base.hook.total")
		read -r fm fl fh < <(stats "$base.floor.total")
		read -r gm gl gh < <(stats "$base.guide.total")
		printf '%-16s %7s | %6s [%5s-%6s] | %6s [%5s-%6s] | %6s [%5s-%6s] | %11.1fx | %9.2fx\n' \
			"$backend" "$size" "$hm" "$hl" "$hh" "$fm" "$fl" "$fh" "$gm" "$gl" "$gh" \
			"$(bc -l <<<"$gm / $hm")" "$(bc -l <<<"$hm / $fm")"
	done
done

printf '\n[+] up and down apart (ms, medians): hook up/down, floor up/down, guide up/down\n\n'
for backend in $BACKENDS; do
	for size in $SIZES; do
		base=$OUT/$backend.$size
		line=$(printf '%-16s %7s |' "$backend" "$size")
		for k in hook floor guide; do
			line+=$(printf ' %s: %6s / %6s |' "$k" "$(stats "$base.$k.up" | cut -d' ' -f1)" "$(stats "$base.$k.down" | cut -d' ' -f1)")
		done
		echo "$line"
	done
done

printf '\n[+] peak memory (KiB) of the hook itself (VmHWM) and of the largest program it ran: up / down\n\n'
for backend in $BACKENDS; do
	for size in $SIZES; do
		read -r uh uc <"$OUT/$backend.$size.rss-up"
		read -r dh dc <"$OUT/$backend.$size.rss-down"
		printf '%-16s %7s | hook %6s / %6s | programs %6s / %6s\n' "$backend" "$size" "$uh" "$dh" "$uc" "$dc"
	done
done
printf '\n[+] binary: %s bytes (%s)\n' "$(stat -c %s "$BIN")" "$(file -b "$BIN" | cut -d, -f1-2,5-)"

((TUNNEL)) || exit 0

step "wg-quick up + down of the server's tunnel, without and with the hook (backend auto), $ROUNDS rounds"
in_ns "$SRV" wg-quick down "$CONF" >/dev/null 2>&1
in_ns "$SRV" bash -c "source '$0' __lib; time_loop '$OUT/wgq.plain' $ROUNDS \"wg-quick up '$CONF'\" \"wg-quick down '$CONF'\""
in_ns "$SRV" bash -c "source '$0' __lib; time_loop '$OUT/wgq.hook' $ROUNDS \"wg-quick up '$HOOKED'\" \"wg-quick down '$HOOKED'\""
for k in plain hook; do
	for d in up down; do printf '    wg-quick %-4s %-5s %s\n' "$d" "$k" "$(stats "$OUT/wgq.$k.$d" | awk '{ printf "%s ms [%s-%s]", $1, $2, $3 }')"; done
done

TP_ROUNDS=5
MODES="none guide hook hook-nonat hook+notrack"
step "TCP throughput, peer → tunnel → server → internet (iperf3, $TP_ROUNDS × 5 s each, interleaved)"
in_ns "$SRV" wg-quick up "$CONF" >/dev/null 2>&1
bg "$INET" "$OUT/iperf3.log" iperf3 -s -B 192.0.2.1 -p 5201
wait_tcp_listen "$INET" 5201
in_ns "$CLI" ping -c 1 -W 2 10.66.0.1 >/dev/null || true
notrack=$OUT/notrack.nft
cat >"$notrack" <<'EOF'
table inet wgfw_bench_notrack {
	chain pre { type filter hook prerouting priority raw - 10; udp dport 51820 notrack; }
	chain out { type filter hook output priority raw - 10; udp sport 51820 notrack; }
}
EOF
GUIDE_ON=0
# reset: no firewall at all, but the server must still forward (the hook's down turned it off).
reset() {
	in_ns "$SRV" "$BIN" down wgb0 >/dev/null 2>&1
	in_ns "$SRV" nft delete table inet wgfw_bench_notrack 2>/dev/null || true
	if ((GUIDE_ON)); then
		in_ns "$SRV" bash -c "source '$0' __lib; IPT=iptables-nft IP6T=ip6tables-nft guide_down" >/dev/null 2>&1
		GUIDE_ON=0
	fi
	in_ns "$SRV" sysctl -q -w net.ipv4.ip_forward=1
}
mode() {
	reset
	case "$1" in
	none) ;;
	# The guide's rules, with iptables-nft: the usual way, NAT and conntrack included.
	guide)
		in_ns "$SRV" bash -c "source '$0' __lib; IPT=iptables-nft IP6T=ip6tables-nft guide_up" >/dev/null 2>&1
		GUIDE_ON=1
		;;
	hook) in_ns "$SRV" "$BIN" up wgb0 --config "$CONF" --backend nft >/dev/null 2>&1 ;;
	# The hook routing instead of masquerading: NAT's share of the cost.
	hook-nonat) in_ns "$SRV" "$BIN" up wgb0 --config "$CONF" --backend nft --no-nat >/dev/null 2>&1 ;;
	hook+notrack)
		# The alternative issue #7 asks to evaluate: the outer UDP untracked, and the limit
		# keyed to WireGuard's handshake initiations (message type 1: the payload starts
		# 01 00 00 00) per source, the other messages accepted statelessly.
		in_ns "$SRV" "$BIN" up wgb0 --config "$CONF" --backend nft >/dev/null 2>&1
		in_ns "$SRV" nft -f "$notrack"
		in_ns "$SRV" nft -f - <<-'EOF'
			add set inet wgfw bench_hs { type ipv4_addr; flags dynamic, timeout; timeout 2m; }
			insert rule inet wgfw WGFW-wgb0-IN-v4 udp dport 51820 ct state untracked accept
			insert rule inet wgfw WGFW-wgb0-IN-v4 udp dport 51820 ct state untracked @th,64,32 0x01000000 drop
			insert rule inet wgfw WGFW-wgb0-IN-v4 udp dport 51820 ct state untracked @th,64,32 0x01000000 update @bench_hs { ip saddr limit rate 30/minute } accept
		EOF
		;;
	esac
}
for ((round = 1; round <= TP_ROUNDS; round++)); do
	for m in $MODES; do
		mode "$m"
		in_ns "$CLI" timeout 30 iperf3 -c 192.0.2.1 -p 5201 -t 5 -O 1 -f m >"$OUT/iperf.$m.$round" 2>&1 || true
		awk '/receiver/ { print $7; found = 1 } END { if (!found) print 0 }' "$OUT/iperf.$m.$round" >>"$OUT/iperf.$m"
	done
done
mode none
for m in $MODES; do
	printf '    %-13s %s Mbit/s (runs: %s)\n' "$m" "$(sort -n "$OUT/iperf.$m" | sed -n "$(((TP_ROUNDS + 1) / 2))p")" "$(tr '\n' ' ' <"$OUT/iperf.$m")"
done
