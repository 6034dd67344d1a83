#!/usr/bin/env bash
# End-to-end test: wgfw-hook never weakens the host it protects (#23), with real packets and the
# real fail2ban, in network namespaces.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/hostile.sh iptables-nft|iptables-legacy|nft
#
# Topology ("$E2E_PREFIX-{inet,srv,cli,cli2}", deleted on exit):
#
#   inet (router; to-srv 203.0.113.1/24 + .66 .67 .68 .5, 2001:db8:1::1/64 + ::66;
#         to-cli 198.51.100.1/24; to-cli2 192.0.2.1/24)
#    ├── srv  eth0 203.0.113.2/24 2001:db8:1::2/64; WireGuard wghNNN 10.66.0.1/24 udp/51820,
#    │        PostUp/PreDown the hook; listeners tcp/22 (as SSH), udp 10.66.0.1:7778,
#    │        udp 127.0.0.1:7777; fail2ban (its own iptables-multiport and nftables-multiport
#    │        jails on tcp/22)
#    ├── cli  eth0 198.51.100.2: a peer, 10.66.0.2
#    └── cli2 eth0 192.0.2.2: a second peer, 10.66.0.3, that comes up only after the flood
#
# Phases:
#   1 other tools' denies hold (item 1): fail2ban bans before and after `up`, an admin's rule
#     appended after `up`; `check` sees no drift, `check --repair` and a rollback keep them;
#     a peer's packet for 127.0.0.1 (route_localnet on) is never accepted.
#   2 a flood of spoofed sources (item 2) to the WireGuard port and to SSH: a new peer's
#     handshake and a new SSH connection still get through right after it.
#   3 a split default route in a peer's AllowedIPs (item 3): SSH to srv from the internet still
#     works; a peer's public AllowedIPs holding the SSH client make `up` refuse (lockout guard).

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
parse_backend "$BACKEND"
require_e2e "iptables-$VARIANT" "ip6tables-$VARIANT" python3 fail2ban-server fail2ban-client
F2B="$HERE/../neighbours/fail2ban.sh"
RAWSEND="$HERE/rawsend.py"

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
export NEIGHBOURS_STATE=$E2E_TMP/neighbours NEIGHBOURS_QUIET=1 NEIGHBOURS_NO_INSTALL=1
# fail2ban bans through the iptables flavour the host's `iptables` is: the one our backend uses.
[[ $VARIANT == legacy ]] && export F2B_IPTABLES=legacy

INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
CLI=$E2E_PREFIX-cli
CLI2=$E2E_PREFIX-cli2
SRV_IF=wgh$$
CLI_IF=wgi$$
CLI2_IF=wgj$$
require_free_ifaces "$SRV_IF" "$CLI_IF" "$CLI2_IF"
SRV_CONF=$E2E_TMP/$SRV_IF.conf
CLI_CONF=$E2E_TMP/$CLI_IF.conf
CLI2_CONF=$E2E_TMP/$CLI2_IF.conf
IPT=iptables-$VARIANT
WG_PORT=51820

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }
inet() { ip netns exec "$INET" "$@"; }

echo "wgfw-hook e2e, hostile host, backend $BACKEND"
echo "binary: $BIN"

SRV_INODE=
F2B_RUNNING=0
cleanup_state() {
	((F2B_RUNNING)) && "$F2B" stop "$SRV" >/dev/null 2>&1
	local dirs
	dirs=$(hook_state_dirs "$SRV_INODE")
	[[ -n $dirs ]] || return 0
	timeout 30 ip netns exec "$SRV" "$BIN" down "$SRV_IF"
	rm -rf -- $dirs
}
E2E_CLEANUP_HOOKS+=(cleanup_state)

# probe NS SRC HOST PORT: a new TCP connection from address SRC; sets PROBE (open, refused,
# timeout, error).
probe() {
	local out rc src=$2
	[[ $src == *:* ]] && src="[$src]"
	out=$(timeout 8 ip netns exec "$1" socat -T2 - "TCP:$3:$4,bind=$src,connect-timeout=3" </dev/null 2>&1) && rc=0 || rc=$?
	if [[ $rc -eq 0 ]]; then PROBE=open
	elif [[ $rc -eq 124 ]] || grep -qiE 'timed out|timeout' <<<"$out"; then PROBE=timeout
	elif grep -qiE 'refused|unreachable' <<<"$out"; then PROBE=refused
	else PROBE="error: $out"; fi
}
# expect DESC WANT NS SRC HOST PORT
expect() {
	local desc=$1 want=$2
	shift 2
	probe "$@"
	assert_eq "$desc" "$want" "$PROBE"
}

