#!/usr/bin/env bash
# End-to-end test: the project's wgfw-hook@.service under a real systemd, with a WireGuard
# interface that no wg-quick hook runs for: its addresses come from Debian's real
# systemd-networkd. Debian's own systemd boots as PID 1 of a throw-away container (container.sh),
# with systemd-networkd (and the D-Bus system bus that networkctl talks to it by) kept. The
# WireGuard device is wireguard-go's (no kernel module here), started as a transient unit, with
# no /etc/wireguard/IF.conf: the hook reads the live interface. It proves that:
#   1. wgfw-hook@IF.service, enabled and started before the device exists, is active and waits
#      (nothing installed);
#   1b. `wgfw-hook plan` of a tunnel networkd has not created yet reads its .netdev (port,
#      peers) and .network (address), and says so;
#   2. the device alone (no address) installs nothing; once networkd gives it its address (from
#      a .network file written later) the firewall is installed as planned, by the unit's main
#      process (the watcher);
#   3. the watcher follows an address change made by networkd (networkctl reload, reconfigure):
#      the rules name the new network and no longer the old one;
#   3b. and the listen port set with `wg set` (no hook runs; the port has no file to come from):
#      WireGuard is accepted on the new port and no longer on the old;
#   4. the firewall goes with the device (wireguard-go stopped) while the unit stays active and
#      waits, and comes back when the device comes again and networkd configures it (the same
#      watcher: the unit did not restart);
#   5. `systemctl stop wgfw-hook@IF` leaves none of the hook's rules and no watcher;
#   6. so does a stop that comes just after the device went (as at shutdown, where the unit
#      stops after the network), promptly.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/networkd.sh nft|iptables-nft|iptables-legacy
#
# The container (nothing of it outlives the test, also on failure or interruption): see
# container.sh; here it keeps systemd-networkd (and its socket) and D-Bus (dbus.socket,
# dbus.service) besides journald. The backend is set in the container's /etc/wgfw/IF.conf.
# The test's own commands run inside with nsenter; nothing runs in the host's network namespace.

set -Eeuo pipefail

BACKEND=${1:-}
case $BACKEND in
nft | iptables-nft | iptables-legacy) ;;
*)
	echo "usage: $0 nft|iptables-nft|iptables-legacy" >&2
	exit 2
	;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/e2e/container.sh
source "$HERE/container.sh"
ct_require networkctl
HOOK_UNIT_FILE=$HERE/../../packaging/systemd/wgfw-hook@.service
for f in "$HOOK_UNIT_FILE" /lib/systemd/systemd-networkd /lib/systemd/system/systemd-networkd.service \
	/lib/systemd/system/systemd-networkd.socket /lib/systemd/system/dbus.service \
	/lib/systemd/system/dbus.socket /usr/bin/dbus-daemon; do
	[[ -e $f ]] || { echo "missing prerequisite: $f" >&2; exit 2; }
done

setup_traps
IF=wgnd$$
UNIT=wgfw-hook@$IF.service
WGGO=wgfw-e2e-wireguard-go-$IF.service # the transient unit that runs wireguard-go
NETWORK=/etc/systemd/network/50-$IF.network
ct_init networkd

echo "wgfw-hook e2e, wgfw-hook@.service with systemd-networkd, backend $BACKEND"
START_NS=$(date +%s%N)

# journal_has GREP_ARGS...: the unit's journal (messages only) has a matching line.
journal_has() { in_ct journalctl --no-pager -o cat -u "$UNIT" 2>/dev/null | grep -q "$@"; }

