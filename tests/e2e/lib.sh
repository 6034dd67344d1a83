# shellcheck shell=bash
# Helpers for the wgfw-hook end-to-end tests. Source this file; it does not run anything.
#
# Everything the tests change lives in network namespaces created here (names unique per run) and
# in /etc/netns/<ns>/ directories; `cleanup` (installed as an EXIT/INT/TERM trap by `setup_traps`)
# removes all of it, also when a test fails or is interrupted. Nothing here touches the machine's
# own network namespace.

E2E_PREFIX="wgfwt$$"          # namespace prefix, unique per run
E2E_PASSED=0
E2E_FAILED=0
E2E_NAMESPACES=()             # namespaces to delete on exit
E2E_BG_PIDS=()                # background processes we started (by PID)
E2E_CLEANUP_HOOKS=()          # extra commands run first during cleanup
E2E_TMP=                      # scratch directory, made by setup_traps
# /etc/netns is made with a marker when missing; the last run to finish removes it if nothing but
# the marker is left (runs may overlap, so "did I create it" is not enough).
E2E_ETC_NETNS_MARK=/etc/netns/.made-by-wgfw-e2e-tests
if [[ ! -d /etc/netns ]] && mkdir -m 755 /etc/netns 2>/dev/null; then : >"$E2E_ETC_NETNS_MARK"; fi

# ---------------------------------------------------------------------------------------------
# output

