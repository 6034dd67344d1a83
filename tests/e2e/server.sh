#!/usr/bin/env bash
# End-to-end test of wgfw-hook in the server role, with real packets, in network namespaces.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/server.sh iptables-nft|iptables-legacy|nft
#
# Topology (three namespaces, "$E2E_PREFIX-{inet,srv,cli}", deleted on exit):
#
#                          ┌──────────────────────────────────────┐
#                          │ inet: the "internet" (router, v4+v6  │
#                          │ forwarding) and its services on lo:  │
#                          │   192.0.2.1/32  2001:db8:ff::1/128   │
#                          │   tcp/8080 answers the peer address  │
#                          └──────┬─────────────────────────┬─────┘
#               to-srv 203.0.113.1/24                  to-cli 198.51.100.1/24
#                      2001:db8:1::1/64                       2001:db8:2::1/64
#                  (route fd66::/64 via srv)                  │
#                                 │                           │
#                eth0 203.0.113.2/24                     eth0 198.51.100.2/24
#                     2001:db8:1::2/64                        2001:db8:2::2/64
#   ┌─────────────────────────────┴────┐       ┌──────────────┴───────────────────────┐
#   │ srv: the WireGuard server        │       │ cli: a WireGuard peer (no hook)      │
#   │ wg0 10.66.0.1/24 fd66::1/64      │◄═════►│ wgcNNN 10.66.0.2/32 fd66::2/128      │
#   │ udp/51820, MTU 1420 (default)    │  wg   │ MTU 1500, AllowedIPs: tunnel nets,   │
#   │ PostUp = wgfw-hook up %i         │       │ 192.0.2.0/24, 2001:db8:ff::/64       │
#   │   --backend B --allow tcp/8443   │       │ tcp/8082 listener (must stay closed  │
#   │ PreDown = wgfw-hook down %i      │       │ to new connections from the WAN)     │
#   │ listeners: tcp/22 8081 8443      │       └──────────────────────────────────────┘
#   │ foreign rules of its own         │
#   └──────────────────────────────────┘
#
# Backend nft (the hook's native nftables backend, one table inet wgfw): srv's foreign rules are
# the same iptables-nft rules plus native nft tables of the test's own (inet foreign, ip
# foreign_nat). The hook's rules carry no counters, so where the iptables variants read the
# hook's rule counters, the nft variant measures around the hook instead: counters in the test's
# own chains just before and just after the hook's base chain (what got through), `nft monitor
# trace` (which of the hook's rules a packet hit), and the per-source limit sets' elements.
#
# srv's wg-quick config lives in /etc/netns/<srv>/wireguard/wg0.conf, which `ip netns exec` binds
# onto /etc/wireguard, so the hook finds it at its default path. The client is brought up from a
# file path; its interface has a unique name because wireguard-go's control socket
# (/var/run/wireguard/<if>.sock) is shared between namespaces.

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
# VARIANT: the iptables variant of the foreign iptables rules (nft for the nft backend, too);
# NATIVE=1: the hook's own rules are in the native nft table inet wgfw.
parse_backend "$BACKEND"

require_e2e "iptables-$VARIANT" "ip6tables-$VARIANT" tcpdump
require_free_ifaces wg0

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

IPT=iptables-$VARIANT
IP6T=ip6tables-$VARIANT
INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
CLI=$E2E_PREFIX-cli
CLI_IF=wgc$$
CLI_CONF=$E2E_TMP/$CLI_IF.conf
HOOK_OPTS=(--backend "$BACKEND" --allow tcp/8443)
WG_PORT=51820

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }
inet() { ip netns exec "$INET" "$@"; }

echo "wgfw-hook e2e, server role, backend $BACKEND"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $CLI"

# If the test dies with the hook's rules installed, let the hook clean up its state for our
# namespace (the namespaces themselves go anyway), then remove what it left under /run/wgfw.
SRV_INODE=
# srv_state_dirs: the hook's state directories for srv's namespace: the entries of /run/wgfw
# named by the namespace's inode and cookie (/run/wgfw/netns-INODE.COOKIE).
srv_state_dirs() { hook_state_dirs "$SRV_INODE"; }
cleanup_hook_state() {
	local dirs
	dirs=$(srv_state_dirs)
	[[ -n $dirs ]] || return 0
	timeout 30 ip netns exec "$SRV" "$BIN" down wg0
	rm -rf -- $dirs
}
E2E_CLEANUP_HOOKS+=(cleanup_hook_state)

# ---------------------------------------------------------------------------------------------
step "topology: namespaces, veths, addresses, routes"
ns_add "$INET"
ns_add "$SRV"
ns_add "$CLI"
SRV_INODE=$(netns_inode "$SRV")
stale=$(srv_state_dirs)
[[ -z $stale ]] || info "note: /run/wgfw already holds state for this namespace inode (an earlier run's?): $stale"
ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-cli type veth peer name eth0 netns "$CLI"

ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
ip -n "$INET" addr add 2001:db8:1::1/64 dev to-srv nodad
ip -n "$INET" addr add 198.51.100.1/24 dev to-cli
ip -n "$INET" addr add 2001:db8:2::1/64 dev to-cli nodad
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" addr add 2001:db8:ff::1/128 dev lo nodad
ip -n "$INET" link set to-srv up
ip -n "$INET" link set to-cli up
inet sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The tunnel's IPv6 network is routed, not masqueraded: the internet knows the way back. The
# IPv4 route exists only so that "WAN -> tunnel" probes reach srv at all.
ip -n "$INET" route add fd66::/64 via 2001:db8:1::2
ip -n "$INET" route add 10.66.0.0/24 via 203.0.113.2

ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$SRV" link set eth0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$SRV" -6 route add default via 2001:db8:1::1

ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
ip -n "$CLI" addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n "$CLI" link set eth0 up
ip -n "$CLI" route add default via 198.51.100.1
ip -n "$CLI" -6 route add default via 2001:db8:2::1

