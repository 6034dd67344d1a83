#!/usr/bin/env bash
# End-to-end test: `down` never breaks a neighbour that came after `up` (#27). The six real
# neighbours from Debian's packages (dockerd, ufw, firewalld, fail2ban, netfilter-persistent and
# what nftables.service runs) run in the server's namespace, each in both start orders, next to
# a real tunnel brought up and down by wg-quick with the hook in PostUp/PreDown, on the backend
# given (`auto`: the one the hook picks next to what runs); real packets check that the tunnel works, that the hook's promises hold, that
# the neighbour still does its job while up and after `down`, and that `down` leaves the
# neighbour's rules and the settings it relies on as they were. A sysctl.d file written after
# `up`, and a control with nothing else (every setting restored), complete it. firewalld is
# reached on its private bus (the address exported before `up`): the tunnel goes through its
# D-Bus API (#25), which a reload undoes and the watcher asks again; `down` takes back exactly
# what was asked.
#
# A neighbour that starts after `up`, or reloads (restarts) while it is up, may wipe or outrank
# the hook's rules: the watcher that `up` starts (#24) repairs them, and the checks after such a
# change first wait (bounded) until it has (`settled`), then hold as before. `pending ASSERTION` is for a check that still waits for the
# rest of #24: run, printed as PENDING (#24), counted apart, never a pass or a failure.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/neighbours.sh auto|nft|iptables-nft|iptables-legacy
#
# With iptables-legacy the whole run is in a mount namespace of its own where Debian's
# `iptables` alternatives point to iptables-legacy (what `update-alternatives --set iptables
# /usr/sbin/iptables-legacy` makes of a host): ufw, dockerd, fail2ban's iptables actions,
# netfilter-persistent and firewalld's flushes then all use iptables-legacy, as on such a host.
#
# Topology ("$E2E_PREFIX-{inet,cli}" for the run, "$E2E_PREFIX-sN" one per phase, deleted on
# exit):
#
#   inet (router; to-srv 203.0.113.1/24; to-cli 198.51.100.1/24; a listener on tcp/9000)
#    ├── sN  eth0 203.0.113.2/24; WireGuard wgnNNN 10.66.0.1/24 udp/51820 (PostUp/PreDown the
#    │       hook); listeners on tcp/22, 80 and 8081; the neighbour of the phase
#    └── cli eth0 198.51.100.2: a peer, 10.66.0.2, a listener on tcp/8082
#   inet also has 203.0.113.3, a second source on the server's side (fail2ban bans the first).
#
# The hook and wg-quick run with the test's own system configuration in place of the
# machine's (a private mount namespace: the test's sysctl.d directory, no other sysctl files,
# ufw's files when ufw runs in the phase), so that what the machine's /etc says cannot decide
# the result.

set -Eeuo pipefail

BACKEND=${1:-}
case $BACKEND in
auto | nft | iptables-nft | iptables-legacy) ;;
*)
	echo "usage: $0 auto|nft|iptables-nft|iptables-legacy" >&2
	exit 2
	;;
esac
if [[ $BACKEND == iptables-legacy && -z ${NEIGHBOURS_LEGACY_ALTERNATIVES:-} ]]; then
	exec unshare -m --propagation private env NEIGHBOURS_LEGACY_ALTERNATIVES=1 bash -c '
		set -e
		alt=$(mktemp -d /tmp/wgfw-e2e-alternatives.XXXXXX)
		cp -a /etc/alternatives/. "$alt"
		for x in iptables ip6tables; do
			for s in "" -restore -save; do ln -sfn "/usr/sbin/$x-legacy$s" "$alt/$x$s"; done
		done
		mount --bind "$alt" /etc/alternatives
		rc=0
		bash "$0" "$@" || rc=$?
		umount /etc/alternatives
		rm -rf "$alt"
		exit $rc' "$0" "$@"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
require_e2e dockerd docker busybox ufw unshare firewalld firewall-cmd dbus-daemon fail2ban-server \
	dpkg-deb run-parts
