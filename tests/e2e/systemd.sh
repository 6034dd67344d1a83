#!/usr/bin/env bash
# End-to-end test: wgfw-hook under a real systemd, as Debian runs it. Debian's own systemd
# (/lib/systemd/systemd) boots as PID 1 of a throw-away container made here with unshare (new PID,
# mount, network, UTS, IPC and cgroup namespaces), and Debian's own wg-quick@.service (from
# wireguard-tools) brings up a WireGuard server interface (wireguard-go) whose PostUp/PreDown call
# the hook, with the project's drop-in packaging/systemd/wg-quick@.service.d/wgfw-hook.conf
# installed. It proves that:
#   1. `systemctl start wg-quick@IF` returns promptly (the oneshot job does not wait for the
#      watcher that `up` starts) and the unit is active;
#   2. the watcher keeps running after the start job finished (systemd does not kill it) and is
#      in the unit's control group;
#   3. the watcher's lines reach the unit's journal (its stderr is the unit's journal stream);
#   4. `systemctl reload wg-quick@IF` works with the drop-in (its `wgfw-hook check IF --repair`
#      runs, the watcher stays);
#   5. `systemctl stop wg-quick@IF` stops the watcher (`down` stops it before anything else)
#      and leaves none of the hook's rules.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/systemd.sh auto|nft|iptables-nft|iptables-legacy
#
# The container (nothing of it outlives the test, also on failure or interruption): see
# container.sh; here it keeps no unit of Debian's static *.wants but journald's.
# The test's own commands run inside with nsenter; nothing runs in the host's network namespace.

set -Eeuo pipefail

BACKEND=${1:-}
case $BACKEND in
auto | nft | iptables-nft | iptables-legacy) ;;
*)
	echo "usage: $0 auto|nft|iptables-nft|iptables-legacy" >&2
	exit 2
	;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/e2e/container.sh
source "$HERE/container.sh"
ct_require
WGQ_UNIT=/lib/systemd/system/wg-quick@.service
DROPIN=$HERE/../../packaging/systemd/wg-quick@.service.d/wgfw-hook.conf
for f in "$WGQ_UNIT" "$DROPIN"; do
	[[ -e $f ]] || { echo "missing prerequisite: $f" >&2; exit 2; }
done

setup_traps
IF=wgsd$$
UNIT=wg-quick@$IF.service
HOOK_OPTS=()
[[ $BACKEND == auto ]] || HOOK_OPTS=(--backend "$BACKEND")
ct_init systemd

echo "wgfw-hook e2e, under systemd (Debian's wg-quick@.service), backend $BACKEND"
START_NS=$(date +%s%N)

# journal_has GREP_ARGS...: the unit's journal (messages only) has a matching line.
journal_has() { in_ct journalctl --no-pager -o cat -u "$UNIT" 2>/dev/null | grep -q "$@"; }

# ---------------------------------------------------------------------------------------------
step "prepare the container"
ct_prepare_root
install -d -m 755 "$S/wg-quick@.service.d"
# wg-quick inside the unit uses wireguard-go (no kernel module here).
printf '[Service]\nEnvironment=WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1\n' \
	>"$S/wg-quick@.service.d/userspace.conf"
# The project's drop-in, as shipped.
install -m 644 "$DROPIN" "$S/wg-quick@.service.d/wgfw-hook.conf"
(
	umask 077
	cat >"$ADD/etc/wireguard/$IF.conf" <<-EOF
		[Interface]
		Address = 10.66.0.1/24
		ListenPort = 51820
		PrivateKey = $(wg genkey)
		PostUp = /usr/bin/wgfw-hook up %i ${HOOK_OPTS[*]}
		PreDown = /usr/bin/wgfw-hook down %i
	EOF
)
info "$(ct_masked)"

