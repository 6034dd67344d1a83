#!/usr/bin/env bash
# End-to-end test (#25): a WireGuard server, then a client (the kill switch), each behind a
# firewalld whose nftables table carries the owner flag (firewalld 2.x, NftablesTableOwner=yes), so
# that nobody else may write into it. The hook must let the server's tunnel in through firewalld's
# D-Bus API, and a client must write nothing into firewalld's table; writing accepts into it, as
# the hook does for firewalld 1.x, is refused by the kernel. Without the API `up` must refuse at
# once, in one clear line, before it changes anything.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/firewalld-owner.sh iptables-nft|iptables-legacy|nft
#
# Debian has only firewalld 1.3.3, which cannot own its table. So firewalld is played by a small
# stand-in (python3-dbus + GLib, as firewalld itself uses), written by this script to $E2E_TMP, on
# a private dbus-daemon in srv's namespace (and for step 6 a second one, on a bus of its own, in
# cli's). It owns org.fedoraproject.FirewallD1 and implements,
# at /org/fedoraproject/FirewallD1, what the hook calls:
#   org.fedoraproject.FirewallD1       getDefaultZone() -> s ("public")
#   org.fedoraproject.FirewallD1.zone  getZoneOfInterface(s) -> s, changeZoneOfInterface(ss) -> s,
#                                      removeInterface(ss) -> s, addPort(sssi) -> s,
#                                      removePort(sss) -> s, queryPort(sss) -> b
# with firewalld's errors (org.fedoraproject.FirewallD1.Exception, the message starting with the
# code: ALREADY_ENABLED, NOT_ENABLED, UNKNOWN_INTERFACE, ZONE_CONFLICT, INVALID_*). Like firewalld
# 2.x it keeps its state in `table inet firewalld { flags owner; }`, made through an `nft -i` child
# it keeps open (the table lives as long as that netlink socket): base chains filter_INPUT and
# filter_FORWARD (priority filter + 10) accept established/related and lo, then what its state
# allows (interfaces in zone trusted: `iifname X accept` in both; ports open in public: `P dport N
# accept` in filter_INPUT), and end in `reject with icmpx admin-prohibited`. Every change rewrites
# both chains in one nft transaction (flush + add, one line of its nft -i). It exits on SIGTERM,
# when this test's shell is gone, or after its maximum lifetime (nft -i then sees EOF and the
# table goes with it).
#
# Topology (three namespaces, "$E2E_PREFIX-{inet,srv,cli}", deleted on exit; IPv4 only):
#
#                  ┌───────────────────────────────────────────┐
#                  │ inet: the "internet" (router) and on lo   │
#                  │ 192.0.2.1: tcp/8080 answers the peer addr │
#                  │ 198.51.100.1: tcp/8081 (outside the tunnel│
#                  │ for cli: what its kill switch must stop)  │
#                  └─────┬───────────────────────────────┬─────┘
#           to-srv 203.0.113.1/24                 to-cli 198.51.100.1/24
#                        │                               │
#              eth0 203.0.113.2/24             eth0 198.51.100.2/24
#   ┌────────────────────┴────────────────┐  ┌───────────┴──────────────────────┐
#   │ srv: wgsPID 10.66.0.1/24, udp/51820 │  │ cli: wgcPID 10.66.0.2/32 (no     │
#   │ PostUp = wgfw-hook up %i --backend B│◄═│ hook but in step 6), AllowedIPs  │
#   │ PreDown = wgfw-hook down %i         │wg│ 10.66.0.0/24, 192.0.2.0/24       │
#   │ dbus-daemon (private bus) + stand-in│  │ (through srv); step 6: PostUp =  │
#   │ firewalld: table inet firewalld,    │  │ wgfw-hook up %i --role client,   │
#   │ flags owner, held by its nft -i     │  │ and a stand-in of its own (bus,  │
#   └─────────────────────────────────────┘  │ owned table) as in srv           │
#                                            └──────────────────────────────────┘
#
# Steps:
#   1 the owner flag holds: another process cannot add a rule to the table (EPERM, exit 1), the
#     listing shows `flags owner`; the API answers as firewalld does
#   2 before up: srv's interface up without the hook; the stand-in rejects the handshake (ICMP
#     admin-prohibited from srv seen on the wire, no handshake, no ping)
#   3 wg-quick up with the hook: it prints its changes as `[#] firewall-cmd ...` lines; the
#     stand-in says the interface is in zone trusted and 51820/udp open in public; the client
#     handshakes, pings 10.66.0.1, reaches 192.0.2.1 over TCP through srv (through the owned
#     table); nothing of the hook's in table inet firewalld; check exits 0
#   4 wg-quick down: `[#] firewall-cmd ...` lines for the removals; the stand-in's state and table
#     are as before up; nothing of the hook's left
#   5 without the API (DBUS_SYSTEM_BUS_ADDRESS points to no socket): `wgfw-hook up` must fail
#     before it changes anything (non-zero exit, besides its `[#]` command trace one line on
#     stderr: firewalld owns its table and its API did not answer) and leave nothing installed:
#     no rules, no record, no watcher
#   6 the client role, cli behind its own owner-flagged stand-in (srv up with the hook again):
#     a without the hook, cli reaches 198.51.100.1:8081 outside the tunnel (the control);
#     b `plan --role client` notes how to allow a LAN into the tunnel with a firewalld policy
#       when cli forwards, and says nothing of it when it does not;
#     c without cli's API, `wgfw-hook up --role client` fails in the same one line, nothing left;
#     d wg-quick up with `PostUp = wgfw-hook up %i --role client`: no firewalld change asked, the
#       stand-in's table byte for byte as before (nothing of the hook's in it); cli pings
#       10.66.0.1 and reaches 192.0.2.1:8080 through the tunnel; 198.51.100.1:8081, outside the
#       tunnel, is rejected by the kill switch (no packet of it on inet's wire); check exits 0;
#     e wg-quick down: the stand-in's table as before, nothing of the hook's left in cli, the
#       control reaches 198.51.100.1:8081 again
#
# srv's wg-quick config lives in /etc/netns/<srv>/wireguard/IFACE.conf (ip netns exec binds it onto
# /etc/wireguard, where the hook reads it); the config without the hook lines, and the client's,
# in $E2E_TMP. Interface names carry the PID: wireguard-go's control sockets are shared by all
# namespaces.

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

# The stand-in runs on the system's python3 (firewalld's own python, with its dbus and gi
# modules), not on whatever python3 comes first in PATH.
PY=/usr/bin/python3
require_e2e "iptables-$VARIANT" "ip6tables-$VARIANT" tcpdump busctl dbus-daemon "$PY"
"$PY" -c 'import dbus, dbus.service, dbus.mainloop.glib; from gi.repository import GLib' 2>/dev/null ||
	{ echo "missing prerequisite: $PY with the dbus and gi modules (python3-dbus, python3-gi)" >&2; exit 2; }