# hook_rules: the hook's rules with this backend (empty when none): nft's table inet wgfw, or the
# WGFW lines of iptables-VARIANT-save and ip6tables-VARIANT-save.
hook_rules() {
	case $BACKEND in
	nft) in_ct nft list table inet wgfw 2>/dev/null || true ;;
	iptables-*)
		{
			in_ct "$BACKEND-save" 2>/dev/null
			in_ct "ip6tables-${BACKEND#iptables-}-save" 2>/dev/null
		} | { grep WGFW || true; }
		;;
	esac
}
RULES_NAME="the hook's rules (table inet wgfw)"
[[ $BACKEND == nft ]] || RULES_NAME="the hook's rules (WGFW in $BACKEND-save)"
rules_gone() { [[ -z $(hook_rules) ]]; }
# rules_name TEXT: the hook's rules mention TEXT (a network such as 10.66.0.0/24, as a fixed
# string) / rules_follow NEW OLD: they mention NEW and no longer OLD.
rules_name() { grep -qF -- "$1" <<<"$(hook_rules)"; }
rules_follow() { local r; r=$(hook_rules); grep -qF -- "$1" <<<"$r" && ! grep -qF -- "$2" <<<"$r"; }

# rules_port PORT: the hook's rules accept WireGuard on PORT (nft: udp dport PORT; iptables:
# --dport PORT).
rules_port() { grep -qE -- "dports? $1([^0-9]|\$)" <<<"$(hook_rules)"; }

# addr_of: the IPv4 addresses (CIDR) of $IF, space-separated.
addr_of() { in_ct ip -o -4 address show dev "$IF" 2>/dev/null | awk '{print $4}' | tr '\n' ' ' | sed 's/ $//'; }
has_addr() { [[ " $(addr_of) " == *" $1 "* ]]; }
only_addr() { [[ $(addr_of) == "$1" ]]; }

link_gone() { ! in_ct ip link show "$IF" >/dev/null 2>&1; }

unit_is() { [[ $(in_ct systemctl is-active "$UNIT" 2>/dev/null) == "$1" ]]; }
unit_is_not() { ! unit_is "$1"; }

unit_prop() { in_ct systemctl show -p "$1" --value "$2" 2>/dev/null; }