# ---------------------------------------------------------------------------------------------
step "topology"
for ns in "$INET" "$SRV" "$CLI" "$CLI2"; do ns_add "$ns"; done
SRV_INODE=$(netns_inode "$SRV")
ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-cli type veth peer name eth0 netns "$CLI"
ip -n "$INET" link add to-cli2 type veth peer name eth0 netns "$CLI2"
for a in 203.0.113.1 203.0.113.5 203.0.113.66 203.0.113.67 203.0.113.68; do
	ip -n "$INET" addr add "$a/24" dev to-srv
done
ip -n "$INET" addr add 2001:db8:1::1/64 dev to-srv nodad
ip -n "$INET" addr add 2001:db8:1::66/64 dev to-srv nodad
ip -n "$INET" addr add 198.51.100.1/24 dev to-cli
ip -n "$INET" addr add 192.0.2.1/24 dev to-cli2
for l in to-srv to-cli to-cli2; do ip -n "$INET" link set "$l" up; done
inet sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$SRV" link set eth0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$SRV" -6 route add default via 2001:db8:1::1
ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
ip -n "$CLI" link set eth0 up
ip -n "$CLI" route add default via 198.51.100.1
ip -n "$CLI2" addr add 192.0.2.2/24 dev eth0
ip -n "$CLI2" link set eth0 up
ip -n "$CLI2" route add default via 192.0.2.1
ping_until "$CLI" 203.0.113.2 5 || { echo "topology broken: cli cannot reach srv" >&2; exit 1; }
ping_until "$INET" 2001:db8:1::2 5 || { echo "topology broken: inet cannot reach srv (v6)" >&2; exit 1; }
SRV_MAC=$(ip -n "$SRV" -br link show eth0 | awk '{print $3}')

SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
CLI2_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
CLI2_PUB=$(wg pubkey <<<"$CLI2_KEY")
# server_conf ADDRESS TABLE PEER_ALLOWED_IPS: srv's config, PostUp/PreDown the hook.
server_conf() {
	(
		umask 077
		cat >"$SRV_CONF" <<-EOF
			[Interface]
			Address = $1
			ListenPort = $WG_PORT
			PrivateKey = $SRV_KEY
			Table = $2
			PostUp = $BIN up %i --config $SRV_CONF --backend $BACKEND
			PreDown = $BIN down %i

			[Peer]
			PublicKey = $CLI_PUB
			AllowedIPs = $3

			[Peer]
			PublicKey = $CLI2_PUB
			AllowedIPs = 10.66.0.3/32
		EOF
	)
}
client_conf() { # FILE KEY ADDRESS
	(
		umask 077
		cat >"$1" <<-EOF
			[Interface]
			Address = $3
			PrivateKey = $2

			[Peer]
			PublicKey = $SRV_PUB
			Endpoint = 203.0.113.2:$WG_PORT
			AllowedIPs = 10.66.0.0/24
			PersistentKeepalive = 1
		EOF
	)
}
server_conf "10.66.0.1/24" auto "10.66.0.2/32"
client_conf "$CLI_CONF" "$CLI_KEY" 10.66.0.2/32
client_conf "$CLI2_CONF" "$CLI2_KEY" 10.66.0.3/32

bg "$SRV" "$E2E_TMP/srv-22.log" socat TCP6-LISTEN:22,ipv6only=0,reuseaddr,fork 'SYSTEM:echo ok'
wait_tcp_listen "$SRV" 22 || { echo "srv listener on 22 did not start" >&2; exit 1; }
srv_up() { assert_ok "wg-quick up $SRV_IF (srv, the hook in PostUp) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_CONF"; }
srv_down() { assert_ok "wg-quick down $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$SRV_CONF"; }