ct_boot
assert_eq "the unit is Debian's wg-quick@.service with both drop-ins" \
	"$WGQ_UNIT /etc/systemd/system/wg-quick@.service.d/userspace.conf /etc/systemd/system/wg-quick@.service.d/wgfw-hook.conf" \
	"$(in_ct systemctl show -p FragmentPath --value "$UNIT") $(in_ct systemctl show -p DropInPaths --value "$UNIT")"

# ---------------------------------------------------------------------------------------------
step "1. systemctl start $UNIT returns promptly; the unit is active"
t0=$(date +%s%N)
assert_ok "'systemctl start $UNIT' exits 0" in_ct timeout 90 systemctl start "$UNIT"
START_MS=$((($(date +%s%N) - t0) / 1000000))
assert_le "the start job finished promptly, in ms (it does not wait for the watcher)" 15000 "$START_MS"
assert_eq "the unit is active (exited: oneshot, RemainAfterExit)" "active exited" \
	"$(in_ct systemctl show -p ActiveState --value "$UNIT") $(in_ct systemctl show -p SubState --value "$UNIT")"
assert_ok "interface $IF exists in the container" in_ct ip link show "$IF"
case $BACKEND in
nft) assert_match "the hook's rules are installed (table inet wgfw)" 'table inet wgfw' "$(in_ct nft list tables 2>&1)" ;;
iptables-*) assert_match "the hook's rules are installed (WGFW chains in $BACKEND-save)" 'WGFW' "$(in_ct "$BACKEND-save" 2>&1)" ;;
*) assert_match "the hook's rules are installed (table inet wgfw or WGFW chains)" 'table inet wgfw|WGFW' \
	"$(in_ct nft list ruleset 2>&1; in_ct iptables-legacy-save 2>&1)" ;;
esac

# ---------------------------------------------------------------------------------------------
step "2. the watcher keeps running, in the unit's control group"
STATUS=$(in_ct wgfw-hook status "$IF" 2>&1 || true)
WPID=$(sed -nE 's/^  watcher: pid ([0-9]+),.*/\1/p' <<<"$STATUS" | head -n 1)
assert_match "'wgfw-hook status $IF' names a running watcher" '^  watcher: pid [0-9]+, since ' "$STATUS"
WPID=${WPID:-0}
assert_eq "pid $WPID is 'wgfw-hook watch $IF ...'" "/usr/bin/wgfw-hook watch $IF" \
	"$(in_ct cat "/proc/$WPID/cmdline" 2>/dev/null | tr '\0' ' ' | awk '{print $1, $2, $3}')"
CGPATH=$(in_ct systemctl show -p ControlGroup --value "$UNIT")
info "the unit's control group: $CGPATH"
assert_match "the watcher is in the unit's cgroup.procs" "^$WPID\$" "$(in_ct cat "/sys/fs/cgroup$CGPATH/cgroup.procs" 2>&1)"
assert_eq "the watcher's /proc/PID/cgroup is the unit's" "0::$CGPATH" "$(in_ct cat "/proc/$WPID/cgroup" 2>&1 | grep '^0::')"
STATUS_OUT=$(in_ct systemctl status --no-pager -l -n 0 "$UNIT" 2>&1 || true)
assert_match "'systemctl status' lists it under CGroup" "[├└]─$WPID /usr/bin/wgfw-hook watch $IF" "$STATUS_OUT"
printf '%s\n' "$STATUS_OUT" | sed -n '/CGroup:/,$p' | sed 's/^/    | /'
assert_eq "it leads a process group of its own" "$WPID" "$(in_ct ps -o pgid= -p "$WPID" | tr -d ' ')"
assert_match "its stdout is /dev/null" '^/dev/null$' "$(in_ct readlink "/proc/$WPID/fd/1" 2>&1)"
assert_match "its stderr is a socket (the unit's journal stream)" '^socket:' "$(in_ct readlink "/proc/$WPID/fd/2" 2>&1)"
sleep 3
assert_ok "3 s later the watcher (pid $WPID) still runs" in_ct test -e "/proc/$WPID/cmdline"
assert_eq "... and the unit is still active" "active" "$(in_ct systemctl is-active "$UNIT" 2>&1 || true)"
assert_no_match "systemd killed nothing of the unit" "Killing process|left-over process" \
	"$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"