# wg_device_up: wireguard-go for $IF as a transient unit, then its listen port and key (wg set)
# as soon as its control socket is there (networkd configures the device as soon as it appears).
wg_device_up() {
	assert_ok "'systemd-run --unit=$WGGO wireguard-go -f $IF' exits 0" \
		in_ct timeout 30 systemd-run --quiet --collect --unit="$WGGO" -p Type=simple \
		-E WG_PROCESS_FOREGROUND=1 -E WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
		/usr/bin/wireguard-go -f "$IF"
	run_capture in_ct timeout 30 sh -c 'i=0
		while [ ! -S "/var/run/wireguard/$1.sock" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
		[ -S "/var/run/wireguard/$1.sock" ] || { echo "no /var/run/wireguard/$1.sock after 10 s"; exit 1; }
		exec wg set "$1" listen-port 51820 private-key "/etc/wireguard/$1.key"' _ "$IF"
	if [[ $RUN_RC -eq 0 ]]; then
		pass "wireguard-go made $IF; 'wg set $IF listen-port 51820 private-key ...' exits 0"
	else
		fail "wireguard-go made $IF; 'wg set $IF listen-port 51820 private-key ...' exits 0" "$RUN_OUT" \
			"$(in_ct systemctl status --no-pager -l "$WGGO" 2>&1 || true)"
	fi
	assert_eq "'wg show $IF listen-port' says 51820" 51820 "$(in_ct wg show "$IF" listen-port 2>&1 || true)"
}

# show_journal FROM_REGEX: the unit's journal from the first line matching FROM_REGEX (without
# the sysctl lines).
show_journal() {
	in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1 | sed -n "/$1/,\$p" |
		{ grep -v 'sysctl -q' || true; } | sed 's/^/    | /'
}

# ---------------------------------------------------------------------------------------------
step "prepare the container"
ct_prepare_root systemd-networkd.service systemd-networkd.socket dbus.service dbus.socket
install -d -m 755 "$S/multi-user.target.wants" "$S/sockets.target.wants" "$ADD/etc/wgfw" \
	"$ADD/etc/systemd/network"
# systemd-networkd enabled, as `systemctl enable systemd-networkd` would (D-Bus is enabled by
# Debian's static wants).
ln -s /lib/systemd/system/systemd-networkd.service "$S/multi-user.target.wants/systemd-networkd.service"
ln -s /lib/systemd/system/systemd-networkd.socket "$S/sockets.target.wants/systemd-networkd.socket"
# The project's unit, as shipped.
install -m 644 "$HOOK_UNIT_FILE" "$S/wgfw-hook@.service"
printf 'backend = %s\n' "$BACKEND" >"$ADD/etc/wgfw/$IF.conf"
# wireguard-go's key; no /etc/wireguard/$IF.conf.
(
	umask 077
	wg genkey >"$ADD/etc/wireguard/$IF.key"
)
info "$(ct_masked)"

ct_boot
assert_eq "systemd-networkd is active" active "$(in_ct systemctl is-active systemd-networkd.service 2>&1 || true)"
assert_eq "dbus is active" active "$(in_ct systemctl is-active dbus.service 2>&1 || true)"
run_capture in_ct timeout 20 networkctl list --no-pager --no-legend
if [[ $RUN_RC -eq 0 ]]; then
	pass "networkctl answers (through D-Bus): $(tr -s ' ' <<<"$RUN_OUT" | tr '\n' ';')"
else
	fail "networkctl answers (through D-Bus)" "$RUN_OUT"
fi
assert_eq "the unit is the project's wgfw-hook@.service" "/etc/systemd/system/wgfw-hook@.service" \
	"$(unit_prop FragmentPath "$UNIT")"
run_capture in_ct timeout 60 systemd-analyze verify "$UNIT"
if [[ $RUN_RC -eq 0 ]]; then
	pass "'systemd-analyze verify $UNIT' exits 0${RUN_OUT:+ (it said: $(tr '\n' ' ' <<<"$RUN_OUT"))}"
else
	fail "'systemd-analyze verify $UNIT' exits 0" "exit $RUN_RC" "$RUN_OUT"
fi

# ---------------------------------------------------------------------------------------------
step "1. $UNIT, enabled and started before $IF exists, waits"
assert_fails "there is no $IF yet" in_ct ip link show "$IF"
assert_ok "'systemctl enable --now $UNIT' exits 0" in_ct timeout 60 systemctl enable --now "$UNIT"
assert_eq "it is enabled" enabled "$(in_ct systemctl is-enabled "$UNIT" 2>&1 || true)"
assert_eq "it is active (running)" "active running" "$(unit_prop ActiveState "$UNIT") $(unit_prop SubState "$UNIT")"
MAINPID=$(unit_prop MainPID "$UNIT")
assert_eq "its main process (pid $MAINPID) is 'wgfw-hook watch $IF --follow'" "/usr/bin/wgfw-hook watch $IF --follow" \
	"$(in_ct cat "/proc/$MAINPID/cmdline" 2>/dev/null | tr '\0' ' ' | sed 's/ $//')"
if wait_for 10 journal_has -xF "wgfw-hook: $IF: waiting for $IF and its addresses"; then
	pass "the journal says 'wgfw-hook: $IF: waiting for $IF and its addresses'"
else
	fail "the journal says 'wgfw-hook: $IF: waiting for $IF and its addresses'" \
		"$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_eq "$RULES_NAME: none" "" "$(hook_rules)"
assert_match "'wgfw-hook status $IF': nothing installed" "^$IF: nothing installed" "$(in_ct wgfw-hook status "$IF" 2>&1 || true)"

# ---------------------------------------------------------------------------------------------
step "1b. before networkd creates a tunnel: 'wgfw-hook plan' reads its .netdev and .network"
# Another name, never created: the files are written after networkd started and removed before
# the next 'networkctl reload', so networkd never acts on them (nor on a kernel module).
PRE=${IF}p
in_ct sh -c "printf '[NetDev]\nName=%s\nKind=wireguard\n[WireGuard]\nListenPort=51999\nPrivateKeyFile=/etc/wireguard/%s.key\n[WireGuardPeer]\nPublicKey=%s\nAllowedIPs=10.77.0.2/32\n[WireGuardPeer]\nPublicKey=%s\nAllowedIPs=10.77.0.3/32\n' \
	'$PRE' '$IF' \"\$(wg genkey | wg pubkey)\" \"\$(wg genkey | wg pubkey)\" >/etc/systemd/network/40-$PRE.netdev
	printf '[Match]\nName=%s\n[Network]\nAddress=10.77.0.1/32\n' '$PRE' >/etc/systemd/network/40-$PRE.network"
assert_fails "there is no $PRE" in_ct ip link show "$PRE"
run_capture in_ct timeout 30 wgfw-hook plan "$PRE" --backend "$BACKEND"
assert_eq "'wgfw-hook plan $PRE' exits 0" 0 "$RUN_RC"
assert_match "the plan's port is the .netdev's ListenPort" "^# listen port 51999, " "$RUN_OUT"
assert_match "its tunnel is the .netdev's peers (AllowedIPs) behind the .network's host address" \
	"^# IPv4: address 10\.77\.0\.1/32; tunnel 10\.77\.0\.2/31;" "$RUN_OUT"
assert_match "it says where it read the tunnel" \
	"^# note: the tunnel's addresses, port and peers are read from /etc/systemd/network/40-$PRE\.netdev and 40-$PRE\.network \($PRE is not up yet\)" "$RUN_OUT"
in_ct rm -f "/etc/systemd/network/40-$PRE.netdev" "/etc/systemd/network/40-$PRE.network"

# ---------------------------------------------------------------------------------------------
step "2. $IF appears (wireguard-go, no wg-quick config); networkd gives it its address later"
wg_device_up
assert_fails "there is no /etc/wireguard/$IF.conf" in_ct test -e "/etc/wireguard/$IF.conf"
sleep 2
assert_eq "$IF has no IPv4 address yet (no .network file matches it)" "" "$(addr_of)"
assert_eq "$RULES_NAME: still none (no address of scope global yet)" "" "$(hook_rules)"
assert_eq "the unit is still active, the same main process" "active $MAINPID" "$(in_ct systemctl is-active "$UNIT" 2>&1 || true) $(unit_prop MainPID "$UNIT")"
in_ct sh -c "printf '[Match]\nName=%s\n\n[Network]\nAddress=10.66.0.1/24\n' '$IF' >'$NETWORK'"
info "$NETWORK: $(in_ct cat "$NETWORK" | tr '\n' ' ')"
t0=$(date +%s%N)
assert_ok "'networkctl reload' exits 0" in_ct timeout 30 networkctl reload
assert_ok "'networkctl reconfigure $IF' exits 0" in_ct timeout 30 networkctl reconfigure "$IF"
if wait_for 20 has_addr 10.66.0.1/24; then
	pass "networkd gave $IF 10.66.0.1/24 ($((($(date +%s%N) - t0) / 1000000)) ms)"
else
	fail "networkd gave $IF 10.66.0.1/24 within 20 s" "addresses: $(addr_of)" \
		"$(in_ct networkctl status --no-pager "$IF" 2>&1 || true)" \
		"$(in_ct journalctl --no-pager -o cat -u systemd-networkd 2>&1 | tail -n 20)"
fi
info "networkctl: $(in_ct networkctl list --no-pager --no-legend "$IF" 2>&1 | tr -s ' ')"
if wait_for 20 rules_name 10.66.0.0/24; then
	pass "$RULES_NAME are installed and name 10.66.0.0/24 ($((($(date +%s%N) - t0) / 1000000)) ms after the reload)"
else
	fail "$RULES_NAME are installed and name 10.66.0.0/24 within 20 s" "rules:" "$(hook_rules)" \
		"journal:" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_ok "... and accept WireGuard on its listen port 51820" rules_port 51820
assert_ok "'wgfw-hook check $IF' exits 0" in_ct wgfw-hook check "$IF"
STATUS=$(in_ct wgfw-hook status "$IF" 2>&1 || true)
assert_match "'wgfw-hook status $IF': server role, $BACKEND" "^$IF: server role, $BACKEND" "$STATUS"
assert_match "'wgfw-hook status $IF': the watcher is the unit's main process ($MAINPID)" "^  watcher: pid $MAINPID, since " "$STATUS"
printf '%s\n' "$STATUS" | sed 's/^/    | /'
assert_ok "the journal says 'wgfw-hook: $IF: watching (pid $MAINPID)'" journal_has -xF "wgfw-hook: $IF: watching (pid $MAINPID)"
info "the unit's journal:"
show_journal 'Start'
# The watcher's first look after it installed (with --follow, a plan made anew) comes a moment
# later: the change of step 3 must come after it to be seen as a change.
wait_for 10 journal_has -F "wgfw-hook: $IF: planned anew after the watcher started" || true
sleep 1

# ---------------------------------------------------------------------------------------------
step "3. the watcher follows networkd's address change (10.66.0.1/24 -> 10.77.0.1/24)"
in_ct sed -i 's|^Address=10.66.0.1/24$|Address=10.77.0.1/24|' "$NETWORK"
info "$NETWORK: $(in_ct cat "$NETWORK" | tr '\n' ' ')"
t0=$(date +%s%N)
assert_ok "'networkctl reload' exits 0" in_ct timeout 30 networkctl reload
assert_ok "'networkctl reconfigure $IF' exits 0" in_ct timeout 30 networkctl reconfigure "$IF"
if wait_for 20 only_addr 10.77.0.1/24; then
	pass "networkd changed $IF's address: now only 10.77.0.1/24 ($((($(date +%s%N) - t0) / 1000000)) ms)"
else
	fail "networkd changed $IF's address to only 10.77.0.1/24 within 20 s" "addresses: $(addr_of)" \
		"$(in_ct journalctl --no-pager -o cat -u systemd-networkd 2>&1 | tail -n 20)"
fi
if wait_for 20 rules_follow 10.77.0.0/24 10.66.0.0/24; then
	pass "$RULES_NAME name 10.77.0.0/24 and no longer 10.66.0.0/24 ($((($(date +%s%N) - t0) / 1000000)) ms after the reload)"
else
	fail "$RULES_NAME name 10.77.0.0/24 and no longer 10.66.0.0/24 within 20 s" \
		"lines naming 10.77.0.0/24: $(hook_rules | grep -cF 10.77.0.0/24 || true), naming 10.66.0.0/24: $(hook_rules | grep -cF 10.66.0.0/24 || true)" \
		"rules:" "$(hook_rules)" "journal:" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_ok "'wgfw-hook check $IF' exits 0" in_ct wgfw-hook check "$IF"
want="wgfw-hook: $IF: planned anew after $IF's addresses changed"
if wait_for 10 journal_has -xF "$want"; then
	pass "the journal says '$want'"
else
	fail "the journal says '$want'" "$(in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1)"
fi
assert_eq "the same watcher (pid $MAINPID) runs" "$MAINPID" "$(unit_prop MainPID "$UNIT")"

# ---------------------------------------------------------------------------------------------
step "3b. the watcher follows the listen port set with wg set (51820 -> 51999; no hook runs)"
port_follows() { rules_port 51999 && ! rules_port 51820; }
t0=$(date +%s%N)
assert_ok "'wg set $IF listen-port 51999' exits 0" in_ct wg set "$IF" listen-port 51999
if wait_for 20 port_follows; then
	pass "$RULES_NAME accept WireGuard on 51999 and no longer on 51820 ($((($(date +%s%N) - t0) / 1000000)) ms; the port is asked every 5 s)"
else
	fail "$RULES_NAME accept WireGuard on 51999 and no longer on 51820 within 20 s" "rules:" "$(hook_rules)" \
		"journal:" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_ok "'wgfw-hook check $IF' exits 0" in_ct wgfw-hook check "$IF"
want="wgfw-hook: $IF: planned anew after the listen port changed (wg set)"
if wait_for 10 journal_has -xF "$want"; then
	pass "the journal says '$want'"
else
	fail "the journal says '$want'" "$(in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1)"
fi
assert_eq "the same watcher (pid $MAINPID) runs" "$MAINPID" "$(unit_prop MainPID "$UNIT")"

# ---------------------------------------------------------------------------------------------
step "4. the firewall goes with the device and comes back with it"
assert_ok "'systemctl stop $WGGO' (wireguard-go exits) exits 0" in_ct timeout 30 systemctl stop "$WGGO"
if wait_for 10 link_gone; then
	pass "$IF is gone"
else
	fail "$IF is gone within 10 s" "$(in_ct ip link show "$IF" 2>&1)"
fi
t0=$(date +%s%N)
if wait_for 20 rules_gone; then
	pass "$RULES_NAME are gone ($((($(date +%s%N) - t0) / 1000000)) ms after the device)"
else
	fail "$RULES_NAME are gone within 20 s" "rules:" "$(hook_rules)" \
		"journal:" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_eq "the unit is still active (running), the same main process" "active running $MAINPID" \
	"$(unit_prop ActiveState "$UNIT") $(unit_prop SubState "$UNIT") $(unit_prop MainPID "$UNIT")"
wait_for 10 journal_has -xF "wgfw-hook: $IF: waiting for $IF to come again" || true
assert_ok "the journal says 'wgfw-hook: $IF: waiting for $IF to come again'" \
	journal_has -xF "wgfw-hook: $IF: waiting for $IF to come again"
assert_match "'wgfw-hook status $IF': nothing installed" "^$IF: nothing installed" "$(in_ct wgfw-hook status "$IF" 2>&1 || true)"
assert_eq "nft list tables: no table inet wgfw" "" "$(in_ct nft list tables 2>&1 | grep -F 'table inet wgfw' || true)"
t0=$(date +%s%N)
wg_device_up
if wait_for 20 has_addr 10.77.0.1/24; then
	pass "networkd configured $IF again: 10.77.0.1/24 ($((($(date +%s%N) - t0) / 1000000)) ms)"
else
	fail "networkd configured $IF again (10.77.0.1/24) within 20 s" "addresses: $(addr_of)" \
		"$(in_ct journalctl --no-pager -o cat -u systemd-networkd 2>&1 | tail -n 20)"
fi
if wait_for 20 rules_follow 10.77.0.0/24 10.66.0.0/24; then
	pass "$RULES_NAME are back and name 10.77.0.0/24 ($((($(date +%s%N) - t0) / 1000000)) ms after wireguard-go started)"
else
	fail "$RULES_NAME are back and name 10.77.0.0/24 (not 10.66.0.0/24) within 20 s" "rules:" "$(hook_rules)" \
		"journal:" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
fi
assert_ok "'wgfw-hook check $IF' exits 0" in_ct wgfw-hook check "$IF"
assert_eq "the unit did not restart: the same main process, NRestarts=0" "$MAINPID 0" \
	"$(unit_prop MainPID "$UNIT") $(unit_prop NRestarts "$UNIT")"
assert_match "'wgfw-hook status $IF': the watcher is still pid $MAINPID" "^  watcher: pid $MAINPID, since " \
	"$(in_ct wgfw-hook status "$IF" 2>&1 || true)"
info "the unit's journal since the device went:"
show_journal 'gone\|went\|removed'

# ---------------------------------------------------------------------------------------------
step "5. systemctl stop $UNIT leaves no hook rules and no watcher"
assert_ok "'systemctl stop $UNIT' exits 0" in_ct timeout 60 systemctl stop "$UNIT"
assert_eq "the unit is inactive" inactive "$(in_ct systemctl is-active "$UNIT" 2>&1 || true)"
assert_fails "its main process (pid $MAINPID) is gone" in_ct test -e "/proc/$MAINPID/cmdline"
assert_eq "no wgfw-hook process is left in the container" "" "$(in_ct ps -e -o pid=,args= | grep -E 'wgfw-hook' || true)"
assert_eq "$RULES_NAME: none" "" "$(hook_rules)"
assert_no_match "nft list ruleset: no table inet wgfw" 'table inet wgfw' "$(in_ct nft list ruleset 2>&1)"
for save in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
	assert_no_match "$save: nothing of the hook's (WGFW)" 'WGFW' "$(in_ct "$save" 2>&1)"
done
assert_match "'wgfw-hook status $IF': nothing installed" "^$IF: nothing installed" "$(in_ct wgfw-hook status "$IF" 2>&1 || true)"
wait_for 10 journal_has '^Stopped \|Deactivated successfully' || true
JOURNAL=$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)
assert_match "the journal says Deactivated successfully (or Stopped)" "$UNIT: Deactivated successfully|^Stopped " "$JOURNAL"
assert_no_match "systemd killed nothing of the unit" "Killing process|left-over process" "$JOURNAL"
assert_eq "$IF is still there with its address (the unit does not own the device)" "10.77.0.1/24" "$(addr_of)"
info "the stop in the unit's journal:"
show_journal 'Stopping'

