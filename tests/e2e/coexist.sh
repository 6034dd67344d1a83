#!/usr/bin/env bash
# End-to-end test: wgfw-hook next to another firewall manager (Docker, ufw, firewalld), with
# realistic hand-written rulesets of Docker and ufw (tests/e2e/neighbours.sh runs their daemons)
# and the real firewalld (Debian's, tests/neighbours/firewalld.sh), real WireGuard tunnels
# (wireguard-go, wg-quick) and real TCP connections, in network namespaces.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/coexist.sh CASE
#     CASE: docker-nft | docker-nft-forced-nft | docker-legacy | ufw | firewalld | all
#     (`all` runs every case, each in its own process, then prints the total)
#
# Topology ("$E2E_PREFIX-{inet,srv,c1,ctr}", deleted on exit; N = this PID; ctr only in the
# docker cases):
#
#              ┌─────────────────────────────────────────────────────────┐
#              │ inet: the "internet" (router, v4+v6 forwarding)         │
#              │   lo 192.0.2.1/32 2001:db8:ff::1/128: internet service  │
#              │   tcp/8080 answers the peer address it sees             │
#              │   no route to the tunnel (it is masqueraded, v4 and v6) │
#              └─────┬──────────────────────────────────┬────────────────┘
#     to-srv 203.0.113.1/24 2001:db8:1::1/64   to-c1 198.51.100.1/26 2001:db8:2::1/64
#                    │                                  │
#     eth0 203.0.113.2/24 2001:db8:1::2/64     eth0 198.51.100.2/26 2001:db8:2::2/64
#   ┌────────────────┴──────────────────────┐  ┌────────┴───────────────────────────┐
#   │ srv: WireGuard server + the manager   │  │ c1: WireGuard peer (no hook)       │
#   │ wgsN 10.66.0.1/24 fd66::1/64 udp/51820│  │ wgaN 10.66.0.2/32 fd66::2/128      │
#   │ PostUp = wgfw-hook up %i              │  │ AllowedIPs 10.66.0.0/24 fd66::/64  │
#   │ PreDown = wgfw-hook down %i           │  │   192.0.2.0/24 2001:db8:ff::/64    │
#   │                                       │  │   172.17.0.0/16                    │
#   │ settings /etc/wgfw/wgsN.conf          │  └────────────────────────────────────┘
#   │ tcp/22 tcp/80 tcp/8081 listeners      │
#   │ (answer the peer address, v4+v6)      │
#   │ the manager's ruleset:                │
#   │  docker: iptables(-nft|-legacy)       │
#   │  ufw: iptables-nft, INPUT/FORWARD DROP│
#   │  firewalld: the real daemon           │
#   └────────────────┬──────────────────────┘
#     docker0 (bridge) 172.17.0.1/16            (docker cases only)
#                    │ vethc0ffee
#     eth0 172.17.0.2/16, default via 172.17.0.1
#   ┌────────────────┴──────────────────────┐
#   │ ctr: a "container"; tcp/80 answers    │   published: srv tcp/8080 -> 172.17.0.2:80
#   │ the peer address it sees              │   (nat DOCKER DNAT), 172.17.0.0/16 masqueraded
#   └───────────────────────────────────────┘
#
# Steps of each case (firewalld runs 2-3 twice: backend auto (-> nft), then iptables-nft):
#   1 the manager's ruleset is loaded into srv; srv's rulesets (iptables-nft/-legacy v4+v6, nft)
#     and sysctls are snapshotted; the manager's rules are shown to be effective
#   2 wg-quick up on srv (the hook runs) and c1: the tunnel works (v4+v6), c1 reaches the internet
#     through it (masqueraded as srv's WAN address, IPv6 too: a unique-local tunnel), the manager's own allows
#     and denies still work, its rules are untouched apart from accepts marked wgfw:IFACE (right
#     before their chain's default deny, listed by `status` and `plan`, printed by `up`)
#   3 wg-quick down on srv: every ruleset and sysctl equals the step-1 snapshot, no /run/wgfw
#     state left for srv's namespace
#
# firewalld here is the one whose bus the hook cannot reach (DBUS_SYSTEM_BUS_ADDRESS names no
# socket): its fallback, accepts of its own in firewalld's chains, as for a firewalld that does
# not answer. Through firewalld's API (the way when it answers): neighbours.sh.
#
# srv's wg-quick config is /etc/netns/<srv>/wireguard/wgsN.conf and its settings file
# /etc/netns/<srv>/wgfw/wgsN.conf; `ip netns exec` binds them onto /etc/wireguard and /etc/wgfw.
# Every WireGuard interface name carries this run's PID: wireguard-go's control socket
# (/var/run/wireguard/<if>.sock) is shared by all namespaces.

set -Eeuo pipefail

CASES="docker-nft docker-nft-forced-nft docker-legacy ufw firewalld"
CASE=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $CASE == all ]]; then
	total_p=0 total_f=0 results=()
	case_log=$(mktemp /tmp/wgfw-e2e-coexist.XXXXXX)
	trap 'rm -f -- "$case_log"' EXIT
	for c in $CASES; do
		printf '\n######## coexist.sh %s ########\n' "$c"
		rc=0
		bash "${BASH_SOURCE[0]}" "$c" 2>&1 | tee "$case_log" || rc=$?
		out=$(tail -n 1 "$case_log")
		if [[ $out =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
			total_p=$((total_p + BASH_REMATCH[1]))
			total_f=$((total_f + BASH_REMATCH[2]))
			results+=("$c: $out")
		else
			total_f=$((total_f + 1))
			results+=("$c: did not finish (exit $rc; last line: $out)")
		fi
	done
	printf '\n[+] per case\n'
	printf '    %s\n' "${results[@]}"
	printf '\n%d passed, %d failed\n' "$total_p" "$total_f"
	[[ $total_f -eq 0 ]] || exit 1
	exit 0
fi

case " $CASES " in
*" $CASE "*) ;;
*)
	echo "usage: $0 docker-nft|docker-nft-forced-nft|docker-legacy|ufw|firewalld|all" >&2
	exit 2
	;;
esac

# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

require_e2e iptables-nft-restore ip6tables-nft-restore iptables-legacy-restore ip6tables-legacy-restore \
	$([[ $CASE == firewalld ]] && echo firewalld firewall-cmd dbus-daemon)

SRV_IF=wgs$$
C1_IF=wga$$
require_free_ifaces "$SRV_IF" "$C1_IF"

