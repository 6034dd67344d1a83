#!/usr/bin/env bash
# End-to-end test of wgfw-hook's forwarding policy (server role): what peers may reach through the
# server, with real TCP connections, in network namespaces.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/forwarding.sh iptables-nft|iptables-legacy|nft
#
# (nft: the hook's native nftables backend; its rules are in the nft table inet wgfw, and
# nothing of it may appear in iptables-nft-save or iptables-legacy-save.)
#
# The server runs without a watcher (`--no-watch`): these phases try what `up` itself does, one
# change at a time (a peer added with `wg set` keeps the interface's policy until `up` runs
# again); a watcher would make some of those changes first. The watcher has neighbours.sh and
# tests/watch.rs.
#
# Topology (five namespaces, "$E2E_PREFIX-{inet,srv,lan,c1,c2}", deleted on exit; N = this PID):
#
#                 ┌──────────────────────────────────────────────────────────────┐
#                 │ inet: the "internet" (router, v4+v6 forwarding). On lo:      │
#                 │   192.0.2.1/32 2001:db8:ff::1/128       internet services    │
#                 │   198.19.5.1/32 (benchmarking range: counts as internet)     │
#                 │   172.16.5.1/32 fd00:5::1/128 10.99.5.1/32 100.64.5.1/32     │
#                 │   169.254.5.1/32: LOCAL ranges that are reachable via WAN    │
#                 │   64:ff9b::a00:5 64:ff9b:1::a00:5 2001:db8:64:0:a:0:500:0    │
#                 │   2001:db8:64:0:ff0a:0:500:0: 10.0.0.5 in NAT64 forms (local)│
#                 │   64:ff9b::c000:201 2001:db8:64:0:c0:2:100:0: 192.0.2.1 so   │
#                 │ tcp/8080 (all addresses) answers the peer address it sees    │
#                 │ no route to fd66::/64 (a unique-local tunnel is masqueraded; │
#                 │ the phases that need the way back add it for a while)        │
#                 └───┬───────────────────────────┬────────────────────────┬─────┘
#     to-srv 203.0.113.1/24           to-c1 198.51.100.1/26       to-c2 198.51.100.65/26
#            2001:db8:1::1/64               2001:db8:2::1/64             2001:db8:3::1/64
#                     │                           │                        │
#     eth0 203.0.113.2/24             eth0 198.51.100.2/26        eth0 198.51.100.66/26
#          2001:db8:1::2/64                2001:db8:2::2/64             2001:db8:3::2/64
#   ┌─────────────────┴─────────────┐  ┌──────────┴────────────┐ ┌─────────┴─────────────┐
#   │ srv: the WireGuard server     │  │ c1: peer (no hook)    │ │ c2: peer (no hook)    │
#   │ wgsN 10.66.0.1/24 fd66::1/64  │  │ wgaN 10.66.0.2/32     │ │ wgbN 10.66.0.3/32     │
#   │ udp/51820  tcp/8080 listener  │  │      fd66::2/128      │ │      fd66::3/128      │
#   │ PostUp  = wgfw-hook up %i     │  │                       │ │ tcp/8080 listener     │
#   │ PreDown = wgfw-hook down %i   │  │ tcp/8080 listener     │ │                       │
#   │ settings /etc/wgfw/wgsN.conf  │  └───────────────────────┘ └───────────────────────┘
#   │ (backend = B, + the phase's)  │   c1, c2: WireGuard peers of srv (udp/51820 via inet);
#   │                               │   both clients' AllowedIPs: 10.66.0.0/24 fd66::/64
#   └─────────────────┬─────────────┘   192.0.2.0/24 2001:db8:ff::/64 172.16.5.0/24
#     lan0 192.168.1.1/24                fd00:5::/64 192.168.1.0/24 fd00:1::/64
#          fd00:1::1/64                  198.18.1.0/24 198.19.5.0/24 10.99.5.0/24
#                     │                  100.64.5.0/24 169.254.5.0/24
#     eth0 192.168.1.10/24 fd00:1::10/64
#   ┌─────────────────┴─────────────┐
#   │ lan: a LAN host. NO default   │   (lan0 also has 198.18.1.1/24, the lan host
#   │ route, no route to the tunnel │    198.18.1.10/24: a non-local range on an
#   │ tcp/8080 answers peer address │    interface that is not the WAN)
#   └───────────────────────────────┘
#
# Phases (srv: wg-quick down, settings file changed, wg-quick up between them; the clients are
# restarted too, so that each phase starts with fresh handshakes):
#   0 snapshot srv's rulesets (iptables-nft/legacy v4+v6, nft) and sysctls before anything
#   1 control without the hook (forwarding enabled by hand): every destination is reachable,
#     so every later denial is the hook's doing; the hand-made changes are then undone exactly
#   2 default policy (IPv6 of the unique-local tunnel masqueraded; NAT64 forms of local ranges
#     never leave srv's WAN)
#   3 lan + nat6 (with a loose rp_filter in srv: LAN sources forged from the internet never
#     reach the tunnel, v4 and v6, while the LAN host's own connections do)
#   4 lan + no-internet      5 peer-to-peer
#   6 (extra) a --lan reached through the WAN, an IPv6 --lan without nat6, with peer-to-peer
#   7 per-peer policy ([peer] sections): c1 reaches the LAN, c2 only the internet and udp/53 on
#     srv; then c2 leaves and is added back with wg set while a connection of c1's is open, and
#     up runs again; then hostile settings are refused (exit 2, file:line) and change nothing
#   8 port forwards: inet reaches c1 through srv's tcp/8443 (masqueraded) and c2 through 8444
#     (keep-source), c1's IPv6 address directly; the LAN and c2 reach c1 by hairpin where
#     asked, and nowhere else; status counts each; a forward outside the tunnel is refused
#   9 a global IPv6 tunnel prefix beside the unique-local one (2001:db8:66::/64, c1 has
#     2001:db8:66::2): routed from it, masqueraded from fd66::2; nat64 = 2001:db8:64::/64
#   after each down: srv's rulesets and sysctls equal the phase-0 snapshot.
#
# srv's wg-quick config is /etc/netns/<srv>/wireguard/wgsN.conf and its settings file
# /etc/netns/<srv>/wgfw/wgsN.conf; `ip netns exec` binds them onto /etc/wireguard and /etc/wgfw.
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

SRV_IF=wgs$$
# With the nft backend, srv's interface name has the characters that nft chain names escape
# (_ -> __, = -> _e, + -> _p): the hook's chains are then WGFW-w___e_psN-FWD-v4 and so on.
if ((NATIVE)); then SRV_IF="w_=+s$$"; fi
C1_IF=wga$$
C2_IF=wgb$$
require_free_ifaces "$SRV_IF" "$C1_IF" "$C2_IF"

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
LAN=$E2E_PREFIX-lan
C1=$E2E_PREFIX-c1
C2=$E2E_PREFIX-c2
SRV_CONF=/etc/netns/$SRV/wireguard/$SRV_IF.conf
SETTINGS=/etc/netns/$SRV/wgfw/$SRV_IF.conf
C1_CONF=$E2E_TMP/$C1_IF.conf
C2_CONF=$E2E_TMP/$C2_IF.conf
WG_PORT=51820
PORT=8080
CT=2      # connect timeout (s) of the probes that must be denied (dropped: they time out)
CT_OPEN=3 # connect timeout (s) of the probes that must connect

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }
inet() { ip netns exec "$INET" "$@"; }
lanh() { ip netns exec "$LAN" "$@"; }

echo "wgfw-hook e2e, forwarding policy (server role), backend $BACKEND"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $LAN $C1 $C2; WireGuard interfaces: $SRV_IF (srv) $C1_IF (c1) $C2_IF (c2)"

# ---------------------------------------------------------------------------------------------
# helpers of this test

# If the test dies with the hook's rules installed, let the hook clean up its state for srv's
# namespace (the namespace goes anyway), then remove what it left under /run/wgfw.
# The hook keys its state by the namespace: /run/wgfw/netns-<inode>[.<cookie>]. An inode is reused
# once a namespace is gone, so directories for srv's inode that exist before srv's first `up`
# (a dead namespace's) are remembered in SRV_STALE and not counted as ours.
SRV_INODE=
SRV_STALE=
srv_state_dirs() { hook_state_dirs "$SRV_INODE" "$SRV_STALE"; }
cleanup_hook_state() {
	local dirs
	dirs=$(srv_state_dirs)
	[[ -n $dirs ]] || return 0
	timeout 30 ip netns exec "$SRV" "$BIN" down "$SRV_IF"
	rm -rf -- $dirs
}
E2E_CLEANUP_HOOKS+=(cleanup_hook_state 'remove_etc_wgfw "/etc/netns/$SRV/wgfw"')

# expect_open DESC NS ADDR [SOURCE_SEEN]: a TCP connection from NS to ADDR:8080 succeeds, and
# (when given) the listener sees SOURCE_SEEN as the peer address.
expect_open() {
	local desc=$1 ns=$2 addr=$3 src=${4:-}
	tcp_probe "$ns" "$(host "$addr")" "$PORT" "$CT_OPEN"
	if [[ $PROBE != open ]]; then
		fail "$desc: connects" "command:  ip netns exec $ns socat - TCP:$(host "$addr"):$PORT,connect-timeout=$CT_OPEN" \
			"expected: open" "got:      $PROBE" "output:   $PROBE_OUT"
		return 0
	fi
	if [[ -z $src ]]; then
		pass "$desc: connects (peer seen as $PROBE_OUT)"
	elif [[ $PROBE_OUT == "$(seen "$src")" ]]; then
		pass "$desc: connects, seen from $src"
	else
		fail "$desc: connects, seen from $src" "expected source: $(seen "$src")" "got:             $PROBE_OUT"
	fi
}