SRV_IF=wgs$$
CLI_IF=wgc$$
require_free_ifaces "$SRV_IF" "$CLI_IF"

setup_traps
export WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

INET=$E2E_PREFIX-inet
SRV=$E2E_PREFIX-srv
CLI=$E2E_PREFIX-cli
SRV_CONF=/etc/netns/$SRV/wireguard/$SRV_IF.conf
PLAIN_CONF=$E2E_TMP/plain/$SRV_IF.conf # the same interface without PostUp/PreDown
CLI_CONF=$E2E_TMP/$CLI_IF.conf
CLI_HOOK_CONF=/etc/netns/$CLI/wireguard/$CLI_IF.conf # step 6: the client with the hook
WG_PORT=51820
BUS_DIR=$E2E_TMP/bus
BUS_ADDR=unix:path=$BUS_DIR/system_bus_socket
CLI_BUS_DIR=$E2E_TMP/cli-bus # step 6: cli's own bus and stand-in
CLI_BUS_ADDR=unix:path=$CLI_BUS_DIR/system_bus_socket
OUTSIDE_PORT=8081 # on 198.51.100.1, inet's address towards cli: outside cli's tunnel
NO_BUS=unix:path=$E2E_TMP/no-bus-here/system_bus_socket # a socket that does not exist
STANDIN_LIFETIME=300                                    # s; a run takes far less
FWD=org.fedoraproject.FirewallD1

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }
# cli CMD...: CMD in cli (within 60 s), on cli's own bus (its stand-in's, step 6).
cli() { timeout 60 ip netns exec "$CLI" env DBUS_SYSTEM_BUS_ADDRESS="$CLI_BUS_ADDR" "$@"; }

echo "wgfw-hook e2e, firewalld owning its nft table (stand-in on D-Bus), backend $BACKEND"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $CLI; WireGuard interfaces: $SRV_IF (srv) $CLI_IF (cli)"

# ---------------------------------------------------------------------------------------------
# helpers of this test

# The hook's state for srv: /run/wgfw/netns-<inode>[.<cookie>]; directories of srv's inode that
# exist before the first up (a dead namespace's; inodes are reused) are not ours.
SRV_INODE=
SRV_STALE=
CLI_INODE=
CLI_STALE=
srv_state_dirs() { hook_state_dirs "$SRV_INODE" "$SRV_STALE"; }
cli_state_dirs() { hook_state_dirs "$CLI_INODE" "$CLI_STALE"; }
# If the test dies with the hook installed, let the hook take it down (the stand-ins still run
# then: cleanup hooks come before the background processes are killed), then remove its state.
cleanup_hook_state() {
	local dirs
	dirs=$(cli_state_dirs)
	if [[ -n $dirs ]]; then
		timeout 30 ip netns exec "$CLI" env DBUS_SYSTEM_BUS_ADDRESS="$CLI_BUS_ADDR" "$BIN" down "$CLI_IF"
		rm -rf -- $dirs
	fi
	dirs=$(srv_state_dirs)
	[[ -n $dirs ]] || return 0
	timeout 30 ip netns exec "$SRV" "$BIN" down "$SRV_IF"
	rm -rf -- $dirs
}
E2E_CLEANUP_HOOKS+=(cleanup_hook_state)

# fw IFACE METHOD [SIGNATURE ARGS...]: one call to the stand-in, as the hook makes it; busctl's
# stdout and stderr (exit status in RUN_RC via run_capture where it matters).
fw() {
	timeout 10 ip netns exec "$SRV" busctl --address="$BUS_ADDR" --auto-start=no --timeout=5 \
		call "$FWD" /org/fedoraproject/FirewallD1 "$@" 2>&1
}
zone_of() { fw "$FWD.zone" getZoneOfInterface s "$1" || true; }
port_state() { fw "$FWD.zone" queryPort sss public "$WG_PORT" udp || true; }

# fw_table [NS]: the stand-in's table (srv's, or NS's) as another process lists it.
fw_table() { ip netns exec "${1:-$SRV}" nft list table inet firewalld 2>&1 || true; }
# changes_asked LOG: how many changes a stand-in was asked for (its log of calls).
changes_asked() { grep -cE '(changeZoneOfInterface|removeInterface|addPort|removePort)\(' "$1" || true; }
# fw_chain_rules CHAIN: its rules, one per line, trimmed (no counters in the stand-in's rules).
fw_chain_rules() {
	srv nft list chain inet firewalld "$1" 2>/dev/null | awk '
		/^[ \t]*chain / { in_c = 1; next }
		!in_c || /^[ \t]*type [a-z]+ hook / || /^[ \t]*\}[ \t]*$/ || /^[ \t]*$/ { next }
		{ sub(/^[ \t]+/, ""); print }' || true
}

# watchers [NS]: PIDs of `wgfw-hook watch` processes in srv (or NS).
watchers() {
	local pid
	for pid in $(ip netns pids "${1:-$SRV}" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "(^|/)wgfw-hook watch " && echo "$pid"
	done
	return 0
}

# handshake_of NS IFACE: the latest handshake (unix time, 0 for none) of the interface's peer.
handshake_of() { ip netns exec "$1" wg show "$2" latest-handshakes 2>/dev/null | awk '{ print $2 + 0; exit }'; }

# srv_hook_rules [NS]: hook_rules for srv (or NS), quiet where the hook has no table at all (nft
# says so on stderr; nothing installed then).
srv_hook_rules() { hook_rules "${1:-$SRV}" 2>/dev/null || true; }

# nothing_installed LABEL [cli]: the hook left none of its rules, no record, no watcher in srv (or
# in cli, for its interface).
nothing_installed() {
	local l=$1 who=${2:-srv} ns=$SRV ifc=$SRV_IF
	[[ $who == srv ]] || { ns=$CLI; ifc=$CLI_IF; }
	assert_eq "$l: none of the hook's rules in $who ($BACKEND)" "" "$(srv_hook_rules "$ns")"
	run_capture timeout 30 ip netns exec "$ns" "$BIN" status "$ifc"
	assert_eq "$l: wgfw-hook status $ifc says nothing is installed" "$ifc: nothing installed" \
		"$(grep -vE '^conntrack: ' <<<"$RUN_OUT")"
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -z $(watchers "$ns") ]] && break
		sleep 0.1
	done
	if [[ -z $(watchers "$ns") ]]; then
		pass "$l: no wgfw-hook watcher runs in $who"
	else
		fail "$l: no wgfw-hook watcher runs in $who" "still running: $(watchers "$ns" | paste -sd ' ')"
	fi
	assert_eq "$l: no hook state under /run/wgfw for $who" "" "$("${who}_state_dirs")"
}

# ---------------------------------------------------------------------------------------------
# the firewalld stand-in