setup_traps
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$E2E_TMP/no-bus"
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
C1=$E2E_PREFIX-c1
CTR=$E2E_PREFIX-ctr
SRV_CONF=/etc/netns/$SRV/wireguard/$SRV_IF.conf
SETTINGS=/etc/netns/$SRV/wgfw/$SRV_IF.conf
C1_CONF=$E2E_TMP/$C1_IF.conf
WG_PORT=51820
CT=2      # connect timeout (s) of probes that must be dropped (they time out)
CT_OPEN=3 # connect timeout (s) of probes that must connect
MARK="wgfw:$SRV_IF"

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }

echo "wgfw-hook e2e, coexistence with another firewall manager: case $CASE"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $C1$([[ $CASE == docker* ]] && echo " $CTR"); WireGuard interfaces: $SRV_IF (srv) $C1_IF (c1)"

# ---------------------------------------------------------------------------------------------
# helpers of this test (the shared ones are in lib.sh)

# The hook's state for srv: /run/wgfw/netns-<inode>[.<cookie>]. Directories for srv's inode that
# exist before srv's first `up` (a dead namespace's; inodes are reused) are not counted as ours.
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

# expect_open DESC NS ADDR PORT [SOURCE_SEEN]: a TCP connection succeeds and (when given) the
# listener sees SOURCE_SEEN as the peer address.
expect_open() {
	local desc=$1 ns=$2 addr=$3 port=$4 src=${5:-}
	tcp_probe "$ns" "$(host "$addr")" "$port" "$CT_OPEN"
	if [[ $PROBE != open ]]; then
		fail "$desc: connects" "command:  ip netns exec $ns socat - TCP:$(host "$addr"):$port,connect-timeout=$CT_OPEN" \
			"expected: open" "got:      $PROBE" "output:   $PROBE_OUT"
	elif [[ -z $src ]]; then
		pass "$desc: connects (peer seen as $PROBE_OUT)"
	elif [[ $PROBE_OUT == "$(seen "$src")" ]]; then
		pass "$desc: connects, seen from $src"
	else
		fail "$desc: connects, seen from $src" "expected source: $(seen "$src")" "got:             $PROBE_OUT"
	fi
}
# expect_dropped DESC NS ADDR PORT: the connection times out (dropped).
expect_dropped() {
	assert_tcp "$1: DROPPED (times out)" timeout "$2" "$(host "$3")" "$4" "$CT"
}
# expect_rejected DESC NS ADDR PORT: firewalld's `reject with icmpx admin-prohibited`: the
# connection fails at once with the ICMP error (v4: No route to host, v6: Permission denied).
expect_rejected() {
	local desc="$1: REJECTED (admin-prohibited)" ns=$2 addr=$3 port=$4
	tcp_probe "$ns" "$(host "$addr")" "$port" "$CT"
	if [[ $PROBE == error ]] && grep -qiE 'no route to host|permission denied|prohibited' <<<"$PROBE_OUT"; then
		pass "$desc"
	else
		fail "$desc" "command:  ip netns exec $ns socat - TCP:$(host "$addr"):$port,connect-timeout=$CT" \
			"expected: error (No route to host / Permission denied)" "got:      $PROBE" "output:   $PROBE_OUT"
	fi
}

# The interfaces whose sysctls are compared before/after, besides all and default: the WAN
# (eth0) and, in the docker cases, docker0.
SYSCTL_IFACES="eth0"

# manager_view FILE: srv's rulesets as the other manager sees them, with the hook's part left
# out: lines naming the hook's chains (WGFW...) or carrying its mark (wgfw:), iptables tables
# that are then empty (only built-in chains with policy ACCEPT), the hook's nft table
# `inet wgfw`. The nft section shows the native tables only (iptables-nft's own tables are
# already in the iptables-nft-save sections).
filter_ipt() {
	awk '
		/WGFW|wgfw/ { next }
		/^\*/ { buf = $0; keep = 0; next }
		/^COMMIT$/ { if (keep) print buf "\n" $0; buf = ""; next }
		{ buf = buf "\n" $0; if (!/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/) keep = 1 }'
}
filter_nft() {
	awk '
		/^# Warning/ { next }
		/^table / {
			skip = ($2 == "inet" && $3 == "wgfw") ||
				(($2 == "ip" || $2 == "ip6") && $3 ~ /^(filter|nat|mangle|raw|security)$/)
		}
		skip { if ($0 == "}") skip = 0; next }
		/wgfw/ { next }
		{ print }'
}
manager_view() {
	local v f
	{
		for v in nft legacy; do
			for f in 4 6; do
				echo "=== ip${f/4/}tables-$v-save (without WGFW*, wgfw: lines and empty tables)"
				save_rules "$SRV" "$v" "$f" | filter_ipt
			done
		done
		echo "=== nft list ruleset: native tables other than inet wgfw (without wgfw lines)"
		save_nft "$SRV" | filter_nft
	} >"$1"
}

# write_srv_conf: srv's wg-quick config with the hook as PostUp/PreDown.
write_srv_conf() {
	(
		umask 077
		cat >"$SRV_CONF" <<-EOF
			[Interface]
			Address = 10.66.0.1/24, fd66::1/64
			ListenPort = $WG_PORT
			PrivateKey = $SRV_KEY
			PostUp = $BIN up %i
			PreDown = $BIN down %i

			[Peer]
			PublicKey = $C1_PUB
			AllowedIPs = 10.66.0.2/32, fd66::2/128
		EOF
	)
	chmod 600 "$SRV_CONF"
}

# write_settings BACKEND: srv's settings file (everything else default: policy auto).
write_settings() {
	(
		umask 077
		{
			echo "# wgfw-hook settings for $SRV_IF (coexist e2e test, case $CASE)"
			echo "backend = $1"
		} >"$SETTINGS"
	)
	chmod 600 "$SETTINGS"
	info "settings /etc/wgfw/$SRV_IF.conf: $(grep -v '^#' "$SETTINGS" | paste -sd ';' | sed 's/;/; /g')"
}