step() { printf '\n[+] %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }

pass() {
	E2E_PASSED=$((E2E_PASSED + 1))
	printf '    PASS: %s\n' "$1"
}

# fail DESC [DETAIL_LINE...]
fail() {
	E2E_FAILED=$((E2E_FAILED + 1))
	printf '    FAIL: %s\n' "$1"
	shift
	local line
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/          | /'
	done
}

# summary: the last line of every run; returns non-zero when something failed.
summary() {
	printf '\n%d passed, %d failed\n' "$E2E_PASSED" "$E2E_FAILED"
	[[ $E2E_FAILED -eq 0 ]]
}

# ---------------------------------------------------------------------------------------------
# assertions

# assert_eq DESC EXPECTED GOT
assert_eq() {
	if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1" "expected: $2" "got:      $3"; fi
}

# assert_ge DESC MIN GOT / assert_le DESC MAX GOT (integers)
assert_ge() {
	if [[ "$3" =~ ^-?[0-9]+$ ]] && (($3 >= $2)); then pass "$1 ($3 >= $2)"; else fail "$1" "expected: >= $2" "got:      $3"; fi
}
assert_le() {
	if [[ "$3" =~ ^-?[0-9]+$ ]] && (($3 <= $2)); then pass "$1 ($3 <= $2)"; else fail "$1" "expected: <= $2" "got:      $3"; fi
}

# assert_match DESC EXTENDED_REGEX TEXT / assert_no_match DESC EXTENDED_REGEX TEXT
assert_match() {
	if grep -qE -- "$2" <<<"$3"; then pass "$1"; else fail "$1" "expected to match: $2" "got:" "$3"; fi
}
assert_no_match() {
	if grep -qE -- "$2" <<<"$3"; then
		fail "$1" "expected NOT to match: $2" "got (matching lines):" "$(grep -E -- "$2" <<<"$3")"
	else
		pass "$1"
	fi
}

# run_capture CMD...: runs CMD (errexit-safe), sets RUN_RC and RUN_OUT (stdout+stderr).
run_capture() {
	RUN_OUT=$("$@" 2>&1) && RUN_RC=0 || RUN_RC=$?
}

# assert_rc DESC EXPECTED_RC CMD...: runs CMD, prints command + output on mismatch.
assert_rc() {
	local desc=$1 want=$2
	shift 2
	run_capture "$@"
	if [[ $RUN_RC -eq $want ]]; then
		pass "$desc"
	else
		fail "$desc" "command:  $*" "expected exit $want, got exit $RUN_RC" "output:" "$RUN_OUT"
	fi
}
assert_ok() { local d=$1; shift; assert_rc "$d" 0 "$@"; }

# assert_fails DESC CMD...: CMD must exit non-zero.
assert_fails() {
	local desc=$1
	shift
	run_capture "$@"
	if [[ $RUN_RC -ne 0 ]]; then
		pass "$desc"
	else
		fail "$desc" "command:  $*" "expected a non-zero exit, got 0" "output:" "$RUN_OUT"
	fi
}

# assert_same_file DESC EXPECTED_FILE GOT_FILE: shows a unified diff on mismatch.
assert_same_file() {
	local d
	if d=$(diff -u --label expected "$2" --label got "$3"); then
		pass "$1"
	else
		fail "$1" "$d"
	fi
}

# ---------------------------------------------------------------------------------------------
# prerequisites: a missing one ends the test with exit 2 and says what it is

# require_e2e TOOL...: root, the binary under test (sets BIN: $WGFW_HOOK_BIN, else
# target/debug/wgfw-hook), the tools every test uses and TOOL..., /etc/wireguard (ip netns exec
# binds onto it) and /dev/net/tun (wireguard-go needs it).
require_e2e() {
	local tool
	[[ $EUID -eq 0 ]] || { echo "must run as root (creates network namespaces)" >&2; exit 2; }
	BIN=${WGFW_HOOK_BIN:-$(dirname "${BASH_SOURCE[0]}")/../../target/debug/wgfw-hook}
	BIN=$(realpath -e -- "$BIN" 2>/dev/null) || { echo "wgfw-hook binary not found: ${WGFW_HOOK_BIN:-target/debug/wgfw-hook}" >&2; exit 2; }
	[[ -x $BIN ]] || { echo "not executable: $BIN" >&2; exit 2; }
	for tool in ip wg wg-quick wireguard-go iptables-nft-save ip6tables-nft-save \
		iptables-legacy-save ip6tables-legacy-save nft socat ping ss timeout sysctl "$@"; do
		command -v "$tool" >/dev/null || { echo "missing prerequisite: $tool" >&2; exit 2; }
	done
	[[ -d /etc/wireguard ]] || { echo "/etc/wireguard is missing (wireguard-tools installs it; ip netns exec binds onto it)" >&2; exit 2; }
	[[ -e /dev/net/tun ]] || { echo "/dev/net/tun is missing: wireguard-go cannot create interfaces" >&2; exit 2; }
}

# require_free_ifaces IFACE...: no wireguard-go for any IFACE is running, in any namespace (its
# control socket, /var/run/wireguard/IFACE.sock, is shared by all of them).
require_free_ifaces() {
	local ifc
	for ifc in "$@"; do
		if [[ -S /var/run/wireguard/$ifc.sock ]] && socat -u /dev/null "UNIX-CONNECT:/var/run/wireguard/$ifc.sock" 2>/dev/null; then
			echo "a wireguard-go for some '$ifc' is running (its control socket path is shared by all namespaces); cannot run now" >&2
			exit 2
		fi
	done
}

# ---------------------------------------------------------------------------------------------
# namespaces and processes

# ns_add NS: creates namespace NS (use a "$E2E_PREFIX-..." name) with lo up; deleted on exit.
ns_add() {
	E2E_NAMESPACES+=("$1")
	ip netns add "$1"
	ip -n "$1" link set lo up
}

# in_ns NS CMD...: runs CMD inside NS.
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# bg NS LOGFILE CMD...: starts CMD in NS in the background; sets BG_PID. `ip netns exec` execs
# the command, so the PID is the command's own.
bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 &
	BG_PID=$!
	E2E_BG_PIDS+=("$BG_PID")
}

# bg_stop PID: stops a background process we started.
bg_stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_for SECONDS CMD...: polls CMD every 0.1s until it succeeds; bounded.
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# wait_tcp_listen NS PORT: waits (max 5s) until something listens on tcp PORT in NS.
wait_tcp_listen() {
	wait_for 5 bash -c "ip netns exec '$1' ss -Hltn 'sport = :$2' | grep -q ."
}

# hook_state_dirs INODE [STALE]: the hook's state directories for a namespace whose inode is
# INODE (/run/wgfw/netns-<inode>[.<cookie>]), except those listed in STALE (one per line): a dead
# namespace's that had the same inode before the test's first `up` (inodes are reused).
hook_state_dirs() {
	local inode=$1 stale=${2:-} d
	[[ -n $inode ]] || return 0
	for d in /run/wgfw/*"$inode" /run/wgfw/*"$inode".*; do
		[[ -d $d ]] || continue
		[[ ${d##*/} =~ ^netns-$inode(\.[0-9]+)?$ ]] || continue
		grep -qxF -- "$d" <<<"$stale" && continue
		printf '%s\n' "$d"
	done
}