STANDIN=$E2E_TMP/firewalld-standin.py
cat >"$STANDIN" <<'PY'
"""A stand-in for firewalld 2.x on D-Bus: the calls wgfw-hook makes, and an nftables table with
the owner flag that holds its state. usage: firewalld-standin.py BUS_ADDRESS MAX_SECONDS PARENT_PID
"""
import os
import re
import select
import signal
import subprocess
import sys
import time

import dbus
import dbus.bus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

ADDRESS, LIFETIME, PARENT = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
NAME = "org.fedoraproject.FirewallD1"
PATH = "/org/fedoraproject/FirewallD1"
ZONE = NAME + ".zone"
ZONES = ("block", "dmz", "drop", "external", "home", "internal", "public", "trusted", "work")
DEFAULT_ZONE = "public"
T0 = time.monotonic()


def log(msg):
    print("%7.3f %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def starttime(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


class FirewallError(dbus.DBusException):
    """As firewalld raises them: the message starts with the code."""
    _dbus_error_name = NAME + ".Exception"


class Nft:
    """An `nft -i` child: its netlink socket owns the table. One line is one transaction; each is
    followed by `list table inet firewalld`, whose closing brace says the line is done, and what
    nft printed before the listing is its complaint."""

    def __init__(self):
        self.p = subprocess.Popen(["nft", "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.buf = b""

    def line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("nft -i did not answer within 5 s")
            if select.select([self.p.stdout], [], [], left)[0]:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("nft -i ended")
                self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return text.decode(errors="replace")

    def run(self, command):
        """Runs one line; returns nft's complaint ("" when it did it)."""
        self.p.stdin.write((command + "\nlist table inet firewalld\n").encode())
        self.p.stdin.flush()
        deadline = time.monotonic() + 5
        before, listing = [], False
        while True:
            text = self.line(deadline)
            if text.startswith("table inet firewalld"):
                listing = True
            elif not listing:
                before.append(text)
                if text == "list table inet firewalld":  # the table itself is gone
                    raise RuntimeError("table inet firewalld is gone: " + " | ".join(before))
            elif text == "}":
                return "\n".join(before)

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=3)
        except Exception:
            self.p.kill()
            self.p.wait()


IFACE_RE = re.compile(r"^[A-Za-z0-9_.:+=-]{1,15}$")
PORT_RE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")


class FirewallD(dbus.service.Object):
    def __init__(self, bus, nft):
        self.nft = nft
        self.zone_of = {}   # interface -> zone (runtime bindings)
        self.ports = {}     # zone -> set of (port, proto)
        self.timers = {}
        self.nft_create()
        dbus.service.Object.__init__(self, bus, PATH)

    # --- the table ---------------------------------------------------------------------------
    def nft_create(self):
        err = self.nft.run(
            "add table inet firewalld { flags owner; }; "
            "add chain inet firewalld filter_INPUT { type filter hook input priority filter + 10; policy accept; }; "
            "add chain inet firewalld filter_FORWARD { type filter hook forward priority filter + 10; policy accept; }")
        if err:
            raise SystemExit("cannot create table inet firewalld: " + err)
        self.render()

    def render(self):
        """Both chains anew from the state, in one transaction."""
        head = ["ct state established,related accept", 'iifname "lo" accept']
        inp, fwd = list(head), list(head)
        for iface in sorted(i for i, z in self.zone_of.items() if z == "trusted"):
            inp.append('iifname "%s" accept' % iface)
            fwd.append('iifname "%s" accept' % iface)
        for port, proto in sorted(self.ports.get("public", ())):
            inp.append("%s dport %s accept" % (proto, port))
        tail = "reject with icmpx admin-prohibited"
        inp.append(tail)
        fwd.append(tail)
        cmds = ["flush chain inet firewalld filter_INPUT", "flush chain inet firewalld filter_FORWARD"]
        cmds += ["add rule inet firewalld filter_INPUT " + r for r in inp]
        cmds += ["add rule inet firewalld filter_FORWARD " + r for r in fwd]
        err = self.nft.run("; ".join(cmds))
        if err:
            raise RuntimeError(err)

    def change(self, what):
        """Applies `what` (a function changing the state) and renders; on failure the state is as
        before and the call fails with COMMAND_FAILED."""
        saved = (dict(self.zone_of), {z: set(p) for z, p in self.ports.items()})
        what()
        try:
            self.render()
        except Exception as e:
            self.zone_of, self.ports = saved
            log("ERROR rendering: %s" % e)
            raise FirewallError("COMMAND_FAILED: %s" % str(e).replace("\n", " | "))

    # --- checks as firewalld makes them -------------------------------------------------------
    @staticmethod
    def zone(z):
        z = str(z) or DEFAULT_ZONE
        if z not in ZONES:
            raise FirewallError("INVALID_ZONE: %s" % z)
        return z

    @staticmethod
    def iface(i):
        i = str(i)
        if not IFACE_RE.match(i):
            raise FirewallError("INVALID_INTERFACE: %s" % i if i else "INVALID_INTERFACE")
        return i

    @staticmethod
    def port(p, proto):
        p, proto = str(p), str(proto)
        m = PORT_RE.match(p)
        if not m or any(int(x) > 65535 for x in m.groups() if x):
            raise FirewallError("INVALID_PORT: %s" % p)
        if proto not in ("tcp", "udp", "sctp", "dccp"):
            raise FirewallError("INVALID_PROTOCOL: '%s' not in {'tcp'|'udp'|'sctp'|'dccp'}" % proto)
        return p, proto

    # --- the API --------------------------------------------------------------------------------
    @dbus.service.method(NAME, in_signature="", out_signature="s")
    def getDefaultZone(self):
        log("getDefaultZone -> %s" % DEFAULT_ZONE)
        return DEFAULT_ZONE

    @dbus.service.method(ZONE, in_signature="s", out_signature="s")
    def getZoneOfInterface(self, interface):
        i = self.iface(interface)
        z = self.zone_of.get(i, "")
        log("getZoneOfInterface(%s) -> %r" % (i, z))
        return z

    @dbus.service.method(ZONE, in_signature="ss", out_signature="s")
    def changeZoneOfInterface(self, zone, interface):
        z, i = self.zone(zone), self.iface(interface)
        log("changeZoneOfInterface(%s, %s)" % (z, i))
        self.change(lambda: self.zone_of.__setitem__(i, z))
        return z

    @dbus.service.method(ZONE, in_signature="ss", out_signature="s")
    def removeInterface(self, zone, interface):
        i = self.iface(interface)
        now = self.zone_of.get(i)
        log("removeInterface(%s, %s) [in %r]" % (zone, i, now))
        if now is None:
            raise FirewallError("UNKNOWN_INTERFACE: '%s' is not in any zone" % i)
        if str(zone) and self.zone(zone) != now:
            raise FirewallError("ZONE_CONFLICT: remove_interface(%s, %s): zoi='%s'" % (zone, i, now))
        self.change(lambda: self.zone_of.pop(i))
        return now

    @dbus.service.method(ZONE, in_signature="sssi", out_signature="s")
    def addPort(self, zone, port, protocol, timeout):
        z = self.zone(zone)
        p = self.port(port, protocol)
        log("addPort(%s, %s, %s, %d)" % (z, p[0], p[1], timeout))
        if p in self.ports.get(z, set()):
            raise FirewallError("ALREADY_ENABLED: '%s:%s' already in '%s'" % (p[0], p[1], z))
        self.change(lambda: self.ports.setdefault(z, set()).add(p))
        if timeout > 0:
            self.timers[(z, p)] = GLib.timeout_add_seconds(int(timeout), self.expire, z, p)
        return z

    def expire(self, z, p):
        self.timers.pop((z, p), None)
        if p in self.ports.get(z, set()):
            log("port %s:%s in %s timed out" % (p[0], p[1], z))
            self.change(lambda: self.ports[z].discard(p))
        return False

    @dbus.service.method(ZONE, in_signature="sss", out_signature="s")
    def removePort(self, zone, port, protocol):
        z = self.zone(zone)
        p = self.port(port, protocol)
        log("removePort(%s, %s, %s)" % (z, p[0], p[1]))
        if p not in self.ports.get(z, set()):
            raise FirewallError("NOT_ENABLED: '%s:%s' not in '%s'" % (p[0], p[1], z))
        t = self.timers.pop((z, p), None)
        if t:
            GLib.source_remove(t)
        self.change(lambda: self.ports[z].discard(p))
        return z

    @dbus.service.method(ZONE, in_signature="sss", out_signature="b")
    def queryPort(self, zone, port, protocol):
        z = self.zone(zone)
        p = self.port(port, protocol)
        r = p in self.ports.get(z, set())
        log("queryPort(%s, %s, %s) -> %s" % (z, p[0], p[1], r))
        return r


def main():
    parent_start = starttime(PARENT)
    if parent_start is None:
        raise SystemExit("parent %d is not running" % PARENT)
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    nft = Nft()
    loop = GLib.MainLoop()
    why = []

    def stop(reason):
        why.append(reason)
        loop.quit()
        return False

    def watchdog():
        if starttime(PARENT) != parent_start:
            return stop("the test (pid %d) is gone" % PARENT)
        if time.monotonic() - T0 > LIFETIME:
            return stop("maximum lifetime of %d s reached" % LIFETIME)
        if nft.p.poll() is not None:
            return stop("nft -i exited (%s): the table is gone" % nft.p.returncode)
        return True

    try:
        bus = dbus.bus.BusConnection(ADDRESS)
        FirewallD(bus, nft)  # the table first: when the name shows, the table is there
        name = dbus.service.BusName(NAME, bus, do_not_queue=True)
        log("ready: %s on %s (pid %d, nft -i pid %d)" % (NAME, ADDRESS, os.getpid(), nft.p.pid))
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop, "SIGTERM")
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop, "SIGINT")
        GLib.timeout_add(250, watchdog)
        loop.run()
        del name
    finally:
        nft.close()
        log("exiting: %s" % (why[0] if why else "error"))


