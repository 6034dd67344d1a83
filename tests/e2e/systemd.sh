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
# The container (nothing of it outlives the test, also on failure or interruption):
#   - cgroups: a cgroup of its own, <cgroup2 mount>/wgfw-e2e-systemd-PID/, with `payload` (the
#     container: its cgroup namespace's root, where its systemd makes its slices) and
#     `supervisor` (unshare's waiting parent); removed at the end. Nothing else is moved.
#   - root: an overlay of the host's root file system (read-only lower layer) with a tmpfs upper
#     layer in the container's private mount namespace: whatever systemd or the units write goes
#     to that tmpfs. Fresh proc (/proc/sys read-only except /proc/sys/net, which belongs to the
#     container's network namespace), read-only sysfs, cgroup2 (the cgroup namespace's root), a
#     tmpfs /dev with only null, zero, full, random, urandom, tty, net/tun, a new devpts and a
#     console (a pty that this test logs), tmpfs /run and /tmp.
#   - systemd: env container=wgfw-e2e; without CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYS_RAWIO; its
#     own /etc/systemd/system with every unit that Debian's static *.wants pull in masked except
#     journald and its sockets (so no udev, sysctl, tmpfiles, binfmt, getty, logind, ...), all
#     generators masked, volatile journal; default target multi-user.target.
#   - it ends with `systemctl poweroff` inside (SIGKILL to its PID 1 as a last resort).
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
require_e2e unshare nsenter setpriv iptables-nft-save findmnt
SYSTEMD=/lib/systemd/systemd
WGQ_UNIT=/lib/systemd/system/wg-quick@.service
DROPIN=$HERE/../../packaging/systemd/wg-quick@.service.d/wgfw-hook.conf
PYTHON=/usr/bin/python3
for f in "$SYSTEMD" "$WGQ_UNIT" "$DROPIN" "$PYTHON"; do
	[[ -e $f ]] || { echo "missing prerequisite: $f" >&2; exit 2; }
done
# The container's root is an overlay of the host's root file system alone.
for d in /usr /etc /var; do
	[[ $(findmnt -n -o TARGET --target "$d") == / ]] ||
		{ echo "cannot run: $d is not on the root file system (the container's root is an overlay of /)" >&2; exit 2; }
done
# The cgroup2 hierarchy: /sys/fs/cgroup (unified host) or /sys/fs/cgroup/unified (hybrid host).
CGROOT=
for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	if [[ $(stat -f -c %T "$d" 2>/dev/null) == cgroup2fs ]]; then CGROOT=$d; break; fi
done
[[ -n $CGROOT ]] || { echo "cannot run: no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified" >&2; exit 2; }

setup_traps
IF=wgsd$$
UNIT=wg-quick@$IF.service
HOOK_OPTS=()
[[ $BACKEND == auto ]] || HOOK_OPTS=(--backend "$BACKEND")
CG=$CGROOT/wgfw-e2e-systemd-$$
T=$E2E_TMP
UPID= # unshare (our child; its child is the container's PID 1)
P1=   # the container's PID 1 (systemd), as the host sees it
PTY_PID=

echo "wgfw-hook e2e, under systemd (Debian's wg-quick@.service), backend $BACKEND"
START_NS=$(date +%s%N)

# in_ct CMD...: runs CMD inside the container (all its namespaces, its root), with a clean environment.
in_ct() {
	nsenter -t "$P1" -m -u -i -n -p -C -r -w \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb "$@"
}

# journal_has GREP_ARGS...: the unit's journal (messages only) has a matching line.
journal_has() { in_ct journalctl --no-pager -o cat -u "$UNIT" 2>/dev/null | grep -q "$@"; }