# netns_inode NS: the namespace's identity (what /proc/self/ns/net shows inside it).
netns_inode() { stat -L -c %i "/run/netns/$1"; }

# cleanup: kills what we started, deletes our namespaces and /etc/netns dirs, temp files.
cleanup() {
	local rc=$? ns pid hook
	trap - EXIT INT TERM ERR
	set +e
	for hook in "${E2E_CLEANUP_HOOKS[@]}"; do eval "$hook" >/dev/null 2>&1; done
	for pid in "${E2E_BG_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for ns in "${E2E_NAMESPACES[@]}"; do
		# Deleting the links stops wireguard-go (it exits when its link goes).
		for link in $(ip -n "$ns" -o link show type tun 2>/dev/null | awk -F': ' '{print $2}'); do
			ip -n "$ns" link del "${link%@*}" 2>/dev/null
		done
		# Anything still running inside our namespace was started by this test (wireguard-go,
		# listeners): stop it by PID so the namespace can go.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
	done
	sleep 0.3
	for ns in "${E2E_NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
		[[ -d "/etc/netns/$ns" ]] && rm -rf -- "/etc/netns/$ns"
	done
	if [[ -f $E2E_ETC_NETNS_MARK && $(find /etc/netns -mindepth 1 | wc -l) -eq 1 ]]; then
		rm -f -- "$E2E_ETC_NETNS_MARK"
		rmdir /etc/netns 2>/dev/null
	fi
	for pid in "${E2E_BG_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	[[ -z $E2E_TMP ]] || rm -rf -- "$E2E_TMP"
	exit "$rc"
}

# setup_traps: installs the cleanup and makes the scratch directory $E2E_TMP.
setup_traps() {
	trap cleanup EXIT
	trap 'echo "interrupted" >&2; exit 130' INT TERM
	E2E_TMP=$(mktemp -d /tmp/wgfw-e2e.XXXXXX)
}

# ---------------------------------------------------------------------------------------------
# snapshots (counters stripped, so that before/after compare exactly)

# normalize_save: iptables-save output without comments and counters.
normalize_save() { sed -E -e '/^#/d' -e 's/ ?\[[0-9]+:[0-9]+\]//g'; }

# normalize_nft: `nft list ruleset` output without counter values and without the elements of
# dynamic sets (the nft backend's per-source limit state, like iptables' hashlimit tables, which
# iptables-save does not show either: it changes with every packet and every second).
normalize_nft() {
	sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/g' | awk '
		/^[ \t]*set [^ ]+ \{$/ { inset = 1; dyn = 0 }
		inset && /^[ \t]*flags .*dynamic/ { dyn = 1 }
		inset && dyn && /^[ \t]*elements = \{/ { skip = 1 }
		skip { if ($0 ~ /\}[ \t]*$/) skip = 0; next }
		inset && /^[ \t]*\}$/ { inset = 0 }
		{ print }'
}

# save_rules NS VARIANT FAMILY: normalised ruleset of one iptables variant (nft|legacy) and
# family (4|6) in NS.
save_rules() {
	local ns=$1 variant=$2 family=$3 cmd
	if [[ $family == 6 ]]; then cmd="ip6tables-$variant-save"; else cmd="iptables-$variant-save"; fi
	ip netns exec "$ns" "$cmd" 2>/dev/null | normalize_save
}

# save_nft NS: normalised `nft list ruleset` in NS.
save_nft() { ip netns exec "$1" nft list ruleset 2>/dev/null | normalize_nft; }

# snapshot_rules NS FILE: every ruleset view of NS (both iptables variants, both families, nft).
snapshot_rules() {
	local ns=$1 out=$2 v f
	{
		for v in nft legacy; do
			for f in 4 6; do
				echo "=== ip${f/4/}tables-$v-save"
				save_rules "$ns" "$v" "$f"
			done
		done
		echo "=== nft list ruleset"
		save_nft "$ns"
	} | awk '
		# A legacy table, once used, stays in the kernel: an empty one (its "*table", "COMMIT"
		# and ":BUILTIN ACCEPT" lines) is not residue.
		/^=== / { legacy = ($0 ~ /legacy/); print; next }
		legacy && (/^\*/ || /^COMMIT$/ || /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/) { next }
		{ print }' >"$out"
}