# ---------------------------------------------------------------------------------------------
step "3. the watcher's lines reach the unit's journal"
# Each line must arrive whole: the watcher and up's wg-quick share one journal stream, and
# journald ends a journal line where the writing process changes, so a line written in several
# write(2)s (as Rust's unbuffered stderr does, a write per piece of the format) is cut in two
# when the other process writes in between.
want="wgfw-hook: $IF: watching (pid $WPID)"
wait_for 10 journal_has -xF "$want" || true
JOURNAL=$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)
split_note="(a line cut in pieces is a line written in several write(2)s, interleaved with the other process's)"
if grep -qxF "$want" <<<"$JOURNAL"; then
	pass "journalctl -u $UNIT shows the watcher's line '$want', whole"
else
	fail "journalctl -u $UNIT shows the watcher's line '$want', whole" "$split_note" "$JOURNAL"
fi
want="[#] wgfw-hook watch $IF (pid $WPID, in the background)"
if grep -qxF "$want" <<<"$JOURNAL"; then
	pass "... and up's line '$want', whole"
else
	fail "... and up's line '$want', whole" "$split_note" "$JOURNAL"
fi
assert_eq "the watcher's journal entry carries _SYSTEMD_UNIT=$UNIT" "$UNIT" \
	"$(in_ct journalctl --no-pager -o export -u "$UNIT" "_PID=$WPID" 2>/dev/null | sed -n 's/^_SYSTEMD_UNIT=//p' | sort -u)"
info "the unit's journal so far:"
in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1 | grep -vE 'sysctl -q' | sed 's/^/    | /'

# ---------------------------------------------------------------------------------------------
step "4. systemctl reload $UNIT with the drop-in"
assert_match "ExecReload has Debian's wg syncconf, then the drop-in's 'wgfw-hook check $IF --repair'" \
	"wg syncconf .*\\} \\{ path=/usr/bin/wgfw-hook ; argv\\[\\]=/usr/bin/wgfw-hook check $IF --repair ; ignore_errors=yes" \
	"$(in_ct systemctl show -p ExecReload --value "$UNIT" 2>&1 | tr '\n' ' ')"
assert_ok "'systemctl reload $UNIT' exits 0" in_ct timeout 60 systemctl reload "$UNIT"
assert_eq "the unit is still active" "active" "$(in_ct systemctl is-active "$UNIT" 2>&1 || true)"
wait_for 10 journal_has '^Reloaded ' || true
JOURNAL=$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)
assert_match "the journal says Reloaded" "^Reloaded $UNIT" "$JOURNAL"
assert_match "'wgfw-hook check $IF --repair' ran and found the firewall as installed" "^$IF: as installed" "$JOURNAL"
assert_ok "the watcher (pid $WPID) still runs after the reload" in_ct test -e "/proc/$WPID/cmdline"
# What the reload is for: bring the firewall back in line at once. With the watcher paused
# (SIGSTOP), the hook's table goes; the reload's `check --repair` puts it back.
if [[ -n $(in_ct nft list table inet wgfw 2>/dev/null) ]]; then
	in_ct kill -STOP "$WPID"
	assert_ok "(watcher paused) 'nft delete table inet wgfw'" in_ct nft delete table inet wgfw
	assert_ok "'systemctl reload $UNIT' exits 0" in_ct timeout 60 systemctl reload "$UNIT"
	in_ct kill -CONT "$WPID"
	wait_for 10 journal_has "^$IF: repaired" || true
	assert_match "the reload's 'wgfw-hook check $IF --repair' repaired it" "^$IF: repaired" \
		"$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
	assert_match "table inet wgfw is back" 'table inet wgfw' "$(in_ct nft list tables 2>&1)"
	sleep 1
	assert_ok "the watcher (pid $WPID) runs on (resumed)" in_ct test -e "/proc/$WPID/cmdline"
	assert_match "'wgfw-hook check $IF': as installed" "^$IF: as installed" "$(in_ct wgfw-hook check "$IF" 2>&1 || true)"