# ---------------------------------------------------------------------------------------------
step "6. stopped just after the device went (as at shutdown: wireguard-go first, then $UNIT)"
# At shutdown the unit is stopped after the network (it is ordered Before=network-pre.target),
# so a userspace device's service has stopped a moment before: the stop request comes while
# the watcher takes in the device's going. It must be obeyed like any other.
assert_ok "'systemctl start $UNIT' exits 0" in_ct timeout 60 systemctl start "$UNIT"
MAINPID=$(unit_prop MainPID "$UNIT")
if wait_for 20 rules_name 10.77.0.0/24; then
	pass "$RULES_NAME are installed again (the device is there with 10.77.0.1/24)"
else
	fail "$RULES_NAME are installed again within 20 s" "$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1 | tail -n 20)"
fi
# The watcher's first look (a moment after it installed) is done before the device goes.
wait_for 10 journal_has -F "wgfw-hook: $IF: planned anew after the watcher started" || true
sleep 1
t0=$(date +%s%N)
assert_ok "'systemctl stop $WGGO' exits 0 (the device goes)" in_ct timeout 30 systemctl stop "$WGGO"
assert_ok "at once, 'systemctl --no-block stop $UNIT' exits 0" in_ct timeout 30 systemctl --no-block stop "$UNIT"
if wait_for 20 unit_is inactive; then
	pass "the unit is inactive ($((($(date +%s%N) - t0) / 1000000)) ms after the device went)"