ping_until "$CLI" 203.0.113.2 5 || { echo "topology broken: cli cannot reach srv (v4)" >&2; exit 1; }
ping_until "$CLI" 2001:db8:1::2 5 || { echo "topology broken: cli cannot reach srv (v6)" >&2; exit 1; }
info "cli reaches srv over inet (v4 and v6)"

# ---------------------------------------------------------------------------------------------
step "wg-quick configs (server: /etc/netns/$SRV/wireguard/wg0.conf, client: $CLI_CONF)"
SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
mkdir -p "/etc/netns/$SRV/wireguard"
chmod 700 "/etc/netns/$SRV/wireguard"
(
	umask 077
	cat >"/etc/netns/$SRV/wireguard/wg0.conf" <<-EOF
		[Interface]
		Address = 10.66.0.1/24, fd66::1/64
		ListenPort = $WG_PORT
		PrivateKey = $SRV_KEY
		PostUp = $BIN up %i ${HOOK_OPTS[*]}
		PreDown = $BIN down %i

		[Peer]
		PublicKey = $CLI_PUB
		AllowedIPs = 10.66.0.2/32, fd66::2/128
	EOF
	cat >"$CLI_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.2/32, fd66::2/128
		PrivateKey = $CLI_KEY
		MTU = 1500

		[Peer]
		PublicKey = $SRV_PUB
		Endpoint = 203.0.113.2:$WG_PORT
		AllowedIPs = 10.66.0.0/24, fd66::/64, 192.0.2.0/24, 2001:db8:ff::/64
	EOF
)
chmod 600 "/etc/netns/$SRV/wireguard/wg0.conf" "$CLI_CONF"
srv test -f /etc/wireguard/wg0.conf || { echo "ip netns exec did not bind /etc/netns/$SRV/wireguard" >&2; exit 1; }
info "PostUp  = $BIN up %i ${HOOK_OPTS[*]}"
info "PreDown = $BIN down %i"

# ---------------------------------------------------------------------------------------------
step "foreign rules in srv ($IPT, $IP6T): must survive up and down untouched"
if [[ $VARIANT == legacy ]]; then
	# Legacy tables appear when first used and can never be removed again; touch all of them now
	# so that the before/after comparison does not count them as the hook's residue.
	for t in filter nat mangle raw; do
		srv "$IPT" -t "$t" -S >/dev/null
		srv "$IP6T" -t "$t" -S >/dev/null
	done
fi
srv "$IPT" -N FOREIGN-CHAIN
srv "$IPT" -A FOREIGN-CHAIN -s 192.0.2.99 -m comment --comment foreign-rule -j DROP
srv "$IPT" -A INPUT -p tcp --dport 9999 -m comment --comment foreign-rule -j FOREIGN-CHAIN
srv "$IPT" -A FORWARD -s 198.51.100.99 -m comment --comment foreign-rule -j DROP
srv "$IPT" -t nat -A POSTROUTING -s 172.31.99.0/24 -o eth0 -m comment --comment foreign-rule -j MASQUERADE
srv "$IP6T" -N FOREIGN-CHAIN
srv "$IP6T" -A FOREIGN-CHAIN -s 2001:db8:99::99 -m comment --comment foreign-rule -j DROP
srv "$IP6T" -A INPUT -p tcp --dport 9999 -m comment --comment foreign-rule -j FOREIGN-CHAIN
srv "$IP6T" -A FORWARD -s 2001:db8:99::/64 -m comment --comment foreign-rule -j DROP
srv "$IP6T" -t nat -A POSTROUTING -s 2001:db8:99::/64 -o eth0 -m comment --comment foreign-rule -j MASQUERADE
FOREIGN_V4=$(save_rules "$SRV" "$VARIANT" 4 | grep -E 'foreign-rule|FOREIGN-CHAIN')
FOREIGN_V6=$(save_rules "$SRV" "$VARIANT" 6 | grep -E 'foreign-rule|FOREIGN-CHAIN')
info "$(wc -l <<<"$FOREIGN_V4") IPv4 and $(wc -l <<<"$FOREIGN_V6") IPv6 foreign lines loaded"
FOREIGN_NFT=
# foreign_nft: the test's own native nft tables (backend nft), counters normalised.
foreign_nft() {
	local t
	for t in "inet foreign" "ip foreign_nat"; do
		# shellcheck disable=SC2086
		srv nft list table $t 2>&1 | normalize_nft
	done
}
if ((NATIVE)); then
	# Native nft tables of the test's own, next to the iptables-nft rules above. Besides foreign
	# rules that must survive, they hold the measuring points of the nft variant (the hook's rules
	# have no counters): counters just before and just after the hook's raw prerouting chain
	# (priority raw = -300) and input chain (priority filter = 0), and a trace mark for the
	# uninvited tcp/8081 connections. Priorities: raw -350 < hook raw -300 < -250 < conntrack.
	srv nft -f - <<-'EOF'
		table inet foreign {
			chain prerouting_early {
				type filter hook prerouting priority -350; policy accept;
				tcp dport 8081 meta nftrace set 1 comment "trace-8081"
				ip saddr 10.66.0.99 udp dport 8443 counter comment "spoof4-pre"
				ip6 saddr fd66::99 udp dport 8443 counter comment "spoof6-pre"
			}
			chain prerouting_after_raw {
				type filter hook prerouting priority -250; policy accept;
				ip saddr 10.66.0.99 udp dport 8443 counter comment "spoof4-post"
				ip6 saddr fd66::99 udp dport 8443 counter comment "spoof6-post"
			}
			chain input_early {
				type filter hook input priority -10; policy accept;
				ip saddr 203.0.113.1 udp dport 51820 counter comment "wg4-flood-pre"
			}
			chain input {
				type filter hook input priority 10; policy accept;
				ip saddr 192.0.2.99 counter accept comment "foreign-rule"
				ip6 saddr 2001:db8:99::99 counter accept comment "foreign-rule"
				ip saddr 203.0.113.1 udp dport 51820 counter comment "wg4-flood-post"
			}
			chain forward {
				type filter hook forward priority 10; policy accept;
				ip saddr 198.51.100.98 counter drop comment "foreign-rule"
			}
		}
		table ip foreign_nat {
			chain postrouting {
				type nat hook postrouting priority srcnat + 10; policy accept;
				ip saddr 172.31.98.0/24 oifname "eth0" counter masquerade comment "foreign-rule"
			}
		}
	EOF
	FOREIGN_NFT=$(foreign_nft)
	info "native nft foreign tables loaded: inet foreign ($(grep -c 'chain ' <<<"$FOREIGN_NFT") chains), ip foreign_nat"