main()
PY

# ---------------------------------------------------------------------------------------------
step "topology: namespaces, veths, addresses, routes"
ns_add "$INET"
ns_add "$SRV"
ns_add "$CLI"
SRV_INODE=$(netns_inode "$SRV")
SRV_STALE=$(srv_state_dirs)
[[ -z $SRV_STALE ]] || info "note: /run/wgfw already holds state for this namespace inode (an earlier run's?): $SRV_STALE"
CLI_INODE=$(netns_inode "$CLI")
CLI_STALE=$(cli_state_dirs)
[[ -z $CLI_STALE ]] || info "note: /run/wgfw already holds state for cli's namespace inode (an earlier run's?): $CLI_STALE"
ip -n "$INET" link add to-srv type veth peer name eth0 netns "$SRV"
ip -n "$INET" link add to-cli type veth peer name eth0 netns "$CLI"
ip -n "$INET" addr add 203.0.113.1/24 dev to-srv
ip -n "$INET" addr add 198.51.100.1/24 dev to-cli
ip -n "$INET" addr add 192.0.2.1/32 dev lo
ip -n "$INET" link set to-srv up
ip -n "$INET" link set to-cli up
ip netns exec "$INET" sysctl -q -w net.ipv4.ip_forward=1
ip -n "$SRV" addr add 203.0.113.2/24 dev eth0
ip -n "$SRV" link set eth0 up
ip -n "$SRV" route add default via 203.0.113.1
ip -n "$CLI" addr add 198.51.100.2/24 dev eth0
ip -n "$CLI" link set eth0 up
ip -n "$CLI" route add default via 198.51.100.1
ping_until "$CLI" 203.0.113.2 5 || { echo "topology broken: cli cannot reach srv" >&2; exit 1; }
info "cli reaches srv over inet"

bg "$INET" "$E2E_TMP/inet-8080.log" socat TCP4-LISTEN:8080,bind=192.0.2.1,reuseaddr,fork 'SYSTEM:echo $SOCAT_PEERADDR'
wait_tcp_listen "$INET" 8080 || { echo "the listener on 192.0.2.1:8080 did not start" >&2; exit 1; }
bg "$INET" "$E2E_TMP/inet-$OUTSIDE_PORT.log" socat TCP4-LISTEN:$OUTSIDE_PORT,bind=198.51.100.1,reuseaddr,fork 'SYSTEM:echo $SOCAT_PEERADDR'
wait_tcp_listen "$INET" "$OUTSIDE_PORT" || { echo "the listener on 198.51.100.1:$OUTSIDE_PORT did not start" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
step "wg-quick configs (srv: $SRV_CONF and, without the hook, $PLAIN_CONF; cli: $CLI_CONF)"
SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
mkdir -p "/etc/netns/$SRV/wireguard" "/etc/netns/$CLI/wireguard" "$E2E_TMP/plain"
chmod 700 "/etc/netns/$SRV/wireguard" "/etc/netns/$CLI/wireguard" "$E2E_TMP/plain"
(
	umask 077
	srv_conf() {
		cat <<-EOF
			[Interface]
			Address = 10.66.0.1/24
			ListenPort = $WG_PORT
			PrivateKey = $SRV_KEY
		EOF
		[[ $1 == plain ]] || printf 'PostUp = %s up %%i --backend %s\nPreDown = %s down %%i\n' "$BIN" "$BACKEND" "$BIN"
		cat <<-EOF

			[Peer]
			PublicKey = $CLI_PUB
			AllowedIPs = 10.66.0.2/32
		EOF
	}
	srv_conf hook >"$SRV_CONF"
	srv_conf plain >"$PLAIN_CONF"
	cli_conf() {
		cat <<-EOF
			[Interface]
			Address = 10.66.0.2/32
			PrivateKey = $CLI_KEY
		EOF
		[[ $1 == plain ]] ||
			printf 'PostUp = %s up %%i --role client --backend %s\nPreDown = %s down %%i\n' "$BIN" "$BACKEND" "$BIN"
		cat <<-EOF

			[Peer]
			PublicKey = $SRV_PUB
			Endpoint = 203.0.113.2:$WG_PORT
			AllowedIPs = 10.66.0.0/24, 192.0.2.0/24
		EOF
	}
	cli_conf plain >"$CLI_CONF"
	cli_conf hook >"$CLI_HOOK_CONF"
)
srv test -f "/etc/wireguard/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wireguard" >&2; exit 1; }
info "PostUp  = $BIN up %i --backend $BACKEND"
info "PreDown = $BIN down %i"