# tunnels_up: wg-quick up in srv (PostUp runs the hook) and c1; waits for the handshake.
# Sets TUN_OK=1 when both are up and c1 pings srv's tunnel addresses (v4 and v6).
TUN_OK=0
UP_LOG=
tunnels_up() {
	TUN_OK=0
	UP_LOG=
	assert_ok "wg-quick up $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_IF"
	UP_LOG=$RUN_OUT
	printf '%s\n' "$RUN_OUT" >"$E2E_TMP/srv-up.log"
	if [[ $RUN_RC -ne 0 ]]; then
		info "wg-quick up output:"
		printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
		return 0
	fi
	info "the hook's output in wg-quick up:"
	grep -vE '^\[#\] (ip|wireguard-go|wg) |^[│┌└]|Unknown device type|Missing WireGuard kernel module' <<<"$RUN_OUT" |
		head -n 30 | sed 's/^/    | /' || true
	assert_ok "wg-quick up $C1_IF (c1) exits 0" timeout 60 ip netns exec "$C1" wg-quick up "$C1_CONF"
	[[ $RUN_RC -eq 0 ]] || return 0
	local addr ok=1
	for addr in 10.66.0.1 fd66::1; do
		if ! ping_until "$C1" "$addr" 15; then
			fail "c1 pings $addr through the tunnel" "ping -c1 -W1 $addr failed 15 times" "$(srv wg show "$SRV_IF" 2>&1)"
			ok=0
		fi
	done
	((ok)) && pass "tunnel: c1 pings 10.66.0.1 and fd66::1 through it (handshake through the manager's input rules)"
	TUN_OK=$ok
}

# tunnels_down: wg-quick down in c1 and srv (PreDown runs the hook).
tunnels_down() {
	timeout 60 ip netns exec "$C1" wg-quick down "$C1_CONF" >/dev/null 2>&1 || info "c1 wg-quick down failed"
	if srv ip link show "$SRV_IF" >/dev/null 2>&1; then
		assert_ok "wg-quick down $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$SRV_IF"
		printf '%s\n' "$RUN_OUT" | grep -vE '^\[#\] (ip|wireguard-go|wg) ' | head -n 20 | sed 's/^/    | /' || true
	fi
	if srv ip link show "$SRV_IF" >/dev/null 2>&1; then
		fail "$SRV_IF is gone from srv after wg-quick down" "$(srv ip link show "$SRV_IF" 2>&1)"
		srv ip link del "$SRV_IF" || true
	fi
}

# check_restored LABEL: srv's rulesets and sysctls equal the step-1 snapshot; no hook state.
check_restored() {
	local label=$1 state
	snapshot_rules "$SRV" "$E2E_TMP/rules.$label"
	snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.$label" $SYSCTL_IFACES
	assert_same_file "$label: rulesets (iptables-nft/legacy v4+v6, nft) equal the step-1 snapshot" \
		"$E2E_TMP/rules.before" "$E2E_TMP/rules.$label"
	assert_same_file "$label: sysctls equal the step-1 snapshot" "$E2E_TMP/sysctl.before" "$E2E_TMP/sysctl.$label"
	state=$(srv_state_dirs)
	if [[ -z $state ]] || [[ -z $(find $state -mindepth 1 2>/dev/null) ]]; then
		pass "$label: no hook state left in /run/wgfw for srv (netns inode $SRV_INODE)"
	else
		fail "$label: no hook state left in /run/wgfw for srv (netns inode $SRV_INODE)" "$(find $state -ls)"
	fi
}

# iptables_clean_save: iptables-nft-save (v4 and v6) must stay readable for the manager's tools:
# exit 0 and no "incompatible"/"unsupported" table or rule.
check_nft_save_readable() {
	local f cmd out rc
	for f in 4 6; do
		cmd=ip${f/4/}tables-nft-save
		out=$(srv "$cmd" 2>&1) && rc=0 || rc=$?
		if [[ $rc -eq 0 ]] && ! grep -qiE 'incompatible|unsupported|\[unsupported revision\]' <<<"$out"; then
			pass "$1: $cmd reads every table (no native-only expressions in iptables-nft's tables)"
		else
			fail "$1: $cmd reads every table (no native-only expressions in iptables-nft's tables)" \
				"exit $rc" "$(grep -iE 'incompatible|unsupported|warning' <<<"$out")"
		fi
	done
}

# marked_before_deny LABEL WHAT RULES N MARK_RE TAIL_RE: the chain (RULES, one per line) holds N
# rules that match MARK_RE, together, and after them only its default deny (rules matching
# TAIL_RE: an unconditional drop or reject, the logging of what it drops, ufw's closing jumps),
# so that every other rule (anyone's ban) comes first.
marked_before_deny() {
	local label=$1 what=$2 rules=$3 n=$4 mark=$5 tail=$6 first count after
	count=$(grep -cE -- "$mark" <<<"$rules" || true)
	first=$(grep -nE -- "$mark" <<<"$rules" | head -n 1 | cut -d: -f1)
	after=$(tail -n +"$((${first:-1} + n))" <<<"$rules")
	if [[ $count -eq $n && -n $first ]] &&
		[[ $(sed -n "${first},$((first + n - 1))p" <<<"$rules" | grep -cE -- "$mark") -eq $n ]] &&
		! grep -vE -- "$tail" <<<"$after" | grep -q .; then
		pass "$label: $what holds the hook's $n accepts marked $MARK, right before its default deny"
	else
		fail "$label: $what holds the hook's $n accepts marked $MARK, right before its default deny" "$rules"
	fi
}
first_ipt_rules_marked() {
	local label=$1 variant=$2 family=$3 chain=$4 n=$5
	marked_before_deny "$label" "ip${family/4/}tables-$variant filter $chain" \
		"$(chain_rules "$SRV" "$variant" "$family" filter "$chain")" "$n" "--comment \"$MARK\" -j ACCEPT" \
		'^-A [A-Z]+ (-j (DROP|REJECT)( --reject-with [^ ]+)?|(-m limit .*)?-j LOG .*|-j ufw6?-(after-logging|reject|track)-[a-z]+)$'
}
# first_nft_rules_marked LABEL TABLE CHAIN N: the same as nft itself lists the chain (for
# iptables-nft's tables too: the mark must show there, not only in iptables-nft-save).
first_nft_rules_marked() {
	local label=$1 table=$2 chain=$3 n=$4 rules
	# shellcheck disable=SC2086 # TABLE is "family name"
	rules=$(srv nft list chain $table "$chain" 2>&1 | awk '/^\tchain /{inside=1; next} inside && /^\t\t[a-z]/ && !/^\t\ttype /{print}' |
		sed -E 's/^\t*//; s/counter packets [0-9]+ bytes [0-9]+ ?//')
	marked_before_deny "$label" "nft $table $chain" "$rules" "$n" "accept comment \"$MARK\"\$" \
		'^(drop|reject.*|(limit rate .* )?log .*|jump ufw6?-(after-logging|reject|track)-[a-z]+)$'
}