else
	fail "the unit is inactive within 20 s (its TimeoutStopSec is 90 s)" \
		"state: $(unit_prop ActiveState "$UNIT")/$(unit_prop SubState "$UNIT"), main process $(unit_prop MainPID "$UNIT")" \
		"the watcher (pid $MAINPID): $(in_ct ps -o pid=,stat=,args= -p "$MAINPID" 2>&1 || true)" \
		"$(in_ct grep -E '^Sig(Pnd|Blk)|^ShdPnd' "/proc/$MAINPID/status" 2>&1 | tr '\n' ' ')" \
		"the unit's journal:" "$(in_ct journalctl --no-pager -o short-monotonic -u "$UNIT" 2>&1 | grep -v 'sysctl -q' | tail -n 12)"
	info "(SIGKILL to the unit's processes, so that the test can go on)"
	in_ct systemctl kill -s KILL "$UNIT" >/dev/null 2>&1 || true
	wait_for 20 unit_is_not deactivating || true
fi
assert_fails "the watcher (pid $MAINPID) is gone" in_ct test -e "/proc/$MAINPID/cmdline"
assert_eq "$RULES_NAME: none" "" "$(hook_rules)"
assert_match "'wgfw-hook status $IF': nothing installed" "^$IF: nothing installed" "$(in_ct wgfw-hook status "$IF" 2>&1 || true)"
assert_no_match "systemd killed nothing of the unit" "timed out|Killing process|left-over process" \
	"$(in_ct journalctl --no-pager -o cat -u "$UNIT" 2>&1)"
info "the unit's journal since this watcher started:"
show_journal "watching (pid $MAINPID)"
assert_ok "'systemctl disable $UNIT' exits 0" in_ct timeout 60 systemctl disable "$UNIT"

# ---------------------------------------------------------------------------------------------
ct_poweroff
info "total: $((($(date +%s%N) - START_NS) / 1000000)) ms"

summary || exit 1