# ---------------------------------------------------------------------------------------------
# start_standin NS BUS_DIR DBUS_LOG STANDIN_LOG: a private system bus (its socket in BUS_DIR)
# and the stand-in on it, in NS; returns once the stand-in answers. Sets SI_DBUS_PID and SI_PID.
start_standin() {
	local ns=$1 dir=$2 dbus_log=$3 log=$4 addr=unix:path=$2/system_bus_socket
	mkdir -p "$dir"
	cat >"$dir/bus.conf" <<-EOF
		<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
		 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
		<busconfig>
		  <type>system</type>
		  <listen>$addr</listen>
		  <auth>EXTERNAL</auth>
		  <policy context="default">
		    <allow user="*"/>
		    <allow own="*"/>
		    <allow send_destination="*"/>
		    <allow receive_sender="*"/>
		  </policy>
		</busconfig>
	EOF
	bg "$ns" "$dbus_log" dbus-daemon --nofork --nopidfile --config-file="$dir/bus.conf"
	SI_DBUS_PID=$BG_PID
	wait_for 10 test -S "$dir/system_bus_socket" ||
		{ echo "dbus-daemon did not come up in $ns: $(cat "$dbus_log")" >&2; exit 1; }
	bg "$ns" "$log" "$PY" "$STANDIN" "$addr" "$STANDIN_LIFETIME" "$$"
	SI_PID=$BG_PID
	if ! wait_for 10 timeout 10 ip netns exec "$ns" busctl --address="$addr" --auto-start=no --timeout=5 \
		call "$FWD" /org/fedoraproject/FirewallD1 "$FWD" getDefaultZone; then
		echo "the firewalld stand-in did not answer on $addr in $ns:" >&2
		cat "$log" >&2
		exit 1
	fi
}

step "private system bus and the firewalld stand-in in srv"
start_standin "$SRV" "$BUS_DIR" "$E2E_TMP/dbus.log" "$E2E_TMP/standin.log"
DBUS_PID=$SI_DBUS_PID
STANDIN_PID=$SI_PID
info "dbus-daemon pid $DBUS_PID, bus $BUS_ADDR; stand-in pid $STANDIN_PID"
# The hook reads the bus from its environment; wg-quick's PostUp/PreDown and the watcher the hook
# starts inherit it.
export DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDR
FW_TABLE_BEFORE=$(fw_table)
info "table inet firewalld before up:"
printf '%s\n' "$FW_TABLE_BEFORE" | sed 's/^/    | /'

# ---------------------------------------------------------------------------------------------
step "1: the owner flag holds; the stand-in answers as firewalld does"
assert_match "nft list table inet firewalld shows flags owner" '^[[:space:]]*flags owner$' "$FW_TABLE_BEFORE"
assert_rc "another process cannot add a rule to table inet firewalld (exit 1)" 1 \
	srv nft add rule inet firewalld filter_INPUT accept
assert_match "... and nft says Operation not permitted" 'Operation not permitted' "$RUN_OUT"
assert_rc "another process cannot delete table inet firewalld (exit 1)" 1 srv nft delete table inet firewalld
assert_eq "the table is unchanged by those attempts" "$FW_TABLE_BEFORE" "$(fw_table)"
assert_eq "the stand-in: getDefaultZone" 's "public"' "$(fw "$FWD" getDefaultZone || true)"
assert_eq "the stand-in: $SRV_IF is in no zone" 's ""' "$(zone_of "$SRV_IF")"
assert_eq "the stand-in: $WG_PORT/udp is closed in public" 'b false' "$(port_state)"
assert_rc "the stand-in: removePort of a closed port fails" 1 fw "$FWD.zone" removePort sss public "$WG_PORT" udp
assert_eq "... with firewalld's error, as busctl prints it" \
	"Call failed: NOT_ENABLED: '$WG_PORT:udp' not in 'public'" "$RUN_OUT"

# ---------------------------------------------------------------------------------------------
step "2: before up: srv's interface without the hook; the stand-in rejects the handshake"
assert_ok "wg-quick up $PLAIN_CONF (srv, no hook) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$PLAIN_CONF"
assert_ok "wg-quick up $CLI_CONF (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
capture_start "$INET" to-srv "icmp and src host 203.0.113.2"
if ping_until "$CLI" 10.66.0.1 3; then
	fail "cli cannot ping 10.66.0.1 (no handshake through the stand-in's reject)" "a ping got through"
else
	pass "cli cannot ping 10.66.0.1 (no handshake through the stand-in's reject)"
fi
capture_wait "$CAP_PID"
assert_match "srv answered the handshake on udp/$WG_PORT with ICMP admin-prohibited (seen on inet's wire)" \
	'admin prohibited' "$(capture_line "$CAP_LOG")"
assert_eq "no handshake on cli's side" 0 "$(handshake_of "$CLI" "$CLI_IF")"
assert_eq "no handshake on srv's side" 0 "$(handshake_of "$SRV" "$SRV_IF")"
timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || info "cli wg-quick down failed"
assert_ok "wg-quick down $PLAIN_CONF (srv, no hook) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$PLAIN_CONF"
nothing_installed "before up"

# ---------------------------------------------------------------------------------------------
step "3: wg-quick up $SRV_IF with the hook: the tunnel gets in through firewalld's API"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctls-before-up" eth0
assert_ok "wg-quick up $SRV_IF (srv, PostUp runs wgfw-hook up) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_IF"
info "the hook's output in wg-quick up:"
grep -vE '^\[#\] (ip|wireguard-go|wg) |^[│┌└]|Unknown device type|Missing WireGuard kernel module' <<<"$RUN_OUT" |
	head -n 30 | sed 's/^/    | /' || true
UP_OUT=$RUN_OUT
assert_match "up printed the zone change as firewall-cmd ([#] ...)" \
	"^\[#\] firewall-cmd --zone=trusted --change-interface=$SRV_IF " "$UP_OUT"
