# shellcheck shell=bash
# A throw-away systemd container for the e2e tests that run the hook under a real systemd
# (systemd.sh, networkd.sh). Source it after lib.sh; it does not run anything.
#
# Debian's own systemd (/lib/systemd/systemd) boots as PID 1 of new PID, mount, network, UTS, IPC
# and cgroup namespaces made with unshare. Nothing of it outlives the test, also on failure or
# interruption:
#   - cgroups: a cgroup of its own, <cgroup2 mount>/wgfw-e2e-NAME-PID/, with `payload` (the
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
#     journald and its sockets and those the test keeps (so no udev, sysctl, tmpfiles, binfmt,
#     getty, logind, ...), all generators masked, volatile journal; default target
#     multi-user.target; no /etc/wgfw nor /etc/systemd/network of the host's.
#   - it ends with `systemctl poweroff` inside (SIGKILL to its PID 1 as a last resort).
# The test's own commands run inside with nsenter (in_ct); nothing runs in the host's network
# namespace.
#
# Use:
#   ct_require [TOOL...]             prerequisites (exit 2 when one is missing)
#   setup_traps                      (lib.sh)
#   ct_init NAME                     names, and container_down in lib.sh's cleanup
#   ct_prepare_root [KEEP_UNIT...]   $ADD: what the container's root gets on top of the host's
#   ... add the test's own files under $ADD ...
#   ct_boot                          boots it, checks it (the test ends when it did not boot)
#   ... in_ct CMD ...
#   ct_poweroff                      powers it off, checks nothing is left

CT_SYSTEMD=/lib/systemd/systemd
CT_PYTHON=/usr/bin/python3

# ct_require [TOOL...]: lib.sh's require_e2e with the tools used here and TOOL..., systemd,
# python3 (the console's pty), the root file system, a cgroup2 hierarchy; sets CGROOT.
ct_require() {
	local f d
	require_e2e unshare nsenter setpriv iptables-nft-save findmnt "$@"
	for f in "$CT_SYSTEMD" "$CT_PYTHON"; do
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
}

# ct_init NAME: the container's names (cgroup wgfw-e2e-NAME-PID, hostname wgfw-e2e-NAME); after
# setup_traps (uses $E2E_TMP).
ct_init() {
	CT_NAME=$1
	CG=$CGROOT/wgfw-e2e-$CT_NAME-$$
	T=$E2E_TMP
	ADD=$T/add
	UPID= # unshare (our child; its child is the container's PID 1)
	P1=   # the container's PID 1 (systemd), as the host sees it
	PTY_PID=
	E2E_CLEANUP_HOOKS+=(container_down)
}

# in_ct CMD...: runs CMD inside the container (all its namespaces, its root), with a clean environment.
in_ct() {
	nsenter -t "$P1" -m -u -i -n -p -C -r -w \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb "$@"
}

alive() { [[ -n $1 && -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

console_tail() { tr -d '\r' <"$T/console.log" 2>/dev/null | tail -n "${1:-40}"; }

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

# ct_prepare_root [KEEP_UNIT...]: makes $ADD (copied into the overlay's upper layer at boot): the
# binary under test as /usr/bin/wgfw-hook, an empty /etc/wireguard, /etc/systemd/system ($S) with
# the masks (every unit of Debian's static *.wants but journald's, the KEEP_UNITs and targets;
# udev, networkd, resolved, timesyncd, logind, gettys, ... unless kept), masked generators,
# default.target, a volatile journal and the hostname.
ct_prepare_root() {
	local keep=" systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket $* "
	local u n g
	install -d -m 755 "$ADD" "$ADD/etc" "$ADD/etc/systemd" "$ADD/etc/systemd/system" \
		"$ADD/etc/systemd/system-generators" "$ADD/etc/systemd/journald.conf.d" "$ADD/usr" "$ADD/usr/bin"
	install -d -m 700 "$ADD/etc/wireguard"
	install -m 755 "$BIN" "$ADD/usr/bin/wgfw-hook"
	S=$ADD/etc/systemd/system
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
		[[ $keep == *" $n "* || -e $S/$n || -L $S/$n ]] || ln -s /dev/null "$S/$n"
	done
	for g in /lib/systemd/system-generators/*; do ln -s /dev/null "$ADD/etc/systemd/system-generators/${g##*/}"; done
	ln -s /lib/systemd/system/multi-user.target "$S/default.target"
	printf '[Journal]\nStorage=volatile\n' >"$ADD/etc/systemd/journald.conf.d/wgfw-e2e.conf"
	echo "wgfw-e2e-$CT_NAME" >"$ADD/etc/hostname"
}

# ct_masked: how many units and generators $ADD masks (for an info line).
ct_masked() {
	echo "units masked: $(find "$S" -maxdepth 1 -lname /dev/null | wc -l), generators masked: $(ls "$ADD/etc/systemd/system-generators" | wc -l)"
}

# ct_boot: writes boot.sh, starts the console's pty, boots systemd in new namespaces and checks
# it runs ("boot systemd as PID 1 of new namespaces"); when it did not, FAIL, summary, exit 1.
ct_boot() {
	local i capbnd
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
# The test's units, masks and files; none of the host's enabled units, no host hook settings,
# no host .network files.
rm -rf "$R/etc/systemd/system" "$R/etc/systemd/network" "$R/etc/wgfw"
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

	# The container's console: a pty whose output goes to console.log (the slave stays open
	# here, so systemd's opening and closing of /dev/console never hangs it up).
	"$CT_PYTHON" -c '
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

	# -----------------------------------------------------------------------------------------
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
}

# ct_poweroff: "power the container off": systemctl poweroff inside, bounded; then nothing of it
# is left (container_down) and our cgroup is gone.
ct_poweroff() {
	local i
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
}