NB="$HERE/../neighbours"
# netfilter-persistent runs from its .debs, unpacked (Debian's ufw Breaks it): tests/run-all.sh
# downloads them.
NP_DEBS=${NEIGHBOURS_CACHE:-/var/cache/neighbours}/netfilter-persistent/debs
compgen -G "$NP_DEBS/netfilter-persistent_*.deb" >/dev/null && compgen -G "$NP_DEBS/iptables-persistent_*.deb" >/dev/null ||
	{ echo "missing prerequisite: netfilter-persistent's and iptables-persistent's .debs in $NP_DEBS (tests/run-all.sh downloads them)" >&2; exit 2; }

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

echo "wgfw-hook e2e, the six neighbours in both start orders, and sysctl.d, backend $BACKEND"
if [[ $BACKEND == iptables-legacy ]]; then
	[[ $(readlink -f "$(command -v iptables)") == */xtables-legacy-multi ]] ||
		{ echo "iptables is not iptables-legacy in this mount namespace" >&2; exit 1; }
	echo "iptables, ip6tables and their -save/-restore are iptables-legacy here (a private /etc/alternatives)"
fi
# The hook's option for the backend: none for auto.
BACKEND_OPT=
[[ $BACKEND == auto ]] || BACKEND_OPT=" --backend $BACKEND"
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
STARTED=()
SRV_INODE=
# start_neighbour NAME WHEN: the neighbour's script's start (NAME: dockerd, ufw, firewalld,
# fail2ban, netfilter-persistent, nftables-service); stopped again by cleanup_phase.
start_neighbour() {
	STARTED+=("$1")
	assert_ok "$1 starts in srv $2" "$NB/$1.sh" start "$SRV"
	if [[ $BACKEND == iptables-legacy ]]; then
		case $1 in
		dockerd) assert_match "dockerd's chains are in iptables-legacy" '^:DOCKER' "$(save_rules "$SRV" legacy 4)" ;;
		ufw) assert_match "ufw's chains are in iptables-legacy" '^:ufw-' "$(save_rules "$SRV" legacy 4)" ;;
		esac
	fi
}
cleanup_phase() {
	[[ -n $SRV ]] || return 0
	local n
	for n in "${STARTED[@]}"; do "$NB/$n.sh" stop "$SRV" >/dev/null 2>&1 || true; done
	STARTED=()
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
bg "$CLI" "$E2E_TMP/cli-8082.log" socat TCP-LISTEN:8082,reuseaddr,fork 'SYSTEM:echo peer-service'
wait_tcp_listen "$INET" 9000 && wait_tcp_listen "$CLI" 8082 || { echo "listeners in inet and cli did not start" >&2; exit 1; }

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
		PostUp = $BIN up %i --config $SRV_CONF$BACKEND_OPT
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

# new_srv: the phase's server namespace, wired to inet (which routes the tunnel's network to
# it), with listeners on tcp/22, tcp/80 and tcp/8081.
new_srv() {
	PHASE=$((PHASE + 1))
	SRV=$E2E_PREFIX-s$PHASE
	ns_add "$SRV"
	SRV_INODE=$(netns_inode "$SRV")
	ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
	ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
	ip -n "$INET" addr add 203.0.113.3/24 dev to-srv
	ip -n "$INET" link set to-srv up
	ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
	ip -n "$SRV" link set eth0 up
	ip -n "$SRV" route add default via 203.0.113.1
	ping_until "$INET" 203.0.113.2 5 || { echo "topology broken: inet cannot reach $SRV" >&2; exit 1; }
	ip -n "$INET" route replace 10.66.0.0/24 via 203.0.113.2
	local port
	for port in 22 80 8081; do
		bg "$SRV" "$E2E_TMP/s$PHASE-$port.log" socat TCP-LISTEN:$port,reuseaddr,fork "SYSTEM:echo port-$port"
	done
	for port in 22 80 8081; do
		wait_tcp_listen "$SRV" $port || { echo "listener on $port in $SRV did not start" >&2; exit 1; }
	done
}

# srv_up: the server's tunnel, then the peer's (made anew each phase, so that its first
# handshake is with this server, not a session with the last phase's).
CLI_ON=0
srv_up() {
	assert_ok "wg-quick up $SRV_IF (the hook in PostUp) exits 0" conf_exec "$SRV" timeout 60 wg-quick up "$SRV_CONF"
	[[ $BACKEND == auto ]] ||
		assert_match "the hook's firewall is on $BACKEND" "^$SRV_IF: server role, $BACKEND, " "$(conf_exec "$SRV" "$BIN" status "$SRV_IF" 2>&1)"
	if ((!CLI_ON)); then
		assert_ok "wg-quick up $CLI_IF (the peer)" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
		CLI_ON=1
	fi
}
# pending ASSERTION ARGS...: a check that waits for #24 (the watcher that repairs what a
# neighbour started after `up` wiped or outranked). It runs, and what it finds today is said
# (PENDING (#24): holds today / fails today), counted apart: never a pass, never a failure.
E2E_PENDING=0
pending() {
	local out
	out=$("$@" 2>&1) || true
	E2E_PENDING=$((E2E_PENDING + 1))
	sed -E -e 's/^    PASS: /    PENDING (#24), holds today: /' -e 's/^    FAIL: /    PENDING (#24), fails today: /' <<<"$out"
}
# srv_down: wg-quick down; its output in DOWN_OUT.
srv_down() {
	assert_ok "wg-quick down $SRV_IF (the hook in PreDown) exits 0" conf_exec "$SRV" timeout 60 wg-quick down "$SRV_CONF"
	DOWN_OUT=$RUN_OUT
	local line
	while IFS= read -r line; do info "down: $line"; done < <(grep 'leaving' <<<"$DOWN_OUT" || true)
}
# tunnel_works [WHEN]: the peer reaches the server through the tunnel (its handshake is new
# at first: the server's interface was made again).
tunnel_works() {
	local d="${1:+$1: }the tunnel works: cli pings 10.66.0.1"
	if ping_until "$CLI" 10.66.0.1 15; then pass "$d"; else fail "$d" "no answer in 15 s"; fi
}
# assert_closed DESC NS HOST PORT: a new TCP connection to a listener that runs does not get
# through (dropped or rejected, whoever's rule it is). A second is long on veths, with the
# tunnel's session kept alive: a drop need not cost the default three.
assert_closed() {
	local desc=$1
	shift
	tcp_probe "$1" "$2" "$3" 1
	if [[ $PROBE != open ]]; then pass "$desc"; else fail "$desc" "connected: $PROBE_OUT"; fi
}
# hook_checks WHEN [pending]: the hook's promises (server role, default policy): the tunnel
# works, the peer reaches the server's services through it, the internet does not reach a port
# nobody opened, nor the peer behind the tunnel. With `pending`, each check waits for #24.
# settled WHEN NAME: after NAME changed the ruleset, the watcher has brought the firewall back
# to the plan (`check` finds nothing to repair) within 15 s, and says in `status` that it
# repaired (with REPAIRED=1).
settled() {
	local i out
	for ((i = 0; i < 150; i++)); do
		conf_exec "$SRV" "$BIN" check "$SRV_IF" >/dev/null 2>&1 && break
		sleep 0.1
	done
	if out=$(conf_exec "$SRV" "$BIN" check "$SRV_IF" 2>&1); then
		pass "$1: the watcher has brought the firewall back to its plan after $2 (check: as installed)"
	else
		fail "$1: the watcher has brought the firewall back to its plan after $2" "$out"
	fi
	out=$(conf_exec "$SRV" "$BIN" status "$SRV_IF" 2>&1 | grep '^  watcher:' || true)
	if ((${REPAIRED:-0})); then
		assert_match "$1: status counts the watcher's repair" '^  watcher: pid [0-9]+, since .*, [1-9][0-9]* repairs?, the last at ' "$out"
	else
		assert_match "$1: status shows the watcher" '^  watcher: pid [0-9]+, since ' "$out"
	fi
}
hook_checks() {
	local p=${2:-}
	$p tunnel_works "$1"
	$p assert_tcp "$1: cli -> 10.66.0.1:8081 through the tunnel (the hook accepts the tunnel)" open "$CLI" 10.66.0.1 8081
	$p assert_closed "$1: inet -> srv:8081 (nobody opened it)" "$INET" 203.0.113.2 8081
	$p assert_closed "$1: inet -> 10.66.0.2:8082 (new, from the internet into the tunnel)" "$INET" 10.66.0.2 8082
}
# no_residue: none of the hook's rules are left in the namespace.
no_residue() {
	local left
	left=$( (srv nft list ruleset 2>/dev/null; srv iptables-legacy-save 2>/dev/null; srv ip6tables-legacy-save 2>/dev/null) | grep -E 'WGFW|wgfw' || true)
	assert_eq "no rule of the hook is left after down" "" "$left"
	local pid watchers=
	for pid in $(ip netns pids "$SRV" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^[^ ]* watch $SRV_IF" && watchers+=" $pid"
	done
	assert_eq "no watcher is left after down" "" "$watchers"
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
# ports_checks WHEN [WHO]: the port WHO (a firewall manager, ufw by default) opened answers;
# one it did not open stays closed.
ports_checks() {
	local who=${2:-ufw}
	assert_tcp "$1: inet -> srv:80 (opened by $who)" open "$INET" 203.0.113.2 80
	assert_closed "$1: inet -> srv:8081 ($who's default deny)" "$INET" 203.0.113.2 8081
}
# reload_while_up WHO REPAIRED DESC CMD...: WHO's reload (restart) CMD while up, after the hook
# changed nothing of its rules; the watcher settles what it undid (REPAIRED: 1 when it must
# repair). RULES_BEFORE becomes what the reload made, which down must leave: a reload may
# rewrite its own rules its own way (ufw's adds two it did not have at enable).
reload_while_up() {
	local who=$1 repaired=$2 desc=$3
	shift 3
	assert_eq "up changed nothing of $who's rules${RULES_BUT:-}" "$RULES_BEFORE" "$(${RULES_FN:-neighbour_rules})"
	assert_ok "$desc while up" "$@"
	REPAIRED=$repaired settled "after $desc" "$desc"
	RULES_BEFORE=$(${RULES_FN:-neighbour_rules})
}
# drop_empty_tables: iptables-save text without the tables that hold nothing (no rule, no chain
# of anyone's, every policy ACCEPT): the same as no table, which is what the hook's chains in
# them leave when they are filtered out.
drop_empty_tables() {
	awk '
		/^\*/ { buf = $0 "\n"; empty = 1; intable = 1; next }
		intable && /^COMMIT$/ { if (!empty) printf "%s%s\n", buf, $0; intable = 0; next }
		intable { buf = buf $0 "\n"; if ($0 !~ /^:[A-Z]+ ACCEPT$/) empty = 0; next }
		{ print }'
}
# neighbour_rules: the namespace's rules that are not the hook's: iptables-nft's tables as
# iptables-save shows them, the other nft tables as nft lists them, and iptables-legacy's.
neighbour_rules() {
	local v f
	for v in nft legacy; do
		for f in 4 6; do
			echo "=== ip${f/4/}tables-$v-save"
			save_rules "$SRV" "$v" "$f" | { grep -vE 'WGFW|wgfw' || true; } | drop_empty_tables
		done
	done
	echo "=== nft list ruleset (but iptables-nft's tables)"
	save_nft "$SRV" | awk '
		skip { depth += gsub(/\{/, "{") - gsub(/\}/, "}"); if (depth <= 0) skip = 0; next }
		/^table inet wgfw \{/ || /^table (ip|ip6) (filter|nat|mangle|raw|security) \{/ { skip = 1; depth = 1; next }
		/wgfw|WGFW/ { next }
		{ print }'
}

# ---------------------------------------------------------------------------------------------
step "control: nothing else relies on anything: down restores every setting"
new_srv
BEFORE=$E2E_TMP/sysctls-before
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
assert_eq "up switched forwarding on" 1 "$(sysctl_of net.ipv4.ip_forward)"
settled "while up" "up"
hook_checks "while up"
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
hook_checks "while up, before dockerd"
start_neighbour dockerd "after up"
assert_ok "a container publishes port 8443" "$NB/dockerd.sh" publish "$SRV" 8443
settled "while up" dockerd
hook_checks "while up, after dockerd started"
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
step "the tunnel dies without down, docker started after up: the watcher removes the firewall as down would, and leaves forwarding on"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
start_neighbour dockerd "after up"
assert_ok "a container publishes port 8443" "$NB/dockerd.sh" publish "$SRV" 8443
settled "while up" dockerd
RULES_BEFORE=$(neighbour_rules)
# wg-quick deletes the interface without PreDown when a later PostUp line fails; so does a
# killed wireguard-go.
srv ip link del "$SRV_IF"
gone=0
for ((i = 0; i < 100; i++)); do
	[[ -z $(hook_state_dirs "$SRV_INODE") ]] && { gone=1; break; }
	sleep 0.1
done
assert_eq "the watcher removed the records within 10 s" 1 "$gone"
assert_eq "net.ipv4.ip_forward stays 1 (docker0 forwards)" 1 "$(sysctl_of net.ipv4.ip_forward)"
container_checks "after the tunnel died"
assert_eq "docker's rules are as they were" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "docker started before the tunnel: up and down change nothing of docker's; a restart is healed"
new_srv
start_neighbour dockerd "before up"
assert_ok "a container publishes port 8443" "$NB/dockerd.sh" publish "$SRV" 8443
container_checks "before up"
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
hook_checks "while up"
container_checks "while up"
assert_ok "the container restarts with dockerd" docker_ update --restart unless-stopped web8443
reload_while_up docker 0 "dockerd's restart" "$NB/dockerd.sh" restart "$SRV"
hook_checks "while up, after dockerd's restart"
container_checks "while up, after dockerd's restart"
srv_down
assert_eq "net.ipv4.ip_forward is docker's 1" 1 "$(sysctl_of net.ipv4.ip_forward)"
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
container_checks "after down"
assert_eq "docker's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
step "ufw enabled after the tunnel: down leaves the redirects ufw asks to be off"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
hook_checks "while up, before ufw"
start_neighbour ufw "after up (ufw --force enable)"
assert_ok "ufw allow 51820/udp" "$NB/ufw.sh" cmd "$SRV" allow 51820/udp
assert_ok "ufw allow 80/tcp" "$NB/ufw.sh" cmd "$SRV" allow 80/tcp
REPAIRED=1 settled "while up" ufw
hook_checks "while up, after ufw started"
ports_checks "while up, after ufw started"
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
step "ufw enabled before the tunnel: up and down change nothing of ufw's; ufw reload is healed"
new_srv
start_neighbour ufw "before up (ufw --force enable)"
assert_ok "ufw allow 51820/udp" "$NB/ufw.sh" cmd "$SRV" allow 51820/udp
assert_ok "ufw allow 80/tcp" "$NB/ufw.sh" cmd "$SRV" allow 80/tcp
ports_checks "before up"
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
hook_checks "while up"
ports_checks "while up"
# ufw refills only its own chains; the hook's accepts are in INPUT itself: nothing to repair.
reload_while_up ufw 0 "ufw reload" "$NB/ufw.sh" reload "$SRV"
hook_checks "while up, after ufw reload"
ports_checks "while up, after ufw reload"
srv_down
same_sysctls_but "every setting is as before up (ufw's among them)" "$BEFORE" '^$'
ports_checks "after down"
assert_eq "ufw's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
# firewalld: its default zone rejects what it does not allow; `--add-port` opens a port (runtime
# only, as an admin tries things); with `--add-masquerade` it routes, and relies on forwarding.
fw() { "$NB/firewalld.sh" cmd "$SRV" "$@"; }
fw_config() { fw --list-all-zones; fw --list-all-policies 2>/dev/null || true; }
# The hook asks firewalld on the system bus; this one's is private: the hook (wg-quick's PostUp,
# and its watcher) finds it by the address, set before up.
fw_bus() { export "$("$NB/firewalld.sh" env "$SRV")"; }
# fw_api_checks DESC: the tunnel is let through by firewalld's API (#25), not by rules of the
# hook's in firewalld's table: the interface in zone trusted, the WireGuard port open.
fw_api_checks() {
	assert_eq "$1: firewalld says $SRV_IF is in zone trusted (the hook asked it, runtime)" trusted "$(fw --get-zone-of-interface="$SRV_IF" 2>&1 || true)"
	assert_eq "$1: firewalld says 51820/udp is open in zone public" yes "$(fw --zone=public --query-port=51820/udp 2>&1 || true)"
	assert_eq "$1: no rule of the hook's in firewalld's table" 0 "$(save_nft "$SRV" | awk '/^table inet firewalld/ { t = 1 } /^}/ { t = 0 } t && /wgfw/' | wc -l)"
}
# fw_rules: neighbour_rules without the chains of zone trusted, which firewalld keeps (inert:
# nothing jumps to them) once an interface was in that zone, until its next reload.
fw_rules() {
	neighbour_rules | awk '
		skip { depth += gsub(/\{/, "{") - gsub(/\}/, "}"); if (depth <= 0) skip = 0; next }
		/^\tchain [A-Za-z_]*_trusted[A-Za-z_]* \{/ { skip = 1; depth = 1; next }
		/^[ \t]*$/ { next }
		{ print }'
}
# fw_rules_but_api: fw_rules without what the hook asked through firewalld's API: the tunnel's
# dispatch to its zone, and the WireGuard port.
fw_rules_but_api() { fw_rules | { grep -vE -e "\"$SRV_IF\"" -e 'udp dport 51820 accept' || true; }; }
# fw_after_down DESC: what the hook asked of firewalld is taken back.
fw_after_down() {
	assert_match "$1: $SRV_IF is in no zone again" "no zone" "$(fw --get-zone-of-interface="$SRV_IF" 2>&1 || true)"
	assert_eq "$1: 51820/udp is closed again in zone public" no "$(fw --zone=public --query-port=51820/udp 2>&1 || true)"
	assert_eq "$1: no rule in firewalld's table names $SRV_IF" 0 "$(save_nft "$SRV" | grep -c "\"$SRV_IF\"" || true)"
}

step "firewalld started after the tunnel, masquerading: down leaves forwarding on, firewalld keeps working"
new_srv
fw_bus
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
hook_checks "while up, before firewalld"
start_neighbour firewalld "after up"
assert_ok "firewall-cmd --add-port=80/tcp" fw --add-port=80/tcp
assert_ok "firewall-cmd --add-masquerade" fw --add-masquerade
REPAIRED=1 settled "while up" firewalld
hook_checks "while up, after firewalld started"
ports_checks "while up, after firewalld started" firewalld
fw_api_checks "while up, after firewalld started"
srv_down
assert_match "down says what it leaves, and why" \
	"wgfw-hook: $SRV_IF: leaving net.ipv4.ip_forward=1: .*masquerade" "$DOWN_OUT"
assert_eq "net.ipv4.ip_forward stays 1 (firewalld masquerades)" 1 "$(sysctl_of net.ipv4.ip_forward)"
same_sysctls_but "every other setting is as before up" "$BEFORE" '^net\.ipv4\.(ip_forward|conf\.[^.]+\.forwarding|conf\.all\.accept_redirects) '
ports_checks "after down" firewalld
# What the hook asked of firewalld is taken back; the admin's own changes stay.
fw_after_down "after down"
assert_eq "after down: the admin's 80/tcp stays open" yes "$(fw --zone=public --query-port=80/tcp 2>&1 || true)"
assert_eq "after down: the admin's masquerade stays" yes "$(fw --zone=public --query-masquerade 2>&1 || true)"
no_residue
cleanup_phase
unset DBUS_SYSTEM_BUS_ADDRESS

step "firewalld started before the tunnel: the tunnel gets through its reject; a reload is healed; down changes nothing of firewalld's"
new_srv
fw_bus
start_neighbour firewalld "before up"
assert_ok "firewall-cmd --add-port=80/tcp" fw --add-port=80/tcp
assert_ok "firewall-cmd --permanent --add-port=80/tcp" fw --permanent --add-port=80/tcp
ports_checks "before up" firewalld
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
FW_BEFORE=$(fw_config)
RULES_FN=fw_rules_but_api RULES_BUT=" (but the tunnel's zone and port, asked through its API)"
RULES_BEFORE=$(fw_rules_but_api)
srv_up
hook_checks "while up"
ports_checks "while up" firewalld
fw_api_checks "while up"
reload_while_up firewalld 1 "firewall-cmd --reload" "$NB/firewalld.sh" reload "$SRV"
hook_checks "while up, after firewall-cmd --reload"
ports_checks "while up, after firewall-cmd --reload" firewalld
fw_api_checks "while up, after firewall-cmd --reload (the watcher asked again)"
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ports_checks "after down" firewalld
assert_eq "firewalld's runtime configuration is as it was before up" "$FW_BEFORE" "$(fw_config)"
assert_eq "firewalld's rules are as the reload made them (but zone trusted's inert chains)" "$RULES_BEFORE" "$(fw_rules)"
fw_after_down "after down"
no_residue
cleanup_phase
unset DBUS_SYSTEM_BUS_ADDRESS RULES_FN RULES_BUT

# ---------------------------------------------------------------------------------------------
# fail2ban: its stock iptables-multiport and nftables-multiport jails on ssh; inet's first
# address is banned, its second is not.
# tcp_probe_from SRC HOST PORT: tcp_probe from inet, from its address SRC.
tcp_probe_from() {
	local rc
	PROBE_OUT=$(timeout 6 ip netns exec "$INET" socat -T2 - "TCP:$2:$3,bind=$1,connect-timeout=2" </dev/null 2>&1) && rc=0 || rc=$?
	if ((rc == 0)); then PROBE=open
	elif ((rc == 124)) || grep -qiE 'timed out|timeout' <<<"$PROBE_OUT"; then PROBE=timeout
	else PROBE=refused; fi
}
ban_checks() {
	tcp_probe_from 203.0.113.1 203.0.113.2 22
	if [[ $PROBE != open ]]; then pass "$1: the banned 203.0.113.1 -> srv:22 does not get through ($PROBE)"
	else fail "$1: the banned 203.0.113.1 -> srv:22 does not get through" "connected: $PROBE_OUT"; fi
	tcp_probe_from 203.0.113.3 203.0.113.2 22
	if [[ $PROBE == open ]]; then pass "$1: 203.0.113.3 (not banned) -> srv:22 connects"
	else fail "$1: 203.0.113.3 (not banned) -> srv:22 connects" "got $PROBE: $PROBE_OUT"; fi
}
f2b_ban() {
	start_neighbour fail2ban "$1"
	assert_ok "fail2ban bans 203.0.113.1 (both jails)" "$NB/fail2ban.sh" ban "$SRV" 203.0.113.1
}

step "fail2ban started after the tunnel: its ban holds while up and after down"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
f2b_ban "after up"
settled "while up" fail2ban
hook_checks "while up, after fail2ban started"
ban_checks "while up"
RULES_BEFORE=$(neighbour_rules)
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ban_checks "after down"
assert_eq "fail2ban's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

step "fail2ban started before the tunnel: its ban holds while up, after its jails restart, and after down"
new_srv
f2b_ban "before up"
ban_checks "before up"
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
hook_checks "while up"
ban_checks "while up"
reload_while_up fail2ban 0 "fail2ban's jails restarted" "$NB/fail2ban.sh" restart-jails "$SRV"
hook_checks "while up, after fail2ban's jails restarted"
ban_checks "while up, after fail2ban's jails restarted"
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ban_checks "after down"
assert_eq "fail2ban's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
# netfilter-persistent: a saved firewall (rules.v4, rules.v6) as an admin keeps one: input and
# forward drop by default; ssh and the web server open. The WireGuard port is not in it.
np_saved_rules() {
	local d=$NEIGHBOURS_STATE/$SRV/netfilter-persistent/etc-upper/iptables f
	mkdir -p "$d"
	for f in 4 6; do
		{
			printf '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n'
			printf -- '-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n'
			if [[ $f == 4 ]]; then printf -- '-A INPUT -p icmp -j ACCEPT\n'; else printf -- '-A INPUT -p ipv6-icmp -j ACCEPT\n'; fi
			printf -- '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n'
		} >"$d/rules.v$f"
	done
}

step "netfilter-persistent loading its rules after the tunnel: down leaves them and their effect"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
hook_checks "while up, before netfilter-persistent"
np_saved_rules
start_neighbour netfilter-persistent "after up (loads rules.v4, rules.v6)"
REPAIRED=1 settled "while up" netfilter-persistent
hook_checks "while up, after netfilter-persistent started"
ports_checks "while up, after netfilter-persistent started" netfilter-persistent
RULES_BEFORE=$(neighbour_rules)
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ports_checks "after down" netfilter-persistent
assert_eq "netfilter-persistent's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

step "netfilter-persistent loading its rules before the tunnel: the tunnel gets through; a reload is healed; down changes nothing of them"
new_srv
np_saved_rules
start_neighbour netfilter-persistent "before up (loads rules.v4, rules.v6)"
ports_checks "before up" netfilter-persistent
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
hook_checks "while up"
ports_checks "while up" netfilter-persistent
reload_while_up netfilter-persistent 1 "netfilter-persistent reload" "$NB/netfilter-persistent.sh" reload "$SRV"
hook_checks "while up, after netfilter-persistent reload"
ports_checks "while up, after netfilter-persistent reload" netfilter-persistent
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ports_checks "after down" netfilter-persistent
assert_eq "netfilter-persistent's rules are as they were before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

# ---------------------------------------------------------------------------------------------
# nftables.service: an /etc/nftables.conf as an admin writes one (flush ruleset; input and
# forward drop by default; ssh and the web server open). The WireGuard port is not in it.
export NFT_CONF=$E2E_TMP/nftables.conf
cat >"$NFT_CONF" <<'EOF'
#!/usr/sbin/nft -f
flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport { 22, 80 } accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
	chain output {
		type filter hook output priority filter;
	}
}
EOF

step "nftables.service started after the tunnel (flush ruleset): down leaves its ruleset and its effect"
new_srv
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
srv_up
hook_checks "while up, before nftables.service"
start_neighbour nftables-service "after up (nft -f /etc/nftables.conf)"
REPAIRED=1 settled "while up" nftables.service
hook_checks "while up, after nftables.service started"
ports_checks "while up, after nftables.service started" nftables.service
RULES_BEFORE=$(neighbour_rules)
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ports_checks "after down" nftables.service
assert_eq "nftables.service's ruleset is as it was before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

step "nftables.service started before the tunnel: the tunnel gets through its drop; a reload is healed; down changes nothing of it"
new_srv
start_neighbour nftables-service "before up (nft -f /etc/nftables.conf)"
ports_checks "before up" nftables.service
snapshot_sysctls "$SRV" "$BEFORE" eth0 "$SRV_IF"
RULES_BEFORE=$(neighbour_rules)
srv_up
hook_checks "while up"
ports_checks "while up" nftables.service
reload_while_up nftables.service 1 "nftables.service's reload" "$NB/nftables-service.sh" reload "$SRV"
hook_checks "while up, after nftables.service's reload"
ports_checks "while up, after nftables.service's reload" nftables.service
srv_down
same_sysctls_but "every setting is as before up" "$BEFORE" '^$'
ports_checks "after down" nftables.service
assert_eq "nftables.service's ruleset is as it was before down" "$RULES_BEFORE" "$(neighbour_rules)"
no_residue
cleanup_phase

((E2E_PENDING == 0)) || printf '\n%d checks wait for #24 (PENDING above)\n' "$E2E_PENDING"
summary
