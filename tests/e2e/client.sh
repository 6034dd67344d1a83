#!/usr/bin/env bash
# End-to-end test of wgfw-hook in the CLIENT role (kill switch: nothing leaves outside the
# tunnel), with real packets, in network namespaces.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/client.sh iptables-nft|iptables-legacy|nft
#
# (nft: the hook's native nftables backend; its rules are in the nft table inet wgfw, and
# nothing of it may appear in iptables-nft-save or iptables-legacy-save.)
#
# Topology (four namespaces, "$E2E_PREFIX-{inet,srv,cli,lan}", deleted on exit; N = this PID):
#
#                ┌──────────────────────────────────────────────────────────────┐
#                │ inet: the "internet" (router, v4+v6 forwarding). On lo:      │
#                │   192.0.2.1/32  2001:db8:ff::1/128   internet services:      │
#                │   tcp/8080 and udp/9999 answer the peer address they see,    │
#                │   ping answers. NO route to 192.168.50.0/24 / fd50::/64.     │
#                │ LEAK CAPTURE: tcpdump on to-cli counts IP packets from cli's │
#                │ WAN address or the LAN, except UDP to/from srv:51820 (the    │
#                │ allowed endpoint traffic) and IPv6 neighbour discovery.      │
#                └──────┬──────────────────────────────────────────┬────────────┘
#      to-srv 203.0.113.1/24                                to-cli 198.51.100.1/24
#             2001:db8:1::1/64                                     2001:db8:2::1/64
#                       │                                          │
#      eth0 203.0.113.2/24                                  eth0 198.51.100.2/24
#           2001:db8:1::2/64                                     2001:db8:2::2/64
#   ┌───────────────────┴────────────────┐    ┌────────────────────┴─────────────────────────┐
#   │ srv: a PLAIN WireGuard server (no  │    │ cli: the client / small-office router        │
#   │ hook): wgzN 10.66.0.1/24 fd66::1/64│◄══►│ default routes via inet; ip_forward=1,       │
#   │ udp/51820; forwarding on; nft      │ wg │ ipv6 forwarding=1 (set by the test)          │
#   │ masquerade (v4 AND v6) out of eth0 │    │ WireGuard client 10.66.0.2/32 fd66::2/128,   │
#   │ peer cli: AllowedIPs 10.66.0.2/32  │    │ one interface name per phase (below), config │
#   │  fd66::2/128 192.168.50.0/24       │    │ /etc/netns/<cli>/wireguard/<if>.conf with    │
#   │  fd50::/64 (LAN traffic works with │    │   PostUp  = wgfw-hook up %i                  │
#   │  or without NAT in cli)            │    │   PreDown = wgfw-hook down %i                │
#   │ tcp/8080 answers the peer address  │    │ settings /etc/netns/<cli>/wgfw/<if>.conf:    │
#   └────────────────────────────────────┘    │   role = client, backend = B, allow-lan = yes│
#                                             │ tcp/8080 listener (answers peer address)     │
#                                             └────────────────────┬─────────────────────────┘
#                                                   lan0 192.168.50.1/24 fd50::1/64
#                                                                  │
#                                                   eth0 192.168.50.10/24 fd50::10/64
#                                             ┌────────────────────┴─────────────────────────┐
#                                             │ lan: a LAN host behind cli, default routes   │
#                                             │ via cli; tcp/8080 listener                   │
#                                             └──────────────────────────────────────────────┘
#
# srv is a plain server (manual nft masquerade, no hook), so that what the internet sees does not
# depend on the server role: traffic through the tunnel reaches 192.0.2.1 as 203.0.113.2 /
# 2001:db8:1::2, a direct (leaked) connection from cli as 198.51.100.2.
#
# Phases (cli's WireGuard interface, a fresh name each time; srv stays up throughout):
#   1 wgkN  CONTROL without the hook, full tunnel: traffic goes through the tunnel; wireguard-go
#           killed -> cli's TCP/UDP/ping and the LAN's TCP to 192.0.2.1 DO leak (captured > 0)
#   2       snapshot cli's rulesets (iptables-nft/legacy v4+v6, nft) and sysctls
#   3 wghN  hook, role = client, allow-lan = yes, full tunnel (0.0.0.0/0, ::/0): everything works
#           through the tunnel, zero leaks; chains and jumps in place
#   3b      the watcher: cli's firewall wiped (nft flush ruleset; iptables-legacy: every table
#           flushed) while the tunnel is up: repaired, nothing twice, zero leaks, tunnel works
#   4 wghN  wireguard-go killed (no down): everything outside the tunnel rejected, fast; zero
#           leaks; LAN still reachable; then `wgfw-hook down` -> rulesets/sysctls = snapshot
#   5 wgvN  IPv4-only tunnel (Address/AllowedIPs IPv4 only): IPv6 rejected, zero leaks
#   6 wglN  lockdown = yes: after wg-quick down the kill switch stays (zero leaks), status says
#           so, `release` -> snapshot; `release` again exits 0
#   7 wgsN  split tunnel (AllowedIPs = 10.66.0.0/24, fd66::/64), no allow-lan: tunnel works (also
#           from the LAN), the rest rejected, the LAN too; no new inbound from the tunnel
#
# wg-quick's own residue is undone by the test before comparing with the snapshot: after a killed
# tunnel its `ip rule`s and nft table `wg-quick-<if>` (wg-quick down cannot run any more), and
# after every full tunnel net.ipv4.conf.all.src_valid_mark (wg-quick sets it and never resets it;
# it is already 1 when PostUp runs, so the hook restores 1 at most).
# Every WireGuard interface name carries this run's PID: wireguard-go's control socket
# (/var/run/wireguard/<if>.sock) is shared by all namespaces.

set -Eeuo pipefail

BACKEND=${1:-}
case "$BACKEND" in
iptables-nft | iptables-legacy | nft) ;;
*)
	echo "usage: $0 iptables-nft|iptables-legacy|nft" >&2
	exit 2
	;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# VARIANT: the iptables variant (nft for the nft backend); NATIVE=1: the hook's rules are in the
# native nft table inet wgfw.
parse_backend "$BACKEND"

require_e2e "iptables-$VARIANT" "ip6tables-$VARIANT" tcpdump

SRV_IF=wgz$$ # srv
K_IF=wgk$$   # cli, phase 1 (control, no hook)
H_IF=wgh$$   # cli, phases 3+4 (hook, full tunnel)
V_IF=wgv$$   # cli, phase 5 (IPv4-only tunnel)
L_IF=wgl$$   # cli, phase 6 (lockdown)
S_IF=wgs$$   # cli, phase 7 (split tunnel)
CLI_IFS=("$K_IF" "$H_IF" "$V_IF" "$L_IF" "$S_IF")
require_free_ifaces "$SRV_IF" "${CLI_IFS[@]}"

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
CLI=$E2E_PREFIX-cli
LAN=$E2E_PREFIX-lan
SRV_CONF=$E2E_TMP/$SRV_IF.conf
CLI_WG_DIR=/etc/netns/$CLI/wireguard
CLI_WGFW_DIR=/etc/netns/$CLI/wgfw
WG_PORT=51820
PORT=8080  # tcp services (inet, srv, cli, lan) answer the peer address they see
UPORT=9999 # udp service on inet answers the peer address it sees
FAST_MS=3000
FAIL_FAST_RE='refused|unreachable|no route|not permitted|permission denied|prohibited'

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

inet() { ip netns exec "$INET" "$@"; }
srv() { ip netns exec "$SRV" "$@"; }
cli() { ip netns exec "$CLI" "$@"; }
lanh() { ip netns exec "$LAN" "$@"; }

