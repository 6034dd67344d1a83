#!/usr/bin/env bash
# End-to-end test: `down` never breaks a neighbour that came after `up` (#27). The real dockerd
# and ufw from Debian's packages run in the server's namespace, each in both start orders, next
# to a real tunnel brought up and down by wg-quick with the hook in PostUp/PreDown, on the
# backend `auto` picks; real packets check that the tunnel works, that the neighbour still does
# its job while up and after `down`, and that `down` leaves the neighbour's rules and the
# settings it relies on as they were. A sysctl.d file written after `up`, and a control with
# nothing else (every setting restored), complete it.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/neighbours.sh auto
#
# Topology ("$E2E_PREFIX-{inet,cli}" for the run, "$E2E_PREFIX-sN" one per phase, deleted on
# exit):
#
#   inet (router; to-srv 203.0.113.1/24; to-cli 198.51.100.1/24; a listener on tcp/9000)
#    ├── sN  eth0 203.0.113.2/24; WireGuard wgnNNN 10.66.0.1/24 udp/51820 (PostUp/PreDown the
#    │       hook); the neighbour of the phase
#    └── cli eth0 198.51.100.2: a peer, 10.66.0.2
#
# The hook and wg-quick run with the test's own system configuration in place of the
# machine's (a private mount namespace: the test's sysctl.d directory, no other sysctl files,
# ufw's files when ufw runs in the phase), so that what the machine's /etc says cannot decide
# the result.

set -Eeuo pipefail

BACKEND=${1:-}
[[ $BACKEND == auto ]] || {
	echo "usage: $0 auto" >&2
	exit 2
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
require_e2e dockerd docker busybox ufw unshare
NB="$HERE/../neighbours"

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
export NEIGHBOURS_STATE=$E2E_TMP/neighbours NEIGHBOURS_QUIET=1 NEIGHBOURS_NO_INSTALL=1

INET=$E2E_PREFIX-inet
CLI=$E2E_PREFIX-cli
SRV=
SRV_IF=wgn$$
CLI_IF=wgo$$
require_free_ifaces "$SRV_IF" "$CLI_IF"
SRV_CONF=$E2E_TMP/$SRV_IF.conf
CLI_CONF=$E2E_TMP/$CLI_IF.conf
SYSCTL_D=$E2E_TMP/sysctl.d
mkdir -p "$SYSCTL_D"
PHASE=0

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

echo "wgfw-hook e2e, neighbours that came after up (docker, ufw, sysctl.d), backend auto"
echo "binary: $BIN"

# conf_exec NS CMD...: CMD in NS with the test's system configuration (see the header).
conf_exec() {
	local ns=$1 ufw=$NEIGHBOURS_STATE/$1/ufw
	shift
	ip netns exec "$ns" unshare -m --propagation private /bin/sh -c '
		set -e
		sysctl_d=$1 ufw=$2
		shift 2
		mount --bind "$sysctl_d" /etc/sysctl.d
		for d in /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do
			[ -d "$d" ] && mount -t tmpfs -o size=1m wgfw-e2e "$d"
		done
		[ -e /etc/sysctl.conf ] && mount --bind /dev/null /etc/sysctl.conf
		if [ -e "$ufw/etc-ufw/ufw.conf" ]; then
			mount --bind "$ufw/etc-ufw" /etc/ufw
			mount --bind "$ufw/default-ufw" /etc/default/ufw
		elif [ -d /etc/ufw ]; then
			mount -t tmpfs -o size=1m wgfw-e2e /etc/ufw
		fi
		exec "$@"' sh "$SYSCTL_D" "$ufw" "$@"
}

srv() { ip netns exec "$SRV" "$@"; }
inet() { ip netns exec "$INET" "$@"; }
docker_() { "$NB/dockerd.sh" cmd "$SRV" "$@"; }

# The neighbours' and the hook's state of the phase's namespace, removed on exit too.
DOCKER_ON=0
UFW_ON=0
SRV_INODE=
cleanup_phase() {
	[[ -n $SRV ]] || return 0
	if ((DOCKER_ON)); then "$NB/dockerd.sh" stop "$SRV" >/dev/null 2>&1 || true; fi
	if ((UFW_ON)); then "$NB/ufw.sh" stop "$SRV" >/dev/null 2>&1 || true; fi
	DOCKER_ON=0 UFW_ON=0
	if ((CLI_ON)); then
		timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || true
		CLI_ON=0
	fi
	local dirs
	dirs=$(hook_state_dirs "$SRV_INODE")
	if [[ -n $dirs ]]; then
		conf_exec "$SRV" timeout 60 "$BIN" down "$SRV_IF" >/dev/null 2>&1 || true
		rm -rf -- $dirs
	fi
	# The tunnel's wireguard-go and the listeners (started here; a neighbour's processes were
	# stopped by its script), then the namespace and the link to it.
	ip -n "$SRV" link del "$SRV_IF" 2>/dev/null || true
	local pid i
	for pid in $(ip netns pids "$SRV" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 50; i++)); do
		[[ -z $(ip netns pids "$SRV" 2>/dev/null) ]] && break
		sleep 0.1
	done
	ip -n "$INET" link del to-srv 2>/dev/null || true
	ip netns del "$SRV" 2>/dev/null || true
	SRV=
}
E2E_CLEANUP_HOOKS+=(cleanup_phase)