# The hook's own rules: where they are (backend) and where they are not.
has_own_ipt() { # (whole output first: grep -q closing the pipe early would fail it under pipefail)
	local all
	all=$(save_rules "$SRV" "$1" 4; save_rules "$SRV" "$1" 6)
	grep -qE '^:WGFW' <<<"$all"
}
has_own_nft() { srv nft list table inet wgfw >/dev/null 2>&1; }
check_backend() {
	local label=$1 want=$2 got=()
	has_own_ipt nft && got+=(iptables-nft)
	has_own_ipt legacy && got+=(iptables-legacy)
	has_own_nft && got+=(nft)
	assert_eq "$label: the hook's own chains are in $want only (iptables-nft/legacy: WGFW chains, nft: table inet wgfw)" \
		"$want" "${got[*]:-none}"
}

# ---------------------------------------------------------------------------------------------
# the managers' rulesets (written as the managers write them; loaded with *-restore / nft -f)

# Docker 20.10-27 with the default bridge, one container publishing 8080 -> 80, and ip6tables
# (on by default since Docker 27): iptables-save as Docker leaves it.
docker_rules_v4() {
	cat <<-'EOF'
		*nat
		:PREROUTING ACCEPT [0:0]
		:INPUT ACCEPT [0:0]
		:OUTPUT ACCEPT [0:0]
		:POSTROUTING ACCEPT [0:0]
		:DOCKER - [0:0]
		-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
		-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
		-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
		-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
		-A DOCKER -i docker0 -j RETURN
		-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
		COMMIT
		*filter
		:INPUT ACCEPT [0:0]
		:FORWARD DROP [0:0]
		:OUTPUT ACCEPT [0:0]
		:DOCKER - [0:0]
		:DOCKER-ISOLATION-STAGE-1 - [0:0]
		:DOCKER-ISOLATION-STAGE-2 - [0:0]
		:DOCKER-USER - [0:0]
		-A FORWARD -j DOCKER-USER
		-A FORWARD -j DOCKER-ISOLATION-STAGE-1
		-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A FORWARD -o docker0 -j DOCKER
		-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
		-A FORWARD -i docker0 -o docker0 -j ACCEPT
		-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
		-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
		-A DOCKER-ISOLATION-STAGE-1 -j RETURN
		-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
		-A DOCKER-ISOLATION-STAGE-2 -j RETURN
		-A DOCKER-USER -j RETURN
		COMMIT
	EOF
}
docker_rules_v6() {
	cat <<-'EOF'
		*nat
		:PREROUTING ACCEPT [0:0]
		:INPUT ACCEPT [0:0]
		:OUTPUT ACCEPT [0:0]
		:POSTROUTING ACCEPT [0:0]
		:DOCKER - [0:0]
		-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
		-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER
		-A DOCKER -i docker0 -j RETURN
		COMMIT
		*filter
		:INPUT ACCEPT [0:0]
		:FORWARD DROP [0:0]
		:OUTPUT ACCEPT [0:0]
		:DOCKER - [0:0]
		:DOCKER-ISOLATION-STAGE-1 - [0:0]
		:DOCKER-ISOLATION-STAGE-2 - [0:0]
		:DOCKER-USER - [0:0]
		-A FORWARD -j DOCKER-USER
		-A FORWARD -j DOCKER-ISOLATION-STAGE-1
		-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A FORWARD -o docker0 -j DOCKER
		-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
		-A FORWARD -i docker0 -o docker0 -j ACCEPT
		-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
		-A DOCKER-ISOLATION-STAGE-1 -j RETURN
		-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
		-A DOCKER-ISOLATION-STAGE-2 -j RETURN
		-A DOCKER-USER -j RETURN
		COMMIT
	EOF
}