echo "wgfw-hook e2e, client role (kill switch), backend $BACKEND"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $CLI $LAN; WireGuard interfaces: $SRV_IF (srv), ${CLI_IFS[*]} (cli)"

# ---------------------------------------------------------------------------------------------
# helpers of this test

# The hook keys its state by the namespace: /run/wgfw/netns-<inode>[.<cookie>]. Directories for
# cli's inode that exist before the first `up` (a dead namespace's) are remembered and ignored.
CLI_INODE=
CLI_STALE=
cli_state_dirs() { hook_state_dirs "$CLI_INODE" "$CLI_STALE"; }
# If the test dies with the hook's rules installed, let the hook clean up cli's state (the
# namespace goes anyway), then remove what it left under /run/wgfw.
cleanup_hook_state() {
	local dirs ifc
	dirs=$(cli_state_dirs)
	[[ -n $dirs ]] || return 0
	for ifc in "${CLI_IFS[@]}"; do
		timeout 30 ip netns exec "$CLI" "$BIN" down "$ifc"
		timeout 30 ip netns exec "$CLI" "$BIN" release "$ifc"
	done
	rm -rf -- $dirs
}
E2E_CLEANUP_HOOKS+=(cleanup_hook_state 'remove_etc_wgfw "$CLI_WGFW_DIR"')

nsname() { printf '%s' "${1##*-}"; }

# --- leak capture on inet's interface towards cli --------------------------------------------
# Counted: IP/IPv6 packets whose source is cli's WAN address or the LAN; not counted: UDP between
# cli and srv's WireGuard port (the allowed endpoint traffic), the kernel's "port unreachable"
# answers to srv's own WireGuard packets once the tunnel is dead (srv keeps sending to cli's
# closed port: RELATED to that flow, they tell srv nothing it does not know), IPv6 neighbour
# discovery (ICMPv6 types 133-137, allowed and needed to reach the gateway at all).
LEAK_FILTER="(ip or ip6) and (src host 198.51.100.2 or src net 192.168.50.0/24 or src host 2001:db8:2::2 or src net fd50::/64)"
LEAK_FILTER+=" and not (udp and host 203.0.113.2 and port $WG_PORT)"
LEAK_FILTER+=" and not (icmp and dst host 203.0.113.2 and icmp[0] == 3)"
LEAK_FILTER+=" and not (icmp6 and dst host 2001:db8:1::2 and ip6[40] == 1)"
LEAK_FILTER+=" and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137)"
leak_start() {
	LEAK_LOG=$(mktemp "$E2E_TMP/leak.XXXXXX")
	bg "$INET" "$LEAK_LOG" timeout 120 tcpdump --immediate-mode -i to-cli -n -l "$LEAK_FILTER"
	LEAK_PID=$BG_PID
	wait_for 5 grep -q 'listening on' "$LEAK_LOG" || info "tcpdump on inet/to-cli did not start: $(cat "$LEAK_LOG")"
}
# leak_stop: stops the capture; sets LEAKS (count) and LEAK_LINES (the first few packets).
leak_stop() {
	sleep 0.4
	bg_stop "$LEAK_PID"
	LEAKS=$(grep -cE ' IP6? ' "$LEAK_LOG" || true)
	LEAK_LINES=$(grep -E ' IP6? ' "$LEAK_LOG" | head -n 5 || true)
}

# --- probes ----------------------------------------------------------------------------------
# probe KIND NS ADDR: one probe (tcp: connect to ADDR:8080 with a 5 s connect timeout; udp: one
# datagram to ADDR:9999, 3 s for the answer; ping: one echo, 2 s). Sets P_OK (1 = answered),
# P_MS (duration), P_RES (what happened, one line).
probe() {
	local kind=$1 ns=$2 addr=$3 t0 out fam
	t0=${EPOCHREALTIME/./}
	case $kind in
	tcp)
		tcp_probe "$ns" "$(host "$addr")" "$PORT" 5
		if [[ $PROBE == open ]]; then P_OK=1; else P_OK=0; fi
		P_RES="$PROBE: $(tr '\n' ' ' <<<"$PROBE_OUT")"
		;;
	udp)
		# Up to 3 datagrams while nothing at all comes back (UDP may be lost); an error (e.g.
		# "Operation not permitted") ends the probe at once.
		fam=UDP4
		[[ $addr == *:* ]] && fam=UDP6
		local try
		for try in 1 2 3; do
			out=$(echo probe | timeout 8 ip netns exec "$ns" socat -t3 -T3 - "$fam:$(host "$addr"):$UPORT" 2>&1) || true
			[[ -z $out ]] || break
		done
		if grep -qE '^(\[[0-9a-f:]+\]|[0-9.]+)$' <<<"$out"; then P_OK=1; else P_OK=0; fi
		P_RES="answer: $(tr '\n' ' ' <<<"${out:-<none>}")"
		;;
	ping)
		out=$(timeout 6 ip netns exec "$ns" ping -n -c 1 -W 2 "$addr" 2>&1) && P_OK=1 || P_OK=0
		P_RES=$(grep -E 'bytes from|nreachable|filtered|rohibited|not permitted|ermission|received|ping:' <<<"$out" | head -n 2 | paste -sd '|')
		;;
	esac
	P_MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