# ---------------------------------------------------------------------------------------------
step "topology"
ns_add "$INET"
ns_add "$CLI"
ip -n "$INET" link add to-cli type veth peer name eth0 netns "$CLI"
ip -n "$INET" addr add 198.51.100.1/24 dev to-cli
ip -n "$INET" link set to-cli up
inet sysctl -q -w net.ipv4.ip_forward=1
ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
ip -n "$CLI" link set eth0 up
ip -n "$CLI" route add default via 198.51.100.1
bg "$INET" "$E2E_TMP/inet-9000.log" socat TCP-LISTEN:9000,reuseaddr,fork 'SYSTEM:echo way-out-ok'
wait_tcp_listen "$INET" 9000 || { echo "inet listener on 9000 did not start" >&2; exit 1; }

SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
(
	umask 077
	cat >"$SRV_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.1/24
		ListenPort = 51820
		PrivateKey = $SRV_KEY
		PostUp = $BIN up %i --config $SRV_CONF
		PreDown = $BIN down %i

		[Peer]
		PublicKey = $CLI_PUB
		AllowedIPs = 10.66.0.2/32
	EOF
	cat >"$CLI_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.2/32
		PrivateKey = $CLI_KEY

		[Peer]
		PublicKey = $SRV_PUB
		Endpoint = 203.0.113.2:51820
		AllowedIPs = 10.66.0.0/24
		PersistentKeepalive = 1
	EOF
)

# new_srv: the phase's server namespace, wired to inet, with listeners on tcp/80 and tcp/8081.
new_srv() {
	PHASE=$((PHASE + 1))
	SRV=$E2E_PREFIX-s$PHASE
	ns_add "$SRV"
	SRV_INODE=$(netns_inode "$SRV")
	ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
	ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
	ip -n "$INET" link set to-srv up
	ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
	ip -n "$SRV" link set eth0 up
	ip -n "$SRV" route add default via 203.0.113.1
	ping_until "$INET" 203.0.113.2 5 || { echo "topology broken: inet cannot reach $SRV" >&2; exit 1; }
	bg "$SRV" "$E2E_TMP/s$PHASE-80.log" socat TCP-LISTEN:80,reuseaddr,fork 'SYSTEM:echo web-ok'
	bg "$SRV" "$E2E_TMP/s$PHASE-8081.log" socat TCP-LISTEN:8081,reuseaddr,fork 'SYSTEM:echo closed-port'
	wait_tcp_listen "$SRV" 80 && wait_tcp_listen "$SRV" 8081 || { echo "listeners in $SRV did not start" >&2; exit 1; }
}