# sysctl_keys IFACE...: the sysctls wgfw-hook (or wg-quick) sets, and those their writes change
# as a side effect, for all, default and each IFACE.
sysctl_keys() {
	local c
	echo net.ipv4.ip_forward net.ipv4.tcp_syncookies
	for c in all default "$@"; do
		echo "net.ipv4.conf.$c.forwarding net.ipv6.conf.$c.forwarding net.ipv6.conf.$c.disable_ipv6"
		echo "net.ipv4.conf.$c.rp_filter net.ipv4.conf.$c.src_valid_mark"
		echo "net.ipv4.conf.$c.accept_redirects net.ipv4.conf.$c.send_redirects net.ipv4.conf.$c.secure_redirects"
		echo "net.ipv6.conf.$c.accept_redirects net.ipv6.conf.$c.accept_ra"
	done
}

# snapshot_sysctls NS FILE IFACE...: the values of `sysctl_keys IFACE...` in NS.
snapshot_sysctls() {
	local ns=$1 out=$2 k v
	shift 2
	for k in $(sysctl_keys "$@"); do
		v=$(ip netns exec "$ns" sysctl -n "$k" 2>/dev/null) || v="<unreadable>"
		printf '%s = %s\n' "$k" "$v"
	done >"$out"
}

# chain_rules NS VARIANT FAMILY TABLE CHAIN: the `-A CHAIN ...` lines of one chain.
chain_rules() {
	save_rules "$1" "$2" "$3" | awk -v t="*$4" -v c="-A $5 " '
		/^\*/ { in_t = ($0 == t) }
		in_t && index($0, c) == 1 { print }'
}

# counted_rules NS VARIANT FAMILY TABLE: `iptables-save -c` lines ("[pkts:bytes] -A ...") of TABLE.
counted_rules() {
	local cmd
	if [[ $3 == 6 ]]; then cmd="ip6tables-$2-save"; else cmd="iptables-$2-save"; fi
	ip netns exec "$1" "$cmd" -c -t "$4" 2>/dev/null | { grep -E '^\[[0-9]+:[0-9]+\] -A ' || true; }
}

# sum_packets EXTENDED_REGEX: sums the packet counters of `counted_rules` lines (stdin) that match.
sum_packets() {
	{ grep -E -- "$1" || true; } | sed -E 's/^\[([0-9]+):.*/\1/' | awk '{ s += $1 } END { print s + 0 }'
}


# ---------------------------------------------------------------------------------------------
# the native nftables backend (`--backend nft`): one table `inet wgfw`, base chains prerouting_raw,
# forward_mangle, postrouting_nat, input, forward, output that jump to per-family chains named
# like the iptables ones plus -v4 / -v6 (WGFW-INPUT-v4, WGFW-wg0-FWD-v6, ...).

# parse_backend BACKEND: sets VARIANT (the iptables variant: nft|legacy) and NATIVE (1 for the
# native nft backend, whose foreign iptables rules go through iptables-nft); returns 1 when
# BACKEND is not one of iptables-nft, iptables-legacy, nft.
parse_backend() {
	NATIVE=0
	case "$1" in
	iptables-nft) VARIANT=nft ;;
	iptables-legacy) VARIANT=legacy ;;
	nft) VARIANT=nft NATIVE=1 ;;
	*) return 1 ;;
	esac
}

# hook_rules NS: the hook's rules in NS on the backend of parse_backend, as sorted lines (a
# table made anew lists its sets and chains in another order): what a repair must bring back
# exactly, nothing twice.
hook_rules() {
	local f
	if ((NATIVE)); then
		ip netns exec "$1" nft list table inet wgfw | normalize_nft
	else
		for f in 4 6; do save_rules "$1" "$VARIANT" "$f" | grep -E 'WGFW|wgfw' || true; done
	fi | sort
}