# expect_reach DESC NS KIND ADDR [SEEN]: the probe is answered (TCP/UDP: the service sees SEEN,
# when given) and the capture counts zero leaks.
expect_reach() {
	local desc=$1 ns=$2 kind=$3 addr=$4 want=${5:-}
	leak_start
	probe "$kind" "$ns" "$addr"
	leak_stop
	if ((P_OK)); then
		if [[ -n $want && $kind != ping ]]; then
			local got=${P_RES#*: }
			got=${got% }
			if [[ $got == "$(seen "$want")" ]]; then pass "$desc: answered, seen from $want"; else
				fail "$desc: answered, seen from $want" "expected: $(seen "$want")" "got:      $got"
			fi
		else
			pass "$desc: answered ($P_RES)"
		fi
	else
		fail "$desc: answered" "$kind probe from $(nsname "$ns") to $addr: $P_RES (${P_MS} ms)"
	fi
	assert_eq "$desc: zero leaks captured on inet/to-cli" 0 "$LEAKS"
	[[ $LEAKS == 0 ]] || info "captured: $LEAK_LINES"
}

# expect_blocked DESC NS KIND ADDR: not answered; zero leaks; a TCP connect fails FAST (< 3 s,
# refused / unreachable / not permitted, not a timeout): REJECT, not DROP.
expect_blocked() {
	local desc=$1 ns=$2 kind=$3 addr=$4
	leak_start
	probe "$kind" "$ns" "$addr"
	leak_stop
	if ((P_OK)); then
		fail "$desc: BLOCKED" "$kind probe from $(nsname "$ns") to $addr was answered: $P_RES"
	else
		pass "$desc: BLOCKED ($P_RES; ${P_MS} ms)"
	fi
	if [[ $kind == tcp ]] && ((!P_OK)); then
		if [[ $PROBE != timeout ]] && ((P_MS < FAST_MS)) && grep -qiE "$FAIL_FAST_RE" <<<"$PROBE_OUT"; then
			pass "$desc: fails fast (${P_MS} ms, $PROBE)"
		else
			fail "$desc: fails fast (< ${FAST_MS} ms, refused/unreachable/not permitted; connect timeout 5 s)" \
				"got: $PROBE after ${P_MS} ms" "output: $PROBE_OUT"
		fi
	fi
	assert_eq "$desc: zero leaks captured on inet/to-cli" 0 "$LEAKS"
	[[ $LEAKS == 0 ]] || info "captured: $LEAK_LINES"
}

# expect_direct DESC NS ADDR SEEN: (no tunnel, no kill switch) a TCP connection to ADDR:8080
# goes out directly and is seen from SEEN. No leak capture: this traffic is meant to go direct.
expect_direct() {
	probe tcp "$2" "$3"
	if ((P_OK)) && [[ $PROBE_OUT == "$(seen "$4")" ]]; then pass "$1 (seen from $4)"; else
		fail "$1" "expected: open, seen from $(seen "$4")" "got:      $P_RES"
	fi
}

# expect_not_open DESC NS ADDR: a new TCP connection from NS to ADDR:8080 is not accepted
# (dropped or rejected).
expect_not_open() {
	tcp_probe "$2" "$(host "$3")" "$PORT" 2
	if [[ $PROBE == open ]]; then fail "$1: not accepted" "got: open (the listener saw $PROBE_OUT)"; else
		pass "$1: not accepted ($PROBE)"
	fi
}

# observe_wan_relay: (observation, not asserted; the contract does not say) can a host on cli's
# WAN side use cli as a router INTO the tunnel (inet routes 10.66.0.1 via cli)?
observe_wan_relay() {
	inet ip route add 10.66.0.1/32 via 198.51.100.2
	tcp_probe "$INET" 10.66.0.1 "$PORT" 2
	inet ip route del 10.66.0.1/32 via 198.51.100.2
	info "observation (not asserted): inet -> 10.66.0.1:$PORT routed via cli's WAN address into the tunnel: $PROBE${PROBE_OUT:+ (srv saw $PROBE_OUT)}"
}

# expect_leak DESC NS KIND ADDR: (control) packets from cli's WAN address / the LAN ARE captured.
expect_leak() {
	local desc=$1 ns=$2 kind=$3 addr=$4
	leak_start
	probe "$kind" "$ns" "$addr"
	leak_stop
	info "$kind from $(nsname "$ns") to $addr: $P_RES (${P_MS} ms)"
	if ((LEAKS > 0)); then
		pass "$desc: leaks ($LEAKS packets captured, e.g. $(head -n 1 <<<"$LEAK_LINES" | cut -d' ' -f2-))"
	else
		fail "$desc: leaks (captured > 0)" "nothing captured on inet/to-cli; tcpdump: $(tr '\n' ' ' <"$LEAK_LOG")"
	fi
}

# --- wireguard-go of cli ---------------------------------------------------------------------
# wg_pids IF: PIDs of the wireguard-go serving IF in cli (ours: found among cli's processes).
wg_pids() {
	local p argv
	for p in $(ip netns pids "$CLI" 2>/dev/null); do
		mapfile -d '' argv <"/proc/$p/cmdline" 2>/dev/null || continue
		((${#argv[@]} >= 2)) || continue
		[[ ${argv[0]##*/} == wireguard-go && ${argv[-1]} == "$1" ]] && echo "$p"
	done
	return 0
}
# kill_wg IF: kills cli's wireguard-go for IF abruptly (SIGKILL, no wg-quick down): the tun link
# goes with it. Removes its stale control socket (the name is this run's own).
kill_wg() {
	local ifc=$1 pids
	pids=$(wg_pids "$ifc")
	if [[ -z $pids ]]; then
		fail "found cli's wireguard-go for $ifc" "$(ps -eo pid,args | grep -F wireguard-go | grep -v grep || true)"
		return 0
	fi
	info "kill -9 $(echo $pids) (wireguard-go $ifc in cli)"
	kill -9 $pids
	if wait_for 5 bash -c "! ip -n '$CLI' link show '$ifc' >/dev/null 2>&1"; then
		pass "$ifc is gone from cli after killing wireguard-go (no down ran)"
	else
		fail "$ifc is gone from cli after killing wireguard-go" "$(cli ip link show "$ifc" 2>&1)"
		cli ip link del "$ifc" 2>/dev/null || true
	fi
	[[ -S /var/run/wireguard/$ifc.sock ]] && rm -f -- "/var/run/wireguard/$ifc.sock"
	return 0
}

# wgquick_residue IF: what wg-quick down would have removed after a killed full tunnel: its
# nft table wg-quick-IF (ip, ip6) and its fwmark `ip rule`s.
wgquick_residue() {
	local ifc=$1 f i t
	for f in ip ip6; do
		cli nft delete table "$f" "wg-quick-$ifc" 2>/dev/null || true
	done
	for f in -4 -6; do
		for ((i = 0; i < 10; i++)); do
			cli ip "$f" rule del table main suppress_prefixlength 0 2>/dev/null || break
		done
		for ((i = 0; i < 10; i++)); do
			t=$(cli ip "$f" rule show | sed -nE 's/.*not from all fwmark (0x[0-9a-f]+) lookup ([0-9]+).*/\2/p' | head -n 1)
			[[ -n $t ]] || break
			cli ip "$f" rule del not fwmark "$t" table "$t" || break
		done
	done
}
# --- snapshots (lib's snapshot_rules, snapshot_sysctls) ---------------------------------------
# reset_src_valid_mark: wg-quick's full tunnel sets net.ipv4.conf.all.src_valid_mark=1 and never
# resets it (its residue, not the hook's): back to the snapshot's value.
reset_src_valid_mark() {
	local v
	v=$(sed -nE 's/^net\.ipv4\.conf\.all\.src_valid_mark = ([0-9]+)$/\1/p' "$E2E_TMP/sysctl.before")
	[[ -z $v ]] || cli sysctl -q -w "net.ipv4.conf.all.src_valid_mark=$v"
}
# check_restored LABEL [KEEP_STATE]: cli's rulesets and sysctls equal the snapshot (phase 2);
# no hook state left for cli (unless KEEP_STATE=keep).
check_restored() {
	local label=$1 tag=${1//[^a-zA-Z0-9]/_} state
	snapshot_rules "$CLI" "$E2E_TMP/rules.$tag"
	snapshot_sysctls "$CLI" "$E2E_TMP/sysctl.$tag" eth0 lan0
	assert_same_file "$label: rulesets (iptables-nft/legacy v4+v6, nft) equal the snapshot" \
		"$E2E_TMP/rules.before" "$E2E_TMP/rules.$tag"
	assert_same_file "$label: sysctls equal the snapshot" "$E2E_TMP/sysctl.before" "$E2E_TMP/sysctl.$tag"
	[[ ${2:-} == keep ]] && return 0
	state=$(cli_state_dirs)
	if [[ -z $state ]] || [[ -z $(find $state -mindepth 1 2>/dev/null) ]]; then
		pass "$label: no hook state left in /run/wgfw for cli (netns inode $CLI_INODE)"
	else
		fail "$label: no hook state left in /run/wgfw for cli (netns inode $CLI_INODE)" "$(find $state -ls)"
	fi
}

# dump_rules: the hook's rules in cli (for the report when something failed).
dump_rules() {
	info "cli's rules ($BACKEND), routes and rules:"
	{
		if ((NATIVE)); then
			echo "## nft list table inet wgfw (the hook's rules have no counters)"
			nft_hook_table "$CLI"
		fi
		echo "## iptables-$VARIANT-save -c ([packets:bytes])"
		cli "iptables-$VARIANT-save" -c 2>/dev/null | grep -E '^\*|WGFW|wgfw|^:(INPUT|FORWARD|OUTPUT) ' || true
		echo "## ip6tables-$VARIANT-save -c ([packets:bytes])"
		cli "ip6tables-$VARIANT-save" -c 2>/dev/null | grep -E '^\*|WGFW|wgfw|^:(INPUT|FORWARD|OUTPUT) ' || true
		echo "## ip rule / ip -6 rule"
		cli ip -4 rule show
		cli ip -6 rule show
		echo "## routes (main)"
		cli ip -4 route show
		cli ip -6 route show | grep -v '^fe80' || true
	} | sed 's/^/    | /'
}
dump_on_failure() { ((E2E_FAILED > $1)) && dump_rules; return 0; }

# --- configs ---------------------------------------------------------------------------------
# write_cli_conf IF ADDRESS ALLOWED_IPS with-hook|no-hook
write_cli_conf() {
	local ifc=$1 addr=$2 allowed=$3 hooks=
	if [[ $4 == with-hook ]]; then
		hooks="PostUp = $BIN up %i
PreDown = $BIN down %i"
	fi
	(
		umask 077
		cat >"$CLI_WG_DIR/$ifc.conf" <<-EOF
			[Interface]
			Address = $addr
			PrivateKey = $CLI_KEY
			$hooks

			[Peer]
			PublicKey = $SRV_PUB
			Endpoint = 203.0.113.2:$WG_PORT
			AllowedIPs = $allowed
		EOF
	)
	chmod 600 "$CLI_WG_DIR/$ifc.conf"
	info "cli /etc/wireguard/$ifc.conf: Address = $addr; AllowedIPs = $allowed; hooks: $4"
}
# write_settings IF LINE...: cli's settings file for IF: role = client, backend, the given lines.
write_settings() {
	local ifc=$1
	shift
	(
		umask 077
		{
			echo "# wgfw-hook settings for $ifc (client e2e test)"
			echo "role = client"
			echo "backend = $BACKEND"
			printf '%s\n' "$@"
		} >"$CLI_WGFW_DIR/$ifc.conf"
	)
	chmod 600 "$CLI_WGFW_DIR/$ifc.conf"
	info "cli /etc/wgfw/$ifc.conf: $(grep -v '^#' "$CLI_WGFW_DIR/$ifc.conf" | paste -sd ';' | sed 's/;/; /g')"
}

# cli_up IF: wg-quick up in cli (PostUp runs the hook when configured); waits for the handshake
# (ping 10.66.0.1 through the tunnel). Sets UP_OK=1 when up and the tunnel passes traffic.
UP_OK=0
cli_up() {
	local ifc=$1
	UP_OK=0
	assert_ok "wg-quick up $ifc (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$ifc"
	printf '%s\n' "$RUN_OUT" >"$E2E_TMP/$ifc-up.log"
	if [[ $RUN_RC -ne 0 ]]; then
		info "wg-quick up output:"
		printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
		return 0
	fi
	grep -vE '^\[#\] (ip|wireguard-go|wg|nft|sysctl|resolvconf) |^\[#\] *$|^INFO:|^WARNING: WARNING|^W  |^ *$|┌|│|└' <<<"$RUN_OUT" |
		head -n 15 | sed 's/^/    | /' || true
	if ping_until "$CLI" 10.66.0.1 15; then
		pass "handshake: cli pings 10.66.0.1 through $ifc"
		UP_OK=1
	else
		fail "handshake: cli pings 10.66.0.1 through $ifc" "ping -c1 -W1 10.66.0.1 failed 15 times" \
			"$(cli wg show "$ifc" 2>&1)" "$(srv wg show "$SRV_IF" 2>&1)"
	fi
}
# cli_down IF: wg-quick down in cli (PreDown runs the hook when configured).
cli_down() {
	local ifc=$1
	if cli ip link show "$ifc" >/dev/null 2>&1; then
		assert_ok "wg-quick down $ifc (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick down "$ifc"
		[[ $RUN_RC -eq 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
	fi
	if cli ip link show "$ifc" >/dev/null 2>&1; then
		fail "$ifc is gone from cli after wg-quick down" "$(cli ip link show "$ifc" 2>&1)"
		cli ip link del "$ifc" || true
	fi
}

# check_chains IF: the hook's chains and jumps in cli (client role names).
check_chains() {
	local ifc=$1 f v c other=legacy
	if ((NATIVE)); then
		local n spec base target t
		n=$(nft_if "$ifc")
		t=$(nft_hook_table "$CLI")
		assert_match "nft: table inet wgfw exists" '^table inet wgfw \{' "$t"
		for f in 4 6; do
			for c in "WGFW-$n-OUT" "WGFW-$n-FWD" "WGFW-$n-IN" "WGFW-$n-REJECT" WGFW-INPUT; do
				assert_match "IPv$f chain $c-v$f exists ($BACKEND)" "^[[:space:]]*chain $c-v$f \\{" "$t"
			done
			for spec in "output|WGFW-$n-OUT" "forward|WGFW-$n-FWD" "input|WGFW-INPUT"; do
				IFS='|' read -r base target <<<"$spec"
				assert_match "nft $base: first IPv$f rule jumps to $target-v$f" "(^| )jump $target-v$f\$" \
					"$(nft_first_rule_for "$CLI" "$base" "$f")"
			done
		done
		assert_match "nft base chain output: type filter hook output priority filter" \
			'^type filter hook output priority filter;' "$(nft_chain_hook "$CLI" output)"
		assert_match "IPv4 nat chain WGFW-$n-NAT-v4 exists (LAN masqueraded out of the tunnel)" \
			"^[[:space:]]*chain WGFW-$n-NAT-v4 \\{" "$t"
		assert_match "IPv4 mangle chain WGFW-$n-MSS-v4 exists" "^[[:space:]]*chain WGFW-$n-MSS-v4 \\{" "$t"
		assert_no_match "nothing of the hook's in iptables-nft or iptables-legacy (v4, v6)" 'WGFW|wgfw' \
			"$(for v in nft legacy; do save_rules "$CLI" "$v" 4; save_rules "$CLI" "$v" 6; done)"
		return 0
	fi
	[[ $VARIANT == legacy ]] && other=nft
	for f in 4 6; do
		v=$(save_rules "$CLI" "$VARIANT" "$f")
		for c in "WGFW-$ifc-OUT" "WGFW-$ifc-FWD" "WGFW-$ifc-IN" "WGFW-$ifc-REJECT" WGFW-INPUT; do
			assert_match "IPv$f chain $c exists ($BACKEND)" "^:$c " "$v"
		done
		assert_match "IPv$f filter OUTPUT: first rule jumps to WGFW-$ifc-OUT" "^-A OUTPUT (.* )?-j WGFW-$ifc-OUT( |\$)" \
			"$(chain_rules "$CLI" "$VARIANT" "$f" filter OUTPUT | head -n 1)"
		assert_match "IPv$f filter FORWARD: first rule jumps to WGFW-$ifc-FWD" "^-A FORWARD (.* )?-j WGFW-$ifc-FWD( |\$)" \
			"$(chain_rules "$CLI" "$VARIANT" "$f" filter FORWARD | head -n 1)"
		# Host input is judged in mangle: other tools' denies in filter INPUT hold.
		assert_match "IPv$f mangle INPUT: first rule jumps to WGFW-INPUT" '^-A INPUT (.* )?-j WGFW-INPUT( |$)' \
			"$(chain_rules "$CLI" "$VARIANT" "$f" mangle INPUT | head -n 1)"
	done
	assert_match "IPv4 nat chain WGFW-$ifc-NAT exists (LAN masqueraded out of the tunnel)" "^:WGFW-$ifc-NAT " \
		"$(save_rules "$CLI" "$VARIANT" 4)"
	assert_match "IPv4 mangle chain WGFW-$ifc-MSS exists" "^:WGFW-$ifc-MSS " "$(save_rules "$CLI" "$VARIANT" 4)"
	assert_no_match "nothing of the hook's in iptables-$other (the other backend)" 'WGFW|wgfw' \
		"$(save_rules "$CLI" "$other" 4; save_rules "$CLI" "$other" 6)"
}

# ---------------------------------------------------------------------------------------------
step "topology: namespaces, veths, addresses, routes"
for ns in "$INET" "$SRV" "$CLI" "$LAN"; do ns_add "$ns"; done
CLI_INODE=$(netns_inode "$CLI")
CLI_STALE=$(cli_state_dirs)
[[ -z $CLI_STALE ]] || info "note: /run/wgfw already holds state for this namespace inode (a dead namespace's; ignored): $CLI_STALE"

ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-cli type veth peer name eth0 netns "$CLI"
ip -n "$CLI" link add lan0 type veth peer name eth0 netns "$LAN"

ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
ip -n "$INET" addr add 2001:db8:1::1/64 dev to-srv nodad
ip -n "$INET" addr add 198.51.100.1/24 dev to-cli
ip -n "$INET" addr add 2001:db8:2::1/64 dev to-cli nodad
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" addr add 2001:db8:ff::1/128 dev lo nodad
ip -n "$INET" link set to-srv up
ip -n "$INET" link set to-cli up
inet sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$SRV" link set eth0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$SRV" -6 route add default via 2001:db8:1::1
srv sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
srv nft -f - <<-'EOF'
	table ip srvnat {
		chain post { type nat hook postrouting priority 100; oifname "eth0" masquerade; }
	}
	table ip6 srvnat {
		chain post { type nat hook postrouting priority 100; oifname "eth0" masquerade; }
	}
EOF

ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
ip -n "$CLI" addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n "$CLI" addr add 192.168.50.1/24 dev lan0
ip -n "$CLI" addr add fd50::1/64 dev lan0 nodad
ip -n "$CLI" link set eth0 up
ip -n "$CLI" link set lan0 up
ip -n "$CLI" route add default via 198.51.100.1
ip -n "$CLI" -6 route add default via 2001:db8:2::1
# cli is a small-office router: forwarding is the test's doing (before any snapshot).
cli sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

ip -n "$LAN" addr add 192.168.50.10/24 dev eth0
ip -n "$LAN" addr add fd50::10/64 dev eth0 nodad
ip -n "$LAN" link set eth0 up
ip -n "$LAN" route add default via 192.168.50.1
ip -n "$LAN" -6 route add default via fd50::1

for pair in "$CLI 203.0.113.2" "$CLI 2001:db8:1::2" "$CLI 192.0.2.1" "$CLI 2001:db8:ff::1" \
	"$LAN 192.168.50.1" "$LAN fd50::1" "$LAN 198.51.100.2" "$LAN 2001:db8:2::2"; do
	read -r ns addr <<<"$pair"
	ping_until "$ns" "$addr" 5 || { echo "topology broken: $(nsname "$ns") cannot ping $addr" >&2; exit 1; }
done
info "cli reaches srv and the internet services directly (v4, v6); the lan host reaches cli (v4, v6)"
if inet ip route get 192.168.50.10 2>/dev/null | grep -q 'via'; then
	echo "topology broken: inet has a route to the LAN" >&2
	exit 1
fi

# ---------------------------------------------------------------------------------------------
step "services: inet tcp/$PORT + udp/$UPORT on 192.0.2.1 and [2001:db8:ff::1]; tcp/$PORT in srv, cli, lan (answer the peer address)"
bg "$INET" "$E2E_TMP/inet-t4.log" socat "TCP4-LISTEN:$PORT,bind=192.0.2.1,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
bg "$INET" "$E2E_TMP/inet-t6.log" socat "TCP6-LISTEN:$PORT,bind=[2001:db8:ff::1],reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
bg "$INET" "$E2E_TMP/inet-u4.log" socat "UDP4-RECVFROM:$UPORT,bind=192.0.2.1,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
bg "$INET" "$E2E_TMP/inet-u6.log" socat "UDP6-RECVFROM:$UPORT,bind=[2001:db8:ff::1],fork" 'SYSTEM:echo $SOCAT_PEERADDR'
for ns in "$SRV" "$CLI" "$LAN"; do
	bg "$ns" "$E2E_TMP/$(nsname "$ns")-t4.log" socat "TCP4-LISTEN:$PORT,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
	bg "$ns" "$E2E_TMP/$(nsname "$ns")-t6.log" socat "TCP6-LISTEN:$PORT,ipv6only=1,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
done
for ns in "$INET" "$SRV" "$CLI" "$LAN"; do
	wait_for 5 bash -c "[[ \$(ip netns exec '$ns' ss -Hltn 'sport = :$PORT' | wc -l) -ge 2 ]]" ||
		{ echo "tcp listeners in $(nsname "$ns") did not start" >&2; exit 1; }
done
wait_for 5 bash -c "[[ \$(ip netns exec '$INET' ss -Hlun 'sport = :$UPORT' | wc -l) -ge 2 ]]" ||
	{ echo "udp listeners in inet did not start: $(cat "$E2E_TMP"/inet-u?.log)" >&2; exit 1; }
for kind in tcp udp ping; do
	for addr in 192.0.2.1 2001:db8:ff::1; do
		probe "$kind" "$CLI" "$addr"
		((P_OK)) || { echo "service check failed: cli -> $addr $kind: $P_RES" >&2; exit 1; }
	done
done
probe tcp "$CLI" 192.168.50.10
[[ $P_OK == 1 && $PROBE_OUT == 192.168.50.1 ]] || { echo "service check failed: cli -> lan host: $P_RES" >&2; exit 1; }
info "services answer directly from cli (tcp, udp, ping; v4, v6; cli -> lan host seen as 192.168.50.1)"

# ---------------------------------------------------------------------------------------------
step "keys and configs (srv: $SRV_CONF, cli: $CLI_WG_DIR/<if>.conf, settings $CLI_WGFW_DIR/<if>.conf)"
SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
ensure_etc_wgfw
# lib.sh made /etc/netns (with its marker) when this run started; a run that ended in between may
# have removed it again as unused: then make it again, with the marker, so that it goes at the end.
if [[ ! -d /etc/netns ]] && mkdir -m 755 /etc/netns 2>/dev/null; then : >"$E2E_ETC_NETNS_MARK"; fi
mkdir -p "$CLI_WG_DIR" "$CLI_WGFW_DIR"
chmod 700 "$CLI_WG_DIR" "$CLI_WGFW_DIR"
(
	umask 077
	cat >"$SRV_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.1/24, fd66::1/64
		ListenPort = $WG_PORT
		PrivateKey = $SRV_KEY

		[Peer]
		PublicKey = $CLI_PUB
		AllowedIPs = 10.66.0.2/32, fd66::2/128, 192.168.50.0/24, fd50::/64
	EOF
)
chmod 600 "$SRV_CONF"
FULL_ADDR="10.66.0.2/32, fd66::2/128"
FULL_ALLOWED="0.0.0.0/0, ::/0"
write_cli_conf "$K_IF" "$FULL_ADDR" "$FULL_ALLOWED" no-hook
cli test -f "/etc/wireguard/$K_IF.conf" || { echo "ip netns exec did not bind $CLI_WG_DIR onto /etc/wireguard" >&2; exit 1; }
write_settings "$K_IF" "# (unused: the control config has no hooks)"
cli test -f "/etc/wgfw/$K_IF.conf" || { echo "ip netns exec did not bind $CLI_WGFW_DIR onto /etc/wgfw" >&2; exit 1; }
rm -f -- "$CLI_WGFW_DIR/$K_IF.conf"

step "srv: wg-quick up $SRV_IF (plain server, no hook; nft masquerade out of eth0 for v4 and v6)"
run_capture timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_CONF"
[[ $RUN_RC -eq 0 ]] || { echo "srv: wg-quick up failed: $RUN_OUT" >&2; exit 1; }
info "srv is up: $(srv wg show "$SRV_IF" listen-port | tr -d '\n') (listen port)"

step "phase 0: snapshot cli before anything (to check that the control phase is undone exactly)"
snapshot_rules "$CLI" "$E2E_TMP/rules.phase0"
snapshot_sysctls "$CLI" "$E2E_TMP/sysctl.phase0" eth0 lan0
info "$(grep -c . "$E2E_TMP/rules.phase0") ruleset lines"

# =============================================================================================
step "phase 1: CONTROL without the hook: full tunnel $K_IF (AllowedIPs $FULL_ALLOWED)"
PH=$E2E_FAILED
cli_up "$K_IF"
if ((UP_OK)); then
	expect_reach "control, tunnel up: cli -> 192.0.2.1 tcp (through the tunnel)" "$CLI" tcp 192.0.2.1 203.0.113.2
	expect_reach "control, tunnel up: cli -> [2001:db8:ff::1] tcp (through the tunnel)" "$CLI" tcp 2001:db8:ff::1 2001:db8:1::2
	expect_reach "control, tunnel up: lan host -> 192.0.2.1 tcp (through the tunnel)" "$LAN" tcp 192.0.2.1 203.0.113.2
	expect_reach "control, tunnel up: lan host -> [2001:db8:ff::1] tcp (through the tunnel)" "$LAN" tcp 2001:db8:ff::1 2001:db8:1::2

	step "phase 1: kill cli's wireguard-go abruptly: without the hook, traffic LEAKS out of eth0"
	kill_wg "$K_IF"
	expect_leak "control, tunnel dead: cli -> 192.0.2.1 tcp" "$CLI" tcp 192.0.2.1
	expect_leak "control, tunnel dead: cli -> 192.0.2.1 udp" "$CLI" udp 192.0.2.1
	expect_leak "control, tunnel dead: cli -> 192.0.2.1 ping" "$CLI" ping 192.0.2.1
	expect_leak "control, tunnel dead: cli -> [2001:db8:ff::1] tcp" "$CLI" tcp 2001:db8:ff::1
	expect_leak "control, tunnel dead: lan host -> 192.0.2.1 tcp" "$LAN" tcp 192.0.2.1
	expect_leak "control, tunnel dead: lan host -> [2001:db8:ff::1] tcp" "$LAN" tcp 2001:db8:ff::1
else
	fail "control checks ran" "the control tunnel did not come up (see above)"
fi
dump_on_failure "$PH"

step "phase 1: clean the control up (the dead tunnel's link, wg-quick's ip rules, nft table, src_valid_mark)"
cli ip link del "$K_IF" 2>/dev/null || true
wgquick_residue "$K_IF"
cp "$E2E_TMP/sysctl.phase0" "$E2E_TMP/sysctl.before" # reset_src_valid_mark reads it
reset_src_valid_mark
snapshot_rules "$CLI" "$E2E_TMP/rules.after-control"
snapshot_sysctls "$CLI" "$E2E_TMP/sysctl.after-control" eth0 lan0
assert_same_file "control undone: cli's rulesets equal phase 0" "$E2E_TMP/rules.phase0" "$E2E_TMP/rules.after-control"
assert_same_file "control undone: cli's sysctls equal phase 0" "$E2E_TMP/sysctl.phase0" "$E2E_TMP/sysctl.after-control"
assert_eq "control undone: no wg-quick ip rules left (v4)" "" "$(cli ip -4 rule show | grep -E 'fwmark|suppress' || true)"
assert_eq "control undone: no wg-quick ip rules left (v6)" "" "$(cli ip -6 rule show | grep -E 'fwmark|suppress' || true)"

# =============================================================================================
step "phase 2: snapshot cli's rulesets (iptables-nft/legacy v4+v6, nft) and sysctls"
snapshot_rules "$CLI" "$E2E_TMP/rules.before"
snapshot_sysctls "$CLI" "$E2E_TMP/sysctl.before" eth0 lan0
info "$(grep -c . "$E2E_TMP/rules.before") ruleset lines; sysctls:"
sed 's/^/      /' "$E2E_TMP/sysctl.before"

# =============================================================================================
step "phase 3: the hook, role = client, allow-lan = yes, full tunnel $H_IF (AllowedIPs $FULL_ALLOWED)"
PH=$E2E_FAILED
write_cli_conf "$H_IF" "$FULL_ADDR" "$FULL_ALLOWED" with-hook
write_settings "$H_IF" "allow-lan = yes"
cli_up "$H_IF"
H_UP=$UP_OK
if ((H_UP)); then
	check_chains "$H_IF"
	expect_reach "hook, tunnel up: cli -> 192.0.2.1 tcp (through the tunnel)" "$CLI" tcp 192.0.2.1 203.0.113.2
	expect_reach "hook, tunnel up: cli -> [2001:db8:ff::1] tcp (through the tunnel)" "$CLI" tcp 2001:db8:ff::1 2001:db8:1::2
	expect_reach "hook, tunnel up: cli -> 192.0.2.1 udp (through the tunnel)" "$CLI" udp 192.0.2.1 203.0.113.2
	expect_reach "hook, tunnel up: cli -> [2001:db8:ff::1] udp (through the tunnel)" "$CLI" udp 2001:db8:ff::1 2001:db8:1::2
	expect_reach "hook, tunnel up: cli -> 192.0.2.1 ping (through the tunnel)" "$CLI" ping 192.0.2.1
	expect_reach "hook, tunnel up: cli -> [2001:db8:ff::1] ping (through the tunnel)" "$CLI" ping 2001:db8:ff::1
	expect_reach "hook, tunnel up: lan host -> 192.0.2.1 tcp (through the tunnel)" "$LAN" tcp 192.0.2.1 203.0.113.2
	expect_reach "hook, tunnel up: lan host -> [2001:db8:ff::1] tcp (through the tunnel)" "$LAN" tcp 2001:db8:ff::1 2001:db8:1::2
	expect_reach "hook, tunnel up: lan host -> 192.0.2.1 ping (through the tunnel)" "$LAN" ping 192.0.2.1
	expect_reach "hook, tunnel up: cli -> lan host 192.168.50.10 tcp (allow-lan)" "$CLI" tcp 192.168.50.10 192.168.50.1
	expect_reach "hook, tunnel up: cli -> lan host [fd50::10] tcp (allow-lan)" "$CLI" tcp fd50::10 fd50::1
	expect_reach "hook, tunnel up: lan host -> cli 192.168.50.1 tcp (allow-lan: inbound from the LAN)" "$LAN" tcp 192.168.50.1 192.168.50.10
	expect_reach "hook, tunnel up: lan host -> cli [fd50::1] tcp (allow-lan: inbound from the LAN)" "$LAN" tcp fd50::1 fd50::10
	expect_not_open "hook, tunnel up: inet -> cli's WAN 198.51.100.2:$PORT (new inbound)" "$INET" 198.51.100.2
	expect_not_open "hook, tunnel up: inet -> cli's WAN [2001:db8:2::2]:$PORT (new inbound)" "$INET" 2001:db8:2::2
	# The tunnel's own addresses lie in 10/8 and fc00::/7 (local ranges): allow-lan must still not
	# open the host to the tunnel ("from the tunnel only with --policy accept").
	expect_not_open "hook, tunnel up: srv -> cli 10.66.0.2:$PORT through the tunnel (policy drop; allow-lan is not the tunnel)" "$SRV" 10.66.0.2
	expect_not_open "hook, tunnel up: srv -> cli [fd66::2]:$PORT through the tunnel (policy drop; allow-lan is not the tunnel)" "$SRV" fd66::2
	observe_wan_relay
else
	fail "hook checks (tunnel up) ran" "the tunnel did not come up (see above)"
fi
dump_on_failure "$PH"

# =============================================================================================
step "phase 3b: the watcher (#24): a wipe of cli's firewall while the tunnel is up is repaired"
PH=$E2E_FAILED
if ((H_UP)); then
	before=$(hook_rules "$CLI")
	if [[ $VARIANT == legacy ]]; then
		# What firewalld's start and netfilter-persistent's flush do to iptables-legacy.
		for t in filter mangle nat raw; do cli iptables-legacy -t $t -F; cli ip6tables-legacy -t $t -F; done
		info "every iptables-legacy table flushed in cli (v4 and v6)"
	else
		# What nftables.service's start does (wg-quick's own table goes too).
		cli nft flush ruleset
		info "nft flush ruleset in cli"
	fi
	wait_for 10 ip netns exec "$CLI" "$BIN" check "$H_IF" || true
	if out=$(cli "$BIN" check "$H_IF" 2>&1); then pass "watcher: cli's kill switch is its plan again (check: as installed)"; else
		fail "watcher: cli's kill switch is its plan again" "$out"; fi
	assert_eq "watcher: the hook's rules are as before the wipe (nothing twice)" "$before" "$(hook_rules "$CLI")"
	assert_match "watcher: status counts the repair" '^  watcher: pid [0-9]+, since .*, [1-9][0-9]* repairs?, the last at ' \
		"$(cli "$BIN" status "$H_IF" 2>&1)"
	check_chains "$H_IF"
	# Each probe with the leak capture on: nothing of it may show outside the tunnel.
	expect_reach "watcher, after the wipe: cli -> 192.0.2.1 tcp (through the tunnel)" "$CLI" tcp 192.0.2.1 203.0.113.2
	expect_reach "watcher, after the wipe: cli -> [2001:db8:ff::1] tcp (through the tunnel)" "$CLI" tcp 2001:db8:ff::1 2001:db8:1::2
	expect_reach "watcher, after the wipe: cli -> 192.0.2.1 udp (through the tunnel)" "$CLI" udp 192.0.2.1 203.0.113.2
	expect_reach "watcher, after the wipe: lan host -> 192.0.2.1 tcp (through the tunnel)" "$LAN" tcp 192.0.2.1 203.0.113.2
else
	fail "watcher checks ran" "the tunnel did not come up in phase 3"
fi
dump_on_failure "$PH"

# =============================================================================================
step "phase 4: kill cli's wireguard-go abruptly (no down): the kill switch blocks everything outside the tunnel"
PH=$E2E_FAILED
if ((H_UP)); then
	kill_wg "$H_IF"
	for addr in 192.0.2.1 2001:db8:ff::1; do
		for kind in tcp udp ping; do
			expect_blocked "hook, tunnel dead: cli -> $(host "$addr") $kind" "$CLI" "$kind" "$addr"
		done
		expect_blocked "hook, tunnel dead: lan host -> $(host "$addr") tcp" "$LAN" tcp "$addr"
		expect_blocked "hook, tunnel dead: lan host -> $(host "$addr") ping" "$LAN" ping "$addr"
	done
	expect_blocked "hook, tunnel dead: cli -> srv 203.0.113.2 tcp (the endpoint's address, not its WireGuard port)" "$CLI" tcp 203.0.113.2
	expect_reach "hook, tunnel dead: cli -> lan host 192.168.50.10 tcp (allow-lan)" "$CLI" tcp 192.168.50.10 192.168.50.1
	expect_reach "hook, tunnel dead: cli -> lan host [fd50::10] tcp (allow-lan)" "$CLI" tcp fd50::10 fd50::1
	expect_reach "hook, tunnel dead: lan host -> cli 192.168.50.1 tcp (allow-lan)" "$LAN" tcp 192.168.50.1 192.168.50.10
	expect_reach "hook, tunnel dead: lan host -> cli [fd50::1] tcp (allow-lan)" "$LAN" tcp fd50::1 fd50::10
	dump_on_failure "$PH"

	step "phase 4: clean the dead tunnel up: wgfw-hook down $H_IF (no lockdown: the kill switch goes)"
	assert_ok "wgfw-hook down $H_IF (link already gone) exits 0" timeout 60 ip netns exec "$CLI" "$BIN" down "$H_IF"
	[[ $RUN_RC -eq 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
	info "wg-quick's residue of the killed tunnel removed by the test (ip rules, nft table wg-quick-$H_IF, src_valid_mark)"
	wgquick_residue "$H_IF"
	reset_src_valid_mark
	check_restored "after the killed tunnel's down"
	expect_direct "after down: cli -> 192.0.2.1 tcp directly again (the kill switch is gone)" "$CLI" 192.0.2.1 198.51.100.2
else
	fail "hook checks (tunnel dead) ran" "the tunnel did not come up in phase 3"
	timeout 60 ip netns exec "$CLI" "$BIN" down "$H_IF" >/dev/null 2>&1 || true
	cli ip link del "$H_IF" 2>/dev/null || true
	wgquick_residue "$H_IF"
	reset_src_valid_mark
fi

# =============================================================================================
step "phase 5: IPv4-only tunnel $V_IF (Address 10.66.0.2/32, AllowedIPs 0.0.0.0/0): no IPv6 leak"
PH=$E2E_FAILED
write_cli_conf "$V_IF" "10.66.0.2/32" "0.0.0.0/0" with-hook
write_settings "$V_IF" "allow-lan = yes"
cli_up "$V_IF"
if ((UP_OK)); then
	expect_reach "v4-only tunnel: cli -> 192.0.2.1 tcp (through the tunnel)" "$CLI" tcp 192.0.2.1 203.0.113.2
	expect_blocked "v4-only tunnel: cli -> [2001:db8:ff::1] tcp" "$CLI" tcp 2001:db8:ff::1
	expect_blocked "v4-only tunnel: cli -> [2001:db8:ff::1] udp" "$CLI" udp 2001:db8:ff::1
	expect_blocked "v4-only tunnel: cli -> [2001:db8:ff::1] ping" "$CLI" ping 2001:db8:ff::1
	expect_blocked "v4-only tunnel: lan host -> [2001:db8:ff::1] tcp" "$LAN" tcp 2001:db8:ff::1
	expect_reach "v4-only tunnel: cli -> lan host [fd50::10] tcp (allow-lan)" "$CLI" tcp fd50::10 fd50::1
else
	fail "v4-only tunnel checks ran" "the tunnel did not come up (see above)"
fi
dump_on_failure "$PH"
step "phase 5: wg-quick down $V_IF (PreDown runs wgfw-hook down): back to the snapshot"
cli_down "$V_IF"
reset_src_valid_mark
check_restored "after the v4-only tunnel"

# =============================================================================================
step "phase 6: LOCKDOWN $L_IF (lockdown = yes, allow-lan = yes, full tunnel)"
PH=$E2E_FAILED
write_cli_conf "$L_IF" "$FULL_ADDR" "$FULL_ALLOWED" with-hook
write_settings "$L_IF" "allow-lan = yes" "lockdown = yes"
cli_up "$L_IF"
if ((UP_OK)); then
	expect_reach "lockdown, tunnel up: cli -> 192.0.2.1 tcp (through the tunnel)" "$CLI" tcp 192.0.2.1 203.0.113.2
	expect_reach "lockdown, tunnel up: lan host -> [2001:db8:ff::1] tcp (through the tunnel)" "$LAN" tcp 2001:db8:ff::1 2001:db8:1::2

	step "phase 6: wg-quick down $L_IF: the kill switch STAYS"
	cli_down "$L_IF"
	if ((NATIVE)); then
		t=$(nft_hook_table "$CLI")
		for f in 4 6; do
			assert_match "after down: chain WGFW-$(nft_if "$L_IF")-OUT-v$f still in nft table inet wgfw" \
				"^[[:space:]]*chain WGFW-$(nft_if "$L_IF")-OUT-v$f \\{" "$t"
			assert_match "after down: nft output: first IPv$f rule still jumps to WGFW-$(nft_if "$L_IF")-OUT-v$f" \
				"(^| )jump WGFW-$(nft_if "$L_IF")-OUT-v$f\$" "$(nft_first_rule_for "$CLI" output "$f")"
		done
	else
	assert_match "after down: chain WGFW-$L_IF-OUT still in iptables-$VARIANT (IPv4)" "^:WGFW-$L_IF-OUT " "$(save_rules "$CLI" "$VARIANT" 4)"
	assert_match "after down: chain WGFW-$L_IF-OUT still in ip6tables-$VARIANT (IPv6)" "^:WGFW-$L_IF-OUT " "$(save_rules "$CLI" "$VARIANT" 6)"
	fi
	for addr in 192.0.2.1 2001:db8:ff::1; do
		for kind in tcp udp ping; do
			expect_blocked "lockdown, after down: cli -> $(host "$addr") $kind" "$CLI" "$kind" "$addr"
		done
		expect_blocked "lockdown, after down: lan host -> $(host "$addr") tcp" "$LAN" tcp "$addr"
	done
	expect_reach "lockdown, after down: cli -> lan host 192.168.50.10 tcp (allow-lan)" "$CLI" tcp 192.168.50.10 192.168.50.1

	step "phase 6: wgfw-hook status tells about the kept kill switch"
	run_capture timeout 30 ip netns exec "$CLI" "$BIN" status
	info "wgfw-hook status (exit $RUN_RC):"
	printf '%s\n' "$RUN_OUT" | head -n 20 | sed 's/^/    | /'
	assert_eq "wgfw-hook status exits 0" 0 "$RUN_RC"
	st=$(tr '[:upper:]' '[:lower:]' <<<"$RUN_OUT")
	assert_match "status names $L_IF" "$L_IF" "$RUN_OUT"
	assert_match "status mentions the kill switch" 'kill[ -]?switch' "$st"
	assert_match "status mentions release" 'release' "$st"
	run_capture timeout 30 ip netns exec "$CLI" "$BIN" status "$L_IF"
	st=$(tr '[:upper:]' '[:lower:]' <<<"$RUN_OUT")
	assert_match "status $L_IF (exit $RUN_RC) mentions the kill switch and release" 'kill[ -]?switch(.|\n)*release|release(.|\n)*kill[ -]?switch' "$(tr '\n' ' ' <<<"$st")"

	step "phase 6: wgfw-hook release $L_IF: everything back to the snapshot"
	assert_ok "wgfw-hook release $L_IF exits 0" timeout 60 ip netns exec "$CLI" "$BIN" release "$L_IF"
	[[ $RUN_RC -eq 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
	reset_src_valid_mark
	check_restored "after release"
	assert_ok "wgfw-hook release $L_IF again (nothing kept) exits 0" timeout 60 ip netns exec "$CLI" "$BIN" release "$L_IF"
	run_capture timeout 30 ip netns exec "$CLI" "$BIN" status
	assert_no_match "status after release no longer mentions a kill switch for $L_IF" "$L_IF.*(kill[ -]?switch)" \
		"$(tr '[:upper:]' '[:lower:]' <<<"$RUN_OUT")"
	expect_direct "after release: cli -> 192.0.2.1 tcp directly again (the kill switch is gone)" "$CLI" 192.0.2.1 198.51.100.2
else
	fail "lockdown checks ran" "the tunnel did not come up (see above)"
	cli_down "$L_IF"
	timeout 60 ip netns exec "$CLI" "$BIN" release "$L_IF" >/dev/null 2>&1 || true
	reset_src_valid_mark
fi
dump_on_failure "$PH"

# =============================================================================================
step "phase 7: SPLIT tunnel $S_IF (AllowedIPs = 10.66.0.0/24, fd66::/64 only), WITHOUT allow-lan"
PH=$E2E_FAILED
write_cli_conf "$S_IF" "$FULL_ADDR" "10.66.0.0/24, fd66::/64" with-hook
write_settings "$S_IF"
cli_up "$S_IF"
if ((UP_OK)); then
	expect_reach "split tunnel: cli -> srv 10.66.0.1 tcp (through the tunnel)" "$CLI" tcp 10.66.0.1 10.66.0.2
	expect_reach "split tunnel: cli -> srv [fd66::1] tcp (through the tunnel)" "$CLI" tcp fd66::1 fd66::2
	expect_reach "split tunnel: lan host -> srv 10.66.0.1 tcp (through the tunnel)" "$LAN" tcp 10.66.0.1
	expect_blocked "split tunnel: cli -> 192.0.2.1 tcp (outside the tunnel)" "$CLI" tcp 192.0.2.1
	expect_blocked "split tunnel: cli -> 192.0.2.1 udp (outside the tunnel)" "$CLI" udp 192.0.2.1
	expect_blocked "split tunnel: cli -> 192.0.2.1 ping (outside the tunnel)" "$CLI" ping 192.0.2.1
	expect_blocked "split tunnel: cli -> [2001:db8:ff::1] tcp (outside the tunnel)" "$CLI" tcp 2001:db8:ff::1
	# Without allow-lan these two must still fail FAST: the reset / ICMP error that cli's REJECT
	# sends back to the lan host is itself a locally generated packet going out of lan0.
	expect_blocked "split tunnel: lan host -> 192.0.2.1 tcp (outside the tunnel)" "$LAN" tcp 192.0.2.1
	expect_blocked "split tunnel: lan host -> [2001:db8:ff::1] tcp (outside the tunnel)" "$LAN" tcp 2001:db8:ff::1
	expect_blocked "split tunnel, no allow-lan: cli -> lan host 192.168.50.10 tcp" "$CLI" tcp 192.168.50.10
	expect_blocked "split tunnel, no allow-lan: cli -> lan host [fd50::10] tcp" "$CLI" tcp fd50::10
	expect_not_open "split tunnel, no allow-lan: lan host -> cli 192.168.50.1:$PORT (new inbound from the LAN)" "$LAN" 192.168.50.1
	expect_not_open "split tunnel: srv -> cli 10.66.0.2:$PORT through the tunnel (policy drop)" "$SRV" 10.66.0.2
	expect_not_open "split tunnel: srv -> cli [fd66::2]:$PORT through the tunnel (policy drop)" "$SRV" fd66::2
else
	fail "split tunnel checks ran" "the tunnel did not come up (see above)"
fi
dump_on_failure "$PH"
step "phase 7: wg-quick down $S_IF: back to the snapshot"
cli_down "$S_IF"
check_restored "after the split tunnel"

summary || exit 1