# srv_up: the server's tunnel, then the peer's (made anew each phase, so that its first
# handshake is with this server, not a session with the last phase's).
CLI_ON=0
srv_up() {
	assert_ok "wg-quick up $SRV_IF (the hook in PostUp) exits 0" conf_exec "$SRV" timeout 60 wg-quick up "$SRV_CONF"
	if ((!CLI_ON)); then
		assert_ok "wg-quick up $CLI_IF (the peer)" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
		CLI_ON=1
	fi
}
# pending DESC: a check that waits for #24 (the hook adopting a neighbour that starts after
# `up`): said, counted apart, never a pass.
E2E_PENDING=0
pending() {
	printf '    PENDING (#24): %s\n' "$1"
	E2E_PENDING=$((E2E_PENDING + 1))
}
# srv_down: wg-quick down; its output in DOWN_OUT.
srv_down() {
	assert_ok "wg-quick down $SRV_IF (the hook in PreDown) exits 0" conf_exec "$SRV" timeout 60 wg-quick down "$SRV_CONF"
	DOWN_OUT=$RUN_OUT
}
# tunnel_works: the peer reaches the server through the tunnel (its handshake is new: the
# server's interface was made again).
tunnel_works() {
	if ping_until "$CLI" 10.66.0.1 15; then pass "the tunnel works: cli pings 10.66.0.1"
	else fail "the tunnel works: cli pings 10.66.0.1" "no answer in 15 s"; fi
}
# no_residue: none of the hook's rules are left in the namespace.
no_residue() {
	local left
	left=$( (srv nft list ruleset 2>/dev/null; srv iptables-legacy-save 2>/dev/null; srv ip6tables-legacy-save 2>/dev/null) | grep -E 'WGFW|wgfw' || true)
	assert_eq "no rule of the hook is left after down" "" "$left"
}
sysctl_of() { srv sysctl -n "$1"; }
# same_sysctls_but DESC SNAPSHOT KEY_REGEX: the settings as in SNAPSHOT, but those matching
# KEY_REGEX (the ones a neighbour relies on).
same_sysctls_but() {
	local now=$E2E_TMP/sysctls-now
	snapshot_sysctls "$SRV" "$now" eth0 "$SRV_IF"
	assert_same_file "$1" <(grep -vE "$3" "$2") <(grep -vE "$3" "$now")
}
# http NS HOST PORT: the first line of an HTTP answer (empty when none).
http() {
	timeout 8 ip netns exec "$1" socat -T3 - "TCP:$2:$3,connect-timeout=3" <<<$'GET / HTTP/1.0\r\n\r\n' 2>/dev/null | head -n 1 | tr -d '\r' || true
}
# container_checks WHEN: the container's published port answers from the internet, and the
# container's own connection out gets through.
container_checks() {
	assert_match "$1: a container's published port answers from the internet (inet -> srv:8443)" \
		'^HTTP/1\.[01] ' "$(http "$INET" 203.0.113.2 8443)"
	local out
	out=$(timeout 15 "$NB/dockerd.sh" cmd "$SRV" exec web8443 /bin/busybox nc 203.0.113.1 9000 </dev/null 2>&1 || true)
	assert_match "$1: the container's own connection out gets through (container -> inet:9000)" 'way-out-ok' "$out"
}
# ports_checks WHEN: the port ufw opened answers; one it did not open stays closed.
ports_checks() {
	assert_tcp "$1: inet -> srv:80 (ufw allow 80/tcp)" open "$INET" 203.0.113.2 80
	assert_tcp "$1: inet -> srv:8081 (ufw's default deny)" timeout "$INET" 203.0.113.2 8081
}
# neighbour_rules: the namespace's rules that are not the hook's, as iptables-save shows them.
neighbour_rules() {
	{
		save_rules "$SRV" nft 4
		save_rules "$SRV" nft 6
	} | grep -vE 'WGFW|wgfw' || true
}

# ---------------------------------------------------------------------------------------------
step "control: nothing else relies on anything: down restores every setting"
new_srv
BEFORE=$E2E_TMP/sysctls-before
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
assert_eq "up switched forwarding on" 1 "$(sysctl_of net.ipv4.ip_forward)"
tunnel_works
srv_down
assert_no_match "down leaves nothing it set" 'leaving' "$DOWN_OUT"
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "a sysctl.d file written after up asks for forwarding: down leaves it on"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
echo 'net.ipv4.ip_forward = 1' >"$SYSCTL_D/90-router.conf"
srv_down
rm -f "$SYSCTL_D/90-router.conf"
assert_match "down says what it leaves, and why" \
	"wgfw-hook: $SRV_IF: leaving net.ipv4.ip_forward=1: /etc/sysctl.d/90-router.conf:1 asks for it" "$DOWN_OUT"
