#!/usr/bin/env bash
# The config reader against wg-quick itself: for each config below, `wg-quick up` brings up a
# real (wireguard-go) interface in a namespace of its own, and `wgfw-hook plan` on the same file
# must report the addresses, listen port and MTU that the live interface then has.
#
#   [wgfwtPID-pN]  wgpPIDN (wireguard-go)  -- veth uplink, MTU 1400, default route
#
# Usage: WGFW_HOOK_BIN=target/debug/wgfw-hook bash tests/e2e/parser.sh
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
BIN=${WGFW_HOOK_BIN:?set WGFW_HOOK_BIN to the wgfw-hook binary}
setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

key=$(wg genkey)
peer=$(wg genkey | wg pubkey)

# check_case DESC: the config on stdin (@KEY@ and @PEER@ are filled in; CRLF=1 gives it CRLF line ends).
n=0
check_case() {
	local desc=$1 ns iface conf
	n=$((n + 1))
	ns="$E2E_PREFIX-p$n"
	# wireguard-go's control socket (/var/run/wireguard/IFACE.sock) is shared by all namespaces:
	# a name unique to this run keeps runs apart.
	iface="wgp$$$n"
	conf="$E2E_TMP/$iface.conf"
	sed "s|@PEER@|$peer|; s|@KEY@|$key|" >"$conf"
	[[ ${CRLF:-0} == 1 ]] && sed -i 's/$/\r/' "$conf"
	chmod 600 "$conf"
	step "$desc ($iface)"
	ns_add "$ns"
	in_ns "$ns" ip link add up0 type veth peer name up1
	in_ns "$ns" ip link set up0 mtu 1400 up
	in_ns "$ns" ip addr add 198.51.100.2/24 dev up0
	in_ns "$ns" ip route add default via 198.51.100.1
	assert_ok "wg-quick up accepts the config" in_ns "$ns" wg-quick up "$conf"
	local live_addrs live_port live_mtu plan plan_addrs plan_port plan_mtu
	live_addrs=$(in_ns "$ns" ip -o addr show dev "$iface" scope global | awk '{print $4}' | sort | xargs)
	live_port=$(in_ns "$ns" wg show "$iface" listen-port)
	live_mtu=$(in_ns "$ns" ip -o link show dev "$iface" | sed -nE 's/.* mtu ([0-9]+) .*/\1/p')
	info "live: addresses $live_addrs, port $live_port, MTU $live_mtu"
	assert_match "the live interface shows a port and an MTU" '^[0-9]+ [0-9]+$' "$live_port $live_mtu"
	run_capture in_ns "$ns" "$BIN" plan "$iface" --config "$conf" --backend iptables-nft
	plan=$RUN_OUT
	assert_eq "plan succeeds" 0 "$RUN_RC"
	plan_addrs=$(sed -nE 's/^# IPv[46]: address ([^;]*);.*/\1/p' <<<"$plan" | tr ' ' '\n' | grep -v '^none$' | sort | xargs)
	plan_port=$(sed -nE 's/^# listen port ([0-9]+), .*/\1/p' <<<"$plan")
	plan_mtu=$(sed -nE 's/^# listen port .*, MTU ([0-9]+), .*/\1/p' <<<"$plan")
	assert_eq "addresses as the live interface has them" "$live_addrs" "$plan_addrs"
	assert_eq "listen port as the live interface has it" "$live_port" "$plan_port"
	assert_eq "MTU as the live interface has it" "$live_mtu" "$plan_mtu"
	# --config none: the live interface alone says the same, and the plan says so.
	run_capture in_ns "$ns" "$BIN" plan "$iface" --config none --backend iptables-nft
	assert_eq "plan --config none succeeds" 0 "$RUN_RC"
	assert_eq "--config none: addresses as the live interface has them" "$live_addrs" \
		"$(sed -nE 's/^# IPv[46]: address ([^;]*);.*/\1/p' <<<"$RUN_OUT" | tr ' ' '\n' | grep -v '^none$' | sort | xargs)"
	assert_eq "--config none: listen port and MTU as the live interface has them" "$live_port $live_mtu" \
		"$(sed -nE 's/^# listen port ([0-9]+), MTU ([0-9]+), .*/\1 \2/p' <<<"$RUN_OUT")"
	assert_match "--config none: the plan says it read the live interface" \
		"^# note: the tunnel's addresses, port and peers are read from the live interface $iface " "$RUN_OUT"
	in_ns "$ns" wg-quick down "$conf" >/dev/null 2>&1 || true
	run_capture in_ns "$ns" "$BIN" plan "$iface" --config none --backend iptables-nft
	assert_eq "--config none with the interface gone: exit 2" 2 "$RUN_RC"
	assert_match "... and one line saying what it cannot know yet" \
		"^wgfw-hook: $iface: --config none: there is no live WireGuard interface to read the tunnel from" "$RUN_OUT"
}

CRLF=1 check_case "CRLF, inline comments, case-insensitive keys, repeated Address, odd spacing" <<'EOF_CONF'
[interface] # the server
address = 10.66.0.1/24 #first
ADDRESS=fd66::1/64 ,  10.67.0.1/16
	ListenPort	=	51820	
mtu = 1380
privatekey = @KEY@
PostUp = echo "quoted \back\slash" # hook lines keep their quotes
[PEER]
PublicKey = @PEER@
AllowedIPs = 10.66.0.2/32, fd66::2/128
EOF_CONF

check_case "no ListenPort (random) and no MTU (computed by wg-quick)" <<'EOF_CONF'
[Interface]
Address = 10.66.0.1/24
PrivateKey = @KEY@
[Peer]
PublicKey = @PEER@
AllowedIPs = 10.66.0.0/24
Endpoint = 198.51.100.1:51820
EOF_CONF

check_case "bare addresses and several [Peer] sections" <<'EOF_CONF'
[Interface]
Address = 10.66.0.1
Address = fd66::1
ListenPort = 40000
PrivateKey = @KEY@
[Peer]
PublicKey = @PEER@
AllowedIPs = 10.66.0.2/32
EOF_CONF

summary