assert_match "up printed the port it opened as firewall-cmd ([#] ...)" \
	"^\[#\] firewall-cmd --zone=public --add-port=$WG_PORT/udp " "$UP_OUT"
assert_no_match "up printed none of its questions to firewalld" 'get-zone|query-port|getZoneOf|queryPort' "$UP_OUT"
assert_eq "the stand-in says $SRV_IF is in zone trusted" 's "trusted"' "$(zone_of "$SRV_IF")"
assert_eq "the stand-in says $WG_PORT/udp is open in zone public" 'b true' "$(port_state)"
assert_eq "the stand-in's filter_INPUT: what it allows, written by itself" \
	"$(printf '%s\n' 'ct state established,related accept' 'iifname "lo" accept' "iifname \"$SRV_IF\" accept" \
		"udp dport $WG_PORT accept" 'reject with icmpx admin-prohibited')" "$(fw_chain_rules filter_INPUT)"
assert_eq "the stand-in's filter_FORWARD: what it allows, written by itself" \
	"$(printf '%s\n' 'ct state established,related accept' 'iifname "lo" accept' "iifname \"$SRV_IF\" accept" \
		'reject with icmpx admin-prohibited')" "$(fw_chain_rules filter_FORWARD)"
assert_eq "nothing of the hook's in table inet firewalld (grep -c wgfw)" 0 "$(fw_table | grep -c wgfw || true)"
assert_match "table inet firewalld still has flags owner" '^[[:space:]]*flags owner$' "$(fw_table)"
HOOK_RULES_UP=$(srv_hook_rules)
assert_ge "the hook's own rules are installed ($BACKEND)" 1 "$(grep -c . <<<"$HOOK_RULES_UP" || true)"
run_capture timeout 30 ip netns exec "$SRV" "$BIN" status "$SRV_IF"
assert_match "wgfw-hook status: $SRV_IF moved to zone trusted, back to no zone at down" \
	"$SRV_IF moved to zone trusted \(down puts it back in no zone\)" "$RUN_OUT"
assert_match "wgfw-hook status: $WG_PORT/udp opened in zone public" "$WG_PORT/udp opened in zone public" "$RUN_OUT"
assert_ok "wgfw-hook check $SRV_IF exits 0 (asks the stand-in: no drift)" timeout 30 ip netns exec "$SRV" "$BIN" check "$SRV_IF"
assert_ge "a wgfw-hook watcher runs in srv" 1 "$(watchers | wc -l)"

assert_ok "wg-quick up $CLI_CONF (cli) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
if ping_until "$CLI" 10.66.0.1 15; then
	pass "cli pings 10.66.0.1 through the tunnel (handshake through the owned table's udp/$WG_PORT accept)"
else
	fail "cli pings 10.66.0.1 through the tunnel" "ping -c1 -W1 10.66.0.1 failed 15 times" "$(srv wg show "$SRV_IF" 2>&1)" \
		"$(fw_table)"
fi
assert_ge "the tunnel handshook (cli's latest handshake)" 1 "$(handshake_of "$CLI" "$CLI_IF")"
tcp_probe "$CLI" 192.0.2.1 8080 3
if [[ $PROBE == open && $PROBE_OUT == 203.0.113.2 ]]; then
	pass "cli reaches 192.0.2.1:8080 (TCP) through srv, masqueraded as 203.0.113.2 (forwarded through the owned table)"
else
	fail "cli reaches 192.0.2.1:8080 (TCP) through srv, masqueraded as 203.0.113.2" \
		"probe: $PROBE" "output: $PROBE_OUT"
fi
# The hook's rules only now count for something: the stand-in's accepts alone opened the way.
assert_eq "nothing of the hook's in table inet firewalld after the traffic either" 0 "$(fw_table | grep -c wgfw || true)"
timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || info "cli wg-quick down failed"

# ---------------------------------------------------------------------------------------------
step "4: wg-quick down $SRV_IF (PreDown runs wgfw-hook down): the stand-in is as before up"
assert_ok "wg-quick down $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$SRV_IF"
grep -vE '^\[#\] (ip|wireguard-go|wg) ' <<<"$RUN_OUT" | head -n 20 | sed 's/^/    | /' || true
assert_match "down printed the port it closed as firewall-cmd ([#] ...)" \
	"^\[#\] firewall-cmd --zone=public --remove-port=$WG_PORT/udp " "$RUN_OUT"
assert_match "down printed the interface taken out of trusted as firewall-cmd ([#] ...)" \
	"^\[#\] firewall-cmd --zone=trusted --remove-interface=$SRV_IF " "$RUN_OUT"
assert_eq "the stand-in says $SRV_IF is in no zone again" 's ""' "$(zone_of "$SRV_IF")"
assert_eq "the stand-in says $WG_PORT/udp is closed in public again" 'b false' "$(port_state)"
assert_eq "table inet firewalld is exactly as before up" "$FW_TABLE_BEFORE" "$(fw_table)"
nothing_installed "after down"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctls-after-down" eth0
assert_same_file "after down: srv's sysctls (all, default, eth0) are as before up" \
	"$E2E_TMP/sysctls-before-up" "$E2E_TMP/sysctls-after-down"
info "the stand-in's log of calls (up and down):"
sed 's/^/    | /' "$E2E_TMP/standin.log"

# ---------------------------------------------------------------------------------------------
step "5: without the API (bus $NO_BUS): wgfw-hook up must refuse before any change, nothing left"
assert_ok "wg-quick up $PLAIN_CONF (srv, no hook) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$PLAIN_CONF"
CALLS_BEFORE=$(grep -c . "$E2E_TMP/standin.log" || true)
snapshot_sysctls "$SRV" "$E2E_TMP/sysctls-before-noapi" eth0 "$SRV_IF"
NOAPI_RC=0
timeout 60 ip netns exec "$SRV" env DBUS_SYSTEM_BUS_ADDRESS="$NO_BUS" "$BIN" up "$SRV_IF" --backend "$BACKEND" \
	>"$E2E_TMP/noapi.out" 2>"$E2E_TMP/noapi.err" || NOAPI_RC=$?
NOAPI_ERR=$(cat "$E2E_TMP/noapi.err")
info "exit status $NOAPI_RC; stdout:"
sed 's/^/    | /' "$E2E_TMP/noapi.out"
info "stderr:"
printf '%s\n' "$NOAPI_ERR" | sed 's/^/    | /'
if [[ $NOAPI_RC -ne 0 && $NOAPI_RC -ne 124 ]]; then
	pass "wgfw-hook up without the API exits non-zero ($NOAPI_RC)"
else
	fail "wgfw-hook up without the API exits non-zero" "got exit $NOAPI_RC"