# ufw 0.36 after `ufw default deny incoming`, `ufw enable`, `ufw allow 80/tcp` (no SSH rule),
# logging low: iptables-save of /etc/ufw/before.rules + user.rules + after.rules as loaded.
ufw_chains() { # PREFIX: the chain declarations ufw makes (ufw- or ufw6-)
	local p=$1 c
	for c in after-forward after-input after-logging-forward after-logging-input after-logging-output \
		after-output before-forward before-input before-logging-forward before-logging-input \
		before-logging-output before-output logging-allow logging-deny reject-forward reject-input \
		reject-output skip-to-policy-forward skip-to-policy-input skip-to-policy-output track-forward \
		track-input track-output user-forward user-input user-limit user-limit-accept \
		user-logging-forward user-logging-input user-logging-output user-output; do
		echo ":$p$c - [0:0]"
	done
	[[ $p == ufw6- ]] || echo ":${p}not-local - [0:0]"
}
ufw_builtin_jumps() {
	local p=$1 c
	for c in INPUT:input FORWARD:forward OUTPUT:output; do
		for s in before-logging before after after-logging reject track; do
			echo "-A ${c%%:*} -j $p$s-${c#*:}"
		done
	done
}
ufw_rules_v4() {
	echo '*filter'
	echo ':INPUT DROP [0:0]'
	echo ':FORWARD DROP [0:0]'
	echo ':OUTPUT ACCEPT [0:0]'
	ufw_chains ufw-
	ufw_builtin_jumps ufw-
	cat <<-'EOF'
		-A ufw-after-input -p udp -m udp --dport 137 -j ufw-skip-to-policy-input
		-A ufw-after-input -p udp -m udp --dport 138 -j ufw-skip-to-policy-input
		-A ufw-after-input -p tcp -m tcp --dport 139 -j ufw-skip-to-policy-input
		-A ufw-after-input -p tcp -m tcp --dport 445 -j ufw-skip-to-policy-input
		-A ufw-after-input -p udp -m udp --dport 67 -j ufw-skip-to-policy-input
		-A ufw-after-input -p udp -m udp --dport 68 -j ufw-skip-to-policy-input
		-A ufw-after-input -m addrtype --dst-type BROADCAST -j ufw-skip-to-policy-input
		-A ufw-after-logging-forward -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw-after-logging-input -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw-before-forward -p icmp -m icmp --icmp-type 3 -j ACCEPT
		-A ufw-before-forward -p icmp -m icmp --icmp-type 11 -j ACCEPT
		-A ufw-before-forward -p icmp -m icmp --icmp-type 12 -j ACCEPT
		-A ufw-before-forward -p icmp -m icmp --icmp-type 8 -j ACCEPT
		-A ufw-before-forward -j ufw-user-forward
		-A ufw-before-input -i lo -j ACCEPT
		-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw-before-input -m conntrack --ctstate INVALID -j ufw-logging-deny
		-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
		-A ufw-before-input -p icmp -m icmp --icmp-type 3 -j ACCEPT
		-A ufw-before-input -p icmp -m icmp --icmp-type 11 -j ACCEPT
		-A ufw-before-input -p icmp -m icmp --icmp-type 12 -j ACCEPT
		-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
		-A ufw-before-input -p udp -m udp --sport 67 --dport 68 -j ACCEPT
		-A ufw-before-input -j ufw-not-local
		-A ufw-before-input -d 224.0.0.251/32 -p udp -m udp --dport 5353 -j ACCEPT
		-A ufw-before-input -d 239.255.255.250/32 -p udp -m udp --dport 1900 -j ACCEPT
		-A ufw-before-input -j ufw-user-input
		-A ufw-before-output -o lo -j ACCEPT
		-A ufw-before-output -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw-before-output -j ufw-user-output
		-A ufw-logging-allow -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW ALLOW] "
		-A ufw-logging-deny -m conntrack --ctstate INVALID -m limit --limit 3/min --limit-burst 10 -j RETURN
		-A ufw-logging-deny -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN
		-A ufw-not-local -m addrtype --dst-type MULTICAST -j RETURN
		-A ufw-not-local -m addrtype --dst-type BROADCAST -j RETURN
		-A ufw-not-local -m limit --limit 3/min --limit-burst 10 -j ufw-logging-deny
		-A ufw-not-local -j DROP
		-A ufw-skip-to-policy-forward -j DROP
		-A ufw-skip-to-policy-input -j DROP
		-A ufw-skip-to-policy-output -j ACCEPT
		-A ufw-track-output -p tcp -m conntrack --ctstate NEW -j ACCEPT
		-A ufw-track-output -p udp -m conntrack --ctstate NEW -j ACCEPT
		-A ufw-user-input -p tcp -m tcp --dport 80 -j ACCEPT
		-A ufw-user-limit -m limit --limit 3/min -j LOG --log-prefix "[UFW LIMIT BLOCK] "
		-A ufw-user-limit -j REJECT --reject-with icmp-port-unreachable
		-A ufw-user-limit-accept -j ACCEPT
		COMMIT
	EOF
}
ufw_rules_v6() {
	echo '*filter'
	echo ':INPUT DROP [0:0]'
	echo ':FORWARD DROP [0:0]'
	echo ':OUTPUT ACCEPT [0:0]'
	ufw_chains ufw6-
	ufw_builtin_jumps ufw6-
	cat <<-'EOF'
		-A ufw6-after-input -p udp -m udp --dport 137 -j ufw6-skip-to-policy-input
		-A ufw6-after-input -p udp -m udp --dport 138 -j ufw6-skip-to-policy-input
		-A ufw6-after-input -p tcp -m tcp --dport 139 -j ufw6-skip-to-policy-input
		-A ufw6-after-input -p tcp -m tcp --dport 445 -j ufw6-skip-to-policy-input
		-A ufw6-after-input -p udp -m udp --dport 546 -j ufw6-skip-to-policy-input
		-A ufw6-after-input -p udp -m udp --dport 547 -j ufw6-skip-to-policy-input
		-A ufw6-after-logging-forward -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw6-after-logging-input -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw6-before-forward -m rt --rt-type 0 --rt-segsleft 0 -j DROP
		-A ufw6-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 3 -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 4 -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
		-A ufw6-before-forward -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT
		-A ufw6-before-forward -j ufw6-user-forward
		-A ufw6-before-input -i lo -j ACCEPT
		-A ufw6-before-input -m rt --rt-type 0 --rt-segsleft 0 -j DROP
		-A ufw6-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT
		-A ufw6-before-input -m conntrack --ctstate INVALID -j ufw6-logging-deny
		-A ufw6-before-input -m conntrack --ctstate INVALID -j DROP
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 3 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 4 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 141 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 142 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 130 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 131 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 132 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 143 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 148 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 149 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 151 -m hl --hl-eq 1 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 152 -m hl --hl-eq 1 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 153 -m hl --hl-eq 1 -j ACCEPT
		-A ufw6-before-input -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
		-A ufw6-before-input -s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT
		-A ufw6-before-input -d ff02::fb/128 -p udp -m udp --dport 5353 -j ACCEPT
		-A ufw6-before-input -d ff02::f/128 -p udp -m udp --dport 1900 -j ACCEPT
		-A ufw6-before-input -j ufw6-user-input
		-A ufw6-before-output -o lo -j ACCEPT
		-A ufw6-before-output -m rt --rt-type 0 --rt-segsleft 0 -j DROP
		-A ufw6-before-output -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 3 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 4 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-output -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m hl --hl-eq 255 -j ACCEPT
		-A ufw6-before-output -j ufw6-user-output
		-A ufw6-logging-allow -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW ALLOW] "
		-A ufw6-logging-deny -m conntrack --ctstate INVALID -m limit --limit 3/min --limit-burst 10 -j RETURN
		-A ufw6-logging-deny -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
		-A ufw6-skip-to-policy-forward -j DROP
		-A ufw6-skip-to-policy-input -j DROP
		-A ufw6-skip-to-policy-output -j ACCEPT
		-A ufw6-track-output -p tcp -m conntrack --ctstate NEW -j ACCEPT
		-A ufw6-track-output -p udp -m conntrack --ctstate NEW -j ACCEPT
		-A ufw6-user-input -p tcp -m tcp --dport 80 -j ACCEPT
		-A ufw6-user-limit -m limit --limit 3/min -j LOG --log-prefix "[UFW LIMIT BLOCK] "
		-A ufw6-user-limit -j REJECT --reject-with icmp6-port-unreachable
		-A ufw6-user-limit-accept -j ACCEPT
		COMMIT
	EOF
}