assert_eq "net.ipv4.ip_forward stays 1" 1 "$(sysctl_of net.ipv4.ip_forward)"
# What the switch spread to stays with it; every other setting goes back.
same_sysctls_but "every other setting is as before up" "$BEFORE" '^net\.ipv4\.(ip_forward|conf\.[^.]+\.forwarding|conf\.all\.accept_redirects) '
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "docker started after the tunnel: down leaves forwarding on, containers keep working"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
assert_ok "dockerd starts in srv after up" "$NB/dockerd.sh" start "$SRV"
DOCKER_ON=1
assert_ok "a container publishes port 8443" "$NB/dockerd.sh" publish "$SRV" 8443
tunnel_works
container_checks "while up"
RULES_BEFORE=$(neighbour_rules)
srv_down
assert_match "down says what it leaves, and why" \
	"wgfw-hook: $SRV_IF: leaving net.ipv4.ip_forward=1: docker0 forwards" "$DOWN_OUT"
assert_eq "net.ipv4.ip_forward stays 1" 1 "$(sysctl_of net.ipv4.ip_forward)"
container_checks "after down"
assert_eq "docker's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "docker started before the tunnel: up and down change nothing of docker's"
new_srv
assert_ok "dockerd starts in srv before up" "$NB/dockerd.sh" start "$SRV"
DOCKER_ON=1
assert_ok "a container publishes port 8443" "$NB/dockerd.sh" publish "$SRV" 8443
container_checks "before up"
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
tunnel_works
container_checks "while up"
srv_down
assert_eq "net.ipv4.ip_forward is docker's 1" 1 "$(sysctl_of net.ipv4.ip_forward)"
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
container_checks "after down"
assert_eq "docker's rules are as they were before up" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "ufw enabled after the tunnel: down leaves the redirects ufw asks to be off"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
assert_ok "ufw is enabled in srv after up" "$NB/ufw.sh" start "$SRV"
UFW_ON=1
assert_ok "ufw allow 51820/udp" "$NB/ufw.sh" cmd "$SRV" allow 51820/udp
assert_ok "ufw allow 80/tcp" "$NB/ufw.sh" cmd "$SRV" allow 80/tcp
tunnel_works
pending "while up: inet -> srv:80, which ufw opened after up (the hook's default deny, planned before ufw ran, still drops it)"
assert_tcp "while up: inet -> srv:8081 (nobody opened it)" timeout "$INET" 203.0.113.2 8081
RULES_BEFORE=$(neighbour_rules)
srv_down
for k in net.ipv4.conf.all.accept_redirects net.ipv4.conf.default.accept_redirects \
	net.ipv6.conf.all.accept_redirects net.ipv6.conf.default.accept_redirects; do
	assert_eq "$k stays 0 (ufw's sysctl.conf asks for it)" 0 "$(sysctl_of "$k")"
	assert_match "down says it leaves $k, and why" \
		"leaving $k=0: ufw's /etc/ufw/sysctl.conf:[0-9]+ asks for it" "$DOWN_OUT"
done
assert_eq "net.ipv4.ip_forward goes back to 0 (nothing forwards)" 0 "$(sysctl_of net.ipv4.ip_forward)"
same_sysctls_but "every other setting is as before up" "$BEFORE" '^net\.ipv[46]\.conf\.(all|default)\.accept_redirects '
ports_checks "after down"
assert_eq "ufw's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "ufw enabled before the tunnel: up and down change nothing of ufw's"
new_srv
assert_ok "ufw is enabled in srv before up" "$NB/ufw.sh" start "$SRV"
UFW_ON=1
assert_ok "ufw allow 51820/udp" "$NB/ufw.sh" cmd "$SRV" allow 51820/udp
assert_ok "ufw allow 80/tcp" "$NB/ufw.sh" cmd "$SRV" allow 80/tcp
ports_checks "before up"
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
tunnel_works
ports_checks "while up"
srv_down
same_sysctls_but "every setting is as before up (ufw's among them)" "$BEFORE" '^$'
ports_checks "after down"
assert_eq "ufw's rules are as they were before up" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

((E2E_PENDING == 0)) || printf '\n%d checks wait for #24 (PENDING above)\n' "$E2E_PENDING"
summary