# ---------------------------------------------------------------------------------------------
step "phase 1: other tools' denies hold (fail2ban, an admin's rule), whoever came first"
assert_ok "fail2ban starts in srv" "$F2B" start "$SRV"
F2B_RUNNING=1
# The jail with fail2ban's iptables action (its nftables one would hold anyway: a drop in any
# nftables table is final).
assert_ok "fail2ban bans 203.0.113.66 before up" "$F2B" ban "$SRV" 203.0.113.66 sshd-iptables
assert_ok "fail2ban bans 2001:db8:1::66 before up" "$F2B" ban "$SRV" 2001:db8:1::66 sshd-iptables
expect "control: the ban holds without the hook (203.0.113.66 -> :22 refused)" refused "$INET" 203.0.113.66 203.0.113.2 22
srv_up
expect "SSH from 203.0.113.1 connects (the hook allows SSH)" open "$INET" 203.0.113.1 203.0.113.2 22
expect "fail2ban's ban from before up still holds (203.0.113.66 -> :22)" refused "$INET" 203.0.113.66 203.0.113.2 22
expect "fail2ban's IPv6 ban from before up still holds" refused "$INET" 2001:db8:1::66 '[2001:db8:1::2]' 22
expect "SSH from [2001:db8:1::1] connects" open "$INET" 2001:db8:1::1 '[2001:db8:1::2]' 22
assert_ok "fail2ban bans 203.0.113.67 after up" "$F2B" ban "$SRV" 203.0.113.67 sshd-iptables
expect "the ban made after up holds (203.0.113.67 -> :22)" refused "$INET" 203.0.113.67 203.0.113.2 22
srv "$IPT" -A INPUT -s 203.0.113.68/32 -p tcp --dport 22 -j DROP
expect "an admin's deny appended to filter INPUT after up holds (203.0.113.68)" timeout "$INET" 203.0.113.68 203.0.113.2 22
assert_ok "check sees no drift with fail2ban's jump first in INPUT" timeout 30 ip netns exec "$SRV" "$BIN" check "$SRV_IF"
assert_ok "check --repair exits 0" timeout 30 ip netns exec "$SRV" "$BIN" check "$SRV_IF" --repair
expect "after check --repair the bans still hold (203.0.113.66)" refused "$INET" 203.0.113.66 203.0.113.2 22
expect "after check --repair the admin's deny still holds (203.0.113.68)" timeout "$INET" 203.0.113.68 203.0.113.2 22
assert_ok "up --rollback 2 (never confirmed) exits 0" timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --config "$SRV_CONF" --backend "$BACKEND" --rollback 2
sleep 4
expect "after the rollback the bans still hold (203.0.113.67)" refused "$INET" 203.0.113.67 203.0.113.2 22
expect "after the rollback SSH from 203.0.113.1 still connects" open "$INET" 203.0.113.1 203.0.113.2 22
expect "the hook's own default deny still drops what nothing allowed (tcp/8081)" timeout "$INET" 203.0.113.1 203.0.113.2 8081
srv "$IPT" -D INPUT -s 203.0.113.68/32 -p tcp --dport 22 -j DROP
assert_ok "fail2ban stops (removes its own rules)" "$F2B" stop "$SRV"
F2B_RUNNING=0
expect "with fail2ban gone, 203.0.113.66 connects" open "$INET" 203.0.113.66 203.0.113.2 22

step "phase 1b: a peer's packet for 127.0.0.1 is never accepted (route_localnet on)"
assert_ok "wg-quick up (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
ping_until "$CLI" 10.66.0.1 10 || fail "cli reaches srv through the tunnel"
srv sysctl -q -w "net.ipv4.conf.$SRV_IF.route_localnet=1" net.ipv4.conf.all.route_localnet=1
bg "$SRV" "$E2E_TMP/lo-7777.log" socat -u UDP4-RECVFROM:7777,bind=127.0.0.1,fork OPEN:/dev/stdout
bg "$SRV" "$E2E_TMP/wg-7778.log" socat -u UDP4-RECVFROM:7778,bind=10.66.0.1,fork OPEN:/dev/stdout
sleep 0.5
# The client's cryptokey routing must send 127.0.0.0/8 to srv; its routes are not needed, the
# packet goes straight into its WireGuard interface.
ip netns exec "$CLI" wg set "$CLI_IF" peer "$SRV_PUB" allowed-ips 10.66.0.0/24,127.0.0.0/8
in_ns "$CLI" python3 "$RAWSEND" "$CLI_IF" --src 10.66.0.2 --dst 10.66.0.1 --dport 7778 >/dev/null
in_ns "$CLI" python3 "$RAWSEND" "$CLI_IF" --src 10.66.0.2 --dst 127.0.0.1 --dport 7777 --count 3 >/dev/null
sleep 1
assert_match "control: the raw packet to 10.66.0.1:7778 arrived through the tunnel" 'wgfw-e2e' "$(cat "$E2E_TMP/wg-7778.log")"
assert_eq "nothing from the tunnel reached the service on 127.0.0.1:7777" "" "$(cat "$E2E_TMP/lo-7777.log")"
srv sysctl -q -w "net.ipv4.conf.$SRV_IF.route_localnet=0" net.ipv4.conf.all.route_localnet=0