# nft_if IFACE: the interface name as the nft backend spells it in chain names
# (_ -> __, = -> _e, + -> _p).
nft_if() {
	local s=${1//_/__}
	s=${s//=/_e}
	printf '%s' "${s//+/_p}"
}

# nft_hook_table NS: `nft list table inet wgfw` in NS (empty when there is no such table).
nft_hook_table() { ip netns exec "$1" nft list table inet wgfw 2>/dev/null || true; }

# nft_chain_hook NS CHAIN: the "type ... hook ... priority ...; policy ...;" line of a base chain
# of inet wgfw (empty for a regular chain or none).
nft_chain_hook() {
	ip netns exec "$1" nft list chain inet wgfw "$2" 2>/dev/null |
		sed -nE 's/^[[:space:]]*(type [a-z]+ hook .*)$/\1/p' || true
}

# nft_chain_rules NS CHAIN: the rules of CHAIN in inet wgfw, one per line, trimmed.
nft_chain_rules() {
	ip netns exec "$1" nft list chain inet wgfw "$2" 2>/dev/null | awk '
		/^[ \t]*chain / { in_c = 1; next }
		!in_c || /^[ \t]*type [a-z]+ hook / || /^[ \t]*\}[ \t]*$/ || /^[ \t]*$/ { next }
		{ sub(/^[ \t]+/, ""); print }' || true
}

# nft_first_rule_for NS CHAIN FAMILY(4|6): the first rule of CHAIN that applies to packets of
# FAMILY (rules restricted to the other family by `meta nfproto` are skipped).
nft_first_rule_for() {
	local other=ipv6
	[[ $3 == 6 ]] && other=ipv4
	nft_chain_rules "$1" "$2" | { grep -vE "(^| )meta nfproto $other( |$)" || true; } | head -n 1
}

# nft_counter NS FAMILY TABLE COMMENT: the packets counted by the rules of table FAMILY TABLE
# that carry `comment "COMMENT"` (the tests' own tables; the hook's rules have no counters).
nft_counter() {
	ip netns exec "$1" nft list table "$2" "$3" 2>/dev/null | grep -F "comment \"$4\"" |
		sed -nE 's/.*counter packets ([0-9]+) .*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

# nft_set_of NS CHAIN REGEX: the name of the set that the first rule of CHAIN matching REGEX
# updates (`... update @NAME { ... }`), e.g. a per-source limit.
nft_set_of() {
	nft_chain_rules "$1" "$2" | { grep -E -- "$3" || true; } | sed -nE 's/.* update @([A-Za-z0-9_]+) .*/\1/p' | head -n 1
}

# nft_set_text NS SET: `nft list set inet wgfw SET` (empty when there is none).
nft_set_text() { ip netns exec "$1" nft list set inet wgfw "$2" 2>/dev/null || true; }

# nft_trace_start NS / nft_trace_stop: `nft monitor trace` in NS (for packets that a rule of the
# test's own sets `meta nftrace set 1` on); nft_trace_stop sets TRACE to what it printed.
nft_trace_start() {
	TRACE_LOG=$(mktemp "$E2E_TMP/trace.XXXXXX")
	bg "$1" "$TRACE_LOG" timeout 60 nft monitor trace
	TRACE_PID=$BG_PID
	sleep 0.5
}
nft_trace_stop() {
	sleep 0.3
	bg_stop "$TRACE_PID"
	TRACE=$(cat "$TRACE_LOG")
}

# ---------------------------------------------------------------------------------------------
# traffic

# tcp_probe NS HOST PORT [CONNECT_TIMEOUT]: one new TCP connection from NS (HOST: 1.2.3.4 or
# [2001:db8::1]). Sets PROBE to open|timeout|refused|error and PROBE_OUT to what the peer sent
# (our listeners answer one line) or socat's error.
tcp_probe() {
	local ns=$1 host=$2 port=$3 ct=${4:-3} rc
	PROBE_OUT=$(timeout $((ct + 3)) ip netns exec "$ns" \
		socat -T2 - "TCP:$host:$port,connect-timeout=$ct" </dev/null 2>&1) && rc=0 || rc=$?
	if [[ $rc -eq 0 ]]; then
		PROBE=open
	elif [[ $rc -eq 124 ]] || grep -qiE 'timed out|timeout' <<<"$PROBE_OUT"; then
		PROBE=timeout
	elif grep -qi 'refused' <<<"$PROBE_OUT"; then
		PROBE=refused
	else
		PROBE=error
	fi
}

# assert_tcp DESC EXPECTED(open|timeout|refused) NS HOST PORT [CONNECT_TIMEOUT]
assert_tcp() {
	local desc=$1 want=$2
	shift 2
	tcp_probe "$@"
	if [[ $PROBE == "$want" ]]; then
		pass "$desc"
	else
		fail "$desc" "command:  ip netns exec $1 socat - TCP:$2:$3,connect-timeout=${4:-3}" \
			"expected: $want" "got:      $PROBE" "output:   $PROBE_OUT"
	fi
}

# ping_until NS ADDR [TRIES]: pings (1s timeout each) until one reply; bounded.
ping_until() {
	local i
	for ((i = 0; i < ${3:-10}; i++)); do
		ip netns exec "$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
	done
	return 1
}

# capture_start NS IFACE FILTER: starts tcpdump for the first packet matching FILTER, waits until
# it listens. Sets CAP_PID and CAP_LOG.
capture_start() {
	CAP_LOG=$(mktemp "$E2E_TMP/cap.XXXXXX")
	bg "$1" "$CAP_LOG" timeout 10 tcpdump --immediate-mode -i "$2" -n -l -c 1 "$3"
	CAP_PID=$BG_PID
	wait_for 5 grep -q 'listening on' "$CAP_LOG" || info "tcpdump on $1/$2 did not start: $(cat "$CAP_LOG")"
}

# capture_wait PID...: waits for captures (bounded by tcpdump's timeout); not in a subshell.
capture_wait() {
	local pid
	for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# capture_line LOG: the captured packet's line, or tcpdump's whole output when it captured nothing.
capture_line() {
	if grep -qE ' IP6? ' "$1"; then
		grep -E ' IP6? ' "$1" | head -n 1
	else
		echo "<nothing captured; tcpdump said: $(tr '\n' ' ' <"$1")>"
	fi
}

# mss_of LINE: the MSS option of a tcpdump line (empty when none).
mss_of() { sed -nE 's/.*[[,]mss ([0-9]+)[],].*/\1/p' <<<"$1"; }

# ---------------------------------------------------------------------------------------------
# settings files and addresses shared by the scenarios

# `ip netns exec` binds /etc/netns/<ns>/wgfw onto /etc/wgfw only where /etc/wgfw exists: make it
# (with a marker) when missing; the last run to finish removes it again.
ETC_WGFW_MARK=/etc/wgfw/.made-by-wgfw-e2e-tests
ensure_etc_wgfw() {
	if [[ ! -d /etc/wgfw ]] && mkdir -m 755 /etc/wgfw 2>/dev/null; then : >"$ETC_WGFW_MARK"; fi
	[[ -d /etc/wgfw ]] || { echo "cannot create the mount point /etc/wgfw" >&2; exit 2; }
}

# remove_etc_wgfw OWN_DIR: removes this run's settings directory first, so that of two runs ending
# together the last to look sees no other; then /etc/wgfw, if we made it and nothing else uses it.
remove_etc_wgfw() {
	rm -rf -- "$1"
	[[ -f $ETC_WGFW_MARK ]] || return 0
	local d
	for d in /etc/netns/*/wgfw; do
		[[ -e $d ]] && return 0
	done
	[[ $(find /etc/wgfw -mindepth 1 | wc -l) -eq 1 ]] || return 0
	rm -f -- "$ETC_WGFW_MARK"
	rmdir /etc/wgfw 2>/dev/null || true
}

# v6peer ADDR: how socat's $SOCAT_PEERADDR shows an IPv6 address: [fd66:0000:...:0002].
v6peer() {
	local a=$1 head tail x out=() h=() t=() i n
	if [[ $a == *::* ]]; then head=${a%%::*} tail=${a#*::}; else head=$a tail=; fi
	[[ -z $head ]] || IFS=: read -ra h <<<"$head"
	[[ -z $tail ]] || IFS=: read -ra t <<<"$tail"
	n=$((8 - ${#h[@]} - ${#t[@]}))
	for x in "${h[@]}"; do out+=("$(printf '%04x' "0x$x")"); done
	for ((i = 0; i < n; i++)); do out+=(0000); done
	for x in "${t[@]}"; do out+=("$(printf '%04x' "0x$x")"); done
	local IFS=:
	printf '[%s]\n' "${out[*]}"
}

# host HOST: socat's form of a destination (IPv6 in brackets).
host() { if [[ $1 == *:* ]]; then printf '[%s]' "$1"; else printf '%s' "$1"; fi; }
# seen ADDR: the form in which a listener reports ADDR as the peer.
seen() { if [[ $1 == *:* ]]; then v6peer "$1"; else printf '%s' "$1"; fi; }