else
	info "(no table inet wgfw with backend $BACKEND: the repair by reload is checked with nft only)"
fi
info "the reloads in the unit's journal:"
in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1 | sed -n '/Reloading/,$p' | grep -vE 'sysctl -q|Stopping|Stopped' | sed 's/^/    | /'

# ---------------------------------------------------------------------------------------------
step "5. systemctl stop $UNIT stops the watcher and leaves no hook rules"
t0=$(date +%s%N)
assert_ok "'systemctl stop $UNIT' exits 0" in_ct timeout 90 systemctl stop "$UNIT"
STOP_MS=$((($(date +%s%N) - t0) / 1000000))
assert_le "the stop job finished promptly, in ms" 20000 "$STOP_MS"
assert_eq "the unit is inactive" "inactive" "$(in_ct systemctl is-active "$UNIT" 2>&1 || true)"
assert_fails "the watcher (pid $WPID) is gone" in_ct test -e "/proc/$WPID/cmdline"
wait_for 10 journal_has '^Stopped ' || true
JOURNAL=$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)
exit_line=$(grep -nF "wgfw-hook: $IF: watcher exits: stopped by a signal" <<<"$JOURNAL" | head -n 1 | cut -d: -f1)
down_line=$(grep -nF "[#] /usr/bin/wgfw-hook down $IF" <<<"$JOURNAL" | head -n 1 | cut -d: -f1)
del_line=$(grep -nF "[#] ip link delete dev $IF" <<<"$JOURNAL" | head -n 1 | cut -d: -f1)
if [[ -n $exit_line && -n $down_line && -n $del_line ]] && ((down_line < exit_line && exit_line < del_line)); then
	pass "the watcher exits on down's signal: after PreDown's 'wgfw-hook down', before wg-quick deletes $IF"
else
	fail "the watcher exits on down's signal: after PreDown's 'wgfw-hook down', before wg-quick deletes $IF" \
		"lines: down=${down_line:-none} watcher-exit=${exit_line:-none} link-delete=${del_line:-none}" "$JOURNAL"
fi
assert_no_match "no 'gone without down' from the watcher" "gone without down" "$JOURNAL"
assert_no_match "systemd killed nothing of the unit" "Killing process|left-over process" "$JOURNAL"
assert_match "the journal says Deactivated successfully" "$UNIT: Deactivated successfully" "$JOURNAL"
assert_eq "no process left in the unit's cgroup" "" "$(in_ct cat "/sys/fs/cgroup$CGPATH/cgroup.procs" 2>/dev/null || true)"
assert_eq "no wgfw-hook or wireguard-go left in the container" "" \
	"$(in_ct ps -e -o pid=,args= | grep -E 'wgfw-hook|wireguard-go' || true)"
assert_fails "interface $IF is gone" in_ct ip link show "$IF"
assert_no_match "nft list ruleset: no table inet wgfw" 'table inet wgfw' "$(in_ct nft list ruleset 2>&1)"
for save in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
	assert_no_match "$save: nothing of the hook's (WGFW)" 'WGFW' "$(in_ct "$save" 2>&1)"
done
assert_no_match "'wgfw-hook status $IF' names no watcher" 'watcher: pid' "$(in_ct wgfw-hook status "$IF" 2>&1 || true)"
info "the stop in the unit's journal:"
in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1 | sed -n '/Stopping/,$p' | grep -vE 'sysctl -q' | sed 's/^/    | /'

# ---------------------------------------------------------------------------------------------
ct_poweroff
info "total: $((($(date +%s%N) - START_NS) / 1000000)) ms"

summary || exit 1