# ---------------------------------------------------------------------------------------------
step "phase 2: a flood of spoofed sources never locks everyone out"
FLOOD=80000
run_capture in_ns "$INET" python3 "$RAWSEND" to-srv --mac "$SRV_MAC" --dst 203.0.113.2 --dport "$WG_PORT" --flood-from 100.64.0.1 --count "$FLOOD"
info "WireGuard port: $RUN_OUT from $FLOOD distinct spoofed sources"
assert_ok "wg-quick up (cli2, a new peer from a new address, right after the flood) exits 0" \
	timeout 60 ip netns exec "$CLI2" wg-quick up "$CLI2_CONF"
if ping_until "$CLI2" 10.66.0.1 8; then pass "the new peer's handshake got through right after the flood"
else fail "the new peer's handshake got through right after the flood" "$(ip netns exec "$CLI2" wg show 2>&1)"; fi
run_capture in_ns "$INET" python3 "$RAWSEND" to-srv --mac "$SRV_MAC" --proto tcp --dst 203.0.113.2 --dport 22 --flood-from 100.96.0.1 --count "$FLOOD"
info "SSH port: $RUN_OUT SYNs from $FLOOD distinct spoofed sources"
expect "a new SSH client (203.0.113.5) connects right after the flood" open "$INET" 203.0.113.5 203.0.113.2 22
timeout 60 ip netns exec "$CLI2" wg-quick down "$CLI2_CONF" >/dev/null 2>&1 || true
timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || true
srv_down

# ---------------------------------------------------------------------------------------------
step "phase 3: a split default route in a peer's AllowedIPs does not cut srv off"
server_conf "10.66.0.1/32" off "10.66.0.2/32, 0.0.0.0/1, 128.0.0.0/1"
run_capture timeout 30 ip netns exec "$SRV" "$BIN" plan "$SRV_IF" --config "$SRV_CONF" --backend "$BACKEND"
assert_match "plan says the split default route is not anti-spoofed" 'tunnel network 0\.0\.0\.0/0 is larger than a /8' "$RUN_OUT"
srv_up
expect "SSH from the internet (203.0.113.1) still connects" open "$INET" 203.0.113.1 203.0.113.2 22
srv_down

step "phase 3b: the lockout guard sees an anti-spoofing drop that would hit the SSH client"
server_conf "10.66.0.1/32" off "10.66.0.2/32, 203.0.113.0/24"
# An established SSH session from 203.0.113.1, through eth0, kept open (SSH on 2222 here: the
# listener on 22 answers and hangs up).
bg "$SRV" "$E2E_TMP/srv-2222.log" socat TCP4-LISTEN:2222,reuseaddr,fork 'SYSTEM:sleep 50'
wait_tcp_listen "$SRV" 2222 || { echo "srv listener on 2222 did not start" >&2; exit 1; }
bg "$INET" "$E2E_TMP/ssh-session.log" socat -T60 "TCP:203.0.113.2:2222,bind=203.0.113.1" SYSTEM:'sleep 50'
SESSION=$BG_PID
wait_for 5 bash -c "ip netns exec '$SRV' ss -Htn state established '( sport = :2222 )' | grep -q 203.0.113.1" ||
	info "the SSH-like session did not show as established"
# `up` wants the interface to exist; any link of that name will do for a refusal.
ip -n "$SRV" link add "$SRV_IF" type veth peer name "x$SRV_IF"
run_capture timeout 30 ip netns exec "$SRV" "$BIN" up "$SRV_IF" --config "$SRV_CONF" --backend "$BACKEND" --ssh-port 2222
assert_eq "up refuses the plan (exit 2)" 2 "$RUN_RC"
assert_match "and says which client and why" 'lock out the SSH client 203\.0\.113\.1 \(it is in the tunnel network 203\.0\.113\.0/24' "$RUN_OUT"
bg_stop "$SESSION"
assert_eq "nothing of the hook's is left after the refusal" "" \
	"$( { save_rules "$SRV" "$VARIANT" 4; save_nft "$SRV"; } | grep -E 'WGFW|wgfw' || true)"

summary