fi

# syncookies off beforehand, so that restoring it is actually tested (the hook sets 1).
srv sysctl -q -w net.ipv4.tcp_syncookies=0

step "snapshot BEFORE (rulesets of both iptables variants and nft, sysctls)"
snapshot_rules "$SRV" "$E2E_TMP/rules.before"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.before" eth0
NFT_TABLES_BEFORE=$(srv nft list tables 2>/dev/null | sort)
sed 's/^/    /' "$E2E_TMP/sysctl.before"

# ---------------------------------------------------------------------------------------------
step "listeners: srv tcp/22 8081 8443, inet 192.0.2.1:8080 [2001:db8:ff::1]:8080, cli tcp/8082"
for port in 22 8081 8443; do
	bg "$SRV" "$E2E_TMP/srv-$port.log" socat "TCP6-LISTEN:$port,ipv6only=0,reuseaddr,fork" 'SYSTEM:echo ok'
done
bg "$INET" "$E2E_TMP/inet-8080-4.log" socat TCP4-LISTEN:8080,bind=192.0.2.1,reuseaddr,fork 'SYSTEM:echo $SOCAT_PEERADDR'
bg "$INET" "$E2E_TMP/inet-8080-6.log" socat 'TCP6-LISTEN:8080,bind=[2001:db8:ff::1],reuseaddr,fork' 'SYSTEM:echo $SOCAT_PEERADDR'
bg "$CLI" "$E2E_TMP/cli-8082.log" socat TCP6-LISTEN:8082,ipv6only=0,reuseaddr,fork 'SYSTEM:echo ok'
for port in 22 8081 8443; do wait_tcp_listen "$SRV" "$port" || { echo "srv listener on $port did not start" >&2; exit 1; }; done
wait_tcp_listen "$INET" 8080 || { echo "inet listener did not start" >&2; exit 1; }
wait_tcp_listen "$CLI" 8082 || { echo "cli listener did not start" >&2; exit 1; }

step "control (no hook yet): uninvited connections from the internet reach srv"
assert_tcp "inet -> 203.0.113.2:8081 connects without the hook" open "$INET" 203.0.113.2 8081
assert_tcp "inet -> [2001:db8:1::2]:8081 connects without the hook" open "$INET" '[2001:db8:1::2]' 8081