# ---------------------------------------------------------------------------------------------
step "topology: namespaces, veths, addresses, routes"
DOCKER=0
[[ $CASE == docker* ]] && DOCKER=1
for ns in "$INET" "$SRV" "$C1"; do ns_add "$ns"; done
((DOCKER)) && ns_add "$CTR"
SRV_INODE=$(netns_inode "$SRV")
SRV_STALE=$(srv_state_dirs)
[[ -z $SRV_STALE ]] || info "note: /run/wgfw already holds state for this namespace inode (a dead namespace's; ignored): $SRV_STALE"

ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-c1 type veth peer name eth0 netns "$C1"
ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
ip -n "$INET" addr add 2001:db8:1::1/64 dev to-srv nodad
ip -n "$INET" addr add 198.51.100.1/26 dev to-c1
ip -n "$INET" addr add 2001:db8:2::1/64 dev to-c1 nodad
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" addr add 2001:db8:ff::1/128 dev lo nodad
ip -n "$INET" link set to-srv up
ip -n "$INET" link set to-c1 up
ip netns exec "$INET" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# No route to the tunnel: its IPv4 and its unique-local IPv6 must be masqueraded to reach the
# internet.

ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$SRV" link set eth0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$SRV" -6 route add default via 2001:db8:1::1

ip -n "$C1" addr add 198.51.100.2/26 dev eth0
ip -n "$C1" addr add 2001:db8:2::2/64 dev eth0 nodad
ip -n "$C1" link set eth0 up
ip -n "$C1" route add default via 198.51.100.1
ip -n "$C1" -6 route add default via 2001:db8:2::1

if ((DOCKER)); then
	info "docker0 bridge 172.17.0.1/16 in srv, the container ctr behind it (172.17.0.2/16)"
	ip -n "$SRV" link add docker0 type bridge
	ip -n "$SRV" addr add 172.17.0.1/16 dev docker0
	ip -n "$SRV" link add vethc0ffee type veth peer name eth0 netns "$CTR"
	ip -n "$SRV" link set vethc0ffee master docker0
	ip -n "$SRV" link set vethc0ffee up
	ip -n "$SRV" link set docker0 up
	ip -n "$CTR" addr add 172.17.0.2/16 dev eth0
	ip -n "$CTR" link set eth0 up
	ip -n "$CTR" route add default via 172.17.0.1
	SYSCTL_IFACES="eth0 docker0"
fi

for pair in "$C1 203.0.113.2" "$C1 2001:db8:1::2" "$SRV 192.0.2.1" "$SRV 2001:db8:ff::1"; do
	read -r ns addr <<<"$pair"
	ping_until "$ns" "$addr" 5 || { echo "topology broken: ${ns##*-} cannot ping $addr" >&2; exit 1; }
done
if ((DOCKER)); then
	ping_until "$CTR" 172.17.0.1 5 || { echo "topology broken: ctr cannot ping docker0" >&2; exit 1; }
fi
info "c1 reaches srv over inet, srv reaches the internet service (v4 and v6)"

step "listeners answering the peer address they see: inet tcp/8080, srv tcp/22 tcp/80 tcp/8081$( ((DOCKER)) && echo ", ctr tcp/80")"
listen() { # NS PORT: v4 and v6 listeners
	bg "$1" "$E2E_TMP/${1##*-}-$2-l4.log" socat "TCP4-LISTEN:$2,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
	bg "$1" "$E2E_TMP/${1##*-}-$2-l6.log" socat "TCP6-LISTEN:$2,ipv6only=1,reuseaddr,fork" 'SYSTEM:echo $SOCAT_PEERADDR'
}
listen "$INET" 8080
for p in 22 80 8081; do listen "$SRV" "$p"; done
((DOCKER)) && listen "$CTR" 80
LISTENERS=("$INET 8080" "$SRV 22" "$SRV 80" "$SRV 8081")
((DOCKER)) && LISTENERS+=("$CTR 80")
for lp in "${LISTENERS[@]}"; do
	read -r ns p <<<"$lp"
	wait_for 5 bash -c "[[ \$(ip netns exec '$ns' ss -Hltn 'sport = :$p' | wc -l) -ge 2 ]]" ||
		{ echo "listeners on ${ns##*-} tcp/$p did not start" >&2; exit 1; }
done
info "listeners up"

# ---------------------------------------------------------------------------------------------
step "keys and wg-quick configs (srv: $SRV_CONF, c1: $C1_CONF)"
SRV_KEY=$(wg genkey)
C1_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
C1_PUB=$(wg pubkey <<<"$C1_KEY")
ensure_etc_wgfw
mkdir -p "/etc/netns/$SRV/wireguard" "/etc/netns/$SRV/wgfw"
chmod 700 "/etc/netns/$SRV/wireguard" "/etc/netns/$SRV/wgfw"
(
	umask 077
	cat >"$C1_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.2/32, fd66::2/128
		PrivateKey = $C1_KEY

		[Peer]
		PublicKey = $SRV_PUB
		Endpoint = 203.0.113.2:$WG_PORT
		AllowedIPs = 10.66.0.0/24, fd66::/64, 192.0.2.0/24, 2001:db8:ff::/64, 172.17.0.0/16
	EOF
)
chmod 600 "$C1_CONF"
write_srv_conf
srv test -f "/etc/wireguard/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wireguard" >&2; exit 1; }
write_settings auto
srv test -f "/etc/wgfw/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wgfw onto /etc/wgfw" >&2; exit 1; }

# =============================================================================================
# step 1: the manager's ruleset
case $CASE in
docker-nft | docker-nft-forced-nft) MGR_VARIANT=nft ;;
docker-legacy) MGR_VARIANT=legacy ;;
ufw) MGR_VARIANT=nft ;;
firewalld) MGR_VARIANT= ;;
esac

case $CASE in
docker*)
	step "step 1: load Docker's ruleset with iptables-$MGR_VARIANT (v4 + v6), ip_forward=1 as dockerd sets it"
	docker_rules_v4 | srv "iptables-$MGR_VARIANT-restore"
	docker_rules_v6 | srv "ip6tables-$MGR_VARIANT-restore"
	srv sysctl -q -w net.ipv4.ip_forward=1
	;;
ufw)
	step "step 1: load ufw's ruleset (default deny incoming, allow 80/tcp, no SSH rule) with iptables-nft (v4 + v6)"
	ufw_rules_v4 | srv iptables-nft-restore
	ufw_rules_v6 | srv ip6tables-nft-restore
	;;