# expect_port DESC NS ADDR PORT WANT [SEEN [BIND]]: a TCP connection from NS (from the address
# BIND when given) to ADDR:PORT ends as WANT (open, timeout or refused); when open and SEEN is
# given, the listener saw SEEN as the client.
expect_port() {
	local desc=$1 ns=$2 addr=$3 port=$4 want=$5 src=${6:-} bind=${7:-} ct=$CT
	[[ $want == open ]] && ct=$CT_OPEN
	tcp_probe "$ns" "$(host "$addr")" "$port${bind:+,bind=$(host "$bind")}" "$ct"
	if [[ $PROBE != "$want" ]]; then
		fail "$desc" "command:  ip netns exec $ns socat - TCP:$(host "$addr"):$port${bind:+,bind=$(host "$bind")}" \
			"expected: $want" "got:      $PROBE" "output:   $PROBE_OUT"
	elif [[ $want == open && -n $src && $PROBE_OUT != "$(seen "$src")" ]]; then
		fail "$desc" "expected source: $(seen "$src")" "got:             $PROBE_OUT"
	else
		pass "$desc"
	fi
}

# expect_denied DESC NS ADDR: a TCP connection from NS to ADDR:8080 times out (dropped).
expect_denied() {
	assert_tcp "$1: DENIED (times out)" timeout "$2" "$(host "$3")" "$PORT" "$CT"
}


# expect_path DESC WANT(open|timeout) SEEN(yes|no) NS ADDR BIND CAP_NS CAP_IF FILTER: a TCP
# connection from NS (from BIND, when not empty) to ADDR:8080 ends as WANT, while tcpdump on
# CAP_NS's CAP_IF watches for FILTER: SEEN says whether a packet of it must show there (where
# a denied packet went, or did not go).
expect_path() {
	local desc=$1 want=$2 seen=$3 ns=$4 addr=$5 bind=$6 cns=$7 cif=$8 filter=$9 got=no
	capture_start "$cns" "$cif" "$filter"
	tcp_probe "$ns" "$(host "$addr")" "$PORT${bind:+,bind=$(host "$bind")}" "$CT"
	sleep 0.5
	bg_stop "$CAP_PID"
	grep -qE ' IP6? ' "$CAP_LOG" && got=yes
	if [[ $PROBE == "$want" && $got == "$seen" ]]; then
		pass "$desc"
	else
		fail "$desc" "command:  ip netns exec $ns socat - TCP:$(host "$addr"):$PORT${bind:+,bind=$(host "$bind")}" \
			"expected: $want, a packet on ${cns##*-}/$cif ($filter): $seen" \
			"got:      $PROBE, a packet there: $got ($(capture_line "$CAP_LOG"))" "output:   $PROBE_OUT"
	fi
}

# inet_route6 add|del NET: inet's route to a tunnel's IPv6 NET via srv, for the checks that need
# the internet to know the way back (by default it does not: unique-local is masqueraded).
inet_route6() { inet ip -6 route "$1" "$2" via 2001:db8:1::2; }

# restore_sysctls FILE: writes the values of a snapshot_sysctls file back, forwarding first
# (writing it rewrites other keys), then the rest.
restore_sysctls() {
	local k eq v
	while read -r k eq v; do
		case $k in *forward*) srv sysctl -q -w "$k=$v" || true ;; esac
	done <"$1"
	while read -r k eq v; do
		case $k in *forward*) ;; *) srv sysctl -q -w "$k=$v" || true ;; esac
	done <"$1"
}

# write_srv_conf with-hook|no-hook (SRV_EXTRA_ADDRESS and C1_EXTRA_ALLOWED, when set, add to
# srv's Address and to c1's AllowedIPs there)
SRV_EXTRA_ADDRESS=
C1_EXTRA_ALLOWED=
write_srv_conf() {
	local hooks=
	if [[ $1 == with-hook ]]; then
		hooks="PostUp = $BIN up %i --no-watch
PreDown = $BIN down %i"
	fi
	(
		umask 077
		cat >"$SRV_CONF" <<-EOF
			[Interface]
			Address = 10.66.0.1/24, fd66::1/64${SRV_EXTRA_ADDRESS:+, $SRV_EXTRA_ADDRESS}
			ListenPort = $WG_PORT
			PrivateKey = $SRV_KEY
			$hooks

			[Peer]
			PublicKey = $C1_PUB
			AllowedIPs = 10.66.0.2/32, fd66::2/128${C1_EXTRA_ALLOWED:+, $C1_EXTRA_ALLOWED}

		EOF
		# WITHOUT_C2=1: c2 is not a peer (phase 7d's edits).
		((${WITHOUT_C2:-0})) || cat >>"$SRV_CONF" <<-EOF

			[Peer]
			PublicKey = $C2_PUB
			AllowedIPs = 10.66.0.3/32, fd66::3/128
		EOF
	)
	chmod 600 "$SRV_CONF"
}

# write_settings LINE...: srv's settings file: "backend = $BACKEND" and the given lines.
write_settings() {
	(
		umask 077
		{
			echo "# wgfw-hook settings for $SRV_IF (forwarding e2e test)"
			echo "backend = $BACKEND"
			printf '%s\n' "$@"
		} >"$SETTINGS"
	)
	chmod 600 "$SETTINGS"
	info "settings /etc/wgfw/$SRV_IF.conf: $(grep -v '^#' "$SETTINGS" | paste -sd ';' | sed 's/;/; /g')"
}

# tunnels_up: wg-quick up in srv (PostUp runs the hook when configured), c1, c2; waits for the
# handshakes. Sets TUN_OK=1 when everything is up and both peers ping the server.
TUN_OK=0
tunnels_up() {
	TUN_OK=0
	assert_ok "wg-quick up $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_IF"
	printf '%s\n' "$RUN_OUT" >"$E2E_TMP/srv-up.log"
	if [[ $RUN_RC -ne 0 ]]; then
		info "wg-quick up output:"
		printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
		return 0
	fi
	grep -E '^\[#\] .*wgfw|^# (IPv4|IPv6):|warn|error' <<<"$RUN_OUT" | grep -vE '^\[#\] (ip|wireguard-go|wg) ' | head -n 20 | sed 's/^/    | /' || true
	assert_ok "wg-quick up $C1_IF (c1) exits 0" timeout 60 ip netns exec "$C1" wg-quick up "$C1_CONF"
	[[ $RUN_RC -eq 0 ]] || return 0
	assert_ok "wg-quick up $C2_IF (c2) exits 0" timeout 60 ip netns exec "$C2" wg-quick up "$C2_CONF"
	[[ $RUN_RC -eq 0 ]] || return 0
	local ns addr ok=1
	for ns in "$C1" "$C2"; do
		for addr in 10.66.0.1 fd66::1; do
			if ! ping_until "$ns" "$addr" 15; then
				fail "handshake: ${ns##*-} pings $addr through the tunnel" "ping -c1 -W1 $addr failed 15 times" \
					"$(srv wg show "$SRV_IF" 2>&1)"
				ok=0
			fi
		done
	done
	if ((ok)); then pass "handshakes: c1 and c2 ping 10.66.0.1 and fd66::1 through the tunnel"; fi
	TUN_OK=$ok
}