alive() { [[ -n $1 && -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# container_down: powers the container off (bounded), kills its PID 1 as a last resort, removes
# our cgroups. Runs first in lib.sh's cleanup, also on failure.
container_down() {
	local i
	if alive "$P1"; then
		in_ct timeout 20 systemctl --no-block --check-inhibitors=no poweroff >/dev/null 2>&1 || true
		for ((i = 0; i < 300 && ${#P1} > 0; i++)); do alive "$P1" || break; sleep 0.1; done
		if alive "$P1"; then
			echo "    the container did not power off within 30 s: SIGKILL to its PID 1 ($P1)"
			kill -KILL "$P1" 2>/dev/null || true
		fi
	fi
	if [[ -n $UPID ]]; then
		for ((i = 0; i < 100; i++)); do alive "$UPID" || break; sleep 0.1; done
		alive "$UPID" && kill -KILL "$UPID" 2>/dev/null
		wait "$UPID" 2>/dev/null || true
		UPID=
	fi
	if [[ -n $PTY_PID ]]; then
		kill "$PTY_PID" 2>/dev/null || true
		wait "$PTY_PID" 2>/dev/null || true
		PTY_PID=
	fi
	# Only our own cgroup tree, deepest first (systemd may leave empty slices behind).
	if [[ -d $CG ]]; then
		for ((i = 0; i < 50; i++)); do
			find "$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
			[[ -d $CG ]] || break
			sleep 0.1
		done
		[[ -d $CG ]] && echo "    warning: could not remove $CG" >&2
	fi
	return 0
}
E2E_CLEANUP_HOOKS+=(container_down)

# ---------------------------------------------------------------------------------------------
step "prepare the container"
# What the container's root gets on top of the host's (copied into the overlay's upper layer).
ADD=$T/add
install -d -m 755 "$ADD" "$ADD/etc" "$ADD/etc/systemd" "$ADD/etc/systemd/system" \
	"$ADD/etc/systemd/system-generators" "$ADD/etc/systemd/journald.conf.d" \
	"$ADD/etc/systemd/system/wg-quick@.service.d" "$ADD/usr" "$ADD/usr/bin"
install -d -m 700 "$ADD/etc/wireguard"
install -m 755 "$BIN" "$ADD/usr/bin/wgfw-hook"
S=$ADD/etc/systemd/system
keep=" systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket "
for u in /lib/systemd/system/*.wants/*; do
	n=${u##*/}
	[[ $n == *.target || $keep == *" $n "* || -e $S/$n || -L $S/$n ]] && continue
	ln -s /dev/null "$S/$n"
done
for n in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-udev-trigger.service systemd-udev-settle.service systemd-networkd.service \
	systemd-networkd.socket systemd-resolved.service systemd-timesyncd.service \
	systemd-logind.service getty@.service serial-getty@.service console-getty.service \
	container-getty@.service apparmor.service systemd-hwdb-update.service ldconfig.service \
	systemd-remount-fs.service systemd-journal-catalog-update.service systemd-update-done.service; do
	[[ -e $S/$n || -L $S/$n ]] || ln -s /dev/null "$S/$n"
done
for g in /lib/systemd/system-generators/*; do ln -s /dev/null "$ADD/etc/systemd/system-generators/${g##*/}"; done
ln -s /lib/systemd/system/multi-user.target "$S/default.target"
printf '[Journal]\nStorage=volatile\n' >"$ADD/etc/systemd/journald.conf.d/wgfw-e2e.conf"
echo "wgfw-e2e-systemd" >"$ADD/etc/hostname"
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
info "units masked: $(find "$S" -maxdepth 1 -lname /dev/null | wc -l), generators masked: $(ls "$ADD/etc/systemd/system-generators" | wc -l)"

# boot.sh: runs as PID 1 of the new namespaces; builds the root, then becomes systemd.
cat >"$T/boot.sh" <<'EOF'
set -euo pipefail
T=$1
L=$T/layers R=$T/root
# Wait (bounded) until the test has moved unshare's parent out of our cgroup.
for ((i = 0; i < 300; i++)); do [[ -e $T/go ]] && break; sleep 0.1; done
[[ -e $T/go ]] || { echo "boot: no go from the test" >&2; exit 1; }
mount -t tmpfs -o size=1g,mode=755 wgfw-e2e-layers "$L"
mkdir "$L/upper" "$L/work"
mount -t overlay -o "lowerdir=/,upperdir=$L/upper,workdir=$L/work" wgfw-e2e-root "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
if [[ -e $R/proc/sysrq-trigger ]]; then
	mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
	mount -o remount,bind,ro "$R/proc/sysrq-trigger"
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755,size=64m,nosuid wgfw-e2e-dev "$R/dev"
for n in null zero full random urandom tty net/tun; do
	mkdir -p "$(dirname "$R/dev/$n")"
	: >"$R/dev/$n"
	mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev wgfw-e2e-shm "$R/dev/shm"
: >"$R/dev/console"
mount --bind "$(cat "$T/pty")" "$R/dev/console"
ln -s /proc/self/fd "$R/dev/fd"
for s in stdin:0 stdout:1 stderr:2; do ln -s "/proc/self/fd/${s#*:}" "$R/dev/${s%%:*}"; done
mount -t tmpfs -o mode=755,size=256m,nosuid,nodev wgfw-e2e-run "$R/run"
mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev wgfw-e2e-tmp "$R/tmp"
# The test's units, masks and files; none of the host's enabled units, no host hook settings.
rm -rf "$R/etc/systemd/system" "$R/etc/wgfw"
cp -a "$T/add/." "$R/"
cd "$R"
mkdir .wgfw-oldroot
pivot_root . .wgfw-oldroot
cd /
umount -l /.wgfw-oldroot
rmdir /.wgfw-oldroot
exec </dev/console >/dev/console 2>&1
exec setpriv --bounding-set -sys_module,-sys_time,-sys_rawio \
	env -i container=wgfw-e2e PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --log-color=no
EOF
mkdir "$T/layers" "$T/root"

# The container's console: a pty whose output goes to console.log (the slave stays open here, so
# systemd's opening and closing of /dev/console never hangs it up).
"$PYTHON" -c '
import os, sys, tty
m, s = os.openpty()
tty.setraw(s)
with open(sys.argv[1] + ".tmp", "w") as f: f.write(os.ttyname(s))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
log = open(sys.argv[2], "ab", buffering=0)
while True:
    try: d = os.read(m, 65536)
    except OSError: break
    if not d: break
    log.write(d)
' "$T/pty" "$T/console.log" </dev/null >/dev/null 2>&1 &
PTY_PID=$!
wait_for 5 test -e "$T/pty" || { fail "the console pty was made"; summary; exit 1; }

console_tail() { tr -d '\r' <"$T/console.log" 2>/dev/null | tail -n "${1:-40}"; }

# ---------------------------------------------------------------------------------------------
step "boot systemd as PID 1 of new namespaces"
mkdir "$CG" "$CG/payload" "$CG/supervisor"
BOOT_NS=$(date +%s%N)
bash -c 'echo $$ >"$1/payload/cgroup.procs" && exec unshare --cgroup --pid --fork --mount --net --uts --ipc \
	--propagation private bash "$2/boot.sh" "$2"' _ "$CG" "$T" </dev/null >"$T/boot.log" 2>&1 &
UPID=$!
for ((i = 0; i < 100; i++)); do
	P1=$(cat "/proc/$UPID/task/$UPID/children" 2>/dev/null | awk '{print $1}')
	[[ -n $P1 ]] && break
	sleep 0.1
done
if [[ -z $P1 ]]; then
	fail "the container's PID 1 started" "$(cat "$T/boot.log")"
	summary
	exit 1
fi
echo "$UPID" >"$CG/supervisor/cgroup.procs"
: >"$T/go"
if wait_for 60 in_ct test -S /run/systemd/private; then
	run_capture in_ct timeout 60 systemctl is-system-running --wait
else
	RUN_OUT="no /run/systemd/private" RUN_RC=1
fi
BOOT_MS=$((($(date +%s%N) - BOOT_NS) / 1000000))
if [[ $RUN_OUT == running ]]; then
	pass "systemd booted: 'systemctl is-system-running' says running (${BOOT_MS} ms)"
else
	fail "systemd booted: 'systemctl is-system-running' says running" "got: $RUN_OUT (exit $RUN_RC)" \
		"boot.sh said:" "$(cat "$T/boot.log")" "console:" "$(console_tail)" \
		"failed units:" "$(in_ct systemctl --failed --no-pager 2>&1 || true)"
	summary
	exit 1
fi
assert_eq "PID 1 in the container is systemd" "systemd" "$(in_ct ps -o comm= -p 1)"
info "$(in_ct /lib/systemd/systemd --version | head -n 1)"
capbnd=$(awk '/^CapBnd:/ {print $2}' "/proc/$P1/status")
assert_eq "its bounding set lacks CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME" 0 \
	"$(((0x$capbnd >> 16 & 1) + (0x$capbnd >> 17 & 1) + (0x$capbnd >> 25 & 1)))"
info "container: $(in_ct systemd-detect-virt --container 2>&1 || true); cgroup $(cat "/proc/$P1/cgroup" | grep '^0::')"
assert_eq "own network namespace: no interface but lo" "lo" "$(in_ct ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ' | sed 's/ $//')"
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
step "power the container off"
run_capture in_ct timeout 20 systemctl --no-block --check-inhibitors=no poweroff
for ((i = 0; i < 300; i++)); do alive "$P1" || break; sleep 0.1; done
if alive "$P1"; then
	fail "the container powered off within 30 s" "console:" "$(console_tail)"
else
	pass "the container powered off (its systemd: '$(console_tail 3 | grep -m1 -E 'Powering off|Halting' || console_tail 1)')"
	P1=
fi
container_down
assert_eq "our cgroup $CG is removed" "" "$(ls -d "$CG" 2>/dev/null || true)"
info "total: $((($(date +%s%N) - START_NS) / 1000000)) ms"

summary || exit 1