fi
# Besides its `[#] COMMAND` trace (wg-quick's convention: every program it runs, on stderr, also
# when all goes well), the hook must say one line: the refusal, naming firewalld's table. It says
# it before changing anything: no nft -f, no restore ran (no [#] line at all).
NOAPI_TRACE=$(grep -c '^\[#\] ' <<<"$NOAPI_ERR" || true)
NOAPI_SAID=$(grep -v '^\[#\] ' <<<"$NOAPI_ERR" | grep . || true)
info "stderr: $NOAPI_TRACE line(s) of [#] command trace, $(grep -c . <<<"$NOAPI_SAID" || true) other line(s)"
assert_eq "... and says exactly one line on stderr besides its [#] command trace" 1 "$(grep -c . <<<"$NOAPI_SAID" || true)"
assert_match "... that says firewalld owns its table and its API did not answer" \
	'firewalld owns its nftables table \(flags owner, NftablesTableOwner=yes\).*D-Bus API did not answer: start firewalld' "$NOAPI_SAID"
assert_no_match "... and not the kernel's flattened refusal" 'Operation not permitted' "$NOAPI_SAID"
assert_eq "... said before any change: no [#] command ran" 0 "$NOAPI_TRACE"
nothing_installed "after the refused up"
snapshot_sysctls "$SRV" "$E2E_TMP/sysctls-after-noapi" eth0 "$SRV_IF"
assert_same_file "after the refused up: srv's sysctls (all, default, eth0, $SRV_IF) are untouched" \
	"$E2E_TMP/sysctls-before-noapi" "$E2E_TMP/sysctls-after-noapi"
assert_eq "table inet firewalld is exactly as before" "$FW_TABLE_BEFORE" "$(fw_table)"
assert_eq "the stand-in was not called (the hook had no bus to it)" "$CALLS_BEFORE" "$(grep -c . "$E2E_TMP/standin.log" || true)"
assert_eq "the stand-in still says $SRV_IF is in no zone" 's ""' "$(zone_of "$SRV_IF")"
assert_eq "the stand-in still says $WG_PORT/udp is closed" 'b false' "$(port_state)"
assert_ok "wg-quick down $PLAIN_CONF (srv, no hook) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$PLAIN_CONF"

# ---------------------------------------------------------------------------------------------
step "6: the client role (kill switch) behind an owner-flagged firewalld of its own in cli"
assert_ok "wg-quick up $SRV_IF (srv, with the hook, as in step 3) exits 0" timeout 60 ip netns exec "$SRV" wg-quick up "$SRV_IF"
start_standin "$CLI" "$CLI_BUS_DIR" "$E2E_TMP/cli-dbus.log" "$E2E_TMP/cli-standin.log"
CLI_DBUS_PID=$SI_DBUS_PID
CLI_STANDIN_PID=$SI_PID
info "cli: dbus-daemon pid $CLI_DBUS_PID, bus $CLI_BUS_ADDR; stand-in pid $CLI_STANDIN_PID"
CLI_FW_BEFORE=$(fw_table "$CLI")
info "cli's table inet firewalld before up:"
printf '%s\n' "$CLI_FW_BEFORE" | sed 's/^/    | /'
assert_match "cli's table inet firewalld shows flags owner" '^[[:space:]]*flags owner$' "$CLI_FW_BEFORE"
assert_rc "another process cannot add a rule to cli's table inet firewalld (exit 1)" 1 \
	ip netns exec "$CLI" nft add rule inet firewalld filter_FORWARD accept

# 6a: the control. The stand-in filters no output: only the kill switch can stop this.
tcp_probe "$CLI" 198.51.100.1 "$OUTSIDE_PORT" 3
if [[ $PROBE == open && $PROBE_OUT == 198.51.100.2 ]]; then
	pass "6a without the hook: cli reaches 198.51.100.1:$OUTSIDE_PORT outside the tunnel (the control)"
else
	fail "6a without the hook: cli reaches 198.51.100.1:$OUTSIDE_PORT outside the tunnel (the control)" \
		"probe: $PROBE" "output: $PROBE_OUT"
fi

# 6b: plan's note on what cli forwards into the tunnel, which is firewalld's to allow.
FWD4_BEFORE=$(ip netns exec "$CLI" sysctl -n net.ipv4.ip_forward)
FWD6=$(ip netns exec "$CLI" sysctl -n net.ipv6.conf.all.forwarding 2>/dev/null || echo 0)
ip netns exec "$CLI" sysctl -q -w net.ipv4.ip_forward=1
assert_ok "6b wgfw-hook plan $CLI_IF --role client exits 0 (cli forwards)" \
	cli "$BIN" plan "$CLI_IF" --role client --backend "$BACKEND"
PLAN_NOTE=$(grep -E '^# note: firewalld decides' <<<"$RUN_OUT" || true)
info "the note: $PLAN_NOTE"
assert_match "... notes that firewalld decides what cli forwards into $CLI_IF" \
	"^# note: firewalld decides what this host forwards into $CLI_IF " "$PLAN_NOTE"
assert_match "... with the permanent policy that allows it (egress: the default zone, public)" \
	'firewall-cmd --permanent --new-policy wgfw-[A-Za-z0-9_-]+ && firewall-cmd --permanent --policy wgfw-[A-Za-z0-9_-]+ --add-ingress-zone LAN_ZONE && .*--add-egress-zone public && .*--set-target ACCEPT && firewall-cmd --reload' \
	"$PLAN_NOTE"
assert_no_match "... and says up writes nothing into firewalld's table (no accepts planned there)" \
	'default deny of nft inet firewalld' "$RUN_OUT"
ip netns exec "$CLI" sysctl -q -w net.ipv4.ip_forward=0
if [[ $FWD6 == 0 ]]; then
	assert_ok "6b wgfw-hook plan $CLI_IF --role client exits 0 (cli forwards nothing)" \
		cli "$BIN" plan "$CLI_IF" --role client --backend "$BACKEND"
	assert_no_match "... and then says nothing of a firewalld policy" 'firewalld decides|new-policy' "$RUN_OUT"
else
	info "6b cli's IPv6 forwarding is on ($FWD6): the laptop case is not tested"
fi
ip netns exec "$CLI" sysctl -q -w net.ipv4.ip_forward="$FWD4_BEFORE"

# 6c: without cli's API, the client's accepts would go into the owned table: refused at once.
assert_ok "6c wg-quick up $CLI_CONF (cli, no hook) exits 0" timeout 60 ip netns exec "$CLI" wg-quick up "$CLI_CONF"
run_capture timeout 60 ip netns exec "$CLI" env DBUS_SYSTEM_BUS_ADDRESS="$NO_BUS" \
	"$BIN" up "$CLI_IF" --role client --backend "$BACKEND"
info "exit status $RUN_RC; output:"
printf '%s\n' "$RUN_OUT" | sed 's/^/    | /'
if [[ $RUN_RC -ne 0 && $RUN_RC -ne 124 ]]; then
	pass "6c wgfw-hook up --role client without the API exits non-zero ($RUN_RC)"