# ---------------------------------------------------------------------------------------------
step "wg-quick up wg0 in srv (PostUp runs wgfw-hook up)"
assert_ok "wg-quick up wg0 (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up wg0
[[ $RUN_RC -ne 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
SRV_UP=0
if [[ $RUN_RC -eq 0 ]] && srv ip link show wg0 >/dev/null 2>&1; then SRV_UP=1; fi

step "wg-quick up $CLI_CONF in cli (no hook)"
assert_ok "wg-quick up (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
CLI_UP=$((RUN_RC == 0))

if ((SRV_UP && CLI_UP)); then
	# -----------------------------------------------------------------------------------------
	step "the hook's chains and jumps ($BACKEND)"
	if ((NATIVE)); then
		T=$(nft_hook_table "$SRV")
		assert_match "nft: table inet wgfw exists" '^table inet wgfw \{' "$T"
		assert_eq "nft: the hook added exactly one table, inet wgfw" \
			"$(sort <<<"$NFT_TABLES_BEFORE"$'\n'"table inet wgfw" | sed '/^$/d')" "$(srv nft list tables | sort)"
		for c in WGFW-INPUT WGFW-wg0-IN WGFW-wg0-FWD WGFW-wg0-DROP WGFW-wg0-MSS WGFW-wg0-NAT WGFW-wg0-PRE; do
			assert_match "IPv4 chain $c-v4 exists (inet wgfw)" "^[[:space:]]*chain $c-v4 \\{" "$T"
		done
		for c in WGFW-INPUT WGFW-wg0-IN WGFW-wg0-FWD WGFW-wg0-DROP WGFW-wg0-MSS WGFW-wg0-NAT WGFW-wg0-PRE; do
			assert_match "IPv6 chain $c-v6 exists (inet wgfw)" "^[[:space:]]*chain $c-v6 \\{" "$T"
		done
		v6rules=$(for c in $(sed -nE 's/^[[:space:]]*chain ([^ ]+-v6) \{$/\1/p' <<<"$T") postrouting_nat; do
			nft_chain_rules "$SRV" "$c"
		done)
		assert_eq "IPv6: the one masquerade is of the unique-local tunnel out of the WAN (the -v6 chains)" \
			'ip6 saddr fd66::/64 oifname "eth0" masquerade' "$(grep masquerade <<<"$v6rules" || true)"
		# base chain: expected hook line, then the first rule per family
		for spec in "input|filter hook input priority filter|WGFW-INPUT" \
			"forward|filter hook forward priority filter|WGFW-wg0-FWD" \
			"forward_mangle|filter hook forward priority mangle|WGFW-wg0-MSS" \
			"prerouting_raw|filter hook prerouting priority raw|WGFW-wg0-PRE" \
			"postrouting_nat|nat hook postrouting priority srcnat|WGFW-wg0-NAT"; do
			IFS='|' read -r base hook target <<<"$spec"
			assert_match "nft base chain $base: type $hook" "^type $hook;" "$(nft_chain_hook "$SRV" "$base")"
			for f in 4 6; do
				[[ $base == postrouting_nat && $f == 6 ]] && continue
				assert_match "nft $base: first IPv$f rule jumps to $target-v$f" "(^| )jump $target-v$f\$" \
					"$(nft_first_rule_for "$SRV" "$base" $f)"
			done
		done
		assert_eq "IPv4 foreign rules (iptables-nft) still present while up" "$FOREIGN_V4" \
			"$(save_rules "$SRV" nft 4 | grep -E 'foreign-rule|FOREIGN-CHAIN' || true)"
		assert_eq "IPv6 foreign rules (ip6tables-nft) still present while up" "$FOREIGN_V6" \
			"$(save_rules "$SRV" nft 6 | grep -E 'foreign-rule|FOREIGN-CHAIN' || true)"
		assert_eq "native nft foreign tables unchanged while up" "$FOREIGN_NFT" "$(foreign_nft)"
		assert_no_match "nothing of the hook's in iptables-nft-save or iptables-legacy-save (v4, v6)" 'WGFW|wgfw' \
			"$(for v in nft legacy; do save_rules "$SRV" "$v" 4; save_rules "$SRV" "$v" 6; done)"
	else
	V4=$(save_rules "$SRV" "$VARIANT" 4)
	V6=$(save_rules "$SRV" "$VARIANT" 6)
	for c in WGFW-INPUT WGFW-wg0-IN WGFW-wg0-FWD WGFW-wg0-DROP WGFW-wg0-MSS WGFW-wg0-NAT WGFW-wg0-PRE; do
		assert_match "IPv4 chain $c exists" "^:$c " "$V4"
	done
	for c in WGFW-INPUT WGFW-wg0-IN WGFW-wg0-FWD WGFW-wg0-DROP WGFW-wg0-MSS WGFW-wg0-NAT WGFW-wg0-PRE; do
		assert_match "IPv6 chain $c exists" "^:$c " "$V6"
	done
	assert_eq "IPv6: the one MASQUERADE is of the unique-local tunnel out of the WAN" \
		'-A WGFW-wg0-NAT -s fd66::/64 -o eth0 -j MASQUERADE' "$(grep -E '^-A WGFW.*MASQUERADE' <<<"$V6" || true)"
	for f in 4 6; do
		# Host input is judged in mangle, before filter: other tools' denies in filter INPUT hold.
		assert_match "IPv$f mangle INPUT: first rule jumps to WGFW-INPUT" '^-A INPUT (.* )?-j WGFW-INPUT( |$)' \
			"$(chain_rules "$SRV" "$VARIANT" $f mangle INPUT | head -n 1)"
		assert_no_match "IPv$f filter INPUT: nothing of the hook's (no other manager's deny there)" 'WGFW|wgfw' \
			"$(chain_rules "$SRV" "$VARIANT" $f filter INPUT)"
		assert_match "IPv$f filter FORWARD: first rule jumps to WGFW-wg0-FWD" '^-A FORWARD (.* )?-j WGFW-wg0-FWD( |$)' \
			"$(chain_rules "$SRV" "$VARIANT" $f filter FORWARD | head -n 1)"
		assert_match "IPv$f mangle FORWARD: first rule jumps to WGFW-wg0-MSS" '^-A FORWARD (.* )?-j WGFW-wg0-MSS( |$)' \
			"$(chain_rules "$SRV" "$VARIANT" $f mangle FORWARD | head -n 1)"
		assert_match "IPv$f raw PREROUTING: first rule jumps to WGFW-wg0-PRE" '^-A PREROUTING (.* )?-j WGFW-wg0-PRE( |$)' \
			"$(chain_rules "$SRV" "$VARIANT" $f raw PREROUTING | head -n 1)"
	done
	assert_match "IPv4 nat POSTROUTING: first rule jumps to WGFW-wg0-NAT" '^-A POSTROUTING (.* )?-j WGFW-wg0-NAT( |$)' \
		"$(chain_rules "$SRV" "$VARIANT" 4 nat POSTROUTING | head -n 1)"
	assert_eq "IPv4 foreign rules still present while up" "$FOREIGN_V4" "$(grep -E 'foreign-rule|FOREIGN-CHAIN' <<<"$V4" || true)"
	assert_eq "IPv6 foreign rules still present while up" "$FOREIGN_V6" "$(grep -E 'foreign-rule|FOREIGN-CHAIN' <<<"$V6" || true)"
	other=legacy
	[[ $VARIANT == legacy ]] && other=nft
	assert_no_match "nothing of the hook's in iptables-$other (the other backend)" 'WGFW' \
		"$(save_rules "$SRV" "$other" 4; save_rules "$SRV" "$other" 6)"
	fi

	step "state under /run/wgfw for srv's namespace (netns inode $SRV_INODE)"
	state=$(srv_state_dirs)
	if [[ -n $state && -d $state ]]; then
		pass "state directory $state exists"
		bad=$(find "$state" \( -type d ! -perm 700 \) -o \( -type f ! -perm 600 \) -printf '%m %p\n')
		assert_eq "state directories are 0700 and files 0600" "" "$bad"
	else
		fail "state directory exists" "expected: one directory /run/wgfw/*$SRV_INODE (netns inode of $SRV)" \
			"got:      $state" "$(ls -la /run/wgfw 2>&1)"
	fi

	step "sysctls in srv while up"
	expect_sysctl() {
		local got
		got=$(srv sysctl -n "$1" 2>&1) || true
		assert_eq "$1" "$2" "$got"
	}
	expect_sysctl net.ipv4.ip_forward 1
	expect_sysctl net.ipv6.conf.all.forwarding 1
	expect_sysctl net.ipv4.tcp_syncookies 1
	for c in all default eth0 wg0; do
		expect_sysctl "net.ipv4.conf.$c.rp_filter" 1
		expect_sysctl "net.ipv4.conf.$c.accept_redirects" 0
		expect_sysctl "net.ipv4.conf.$c.send_redirects" 0
	done

	# -----------------------------------------------------------------------------------------
	step "tunnel: handshake and ping"
	if ping_until "$CLI" 10.66.0.1 10; then pass "cli pings 10.66.0.1 through the tunnel"; else
		fail "cli pings 10.66.0.1 through the tunnel" "ping -c1 -W1 10.66.0.1 failed 10 times" "$(srv wg show wg0 2>&1)"
	fi
	if ping_until "$CLI" fd66::1 10; then pass "cli pings fd66::1 through the tunnel"; else
		fail "cli pings fd66::1 through the tunnel" "ping -c1 -W1 fd66::1 failed 10 times" "$(srv wg show wg0 2>&1)"
	fi

	# -----------------------------------------------------------------------------------------
	step "IPv4 to the internet through the tunnel: masqueraded, MSS clamped both ways"
	capture_start "$INET" to-srv 'tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0'
	cap_wan_pid=$CAP_PID cap_wan_log=$CAP_LOG
	capture_start "$CLI" "$CLI_IF" 'tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0'
	cap_syn_pid=$CAP_PID cap_syn_log=$CAP_LOG
	capture_start "$CLI" "$CLI_IF" 'tcp src port 8080 and tcp[tcpflags] & tcp-syn != 0'
	cap_ack_pid=$CAP_PID cap_ack_log=$CAP_LOG
	tcp_probe "$CLI" 192.0.2.1 8080
	assert_eq "cli -> 192.0.2.1:8080 connects" open "$PROBE"
	assert_eq "192.0.2.1 sees the connection from srv's WAN address (MASQUERADE)" 203.0.113.2 "$PROBE_OUT"
	capture_wait "$cap_syn_pid" "$cap_wan_pid" "$cap_ack_pid"
	syn=$(capture_line "$cap_syn_log")
	wan=$(capture_line "$cap_wan_log")
	ack=$(capture_line "$cap_ack_log")
	info "cli wg SYN:     ${syn:-<none>}"
	info "inet SYN:       ${wan:-<none>}"
	info "cli wg SYN-ACK: ${ack:-<none>}"
	assert_eq "precondition: cli's own SYN carries mss 1460 (its MTU is 1500)" 1460 "$(mss_of "$syn")"
	assert_eq "SYN leaving srv to the internet is clamped to mss 1380 (MTU 1420 - 40)" 1380 "$(mss_of "$wan")"
	assert_le "SYN-ACK arriving at cli through the tunnel has mss <= 1380" 1380 "$(mss_of "$ack")"

	step "IPv6 to the internet through the tunnel: masqueraded (a unique-local tunnel), MSS clamped both ways"
	capture_start "$INET" to-srv 'ip6 and tcp dst port 8080'
	cap_wan_pid=$CAP_PID cap_wan_log=$CAP_LOG
	capture_start "$CLI" "$CLI_IF" 'ip6 and tcp dst port 8080'
	cap_syn_pid=$CAP_PID cap_syn_log=$CAP_LOG
	capture_start "$CLI" "$CLI_IF" 'ip6 and tcp src port 8080'
	cap_ack_pid=$CAP_PID cap_ack_log=$CAP_LOG
	tcp_probe "$CLI" '[2001:db8:ff::1]' 8080
	assert_eq "cli -> [2001:db8:ff::1]:8080 connects" open "$PROBE"
	assert_eq "2001:db8:ff::1 sees srv's WAN address 2001:db8:1::2 (a unique-local tunnel is masqueraded)" \
		"$(v6peer 2001:db8:1::2)" "$PROBE_OUT"
	capture_wait "$cap_syn_pid" "$cap_wan_pid" "$cap_ack_pid"
	syn=$(capture_line "$cap_syn_log")
	wan=$(capture_line "$cap_wan_log")
	ack=$(capture_line "$cap_ack_log")
	info "cli wg SYN:     ${syn:-<none>}"
	info "inet SYN:       ${wan:-<none>}"
	info "cli wg SYN-ACK: ${ack:-<none>}"
	assert_eq "precondition: cli's own IPv6 SYN carries mss 1440" 1440 "$(mss_of "$syn")"
	assert_eq "IPv6 SYN leaving srv is clamped to mss 1360 (MTU 1420 - 60)" 1360 "$(mss_of "$wan")"
	assert_le "IPv6 SYN-ACK arriving at cli has mss <= 1360" 1360 "$(mss_of "$ack")"

	# -----------------------------------------------------------------------------------------
	step "host input: uninvited connections dropped (and logged), --allow tcp/8443 open"
	if ((NATIVE)); then
		# No counters on the hook's rules: `nft monitor trace` shows which of them the SYNs hit
		# (the test's own prerouting chain marks tcp/8081 for tracing).
		nft_trace_start "$SRV"
		assert_tcp "inet -> 203.0.113.2:8081 (not allowed) times out" timeout "$INET" 203.0.113.2 8081 2
		nft_trace_stop
		assert_match "IPv4: the hook's log rule saw the dropped connection (nft trace)" \
			'inet wgfw WGFW-[^ ]+-v4 rule .*log prefix "wgfw-[^"]*" \(verdict continue\)' "$TRACE"
		assert_match "IPv4: the hook dropped it (nft trace: verdict drop in a -v4 chain of inet wgfw)" \
			'inet wgfw WGFW-[^ ]+-v4 rule .*\(verdict drop\)' "$TRACE"
		nft_trace_start "$SRV"
		assert_tcp "inet -> [2001:db8:1::2]:8081 (not allowed) times out" timeout "$INET" '[2001:db8:1::2]' 8081 2
		nft_trace_stop
		assert_match "IPv6: the hook's log rule saw the dropped connection (nft trace)" \
			'inet wgfw WGFW-[^ ]+-v6 rule .*log prefix "wgfw-[^"]*" \(verdict continue\)' "$TRACE"
		assert_match "IPv6: the hook dropped it (nft trace: verdict drop in a -v6 chain of inet wgfw)" \
			'inet wgfw WGFW-[^ ]+-v6 rule .*\(verdict drop\)' "$TRACE"
	else
	log4=$({ counted_rules "$SRV" "$VARIANT" 4 filter; counted_rules "$SRV" "$VARIANT" 4 mangle; } | sum_packets '^\[[0-9:]+\] -A WGFW.* -j LOG')
	assert_tcp "inet -> 203.0.113.2:8081 (not allowed) times out" timeout "$INET" 203.0.113.2 8081 2
	log4b=$({ counted_rules "$SRV" "$VARIANT" 4 filter; counted_rules "$SRV" "$VARIANT" 4 mangle; } | sum_packets '^\[[0-9:]+\] -A WGFW.* -j LOG')
	assert_ge "IPv4 LOG rule packet counters rose after the dropped connection" $((log4 + 1)) "$log4b"
	log6=$({ counted_rules "$SRV" "$VARIANT" 6 filter; counted_rules "$SRV" "$VARIANT" 6 mangle; } | sum_packets '^\[[0-9:]+\] -A WGFW.* -j LOG')
	assert_tcp "inet -> [2001:db8:1::2]:8081 (not allowed) times out" timeout "$INET" '[2001:db8:1::2]' 8081 2
	log6b=$({ counted_rules "$SRV" "$VARIANT" 6 filter; counted_rules "$SRV" "$VARIANT" 6 mangle; } | sum_packets '^\[[0-9:]+\] -A WGFW.* -j LOG')
	assert_ge "IPv6 LOG rule packet counters rose after the dropped connection" $((log6 + 1)) "$log6b"
	fi
	assert_tcp "inet -> 203.0.113.2:8443 (--allow tcp/8443) connects" open "$INET" 203.0.113.2 8443
	assert_tcp "inet -> [2001:db8:1::2]:8443 (--allow tcp/8443) connects" open "$INET" '[2001:db8:1::2]' 8443
	assert_tcp "cli -> 10.66.0.1:8081 through the tunnel connects (tunnel traffic accepted)" open "$CLI" 10.66.0.1 8081
	assert_tcp "cli -> [fd66::1]:8081 through the tunnel connects" open "$CLI" '[fd66::1]' 8081

	step "forwarding: WAN -> tunnel only established (new connections to a peer dropped)"
	assert_tcp "control: srv itself -> 10.66.0.2:8082 connects (the listener works)" open "$SRV" 10.66.0.2 8082
	assert_tcp "inet -> 10.66.0.2:8082 (new, WAN -> tunnel) times out" timeout "$INET" 10.66.0.2 8082 2
	assert_tcp "inet -> [fd66::2]:8082 (new, WAN -> tunnel) times out" timeout "$INET" '[fd66::2]' 8082 2

	step "anti-spoofing: tunnel source addresses arriving on eth0 dropped in raw"
	inet ip addr add 10.66.0.99/32 dev lo
	inet ip addr add fd66::99/128 dev lo nodad
	for f in 4 6; do
		if [[ $f == 4 ]]; then src=10.66.0.99 dst=203.0.113.2 addr=UDP4-SENDTO; else src='[fd66::99]' dst='[2001:db8:1::2]' addr=UDP6-SENDTO; fi
		if ((NATIVE)); then
			# The test's own counters just before (-350) and after (-250) the hook's raw chain.
			pre0=$(nft_counter "$SRV" inet foreign "spoof$f-pre")
			post0=$(nft_counter "$SRV" inet foreign "spoof$f-post")
		else
			before=$(counted_rules "$SRV" "$VARIANT" $f raw | sum_packets '^\[[0-9:]+\] -A WGFW.* -j DROP')
		fi
		for i in 1 2 3; do
			echo spoof | timeout 3 ip netns exec "$INET" socat -u - "$addr:$dst:8443,bind=$src" || true
		done
		sleep 0.2
		if ((NATIVE)); then
			pre1=$(nft_counter "$SRV" inet foreign "spoof$f-pre")
			post1=$(nft_counter "$SRV" inet foreign "spoof$f-post")
			assert_ge "IPv$f: the 3 packets from $src arrived on eth0 (counter before priority raw)" $((pre0 + 3)) "$pre1"
			assert_eq "IPv$f: none of them got past the hook's raw chain (counter after priority raw unchanged)" "$post0" "$post1"
		else
			after=$(counted_rules "$SRV" "$VARIANT" $f raw | sum_packets '^\[[0-9:]+\] -A WGFW.* -j DROP')
			assert_ge "IPv$f raw WGFW DROP counters rose by 3 for packets from $src on eth0" $((before + 3)) "$after"
		fi
	done

	# -----------------------------------------------------------------------------------------
	step "SSH brute-force limit: 15 rapid new connections from inet to srv tcp/22 (10/minute, burst 10)"
	ok=0 nok=0 results=
	for i in $(seq 1 15); do
		tcp_probe "$INET" 203.0.113.2 22 1
		results+="$PROBE "
		if [[ $PROBE == open ]]; then ok=$((ok + 1)); else nok=$((nok + 1)); fi
	done
	info "results: $results"
	assert_ge "at least 8 of 15 SSH connections succeed" 8 "$ok"
	assert_ge "at least 3 of 15 SSH connections are dropped" 3 "$nok"
	assert_tcp "another source is not limited: cli -> 203.0.113.2:22 connects" open "$CLI" 203.0.113.2 22
	if ((NATIVE)); then
		set22=$(nft_set_of "$SRV" WGFW-wg0-IN-v4 'tcp dport 22 .*update @')
		assert_match "nft: SSH rule of WGFW-wg0-IN-v4 updates a per-source set" '^wgfw' "$set22"
		assert_match "nft: the per-source SSH set @$set22 has an element for inet (203.0.113.1)" \
			'[{ ,]203\.0\.113\.1[ ,}]' "$(nft_set_text "$SRV" "$set22")"
	fi

	step "WireGuard handshake limit: 20 new UDP flows from inet to srv:$WG_PORT (30/minute, burst 5)"
	if ((NATIVE)); then
		# The test's own counters for inet's flows just before (-10) and after (+10) the hook's
		# input chain (priority filter): accepted = counted after; dropped = before - after.
		pre0=$(nft_counter "$SRV" inet foreign wg4-flood-pre)
		post0=$(nft_counter "$SRV" inet foreign wg4-flood-post)
		for i in $(seq 1 20); do
			echo junk | timeout 3 ip netns exec "$INET" socat -u - "UDP4-SENDTO:203.0.113.2:$WG_PORT,sourceport=$((41000 + i))" || true
		done
		sleep 0.2
		pre1=$(nft_counter "$SRV" inet foreign wg4-flood-pre)
		post1=$(nft_counter "$SRV" inet foreign wg4-flood-post)
		arrived=$((pre1 - pre0)) accepted=$((post1 - post0))
		info "port $WG_PORT: $arrived new flows arrived before the hook's input chain, $accepted got past it"
		assert_ge "all 20 new flows arrived at srv's input (counter before the hook)" 20 "$arrived"
		assert_ge "port $WG_PORT: >= 10 new flows dropped by the hook (arrived - accepted)" 10 $((arrived - accepted))
		assert_le "at most 8 of the 20 new flows accepted" 8 "$accepted"
		setwg=$(nft_set_of "$SRV" WGFW-wg0-IN-v4 "udp dport $WG_PORT .*update @")
		assert_match "nft: WireGuard rule of WGFW-wg0-IN-v4 updates a per-source set" '^wgfw' "$setwg"
		assert_match "nft: the per-source WireGuard set @$setwg has an element for inet (203.0.113.1)" \
			'[{ ,]203\.0\.113\.1[ ,}]' "$(nft_set_text "$SRV" "$setwg")"
	else
	rules4() { counted_rules "$SRV" "$VARIANT" 4 mangle | { grep -E "^\[[0-9:]+\] -A WGFW.*--dport $WG_PORT( |$)" || true; }; }
	info "rules: $(rules4 | sed -E 's/^\[[0-9:]+\] //' | tr '\n' ';')"
	# "dropped": rules for the port whose target is DROP/REJECT or one of the hook's own chains
	# (e.g. a log-and-drop chain); "accepted": its ACCEPT rules.
	notacc='-j (DROP|REJECT|WGFW[^ ]*)( |$)'
	drop0=$(rules4 | sum_packets "$notacc")
	acc0=$(rules4 | sum_packets ' -j ACCEPT')
	for i in $(seq 1 20); do
		echo junk | timeout 3 ip netns exec "$INET" socat -u - "UDP4-SENDTO:203.0.113.2:$WG_PORT,sourceport=$((41000 + i))" || true
	done
	sleep 0.2
	drop1=$(rules4 | sum_packets "$notacc")
	acc1=$(rules4 | sum_packets ' -j ACCEPT')
	info "port $WG_PORT DROP rules: $drop0 -> $drop1 packets, ACCEPT rules: $acc0 -> $acc1 packets"
	assert_ge "port $WG_PORT drop counters rose by >= 10 (excess new flows dropped)" $((drop0 + 10)) "$drop1"
	assert_le "at most 8 of the 20 new flows accepted" 8 $((acc1 - acc0))
	fi
	step "status counts what happened (SSH flood, handshake flood)"
	run_capture timeout 30 ip netns exec "$SRV" "$BIN" status wg0 --json
	info "$RUN_OUT"
	count_of() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$RUN_OUT"; }
	assert_eq "status --json exits 0" 0 "$RUN_RC"
	assert_ge "status: new WireGuard flows over the limit >= 10" 10 "$(count_of 'new WireGuard flows over the limit')"
	assert_ge "status: new WireGuard flows accepted >= 1" 1 "$(count_of 'new WireGuard flows accepted')"
	assert_ge "status: SSH connections blocked >= 3" 3 "$(count_of 'SSH connections blocked')"
	assert_ge "status: SSH connections accepted >= 8" 8 "$(count_of 'SSH connections accepted')"
	assert_ge "status: packets dropped >= 13" 13 "$(count_of 'packets dropped')"
	assert_ge "status: connections forwarded out >= 1" 1 "$(count_of 'connections forwarded out')"
	if ping_until "$CLI" 10.66.0.1 3; then pass "the real peer still gets through after the flood"; else
		fail "the real peer still gets through after the flood" "ping 10.66.0.1 from cli failed"
	fi

	# -----------------------------------------------------------------------------------------
	step "up twice equals up once (rules and sysctls unchanged by a second up)"
	snapshot_rules "$SRV" "$E2E_TMP/rules.up1"
	snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.up1" eth0
	assert_ok "second 'wgfw-hook up wg0 ${HOOK_OPTS[*]}' exits 0" timeout 60 ip netns exec "$SRV" "$BIN" up wg0 "${HOOK_OPTS[@]}"
	snapshot_rules "$SRV" "$E2E_TMP/rules.up2"
	snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.up2" eth0
	assert_same_file "rulesets after the second up equal those after the first" "$E2E_TMP/rules.up1" "$E2E_TMP/rules.up2"
	assert_same_file "sysctls after the second up equal those after the first" "$E2E_TMP/sysctl.up1" "$E2E_TMP/sysctl.up2"
	if ping_until "$CLI" 10.66.0.1 3; then pass "tunnel still works after the second up"; else
		fail "tunnel still works after the second up" "ping 10.66.0.1 from cli failed"
	fi
else
	step "skipping the traffic checks: the tunnel is not up (see the FAIL above)"
	fail "traffic checks ran" "srv up: $SRV_UP, cli up: $CLI_UP"
fi

# ---------------------------------------------------------------------------------------------
step "wg-quick down in srv (PreDown runs wgfw-hook down) and cli"
if srv ip link show wg0 >/dev/null 2>&1; then
	assert_ok "wg-quick down wg0 (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down wg0
	[[ $RUN_RC -ne 0 ]] || printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
fi
if ((CLI_UP)); then timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || info "cli wg-quick down failed"; fi
if srv ip link show wg0 >/dev/null 2>&1; then
	fail "wg0 is gone from srv" "$(srv ip link show wg0 2>&1)"
	srv ip link del wg0 || true
fi

step "snapshot AFTER equals BEFORE"
snapshot_rules "$SRV" "$E2E_TMP/rules.after"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.after" eth0
assert_same_file "rulesets (iptables-nft/legacy v4+v6, nft) after down equal before" \
	"$E2E_TMP/rules.before" "$E2E_TMP/rules.after"
assert_same_file "sysctls after down equal before" "$E2E_TMP/sysctl.before" "$E2E_TMP/sysctl.after"
assert_eq "IPv4 foreign rules still present" "$FOREIGN_V4" \
	"$(save_rules "$SRV" "$VARIANT" 4 | grep -E 'foreign-rule|FOREIGN-CHAIN' || true)"
assert_eq "IPv6 foreign rules still present" "$FOREIGN_V6" \
	"$(save_rules "$SRV" "$VARIANT" 6 | grep -E 'foreign-rule|FOREIGN-CHAIN' || true)"
if ((NATIVE)); then
	assert_eq "native nft foreign tables still present, unchanged" "$FOREIGN_NFT" "$(foreign_nft)"
	assert_eq "nft: table inet wgfw is gone" "" "$(nft_hook_table "$SRV")"
fi
state=$(srv_state_dirs)
if [[ -z $state ]] || [[ -z $(find $state -mindepth 1) ]]; then
	pass "no state left in /run/wgfw for netns inode $SRV_INODE"
else
	fail "no state left in /run/wgfw for netns inode $SRV_INODE" "$(find $state -ls)"
fi

step "down with nothing installed"
assert_ok "'wgfw-hook down wg0' with nothing installed exits 0" timeout 60 ip netns exec "$SRV" "$BIN" down wg0
snapshot_rules "$SRV" "$E2E_TMP/rules.after2"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.after2" eth0
assert_same_file "rulesets unchanged by a down with nothing installed" "$E2E_TMP/rules.before" "$E2E_TMP/rules.after2"
assert_same_file "sysctls unchanged by a down with nothing installed" "$E2E_TMP/sysctl.before" "$E2E_TMP/sysctl.after2"

summary || exit 1