firewalld)
	step "step 1: start firewalld in srv (Debian's, nftables backend; default zone public: ssh, dhcpv6-client)"
	export NEIGHBOURS_STATE=$E2E_TMP/neighbours NEIGHBOURS_QUIET=1 NEIGHBOURS_NO_INSTALL=1
	E2E_CLEANUP_HOOKS=("\"$HERE/../neighbours/firewalld.sh\" stop \"\$SRV\"" "${E2E_CLEANUP_HOOKS[@]}")
	"$HERE/../neighbours/firewalld.sh" start "$SRV"
	;;
esac
snapshot_rules "$SRV" "$E2E_TMP/rules.before"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctl.before" $SYSCTL_IFACES
manager_view "$E2E_TMP/manager.before"
info "snapshot: $(grep -c . "$E2E_TMP/rules.before") ruleset lines, $(grep -c . "$E2E_TMP/sysctl.before") sysctls; the manager's view: $(grep -vc '^===' "$E2E_TMP/manager.before") lines"

step "step 1: the manager's rules are effective (no hook yet)"
case $CASE in
docker*)
	expect_open "docker: inet -> published port 203.0.113.2:8080 reaches the container (DNAT)" "$INET" 203.0.113.2 8080 203.0.113.1
	expect_open "docker: container -> internet 192.0.2.1:8080 (masqueraded)" "$CTR" 192.0.2.1 8080 203.0.113.2
	;;
ufw)
	expect_open "ufw: inet -> srv:80 (ufw allow 80/tcp)" "$INET" 203.0.113.2 80 203.0.113.1
	expect_open "ufw: inet -> srv [2001:db8:1::2]:80 (ufw allow 80/tcp)" "$INET" 2001:db8:1::2 80 2001:db8:1::1
	expect_dropped "ufw: inet -> srv:8081 (default deny)" "$INET" 203.0.113.2 8081
	expect_dropped "ufw: inet -> srv [2001:db8:1::2]:8081 (default deny)" "$INET" 2001:db8:1::2 8081
	expect_dropped "ufw: inet -> srv:22 (no SSH rule)" "$INET" 203.0.113.2 22
	;;
firewalld)
	expect_open "firewalld: inet -> srv:22 (service ssh)" "$INET" 203.0.113.2 22 203.0.113.1
	expect_open "firewalld: inet -> srv [2001:db8:1::2]:22 (service ssh)" "$INET" 2001:db8:1::2 22 2001:db8:1::1
	expect_rejected "firewalld: inet -> srv:8081" "$INET" 203.0.113.2 8081
	expect_rejected "firewalld: inet -> srv [2001:db8:1::2]:8081" "$INET" 2001:db8:1::2 8081
	;;
esac

# =============================================================================================
# steps 2 and 3, once per run (firewalld: twice)

# manager_checks LABEL: the manager's own allows and denies while the hook is up.
manager_checks() {
	local l=$1
	case $CASE in
	docker*)
		expect_open "$l: docker: inet -> published port 203.0.113.2:8080 still reaches the container" "$INET" 203.0.113.2 8080 203.0.113.1
		expect_open "$l: docker: container -> internet 192.0.2.1:8080 still works (masqueraded)" "$CTR" 192.0.2.1 8080 203.0.113.2
		# The accepts for the tunnel in Docker's chains must not open what the hook itself denies:
		# tunnel -> local ranges (172.16/12) stays dropped.
		expect_dropped "$l: c1 -> container 172.17.0.2:80 through the tunnel (local range: the hook's drop stays final)" "$C1" 172.17.0.2 80
		;;
	ufw)
		expect_open "$l: ufw: inet -> srv:80 still open (ufw's allow)" "$INET" 203.0.113.2 80 203.0.113.1
		expect_open "$l: ufw: inet -> srv [2001:db8:1::2]:80 still open (ufw's allow)" "$INET" 2001:db8:1::2 80 2001:db8:1::1
		expect_dropped "$l: ufw: inet -> srv:8081 still blocked (ufw's default deny)" "$INET" 203.0.113.2 8081
		expect_dropped "$l: ufw: inet -> srv [2001:db8:1::2]:8081 still blocked" "$INET" 2001:db8:1::2 8081
		expect_dropped "$l: ufw: inet -> srv:22 still blocked (ufw's SSH rules stay in charge)" "$INET" 203.0.113.2 22
		expect_dropped "$l: ufw: inet -> srv [2001:db8:1::2]:22 still blocked" "$INET" 2001:db8:1::2 22
		;;
	firewalld)
		expect_open "$l: firewalld: inet -> srv:22 still open (service ssh)" "$INET" 203.0.113.2 22 203.0.113.1
		expect_open "$l: firewalld: inet -> srv [2001:db8:1::2]:22 still open" "$INET" 2001:db8:1::2 22 2001:db8:1::1
		expect_rejected "$l: firewalld: inet -> srv:8081 still rejected by firewalld" "$INET" 203.0.113.2 8081
		expect_rejected "$l: firewalld: inet -> srv [2001:db8:1::2]:8081 still rejected" "$INET" 2001:db8:1::2 8081
		;;
	esac
}