# tunnels_down: wg-quick down in c1, c2 and srv (PreDown runs the hook when configured).
tunnels_down() {
	timeout 60 ip netns exec "$C1" wg-quick down "$C1_CONF" >/dev/null 2>&1 || info "c1 wg-quick down failed"
	timeout 60 ip netns exec "$C2" wg-quick down "$C2_CONF" >/dev/null 2>&1 || info "c2 wg-quick down failed"
	if srv ip link show "$SRV_IF" >/dev/null 2>&1; then
		assert_ok "wg-quick down $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$SRV_IF"
		[[ $RUN_RC -eq 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
	fi
	if srv ip link show "$SRV_IF" >/dev/null 2>&1; then
		fail "$SRV_IF is gone from srv after wg-quick down" "$(srv ip link show "$SRV_IF" 2>&1)"
		srv ip link del "$SRV_IF" || true
	fi
}

# check_restored LABEL: srv's rulesets and sysctls equal the phase-0 snapshot.
check_restored() {
	snapshot_rules "$SRV" "$E2E_TMP/rules.$1"
	snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.$1" eth0 lan0
	assert_same_file "$1: rulesets (iptables-nft/legacy v4+v6, nft) equal the phase-0 snapshot" \
		"$E2E_TMP/rules.before" "$E2E_TMP/rules.$1"
	assert_same_file "$1: sysctls equal the phase-0 snapshot" "$E2E_TMP/sysctl.before" "$E2E_TMP/sysctl.$1"
	local state
	state=$(srv_state_dirs)
	if [[ -z $state ]] || [[ -z $(find $state -mindepth 1 2>/dev/null) ]]; then
		pass "$1: no hook state left in /run/wgfw for srv (netns inode $SRV_INODE)"
	else
		fail "$1: no hook state left in /run/wgfw for srv (netns inode $SRV_INODE)" "$(find $state -ls)"
	fi
}

# dump_rules_on_failure FAILED_BEFORE: when checks failed since FAILED_BEFORE, shows the hook's
# installed rules (iptables-save of srv) so that the report says what the binary did.
dump_rules_on_failure() {
	((E2E_FAILED > $1)) || return 0
	info "failures in this phase; the hook's rules in srv ($BACKEND):"
	{
		if ((NATIVE)); then
			echo "## nft list table inet wgfw"
			nft_hook_table "$SRV"
		else
		echo "## iptables-$VARIANT-save (WGFW lines and their jumps)"
		save_rules "$SRV" "$VARIANT" 4 | grep -E '^\*|WGFW' || true
		echo "## ip6tables-$VARIANT-save (WGFW lines and their jumps)"
		save_rules "$SRV" "$VARIANT" 6 | grep -E '^\*|WGFW' || true
		fi
		echo "## srv routes"
		srv ip -4 route show
		srv ip -6 route show | grep -v '^fe80' || true
		echo "## wg-quick up output"
		cat "$E2E_TMP/srv-up.log"
	} | sed 's/^/    | /'
}

# hook_phase NAME SETTINGS_LINE...: settings file, tunnels up. Then the caller's checks, then
# end_phase NAME.
PHASE_FAILED0=0
hook_phase() {
	local name=$1
	shift
	PHASE_FAILED0=$E2E_FAILED
	write_settings "$@"
	tunnels_up
	((TUN_OK)) || return 0
	# The backend comes from the settings file only (nothing on the command line).
	if ((NATIVE)); then
		local t n
		t=$(nft_hook_table "$SRV")
		n=$(nft_if "$SRV_IF")
		assert_match "$name: the hook's chains are in nft table inet wgfw (backend from the settings file)" \
			"^[[:space:]]*chain WGFW-$n-FWD-v4 \\{" "$t"
		assert_match "$name: ... and its IPv6 chains too" "^[[:space:]]*chain WGFW-$n-FWD-v6 \\{" "$t"
		assert_no_match "$name: nothing of the hook's in iptables-nft or iptables-legacy (v4, v6)" 'WGFW|wgfw' \
			"$(for v in nft legacy; do save_rules "$SRV" "$v" 4; save_rules "$SRV" "$v" 6; done)"
		return 0
	fi
	local other=legacy own
	[[ $VARIANT == legacy ]] && other=nft
	own=$(save_rules "$SRV" "$VARIANT" 4; save_rules "$SRV" "$VARIANT" 6)
	assert_match "$name: the hook's chains are in iptables-$VARIANT (backend from the settings file)" '^:WGFW-' "$own"
	assert_no_match "$name: nothing of the hook's in iptables-$other" 'WGFW|wgfw' \
		"$(save_rules "$SRV" "$other" 4; save_rules "$SRV" "$other" 6)"
	if [[ $VARIANT == legacy ]]; then
		assert_no_match "$name: nothing of the hook's in nft's ruleset" 'WGFW|wgfw' "$(save_nft "$SRV")"
	fi
}
# PHASE_UNDO: a command that end_phase runs after the tunnels are down, before it compares srv
# with the phase-0 snapshot (what the phase changed by hand).
PHASE_UNDO=
end_phase() {
	dump_rules_on_failure "$PHASE_FAILED0"
	step "$1: wg-quick down (PreDown runs wgfw-hook down); rulesets and sysctls back to phase 0"
	tunnels_down
	if [[ -n $PHASE_UNDO ]]; then
		eval "$PHASE_UNDO"
		PHASE_UNDO=
	fi
	check_restored "after $1"
}

# srv_watcher: the pid of srv's watcher, as status shows it (empty: none runs).
srv_watcher() { srv "$BIN" status "$SRV_IF" 2>/dev/null | sed -n 's/^  watcher: pid \([0-9]*\),.*/\1/p'; }
# settled DESC: within 10 s, check says srv's firewall is its plan for the live peers again.
settled() {
	local out
	wait_for 10 ip netns exec "$SRV" "$BIN" check "$SRV_IF" || true
	if out=$(srv "$BIN" check "$SRV_IF" 2>&1); then pass "$1: the watcher brought the firewall to its plan (check: as installed)"; else
		fail "$1: the watcher brought the firewall to its plan" "$out"; fi
}
# sections_hold DESC: the per-peer policy of phase 7, with real connections.
sections_hold() {
	expect_open "$1: laptop c1 -> lan host 192.168.1.10" "$C1" 192.168.1.10 192.168.1.1
	expect_denied "$1: guest c2 -> lan host 192.168.1.10" "$C2" 192.168.1.10
	expect_open "$1: guest c2 -> internet 192.0.2.1" "$C2" 192.0.2.1 203.0.113.2
}
# c2_again: c2's tunnel anew (the server forgot its session), until it pings srv.
c2_again() {
	timeout 60 ip netns exec "$C2" wg-quick down "$C2_CONF" >/dev/null 2>&1 || true
	timeout 60 ip netns exec "$C2" wg-quick up "$C2_CONF" >/dev/null 2>&1 || fail "$1: c2 comes back up"
	ping_until "$C2" 10.66.0.1 15 || fail "$1: c2 handshakes again" "$(srv wg show "$SRV_IF" 2>&1)"
}
# syncconf: what `systemctl reload wg-quick@` and PiVPN run after an edit of the config.
syncconf() { srv bash -c "wg syncconf '$SRV_IF' <(wg-quick strip '$SRV_IF')"; }
# undo_watch_phase: what the wipes of phase 7d made that is not the hook's: the table of
# Debian's nftables.conf, and the iptables-nft tables a plain restore made, once empty.
undo_watch_phase() {
	local t
	srv nft delete table inet filter 2>/dev/null || true
	for t in "ip filter" "ip nat" "ip6 filter" "ip6 nat"; do
		srv nft list table $t >/dev/null 2>&1 || continue
		srv nft list table $t | grep -qvE '^[[:space:]]*(table .*|chain .*|type .*|\}|)$' || srv nft delete table $t
	done
}
# watch_phase: phase 7d, with phase 7's tunnels and settings up.
watch_phase() {
	local pid rules before_wipe save4 save6 w
	assert_ok "watcher: up (without --no-watch) exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF"
	wait_for 5 test -n "$(srv_watcher)" || true
	pid=$(srv_watcher)
	[[ -n $pid ]] && pass "watcher: up started one (pid $pid)" || fail "watcher: up started one" "$(srv "$BIN" status "$SRV_IF" 2>&1)"

	# An edit that removes c2, then wg syncconf: its entries go with it.
	WITHOUT_C2=1 write_srv_conf with-hook
	syncconf
	settled "watcher: c2 edited out of the config and wg syncconf"
	assert_no_match "watcher: ... c2 is no peer any more" "$C2_PUB" "$(srv wg show "$SRV_IF" peers)"
	# The edit back and wg syncconf again, no hook: c2 is a guest at once (phase 7b showed that
	# without a watcher it had the interface's policy, the LAN, until up ran again).
	write_srv_conf with-hook
	syncconf
	settled "watcher: c2 edited back into the config and wg syncconf"
	c2_again "watcher"
	sections_hold "watcher: c2 added back by wg syncconf"

	# A removed peer's address handed to another: laptop c1 goes, guest c2 gets its address
	# with wg set. c2 must not inherit the laptop's reach.
	srv wg set "$SRV_IF" peer "$C1_PUB" remove
	srv wg set "$SRV_IF" peer "$C2_PUB" allowed-ips 10.66.0.2/32,fd66::2/128
	# The new address first: the last one's going takes the interface's routes with it.
	ip -n "$C2" addr add 10.66.0.2/32 dev "$C2_IF"
	ip -n "$C2" addr del 10.66.0.3/32 dev "$C2_IF"
	settled "watcher: laptop c1 removed and its address given to guest c2 (wg set)"
	expect_denied "watcher: guest c2 from the laptop's old 10.66.0.2 -> lan host (no inherited reach)" "$C2" 192.168.1.10
	expect_open "watcher: guest c2 from 10.66.0.2 -> internet 192.0.2.1" "$C2" 192.0.2.1 203.0.113.2
	ip -n "$C2" addr add 10.66.0.3/32 dev "$C2_IF"
	ip -n "$C2" addr del 10.66.0.2/32 dev "$C2_IF"
	syncconf
	settled "watcher: both peers back as the config has them (wg syncconf)"
	c2_again "watcher"
	ping_until "$C1" 10.66.0.1 15 || fail "watcher: c1 handshakes again"
	sections_hold "watcher: both peers back"
	w=$(srv "$BIN" status "$SRV_IF" 2>&1 | grep '^  watcher:' || true)
	assert_match "watcher: status counts the repairs, the last one after the peers changed" \
		'^  watcher: pid [0-9]+, since .*, [0-9]+ repairs, the last at .* after the peers changed' "$w"

	# A web UI's run of peer changes (wg set, no hook), each more than a burst apart: each is
	# applied, and none counts against a fight (the watcher held off after five before).
	local i ips
	for i in 1 2 3 4 5 6; do
		ips=10.66.0.3/32,fd66::3/128
		((i % 2)) && ips+=,10.66.0.9/32
		srv wg set "$SRV_IF" peer "$C2_PUB" allowed-ips "$ips"
		sleep 2.2
	done
	settled "watcher: six peer changes with wg set, 2.2 s apart"
	w=$(srv "$BIN" status "$SRV_IF" 2>&1 | grep '^  watcher:' || true)
	assert_no_match "watcher: ... peer changes are no fight: no holding off" 'holding off' "$w"
	sections_hold "watcher: after six peer changes"

	# Wipes, as others make them, each repaired to the same rules, nothing twice.
	rules=$(hook_rules "$SRV")
	PHASE_UNDO=undo_watch_phase
	save4=$E2E_TMP/pre-up.v4 save6=$E2E_TMP/pre-up.v6
	wipe_and_check() {
		local desc=$1
		shift
		assert_ok "watcher: $desc" "$@"
		settled "watcher: after $desc"
		assert_eq "watcher: after $desc the hook's rules are as before it (nothing twice)" "$rules" "$(hook_rules "$SRV")"
		sections_hold "watcher: after $desc"
	}
	wipe_and_check "nft flush ruleset" srv nft flush ruleset
	# What nftables.service loads: Debian's default /etc/nftables.conf starts with flush ruleset.
	wipe_and_check "nftables.service's start: Debian's default /etc/nftables.conf (flush ruleset first)" env NEIGHBOURS_STATE="$E2E_TMP/neighbours" NEIGHBOURS_QUIET=1 NEIGHBOURS_NO_INSTALL=1 bash "$HERE/../neighbours/nftables-service.sh" start "$SRV"
	if ((!NATIVE)); then
		# RHEL's iptables.service and a hand-made restore: no --noflush.
		printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n' >"$save4"
		cp "$save4" "$save6"
		wipe_and_check "a plain iptables-$VARIANT-restore (no --noflush)" srv bash -c "iptables-$VARIANT-restore <'$save4' && ip6tables-$VARIANT-restore <'$save6'"
	fi
	assert_eq "watcher: the same watcher runs after all this" "$pid" "$(srv_watcher)"
}

# ---------------------------------------------------------------------------------------------
step "topology: namespaces, veths, addresses, routes"
for ns in "$INET" "$SRV" "$LAN" "$C1" "$C2"; do ns_add "$ns"; done
SRV_INODE=$(netns_inode "$SRV")
SRV_STALE=$(srv_state_dirs)
[[ -z $SRV_STALE ]] || info "note: /run/wgfw already holds state for this namespace inode (a dead namespace's; ignored): $SRV_STALE"

ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-c1 type veth peer name eth0 netns "$C1"
ip -n "$INET" link add to-c2 type veth peer name eth0 netns "$C2"
ip -n "$SRV" link add lan0 type veth peer name eth0 netns "$LAN"

ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
ip -n "$INET" addr add 2001:db8:1::1/64 dev to-srv nodad
ip -n "$INET" addr add 198.51.100.1/26 dev to-c1
ip -n "$INET" addr add 2001:db8:2::1/64 dev to-c1 nodad
ip -n "$INET" addr add 198.51.100.65/26 dev to-c2
ip -n "$INET" addr add 2001:db8:3::1/64 dev to-c2 nodad
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" addr add 2001:db8:ff::1/128 dev lo nodad
ip -n "$INET" addr add 172.16.5.1/32 dev lo
ip -n "$INET" addr add fd00:5::1/128 dev lo nodad
for a in 10.99.5.1 100.64.5.1 169.254.5.1 198.19.5.1; do ip -n "$INET" addr add "$a/32" dev lo; done
# 10.0.0.5 and 192.0.2.1 as a NAT64 gateway upstream would translate them (inet plays the
# gateway's far side): the well-known prefix, the local-use prefix, a /64 prefix of its own (and
# 10.0.0.5 there with a non-zero u octet, which gateways such as Jool ignore).
for a in 64:ff9b::a00:5 64:ff9b:1::a00:5 64:ff9b::c000:201 2001:db8:64:0:a:0:500:0 \
	2001:db8:64:0:ff0a:0:500:0 2001:db8:64:0:c0:2:100:0; do
	ip -n "$INET" addr add "$a/128" dev lo nodad
done
for l in to-srv to-c1 to-c2; do ip -n "$INET" link set "$l" up; done
inet sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# No route to the tunnel in inet (the phases that need one add it for a while): its IPv4 and its
# unique-local IPv6 must be masqueraded.

ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$SRV" addr add 192.168.1.1/24 dev lan0
ip -n "$SRV" addr add fd00:1::1/64 dev lan0 nodad
ip -n "$SRV" addr add 198.18.1.1/24 dev lan0
ip -n "$SRV" link set eth0 up
ip -n "$SRV" link set lan0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$SRV" -6 route add default via 2001:db8:1::1

ip -n "$LAN" addr add 192.168.1.10/24 dev eth0
ip -n "$LAN" addr add fd00:1::10/64 dev eth0 nodad
ip -n "$LAN" addr add 198.18.1.10/24 dev eth0
ip -n "$LAN" link set eth0 up

ip -n "$C1" addr add 198.51.100.2/26 dev eth0
ip -n "$C1" addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n "$C2" addr add 198.51.100.66/26 dev eth0
ip -n "$C2" addr add 2001:db8:3::2/64 dev eth0 nodad
ip -n "$C1" link set eth0 up
ip -n "$C2" link set eth0 up
ip -n "$C1" route add default via 198.51.100.1
ip -n "$C1" -6 route add default via 2001:db8:2::1
ip -n "$C2" route add default via 198.51.100.65
ip -n "$C2" -6 route add default via 2001:db8:3::1

for pair in "$C1 203.0.113.2" "$C1 2001:db8:1::2" "$C2 203.0.113.2" "$C2 2001:db8:1::2" \
	"$SRV 172.16.5.1" "$SRV fd00:5::1" "$SRV 192.168.1.10" "$SRV fd00:1::10"; do
	read -r ns addr <<<"$pair"
	ping_until "$ns" "$addr" 5 || { echo "topology broken: ${ns##*-} cannot ping $addr" >&2; exit 1; }
done
info "c1 and c2 reach srv over inet; srv reaches 172.16.5.1/fd00:5::1 via the WAN and the lan host (v4 and v6)"
if lanh ip route get 10.66.0.2 >/dev/null 2>&1 || lanh ip -6 route get fd66::2 >/dev/null 2>&1; then
	echo "topology broken: the lan host has a route to the tunnel" >&2
	exit 1
fi
info "the lan host has no route to the tunnel networks"

# ---------------------------------------------------------------------------------------------
step "phase 0: snapshot srv BEFORE anything (rulesets of both iptables variants and nft, sysctls)"
snapshot_rules "$SRV" "$E2E_TMP/rules.before"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.before" eth0 lan0
info "$(grep -c . "$E2E_TMP/rules.before") ruleset lines; sysctls:"
sed 's/^/      /' "$E2E_TMP/sysctl.before"

# ---------------------------------------------------------------------------------------------
step "listeners on tcp/$PORT that answer the peer address they see: inet, lan, srv, c1, c2"
for ns in "$INET" "$LAN" "$SRV" "$C1" "$C2"; do
	bg "$ns" "$E2E_TMP/${ns##*-}-l4.log" socat "TCP4-LISTEN:$PORT,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
	bg "$ns" "$E2E_TMP/${ns##*-}-l6.log" socat "TCP6-LISTEN:$PORT,ipv6only=1,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
done
for ns in "$INET" "$LAN" "$SRV" "$C1" "$C2"; do
	wait_for 5 bash -c "[[ \$(ip netns exec '$ns' ss -Hltn 'sport = :$PORT' | wc -l) -ge 2 ]]" ||
		{ echo "listeners in ${ns##*-} did not start: $(cat "$E2E_TMP/${ns##*-}"-l?.log)" >&2; exit 1; }
done
tcp_probe "$SRV" 192.168.1.10 "$PORT" "$CT"
[[ $PROBE == open && $PROBE_OUT == 192.168.1.1 ]] || { echo "listener check failed: srv -> lan host: $PROBE $PROBE_OUT" >&2; exit 1; }
tcp_probe "$SRV" '[fd00:5::1]' "$PORT" "$CT"
[[ $PROBE == open && $PROBE_OUT == "$(v6peer 2001:db8:1::2)" ]] || { echo "listener check failed: srv -> fd00:5::1: $PROBE $PROBE_OUT" >&2; exit 1; }
info "listeners answer (srv -> lan host seen as 192.168.1.1, srv -> [fd00:5::1] seen as $PROBE_OUT)"

# ---------------------------------------------------------------------------------------------
step "keys and wg-quick configs (srv: $SRV_CONF, clients: $C1_CONF $C2_CONF)"
SRV_KEY=$(wg genkey)
C1_KEY=$(wg genkey)
C2_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
C1_PUB=$(wg pubkey <<<"$C1_KEY")
C2_PUB=$(wg pubkey <<<"$C2_KEY")
ensure_etc_wgfw
mkdir -p "/etc/netns/$SRV/wireguard" "/etc/netns/$SRV/wgfw"
chmod 700 "/etc/netns/$SRV/wireguard" "/etc/netns/$SRV/wgfw"
CLIENT_ALLOWED="10.66.0.0/24, fd66::/64, 192.0.2.0/24, 2001:db8:ff::/64, 172.16.5.0/24, fd00:5::/64, 192.168.1.0/24, fd00:1::/64, 198.18.1.0/24, 198.19.5.0/24, 10.99.5.0/24, 100.64.5.0/24, 169.254.5.0/24, 64:ff9b::/96, 64:ff9b:1::/48, 2001:db8:64::/64"
for c in 1 2; do
	if [[ $c == 1 ]]; then key=$C1_KEY conf=$C1_CONF a4=10.66.0.2 a6=fd66::2; else key=$C2_KEY conf=$C2_CONF a4=10.66.0.3 a6=fd66::3; fi
	(
		umask 077
		cat >"$conf" <<-EOF
			[Interface]
			Address = $a4/32, $a6/128
			PrivateKey = $key

			[Peer]
			PublicKey = $SRV_PUB
			Endpoint = 203.0.113.2:$WG_PORT
			AllowedIPs = $CLIENT_ALLOWED
		EOF
	)
	chmod 600 "$conf"
done
write_srv_conf no-hook
srv test -f "/etc/wireguard/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wireguard" >&2; exit 1; }
write_settings
srv test -f "/etc/wgfw/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wgfw onto /etc/wgfw" >&2; exit 1; }
info "client AllowedIPs: $CLIENT_ALLOWED"

# =============================================================================================
step "phase 1: CONTROL without the hook (no PostUp; forwarding enabled by hand in srv)"
info "srv: ip_forward=1, all.forwarding=1 (v6); inet: route 10.66.0.0/24 via srv; lan: routes to the tunnel via srv"
srv sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
inet ip route add 10.66.0.0/24 via 203.0.113.2
inet_route6 add fd66::/64
lanh ip route add 10.66.0.0/24 via 192.168.1.1
lanh ip -6 route add fd66::/64 via fd00:1::1
PHASE_FAILED0=$E2E_FAILED
tunnels_up
if ((TUN_OK)); then
	expect_open "control: c1 -> lan host 192.168.1.10" "$C1" 192.168.1.10 10.66.0.2
	expect_open "control: c1 -> lan host [fd00:1::10]" "$C1" fd00:1::10 fd66::2
	expect_open "control: c1 -> private range via the WAN 172.16.5.1" "$C1" 172.16.5.1 10.66.0.2
	expect_open "control: c1 -> private range via the WAN [fd00:5::1]" "$C1" fd00:5::1 fd66::2
	expect_open "control: c1 -> lan host 198.18.1.10 (non-local range on lan0)" "$C1" 198.18.1.10 10.66.0.2
	for a in 10.99.5.1 100.64.5.1 169.254.5.1 198.19.5.1; do
		expect_open "control: c1 -> $a via the WAN" "$C1" "$a" 10.66.0.2
	done
	expect_open "control: c1 -> c2 10.66.0.3" "$C1" 10.66.0.3 10.66.0.2
	expect_open "control: c1 -> c2 [fd66::3]" "$C1" fd66::3 fd66::2
	expect_open "control: c1 -> internet 192.0.2.1" "$C1" 192.0.2.1 10.66.0.2
	expect_open "control: c1 -> internet [2001:db8:ff::1]" "$C1" 2001:db8:ff::1 fd66::2
	for a in 64:ff9b::a00:5 64:ff9b:1::a00:5 2001:db8:64:0:a:0:500:0 2001:db8:64:0:ff0a:0:500:0 64:ff9b::c000:201; do
		expect_open "control: c1 -> [$a] (an IPv4 address in NAT64 form) via the WAN" "$C1" "$a" fd66::2
	done
	expect_open "control: c1 -> srv 10.66.0.1" "$C1" 10.66.0.1 10.66.0.2
	expect_open "control: lan host -> c1 10.66.0.2" "$LAN" 10.66.0.2 192.168.1.10
	expect_open "control: lan host -> c1 [fd66::2]" "$LAN" fd66::2 fd00:1::10
else
	fail "control checks ran" "the tunnels did not come up (see above)"
fi
dump_rules_on_failure "$PHASE_FAILED0"

step "phase 1: undo the hand-made changes exactly, bring the tunnels down"
tunnels_down
lanh ip route del 10.66.0.0/24 via 192.168.1.1
lanh ip -6 route del fd66::/64 via fd00:1::1
inet ip route del 10.66.0.0/24 via 203.0.113.2
inet_route6 del fd66::/64
restore_sysctls "$E2E_TMP/sysctl.before"
if lanh ip route get 10.66.0.2 >/dev/null 2>&1 || lanh ip -6 route get fd66::2 >/dev/null 2>&1; then
	fail "the lan host has no route to the tunnel again" "$(lanh ip route; lanh ip -6 route)"
else
	pass "the lan host has no route to the tunnel again"
fi
check_restored "after the control phase"
write_srv_conf with-hook
info "srv config now has PostUp = $BIN up %i, PreDown = $BIN down %i"

# =============================================================================================
step "phase 2: DEFAULT policy (hook, no forwarding options)"
hook_phase default
if ((TUN_OK)); then
	expect_open "default: c1 -> internet 192.0.2.1 (masqueraded)" "$C1" 192.0.2.1 203.0.113.2
	if inet ip -6 route get fd66::2 >/dev/null 2>&1; then fail "precondition: inet has no route to fd66::/64" "$(inet ip -6 route)"; fi
	expect_open "default: c1 -> internet [2001:db8:ff::1] (the unique-local tunnel masqueraded: inet has no route back)" "$C1" 2001:db8:ff::1 2001:db8:1::2
	plan_out=$(srv "$BIN" plan "$SRV_IF" 2>&1 || true)
	assert_match "default: plan says the unique-local tunnel network is masqueraded, and why" \
		'^# IPv6: .*; fd66::/64 masqueraded \(unique-local: nothing out there routes it back\);' "$plan_out"
	# NAT64: the IPv6 forms of local IPv4 ranges never leave srv's WAN; a global one does.
	expect_path "default: c1 -> [64:ff9b::a00:5] (10.0.0.5 behind the well-known NAT64 prefix): DENIED, never on the WAN" \
		timeout no "$C1" 64:ff9b::a00:5 "" "$INET" to-srv "ip6 and dst host 64:ff9b::a00:5"
	expect_path "default: c1 -> [64:ff9b:1::a00:5] (the local-use NAT64 prefix): DENIED, never on the WAN" \
		timeout no "$C1" 64:ff9b:1::a00:5 "" "$INET" to-srv "ip6 and dst host 64:ff9b:1::a00:5"
	expect_path "default: c1 -> [64:ff9b::c000:201] (192.0.2.1 behind the well-known prefix, global): leaves by the WAN" \
		open yes "$C1" 64:ff9b::c000:201 "" "$INET" to-srv "ip6 and dst host 64:ff9b::c000:201"
	expect_denied "default: c1 -> private range via the WAN 172.16.5.1" "$C1" 172.16.5.1
	expect_denied "default: c1 -> private range via the WAN [fd00:5::1]" "$C1" fd00:5::1
	expect_denied "default: c1 -> local range via the WAN 10.99.5.1 (10/8)" "$C1" 10.99.5.1
	expect_denied "default: c1 -> local range via the WAN 100.64.5.1 (100.64/10)" "$C1" 100.64.5.1
	expect_denied "default: c1 -> local range via the WAN 169.254.5.1 (169.254/16)" "$C1" 169.254.5.1
	expect_open "default: c1 -> 198.19.5.1 via the WAN (benchmarking range counts as internet)" "$C1" 198.19.5.1 203.0.113.2
	expect_denied "default: c1 -> lan host 192.168.1.10 (another interface)" "$C1" 192.168.1.10
	expect_denied "default: c1 -> lan host [fd00:1::10] (another interface)" "$C1" fd00:1::10
	expect_denied "default: c1 -> lan host 198.18.1.10 (another interface; not a local range)" "$C1" 198.18.1.10
	expect_denied "default: c1 -> c2 10.66.0.3 (peers isolated)" "$C1" 10.66.0.3
	expect_denied "default: c1 -> c2 [fd66::3] (peers isolated)" "$C1" fd66::3
	expect_denied "default: c2 -> c1 10.66.0.2 (peers isolated)" "$C2" 10.66.0.2
	expect_open "default: c1 -> srv's own tunnel address 10.66.0.1" "$C1" 10.66.0.1 10.66.0.2
	expect_open "default: c1 -> srv's own tunnel address [fd66::1]" "$C1" fd66::1 fd66::2
	# What phase 8 forwards is closed without a forward.
	expect_port "default: inet -> srv 203.0.113.2:8443 (no forward): DENIED" "$INET" 203.0.113.2 8443 timeout
	inet_route6 add fd66::/64
	expect_port "default: inet -> c1 [fd66::2]:$PORT (no forward; with a route to the tunnel's IPv6 via srv): DENIED" \
		"$INET" fd66::2 "$PORT" timeout "" 2001:db8:ff::1
	inet_route6 del fd66::/64
else
	fail "default-policy checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 2 (default)"

# =============================================================================================
step "phase 3: lan = 192.168.1.0/24, lan = fd00:1::/64, nat6 = yes; srv's rp_filter loose (as systemd sets it)"
srv sysctl -q -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2
PHASE_UNDO='restore_sysctls "$E2E_TMP/sysctl.before"'
hook_phase lan-nat6 "lan = 192.168.1.0/24" "lan = fd00:1::/64" "nat6 = yes"
if ((TUN_OK)); then
	assert_eq "lan+nat6: precondition: srv's rp_filter is loose (the hook leaves loose mode alone)" 2 \
		"$(srv sysctl -n net.ipv4.conf.all.rp_filter)"
	info "inet forges the lan host's addresses (on its lo) and routes the tunnel via srv's WAN, for these probes only"
	inet ip addr add 192.168.1.10/32 dev lo
	inet ip -6 addr add fd00:1::10/128 dev lo nodad
	inet ip route add 10.66.0.0/24 via 203.0.113.2
	inet_route6 add fd66::/64
	expect_path "lan+nat6: inet -> c1 10.66.0.2 from a forged LAN source 192.168.1.10: never reaches the tunnel" \
		timeout no "$INET" 10.66.0.2 192.168.1.10 "$C1" "$C1_IF" "src host 192.168.1.10"
	expect_path "lan+nat6: inet -> c1 [fd66::2] from a forged LAN source fd00:1::10: never reaches the tunnel" \
		timeout no "$INET" fd66::2 fd00:1::10 "$C1" "$C1_IF" "src host fd00:1::10"
	inet ip addr del 192.168.1.10/32 dev lo
	inet ip -6 addr del fd00:1::10/128 dev lo
	inet ip route del 10.66.0.0/24 via 203.0.113.2
	inet_route6 del fd66::/64
	info "forged sources and routes removed from inet"
	expect_open "lan+nat6: c1 -> lan host 192.168.1.10 (masqueraded to srv's lan0 address)" "$C1" 192.168.1.10 192.168.1.1
	expect_open "lan+nat6: c1 -> lan host [fd00:1::10] (masqueraded, --nat6)" "$C1" fd00:1::10 fd00:1::1
	expect_denied "lan+nat6: c1 -> private range via the WAN 172.16.5.1 (not a --lan)" "$C1" 172.16.5.1
	expect_denied "lan+nat6: c1 -> private range via the WAN [fd00:5::1] (not a --lan)" "$C1" fd00:5::1
	expect_open "lan+nat6: c1 -> internet 192.0.2.1 (masqueraded)" "$C1" 192.0.2.1 203.0.113.2
	expect_open "lan+nat6: c1 -> internet [2001:db8:ff::1] (masqueraded, --nat6)" "$C1" 2001:db8:ff::1 2001:db8:1::2
	expect_denied "lan+nat6: c1 -> lan host 198.18.1.10 (lan0, but not a --lan network)" "$C1" 198.18.1.10
	expect_denied "lan+nat6: c1 -> c2 10.66.0.3 (peers still isolated)" "$C1" 10.66.0.3
	info "lan host -> c1: temporary routes to the tunnel via srv on the lan host, for this probe only"
	lanh ip route add 10.66.0.0/24 via 192.168.1.1
	lanh ip -6 route add fd66::/64 via fd00:1::1
	expect_open "lan+nat6: lan host -> c1 10.66.0.2 (a --lan network opens connections to peers)" "$LAN" 10.66.0.2
	expect_open "lan+nat6: lan host -> c1 [fd66::2] (a --lan network opens connections to peers)" "$LAN" fd66::2
	lanh ip route del 10.66.0.0/24 via 192.168.1.1
	lanh ip -6 route del fd66::/64 via fd00:1::1
	info "temporary routes removed"
else
	fail "lan+nat6 checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 3 (lan + nat6)"

# =============================================================================================
step "phase 4: lan = 192.168.1.0/24, no-internet = yes"
hook_phase lan-no-internet "lan = 192.168.1.0/24" "no-internet = yes"
if ((TUN_OK)); then
	expect_open "no-internet: c1 -> lan host 192.168.1.10 (a --lan network, masqueraded)" "$C1" 192.168.1.10 192.168.1.1
	expect_denied "no-internet: c1 -> internet 192.0.2.1" "$C1" 192.0.2.1
	expect_denied "no-internet: c1 -> internet [2001:db8:ff::1]" "$C1" 2001:db8:ff::1
	expect_denied "no-internet: c1 -> private range via the WAN 172.16.5.1" "$C1" 172.16.5.1
	expect_denied "no-internet: c1 -> lan host [fd00:1::10] (fd00:1::/64 is not a --lan here)" "$C1" fd00:1::10
	expect_denied "no-internet: c1 -> lan host 198.18.1.10 (lan0, but not a --lan network)" "$C1" 198.18.1.10
	expect_denied "no-internet: c1 -> c2 10.66.0.3 (peers still isolated)" "$C1" 10.66.0.3
	expect_open "no-internet: c1 -> srv's own tunnel address 10.66.0.1" "$C1" 10.66.0.1 10.66.0.2
	expect_open "no-internet: c1 -> srv's own tunnel address [fd66::1]" "$C1" fd66::1 fd66::2
	expect_open "no-internet: c1 -> srv's own lan0 address 192.168.1.1 (every address of the host)" "$C1" 192.168.1.1 10.66.0.2
else
	fail "no-internet checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 4 (lan + no-internet)"

# =============================================================================================
step "phase 5: peer-to-peer = yes"
hook_phase peer-to-peer "peer-to-peer = yes"
if ((TUN_OK)); then
	expect_open "peer-to-peer: c1 -> c2 10.66.0.3 (never masqueraded)" "$C1" 10.66.0.3 10.66.0.2
	expect_open "peer-to-peer: c1 -> c2 [fd66::3] (never masqueraded)" "$C1" fd66::3 fd66::2
	expect_open "peer-to-peer: c2 -> c1 10.66.0.2 (never masqueraded)" "$C2" 10.66.0.2 10.66.0.3
	expect_open "peer-to-peer: c2 -> c1 [fd66::2] (never masqueraded)" "$C2" fd66::2 fd66::3
	expect_open "peer-to-peer: c1 -> internet 192.0.2.1 (masqueraded)" "$C1" 192.0.2.1 203.0.113.2
	expect_open "peer-to-peer: c1 -> internet [2001:db8:ff::1] (unique-local: masqueraded)" "$C1" 2001:db8:ff::1 2001:db8:1::2
	expect_denied "peer-to-peer: c1 -> lan host 192.168.1.10 (no --lan)" "$C1" 192.168.1.10
	expect_denied "peer-to-peer: c1 -> lan host [fd00:1::10] (no --lan)" "$C1" fd00:1::10
	expect_denied "peer-to-peer: c1 -> private range via the WAN 172.16.5.1" "$C1" 172.16.5.1
	expect_denied "peer-to-peer: c1 -> lan host 198.18.1.10 (another interface)" "$C1" 198.18.1.10
else
	fail "peer-to-peer checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 5 (peer-to-peer)"

# =============================================================================================
step "phase 6 (extra): lan = 172.16.5.0/24 (a --lan reached through the WAN), lan = fd00:1::/64 without nat6, peer-to-peer = yes"
hook_phase lan-via-wan "lan = 172.16.5.0/24" "lan = fd00:1::/64" "peer-to-peer = yes"
if ((TUN_OK)); then
	expect_open "lan-via-wan: c1 -> 172.16.5.1 (a --lan network routed via the WAN, masqueraded there)" "$C1" 172.16.5.1 203.0.113.2
	expect_denied "lan-via-wan: c1 -> [fd00:5::1] (not a --lan)" "$C1" fd00:5::1
	expect_denied "lan-via-wan: c1 -> lan host 192.168.1.10 (not a --lan)" "$C1" 192.168.1.10
	expect_open "lan-via-wan: c1 -> c2 10.66.0.3 (peer-to-peer, not masqueraded)" "$C1" 10.66.0.3 10.66.0.2
	expect_open "lan-via-wan: c1 -> internet 192.0.2.1 (masqueraded)" "$C1" 192.0.2.1 203.0.113.2
	expect_open "lan-via-wan: c1 -> lan host [fd00:1::10] (a --lan: the unique-local tunnel is masqueraded towards it too, without --nat6)" \
		"$C1" fd00:1::10 fd00:1::1
	plan_out=$(srv "$BIN" plan "$SRV_IF" 2>&1 || true)
	assert_match "lan-via-wan: plan says a LAN on the WAN cannot be told from forged sources" \
		'^# note: --lan 172\.16\.5\.0/24 is routed through the WAN eth0: .*cannot be told from theirs' "$plan_out"
else
	fail "lan-via-wan checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 6 (lan via the WAN, IPv6 lan without nat6, peer-to-peer)"

# =============================================================================================
step "phase 7: per-peer policy: [peer laptop] (c1) reaches the LAN, [peer guest] (c2) only the internet and udp/53 here"
PEER_SECTIONS=("lan = 192.168.1.0/24" "" "[peer laptop]" "peer = $C1_PUB" "" "[peer guest]" "peer = $C2_PUB" "lan = none" "allow = udp/53")
hook_phase per-peer "${PEER_SECTIONS[@]}"
if ((TUN_OK)); then
	# Phase 1 showed both peers reach every one of these without the hook.
	expect_open "per-peer: laptop c1 -> lan host 192.168.1.10 (its section inherits lan)" "$C1" 192.168.1.10 192.168.1.1
	expect_denied "per-peer: guest c2 -> lan host 192.168.1.10 (lan = none)" "$C2" 192.168.1.10
	expect_open "per-peer: guest c2 -> internet 192.0.2.1 (masqueraded)" "$C2" 192.0.2.1 203.0.113.2
	expect_open "per-peer: guest c2 -> internet [2001:db8:ff::1] (unique-local: masqueraded)" "$C2" 2001:db8:ff::1 2001:db8:1::2
	expect_denied "per-peer: guest c2 -> private range via the WAN 172.16.5.1 (anti-pivot in its chain too)" "$C2" 172.16.5.1
	expect_open "per-peer: laptop c1 -> srv 10.66.0.1 tcp/$PORT (all of this host)" "$C1" 10.66.0.1 10.66.0.2
	expect_denied "per-peer: guest c2 -> srv 10.66.0.1 tcp/$PORT (allow = udp/53 only)" "$C2" 10.66.0.1
	expect_denied "per-peer: laptop c1 -> guest c2 10.66.0.3 (peers isolated)" "$C1" 10.66.0.3
	if ping_until "$C2" 10.66.0.1 3; then pass "per-peer: guest c2 still pings srv (ICMP kept)"; else fail "per-peer: guest c2 still pings srv (ICMP kept)"; fi
	plan_out=$(srv "$BIN" plan "$SRV_IF" 2>&1 || true)
	want="# peer guest [${C2_PUB:0:8}] 10.66.0.3/32 fd66::3/128: this host (udp/53 ping), internet"
	if grep -qxF -- "$want" <<<"$plan_out"; then pass "per-peer: plan shows the guest's reach in one line"; else
		fail "per-peer: plan shows the guest's reach in one line" "expected: $want" "got:" "$plan_out"; fi
	status_out=$(srv "$BIN" status "$SRV_IF" 2>&1 || true)
	if grep -qxF -- "  ${want#\# }" <<<"$status_out"; then pass "per-peer: status shows the guest's section by name, and its reach"; else
		fail "per-peer: status shows the guest's section by name, and its reach" "expected:   $want" "got:" "$status_out"; fi
	if ((NATIVE)); then
		assert_match "per-peer: the tunnel sources are looked up in one verdict map (nft)" \
			"10\\.66\\.0\\.3 : jump WGFW-$(nft_if "$SRV_IF")-P2-v4" "$(nft_hook_table "$SRV")"
	fi
else
	fail "per-peer checks ran" "the tunnels did not come up (see above)"
fi

step "phase 7b: a peer added while a connection is open: c2 leaves srv and comes back with wg set; up runs again"
if ((TUN_OK)); then
	bg "$LAN" "$E2E_TMP/lan-echo.log" socat TCP4-LISTEN:9090,reuseaddr,fork PIPE
	wait_tcp_listen "$LAN" 9090 || fail "per-peer: the lan echo server listens on tcp/9090"
	srv wg set "$SRV_IF" peer "$C2_PUB" remove
	assert_ok "per-peer: up again with c2 gone from the live interface exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
	coproc LIVE { exec timeout 120 ip netns exec "$C1" socat -T60 - TCP:192.168.1.10:9090,connect-timeout=3; }
	E2E_BG_PIDS+=("$LIVE_PID")
	line=
	echo one >&"${LIVE[1]}"
	read -r -t 5 line <&"${LIVE[0]}" || true
	assert_eq "per-peer: c1's connection to lan:9090 echoes (opened before the peer is added)" one "$line"
	srv wg set "$SRV_IF" peer "$C2_PUB" allowed-ips 10.66.0.3/32,fd66::3/128
	# c2 starts afresh: the server forgot its session.
	timeout 60 ip netns exec "$C2" wg-quick down "$C2_CONF" >/dev/null 2>&1 || true
	timeout 60 ip netns exec "$C2" wg-quick up "$C2_CONF" >/dev/null 2>&1 || fail "per-peer: c2 comes back up"
	ping_until "$C2" 10.66.0.1 15 || fail "per-peer: c2 handshakes again"
	expect_open "per-peer: before up runs again, the added c2 has the interface's policy (lan)" "$C2" 192.168.1.10 192.168.1.1
	before=$(snapshot_rules "$SRV" /dev/stdout)
	assert_ok "per-peer: up again picks the added peer up (exit 0)" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
	expect_denied "per-peer: after up, the added c2 is a guest again (lan = none)" "$C2" 192.168.1.10
	expect_open "per-peer: after up, the added c2 reaches the internet" "$C2" 192.0.2.1 203.0.113.2
	line=
	echo two >&"${LIVE[1]}" 2>/dev/null || true
	read -r -t 5 line <&"${LIVE[0]}" || true
	assert_eq "per-peer: c1's connection opened before the change still echoes after it" two "$line"
	after=$(snapshot_rules "$SRV" /dev/stdout)
	assert_ok "per-peer: a third up with nothing changed exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
	assert_eq "per-peer: ... and changes no rule" "$after" "$(snapshot_rules "$SRV" /dev/stdout)"
	[[ $before != "$after" ]] && pass "per-peer: the re-run changed the rules (the peer's address was added)" ||
		fail "per-peer: the re-run changed the rules (the peer's address was added)"
	if ((NATIVE)); then
		n=$(nft_if "$SRV_IF")
		srv wg set "$SRV_IF" peer "$C2_PUB" allowed-ips 10.66.0.3/32,10.66.0.33/32,fd66::3/128
		assert_ok "per-peer: up after c2 got one more address with wg set exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
		assert_match "per-peer: ... in a transaction of that address alone (nft: nobody changed the ruleset since)" \
			"nft -f - \\(the peers' addresses alone\\)" "$RUN_OUT"
		assert_match "per-peer: ... which the verdict map now holds" "10\\.66\\.0\\.33 : jump WGFW-$n-P2-v4" "$(nft_hook_table "$SRV")"
		srv wg set "$SRV_IF" peer "$C2_PUB" allowed-ips 10.66.0.3/32,fd66::3/128
		assert_ok "per-peer: up after the address is gone again exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
		assert_eq "per-peer: ... and the rules are as before" "$after" "$(snapshot_rules "$SRV" /dev/stdout)"
		# Anyone's commit changes the ruleset's generation: up then lists the table and puts
		# it right, instead of trusting its record.
		srv nft flush chain inet wgfw "WGFW-$n-FWD-v4"
		assert_ok "per-peer: up after someone flushed a chain of ours exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
		assert_eq "per-peer: ... and puts the flushed chain back" "$after" "$(snapshot_rules "$SRV" /dev/stdout)"
	fi
	kill "$LIVE_PID" 2>/dev/null || true
	wait "$LIVE_PID" 2>/dev/null || true

	step "phase 7c: hostile settings are refused with exit 2, one line naming file:line, and change nothing"
	rules_now=$(snapshot_rules "$SRV" /dev/stdout)
	settings_ok=$(cat "$SETTINGS")
	hostile() {
		local desc=$1 want_line=$2
		shift 2
		write_settings "${PEER_SECTIONS[@]}" "$@"
		assert_rc "per-peer hostile: $desc: up exits 2" 2 timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
		assert_eq "per-peer hostile: $desc: one line of output" 1 "$(grep -c . <<<"$RUN_OUT")"
		local prefix="wgfw-hook: $SRV_IF: /etc/wgfw/$SRV_IF.conf:$want_line: "
		if [[ $RUN_OUT == "$prefix"* ]]; then pass "per-peer hostile: $desc: names /etc/wgfw/$SRV_IF.conf:$want_line"; else
			fail "per-peer hostile: $desc: names /etc/wgfw/$SRV_IF.conf:$want_line" "expected: $prefix..." "got:      $RUN_OUT"; fi
		assert_eq "per-peer hostile: $desc: the rules are as they were" "$rules_now" "$(snapshot_rules "$SRV" /dev/stdout)"
	}
	# The settings file: a comment, backend, then PEER_SECTIONS (9 lines), so a new line is 12.
	hostile "an unknown setting in a section" 12 "frobnicate = 1"
	hostile "a bad public key" 13 "[peer broken]" "peer = not-a-key="
	hostile "a peer in two sections (overlapping groups)" 13 "[group everyone]" "peer = $C1_PUB"
	hostile "peer-to-peer naming no section" 12 "peer-to-peer = nobody"
	(umask 077; printf '%s\n' "$settings_ok" >"$SETTINGS")
else
	fail "per-peer live-change checks ran" "the tunnels did not come up (see above)"
fi

step "phase 7d: the watcher (#24): peers changed without hooks (wg syncconf after an edit, wg set) get their section's policy; wipes are repaired"
if ((TUN_OK)); then
	watch_phase
else
	fail "watcher checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 7 (per-peer policy)"

# =============================================================================================
step "phase 8: port forwards to c1 and c2 (masqueraded, keep-source, hairpin from the LAN and from peers, IPv6)"
FWD_SETTINGS=("lan = 192.168.1.0/24"
	"forward = tcp/8443=10.66.0.2:$PORT"
	"forward = tcp/8444=10.66.0.3:$PORT, keep-source"
	"forward = tcp/8445=10.66.0.2:$PORT, from-lan"
	"forward = tcp/8446=10.66.0.2:$PORT, from-peers"
	"forward = tcp/$PORT=[fd66::2]")
info "inet routes the tunnel's IPv6 to srv in this phase (the IPv6 forward is to a tunnel address)"
inet_route6 add fd66::/64
PHASE_UNDO='inet_route6 del fd66::/64'
hook_phase forward "${FWD_SETTINGS[@]}"
if ((TUN_OK)); then
	# Phase 2 showed these closed without a forward.
	expect_port "forward: inet -> srv 203.0.113.2:8443 reaches c1's tcp/$PORT, masqueraded (c1 sees srv)" \
		"$INET" 203.0.113.2 8443 open 10.66.0.1
	expect_port "forward keep-source: inet (from 192.0.2.1) -> 203.0.113.2:8444 reaches c2, which sees 192.0.2.1 (its AllowedIPs route the reply back)" \
		"$INET" 203.0.113.2 8444 open 192.0.2.1 192.0.2.1
	expect_port "forward IPv6: inet -> c1 [fd66::2]:$PORT, not translated (c1 sees inet's own address)" \
		"$INET" fd66::2 "$PORT" open 2001:db8:ff::1 2001:db8:ff::1
	expect_port "forward IPv6: inet -> c2 [fd66::3]:$PORT (no forward to c2): DENIED" \
		"$INET" fd66::3 "$PORT" timeout "" 2001:db8:ff::1
	expect_port "forward: inet -> srv 203.0.113.2:8447 (no such forward): DENIED" "$INET" 203.0.113.2 8447 timeout
	# Forwards never open anything to the other peers.
	expect_port "forward: c2 -> c1 10.66.0.2:$PORT directly: DENIED (peers stay isolated)" "$C2" 10.66.0.2 "$PORT" timeout
	expect_port "forward: c2 -> c1 [fd66::2]:$PORT directly: DENIED (the IPv6 forward is from the WAN)" "$C2" fd66::2 "$PORT" timeout
	expect_port "forward: c2 -> srv 10.66.0.1:8443 (not from-peers): srv's own port, nothing forwarded (refused)" \
		"$C2" 10.66.0.1 8443 refused
	expect_port "forward from-peers: c2 -> srv 10.66.0.1:8446 reaches c1 (hairpin, masqueraded)" "$C2" 10.66.0.1 8446 open 10.66.0.1
	expect_port "forward from-lan: lan host -> srv 192.168.1.1:8445 reaches c1 (hairpin, masqueraded)" \
		"$LAN" 192.168.1.1 8445 open 10.66.0.1
	expect_port "forward: lan host -> srv 192.168.1.1:8443 (not from-lan): DENIED" "$LAN" 192.168.1.1 8443 timeout
	plan_out=$(srv "$BIN" plan "$SRV_IF" 2>&1 || true)
	want="# forward tcp/8444=10.66.0.3:$PORT,keep-source: from the WAN (eth0); the client's address kept: the target must route replies back through the tunnel"
	if grep -qxF -- "$want" <<<"$plan_out"; then pass "forward: plan shows each forward in one line"; else
		fail "forward: plan shows each forward in one line" "expected: $want" "got:" "$plan_out"; fi
	status_out=$(srv "$BIN" status "$SRV_IF" 2>&1 || true)
	for f in "tcp/8443=10.66.0.2:$PORT" "tcp/8444=10.66.0.3:$PORT,keep-source" "tcp/8445=10.66.0.2:$PORT,from-lan" \
		"tcp/8446=10.66.0.2:$PORT,from-peers" "tcp/$PORT=[fd66::2]"; do
		n=$(awk -v p="  forward $f: " 'index($0, p) == 1 { r = substr($0, length(p) + 1); sub(/ connections?$/, "", r); print r }' <<<"$status_out")
		if [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)); then pass "forward: status counts the connections of $f ($n)"; else
			fail "forward: status counts the connections of $f" "expected: a line '  forward $f: N connection(s)', N >= 1" "got:" "$status_out"; fi
	done
	if ((NATIVE)); then
		assert_match "forward: the DNAT chain hangs from the table's nat prerouting base chain (nft)" \
			"jump WGFW-$(nft_if "$SRV_IF")-DNAT-v4" "$(nft_hook_table "$SRV")"
	fi
	rules_now=$(snapshot_rules "$SRV" /dev/stdout)
	assert_ok "forward: up again with nothing changed exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
	assert_eq "forward: ... and changes no rule" "$rules_now" "$(snapshot_rules "$SRV" /dev/stdout)"

	step "phase 8b: a forward to an address outside the tunnel is refused with exit 2, one line, and changes nothing"
	# The settings file: a comment, backend, then FWD_SETTINGS (6 lines), so a new line is 9.
	write_settings "${FWD_SETTINGS[@]}" "forward = tcp/8447=192.168.1.10:$PORT"
	assert_rc "forward hostile: to the lan host (outside the tunnel): up exits 2" 2 timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch
	assert_eq "forward hostile: one line of output" 1 "$(grep -c . <<<"$RUN_OUT")"
	prefix="wgfw-hook: $SRV_IF: /etc/wgfw/$SRV_IF.conf:9: forward = tcp/8447=192.168.1.10:$PORT: 192.168.1.10 is not behind the tunnel"
	if [[ $RUN_OUT == "$prefix"* ]]; then pass "forward hostile: names /etc/wgfw/$SRV_IF.conf:9 and says why"; else
		fail "forward hostile: names /etc/wgfw/$SRV_IF.conf:9 and says why" "expected: $prefix..." "got:      $RUN_OUT"; fi
	assert_eq "forward hostile: the rules are as they were" "$rules_now" "$(snapshot_rules "$SRV" /dev/stdout)"
	write_settings "${FWD_SETTINGS[@]}"
	assert_rc "forward hostile: --forward tcp/8447=192.0.2.1 on the command line: up exits 2" 2 \
		timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --no-watch --forward tcp/8447=192.0.2.1
	if [[ $RUN_OUT == "wgfw-hook: $SRV_IF: --forward tcp/8447=192.0.2.1: 192.0.2.1 is not behind the tunnel"* && $(grep -c . <<<"$RUN_OUT") == 1 ]]; then
		pass "forward hostile: one line naming --forward and why"
	else
		fail "forward hostile: one line naming --forward and why" "got: $RUN_OUT"
	fi
	assert_eq "forward hostile: the rules are still as they were" "$rules_now" "$(snapshot_rules "$SRV" /dev/stdout)"
else
	fail "port-forward checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 8 (port forwards)"

# =============================================================================================
step "phase 9: a global IPv6 tunnel prefix beside the unique-local one; nat64 = 2001:db8:64::/64"
SRV_EXTRA_ADDRESS=2001:db8:66::1/64 C1_EXTRA_ALLOWED=2001:db8:66::2/128
write_srv_conf with-hook
info "srv: Address + $SRV_EXTRA_ADDRESS, c1's AllowedIPs + $C1_EXTRA_ALLOWED; inet routes 2001:db8:66::/64 to srv (a global prefix is routed to its server)"
inet_route6 add 2001:db8:66::/64
PHASE_UNDO='inet_route6 del 2001:db8:66::/64'
hook_phase global-v6 "nat64 = 2001:db8:64::/64"
if ((TUN_OK)); then
	in_ns "$C1" ip -6 addr add 2001:db8:66::2/128 dev "$C1_IF" nodad
	expect_port "global-v6: c1 (from 2001:db8:66::2) -> internet [2001:db8:ff::1]: routed, inet sees the peer's own address" \
		"$C1" 2001:db8:ff::1 "$PORT" open 2001:db8:66::2 2001:db8:66::2
	expect_port "global-v6: c1 (from fd66::2) -> internet [2001:db8:ff::1]: masqueraded (unique-local), in the same plan" \
		"$C1" 2001:db8:ff::1 "$PORT" open 2001:db8:1::2 fd66::2
	plan_out=$(srv "$BIN" plan "$SRV_IF" 2>&1 || true)
	assert_match "global-v6: plan says which IPv6 tunnel network is routed and which masqueraded, and why" \
		'^# IPv6: .*; 2001:db8:66::/64 routed \(global; --nat6 masquerades it\), fd66::/64 masqueraded \(unique-local' "$plan_out"
	assert_match "global-v6: plan shows the NAT64 prefix's local ranges" \
		'^# NAT64 prefix 2001:db8:64::/64: .* 2001:db8:64:0:a::/80 ' "$plan_out"
	expect_path "global-v6: c1 -> [2001:db8:64:0:a:0:500:0] (10.0.0.5 behind the --nat64 prefix): DENIED, never on the WAN" \
		timeout no "$C1" 2001:db8:64:0:a:0:500:0 "" "$INET" to-srv "ip6 and dst host 2001:db8:64:0:a:0:500:0"
	expect_path "global-v6: c1 -> [2001:db8:64:0:ff0a:0:500:0] (the same with a non-zero u octet): DENIED, never on the WAN" \
		timeout no "$C1" 2001:db8:64:0:ff0a:0:500:0 "" "$INET" to-srv "ip6 and dst host 2001:db8:64:0:ff0a:0:500:0"
	expect_path "global-v6: c1 -> [2001:db8:64:0:c0:2:100:0] (192.0.2.1 behind the --nat64 prefix): leaves by the WAN" \
		open yes "$C1" 2001:db8:64:0:c0:2:100:0 "" "$INET" to-srv "ip6 and dst host 2001:db8:64:0:c0:2:100:0"
else
	fail "global-v6 checks ran" "the tunnels did not come up (see above)"
fi
end_phase "phase 9 (global IPv6 prefix, nat64)"
SRV_EXTRA_ADDRESS= C1_EXTRA_ALLOWED=
write_srv_conf with-hook

# ---------------------------------------------------------------------------------------------
step "final: srv's rulesets and sysctls equal the phase-0 snapshot"
check_restored "final"

summary || exit 1