else
	fail "6c wgfw-hook up --role client without the API exits non-zero" "got exit $RUN_RC"
fi
CLI_SAID=$(grep -v '^\[#\] ' <<<"$RUN_OUT" | grep . || true)
assert_eq "... and says exactly one line besides its [#] command trace" 1 "$(grep -c . <<<"$CLI_SAID" || true)"
assert_match "... that firewalld owns its table and its API did not answer" \
	'firewalld owns its nftables table .*D-Bus API did not answer' "$CLI_SAID"
assert_eq "... said before any change: no [#] command ran" 0 "$(grep -c '^\[#\] ' <<<"$RUN_OUT" || true)"
nothing_installed "6c after the refused client up" cli
assert_eq "6c cli's table inet firewalld is exactly as before" "$CLI_FW_BEFORE" "$(fw_table "$CLI")"
timeout 60 ip netns exec "$CLI" wg-quick down "$CLI_CONF" >/dev/null 2>&1 || info "cli wg-quick down failed"

# 6d: the client with the hook, firewalld's API answering.
assert_ok "6d wg-quick up $CLI_IF (cli, PostUp runs wgfw-hook up --role client) exits 0" \
	cli wg-quick up "$CLI_IF"
info "the hook's output in wg-quick up:"
grep -vE '^\[#\] (ip|wireguard-go|wg) |^[│┌└]|Unknown device type|Missing WireGuard kernel module' <<<"$RUN_OUT" |
	head -n 30 | sed 's/^/    | /' || true
assert_no_match "6d up asked firewalld for no change (no [#] firewall-cmd line)" '^\[#\] firewall-cmd' "$RUN_OUT"
assert_eq "6d cli's stand-in was asked for no change (its log of calls)" 0 "$(changes_asked "$E2E_TMP/cli-standin.log")"
assert_eq "6d nothing of the hook's in cli's table inet firewalld (grep -c wgfw)" 0 "$(fw_table "$CLI" | grep -c wgfw || true)"
assert_eq "6d cli's table inet firewalld is byte for byte as before up" "$CLI_FW_BEFORE" "$(fw_table "$CLI")"
assert_ge "6d the hook's kill switch is installed in cli ($BACKEND)" 1 "$(srv_hook_rules "$CLI" | grep -c . || true)"
assert_ge "6d a wgfw-hook watcher runs in cli" 1 "$(watchers "$CLI" | wc -l)"
if ping_until "$CLI" 10.66.0.1 15; then
	pass "6d cli pings 10.66.0.1 through the tunnel"
else
	fail "6d cli pings 10.66.0.1 through the tunnel" "ping -c1 -W1 10.66.0.1 failed 15 times" \
		"$(ip netns exec "$CLI" wg show "$CLI_IF" 2>&1)" "$(fw_table "$CLI")"
fi
tcp_probe "$CLI" 192.0.2.1 8080 3
if [[ $PROBE == open && $PROBE_OUT == 203.0.113.2 ]]; then
	pass "6d cli reaches 192.0.2.1:8080 (TCP) through the tunnel, masqueraded by srv as 203.0.113.2"
else
	fail "6d cli reaches 192.0.2.1:8080 (TCP) through the tunnel" "probe: $PROBE" "output: $PROBE_OUT"
fi
capture_start "$INET" to-cli "tcp and dst port $OUTSIDE_PORT"
tcp_probe "$CLI" 198.51.100.1 "$OUTSIDE_PORT" 3
sleep 0.5
bg_stop "$CAP_PID"
if [[ $PROBE == refused ]]; then
	pass "6d the kill switch rejects 198.51.100.1:$OUTSIDE_PORT outside the tunnel at once (TCP reset)"
else
	fail "6d the kill switch rejects 198.51.100.1:$OUTSIDE_PORT outside the tunnel at once (TCP reset)" \
		"probe: $PROBE" "output: $PROBE_OUT"
fi
assert_no_match "6d ... and none of that probe reached inet's wire" ' IP ' "$(cat "$CAP_LOG")"
assert_ok "6d wgfw-hook check $CLI_IF exits 0" cli "$BIN" check "$CLI_IF"
run_capture timeout 30 ip netns exec "$CLI" "$BIN" status "$CLI_IF"
assert_no_match "6d wgfw-hook status $CLI_IF names no firewalld change" 'firewalld' "$RUN_OUT"

# 6e: down.
assert_ok "6e wg-quick down $CLI_IF (cli, PreDown runs wgfw-hook down) exits 0" cli wg-quick down "$CLI_IF"
assert_no_match "6e down asked firewalld for no change (no [#] firewall-cmd line)" '^\[#\] firewall-cmd' "$RUN_OUT"
assert_eq "6e cli's table inet firewalld is byte for byte as before up" "$CLI_FW_BEFORE" "$(fw_table "$CLI")"
assert_eq "6e cli's stand-in was asked for no change" 0 "$(changes_asked "$E2E_TMP/cli-standin.log")"
nothing_installed "6e after down" cli
tcp_probe "$CLI" 198.51.100.1 "$OUTSIDE_PORT" 3
assert_eq "6e the control reaches 198.51.100.1:$OUTSIDE_PORT again (the kill switch is gone)" open "$PROBE"
info "cli's stand-in's log of calls:"
sed 's/^/    | /' "$E2E_TMP/cli-standin.log"
assert_ok "wg-quick down $SRV_IF (srv) exits 0" timeout 60 ip netns exec "$SRV" wg-quick down "$SRV_IF"
assert_eq "srv's table inet firewalld is exactly as before up" "$FW_TABLE_BEFORE" "$(fw_table)"
nothing_installed "after srv's down"

# ---------------------------------------------------------------------------------------------
step "the stand-ins ran throughout"
for si in "srv $STANDIN_PID $DBUS_PID $E2E_TMP/standin.log" "cli $CLI_STANDIN_PID $CLI_DBUS_PID $E2E_TMP/cli-standin.log"; do
	read -r who pid dbus_pid log <<<"$si"
	ns=$SRV
	[[ $who == srv ]] || ns=$CLI
	if kill -0 "$pid" 2>/dev/null; then pass "$who's stand-in (pid $pid) still runs"; else fail "$who's stand-in (pid $pid) still runs" "$(cat "$log")"; fi
	assert_no_match "$who's stand-in's nft -i never complained" 'ERROR' "$(cat "$log")"
	bg_stop "$pid"
	if wait_for 5 bash -c "! ip netns exec '$ns' nft list table inet firewalld"; then
		pass "$who's stand-in stopped: its owned table went with its nft -i"
	else
		fail "$who's stand-in stopped: its owned table went with its nft -i" "$(fw_table "$ns")"
	fi
	bg_stop "$dbus_pid"
done

summary