# exception_checks LABEL: where the hook had to accept its tunnel in the manager's chains, the
# accepts are first there, marked, listed by status and plan, printed by up; elsewhere none.
# EXPECT_PLACES: "ipt:VARIANT:FAMILY:CHAIN:N" / "nft:CHAIN:N" items.
exception_checks() {
	local l=$1 p status plan kind a b c n
	run_capture timeout 30 ip netns exec "$SRV" "$BIN" status
	status=$RUN_OUT
	assert_eq "$l: wgfw-hook status exits 0" 0 "$RUN_RC"
	info "wgfw-hook status:"
	printf '%s\n' "$status" | head -n 40 | sed 's/^/    | /' || true
	run_capture timeout 30 ip netns exec "$SRV" "$BIN" plan "$SRV_IF"
	plan=$RUN_OUT
	assert_eq "$l: wgfw-hook plan $SRV_IF exits 0" 0 "$RUN_RC"
	info "wgfw-hook plan $SRV_IF (its comment lines):"
	grep -E '^# ' <<<"$plan" | head -n 20 | sed 's/^/    | /' || true
	for p in $EXPECT_PLACES; do
		IFS=: read -r kind a b c n <<<"$p"
		if [[ $kind == ipt ]]; then
			first_ipt_rules_marked "$l" "$a" "$b" "$c" "$n"
			if [[ $a == nft ]]; then
				first_nft_rules_marked "$l" "ip${b/4/} filter" "$c" "$n"
			fi
			assert_match "$l: status lists the accepts in ip${b/4/}tables-$a $c" "$c" "$status"
			assert_match "$l: plan notes the accepts in ip${b/4/}tables-$a $c" "$c" "$plan"
			assert_match "$l: up printed the accepts in ip${b/4/}tables-$a $c ([#] ...)" "^\[#\] .*$c" "$UP_LOG"
		else
			first_nft_rules_marked "$l" "inet firewalld" "$a" "$b"
			assert_match "$l: status lists the accepts in inet firewalld $a" "$a" "$status"
			assert_match "$l: plan notes the accepts in inet firewalld $a" "$a" "$plan"
			assert_match "$l: up printed the accepts in inet firewalld $a ([#] ...)" "^\[#\] .*$a" "$UP_LOG"
		fi
	done
	# Every rule of the hook's outside its own chains/table carries the mark: count them.
	local marked want=0
	for p in $EXPECT_PLACES; do want=$((want + ${p##*:})); done
	marked=$({ for v in nft legacy; do save_rules "$SRV" "$v" 4; save_rules "$SRV" "$v" 6; done
		save_nft "$SRV" | filter_nft_keep_marked; } | grep -cF -- "$MARK" || true)
	assert_eq "$l: rules marked $MARK in other managers' chains" "$want" "$marked"
}
# the nft ruleset without the hook's own table (its rules may carry the mark too)
# (and without iptables-nft's tables, whose marked rules iptables-nft-save counted already)
filter_nft_keep_marked() {
	awk '/^table / { skip = ($2 == "inet" && $3 == "wgfw") || (($2 == "ip" || $2 == "ip6") && $3 ~ /^(filter|nat|mangle|raw|security)$/) } skip { if ($0 == "}") skip = 0; next } { print }' |
		grep -vE '^\s*chain WGFW' || true
}

# one_run LABEL BACKEND_SETTING EXPECTED_BACKEND
one_run() {
	local l=$1 setting=$2 want=$3 failed0=$E2E_FAILED
	step "$l: step 2: wg-quick up (hook: backend = $setting, expected $want), c1 up"
	write_settings "$setting"
	tunnels_up
	if ((TUN_OK)); then
		check_backend "$l" "$want"
		expect_open "$l: c1 -> srv's tunnel address 10.66.0.1:8081 (traffic from the tunnel accepted)" "$C1" 10.66.0.1 8081 10.66.0.2
		expect_open "$l: c1 -> srv's tunnel address [fd66::1]:8081 (traffic from the tunnel accepted)" "$C1" fd66::1 8081 fd66::2
		expect_open "$l: c1 -> internet 192.0.2.1:8080 through the tunnel (masqueraded as srv's WAN address)" "$C1" 192.0.2.1 8080 203.0.113.2
		expect_open "$l: c1 -> internet [2001:db8:ff::1]:8080 through the tunnel (a unique-local tunnel: masqueraded)" "$C1" 2001:db8:ff::1 8080 2001:db8:1::2
		manager_checks "$l"
		step "$l: step 2: the manager's rules are untouched (only accepts marked $MARK added)"
		manager_view "$E2E_TMP/manager.$l"
		assert_same_file "$l: the manager's rulesets (without the hook's chains, table and marked lines) are unchanged while up" \
			"$E2E_TMP/manager.before" "$E2E_TMP/manager.$l"
		check_nft_save_readable "$l"
		exception_checks "$l"
	else
		fail "$l: step 2 checks ran" "the tunnel did not come up (see above)"
	fi
	if ((E2E_FAILED > failed0)); then
		info "failures in this run; srv's rulesets while up:"
		{
			for v in nft legacy; do
				echo "## iptables-$v-save / ip6tables-$v-save"
				save_rules "$SRV" "$v" 4
				save_rules "$SRV" "$v" 6
			done
			echo "## nft list ruleset (inet wgfw and firewalld's chains the accepts go to)"
			save_nft "$SRV" | awk '/^table inet wgfw/{p=1} p{print} p&&/^}/{p=0}'
			srv nft list chain inet firewalld filter_INPUT_POLICIES_post 2>/dev/null || true
			srv nft list chain inet firewalld filter_FORWARD_POLICIES_post 2>/dev/null || true
		} >"$E2E_TMP/failure-rules.$l"
		sed 's/^/    | /' "$E2E_TMP/failure-rules.$l" | grep -vE '^\s*\|\s*$' | head -n 150 || true
	fi
	step "$l: step 3: wg-quick down (PreDown runs wgfw-hook down); rulesets and sysctls back to step 1"
	tunnels_down
	check_restored "$l: after down"
}

case $CASE in
docker-nft)
	EXPECT_PLACES=""
	one_run docker-nft auto iptables-nft
	;;
docker-nft-forced-nft)
	# Docker's FORWARD policy DROP is in iptables-nft's tables (v4 and v6): the hook's nft table
	# cannot override it, so its accepts go into FORWARD there (in and out of the tunnel), after
	# Docker's own rules, right before the policy.
	EXPECT_PLACES="ipt:nft:4:FORWARD:2 ipt:nft:6:FORWARD:2"
	one_run docker-nft-forced-nft nft nft
	;;
docker-legacy)
	EXPECT_PLACES=""
	one_run docker-legacy auto iptables-legacy
	;;
ufw)
	# Host input is judged in mangle: ufw's default deny in filter INPUT gets the hook's accepts
	# (from the tunnel, the WireGuard port), after ufw's own rules.
	EXPECT_PLACES="ipt:nft:4:INPUT:2 ipt:nft:6:INPUT:2"
	one_run ufw auto iptables-nft
	;;
firewalld)
	# firewalld's reject ends each zone's chain in its own nft table, which every zone reaches
	# by a goto: accepts of the hook's in the policy chains each zone jumps to right before its
	# reject, filter_INPUT_POLICIES_post (from the tunnel, the WireGuard port) and
	# filter_FORWARD_POLICIES_post (in and out of the tunnel), after the zone's denies.
	EXPECT_PLACES="nft:filter_INPUT_POLICIES_post:2 nft:filter_FORWARD_POLICIES_post:2"
	one_run firewalld-auto auto nft
	one_run firewalld-iptables-nft iptables-nft iptables-nft
	;;
esac

summary || exit 1
