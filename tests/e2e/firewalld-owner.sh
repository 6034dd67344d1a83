#!/usr/bin/env bash
# End-to-end test (#25): a WireGuard server behind a firewalld whose nftables table carries the
# owner flag (firewalld 2.x, NftablesTableOwner=yes), so that nobody else may write into it. The
# hook must let the tunnel in through firewalld's D-Bus API; writing accepts into the table, as it
# does for firewalld 1.x, is refused by the kernel.
#
#   usage: [WGFW_HOOK_BIN=/path/to/wgfw-hook] bash tests/e2e/firewalld-owner.sh iptables-nft|iptables-legacy|nft
#
# Debian has only firewalld 1.3.3, which cannot own its table. So firewalld is played by a small
# stand-in (python3-dbus + GLib, as firewalld itself uses), written by this script to $E2E_TMP, on
# a private dbus-daemon in srv's namespace. It owns org.fedoraproject.FirewallD1 and implements,
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
#                  └─────┬───────────────────────────────┬─────┘
#           to-srv 203.0.113.1/24                 to-cli 198.51.100.1/24
#                        │                               │
#              eth0 203.0.113.2/24             eth0 198.51.100.2/24
#   ┌────────────────────┴────────────────┐  ┌───────────┴──────────────────────┐
#   │ srv: wgsPID 10.66.0.1/24, udp/51820 │  │ cli: wgcPID 10.66.0.2/32 (no     │
#   │ PostUp = wgfw-hook up %i --backend B│◄═│ hook), AllowedIPs 10.66.0.0/24,  │
#   │ PreDown = wgfw-hook down %i         │wg│ 192.0.2.0/24 (through srv)       │
#   │ dbus-daemon (private bus) + stand-in│  └──────────────────────────────────┘
#   │ firewalld: table inet firewalld,    │
#   │ flags owner, held by its nft -i     │
#   └─────────────────────────────────────┘
#
# Steps:
#   1 the owner flag holds: another process cannot add a rule to the table (EPERM, exit 1), the
#     listing shows `flags owner`; the API answers as firewalld does
#   2 before up: srv's interface up without the hook; the stand-in rejects the handshake (ICMP
#     admin-prohibited from srv seen on the wire, no handshake, no ping)
#   3 wg-quick up with the hook: the stand-in says the interface is in zone trusted and 51820/udp
#     open in public; the client handshakes, pings 10.66.0.1, reaches 192.0.2.1 over TCP through
#     srv (through the owned table); nothing of the hook's in table inet firewalld; check exits 0
#   4 wg-quick down: the stand-in's state and table are as before up; nothing of the hook's left
#   5 without the API (DBUS_SYSTEM_BUS_ADDRESS points to no socket): `wgfw-hook up` must fail
#     cleanly (non-zero exit, besides its `[#]` command trace one line on stderr, naming the
#     refusal) and leave nothing installed: no rules, no record, no watcher
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
WG_PORT=51820
BUS_DIR=$E2E_TMP/bus
BUS_ADDR=unix:path=$BUS_DIR/system_bus_socket
NO_BUS=unix:path=$E2E_TMP/no-bus-here/system_bus_socket # a socket that does not exist
STANDIN_LIFETIME=300                                    # s; a run takes far less
FWD=org.fedoraproject.FirewallD1

trap 'echo "error: line $LINENO: $BASH_COMMAND exited with $?" >&2' ERR

srv() { ip netns exec "$SRV" "$@"; }

echo "wgfw-hook e2e, firewalld owning its nft table (stand-in on D-Bus), backend $BACKEND"
echo "binary: $BIN"
echo "namespaces: $INET $SRV $CLI; WireGuard interfaces: $SRV_IF (srv) $CLI_IF (cli)"

# ---------------------------------------------------------------------------------------------
# helpers of this test

# The hook's state for srv: /run/wgfw/netns-<inode>[.<cookie>]; directories of srv's inode that
# exist before the first up (a dead namespace's; inodes are reused) are not ours.
SRV_INODE=
SRV_STALE=
srv_state_dirs() { hook_state_dirs "$SRV_INODE" "$SRV_STALE"; }
# If the test dies with the hook installed, let the hook take it down (the stand-in still runs
# then: cleanup hooks come before the background processes are killed), then remove its state.
cleanup_hook_state() {
	local dirs
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

# fw_table: the stand-in's table as another process lists it.
fw_table() { srv nft list table inet firewalld 2>&1 || true; }
# fw_chain_rules CHAIN: its rules, one per line, trimmed (no counters in the stand-in's rules).
fw_chain_rules() {
	srv nft list chain inet firewalld "$1" 2>/dev/null | awk '
		/^[ \t]*chain / { in_c = 1; next }
		!in_c || /^[ \t]*type [a-z]+ hook / || /^[ \t]*\}[ \t]*$/ || /^[ \t]*$/ { next }
		{ sub(/^[ \t]+/, ""); print }' || true
}

# watchers: PIDs of `wgfw-hook watch` processes in srv.
watchers() {
	local pid
	for pid in $(ip netns pids "$SRV" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "(^|/)wgfw-hook watch " && echo "$pid"
	done
	return 0
}

# handshake_of NS IFACE: the latest handshake (unix time, 0 for none) of the interface's peer.
handshake_of() { ip netns exec "$1" wg show "$2" latest-handshakes 2>/dev/null | awk '{ print $2 + 0; exit }'; }

# srv_hook_rules: hook_rules for srv, quiet where the hook has no table at all (nft says so on
# stderr; nothing installed then).
srv_hook_rules() { hook_rules "$SRV" 2>/dev/null || true; }

# nothing_installed LABEL: the hook left none of its rules, no record, no watcher.
nothing_installed() {
	local l=$1
	assert_eq "$l: none of the hook's rules in srv ($BACKEND)" "" "$(srv_hook_rules)"
	run_capture timeout 30 ip netns exec "$SRV" "$BIN" status "$SRV_IF"
	assert_eq "$l: wgfw-hook status $SRV_IF says nothing is installed" "$SRV_IF: nothing installed" \
		"$(grep -vE '^conntrack: ' <<<"$RUN_OUT")"
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -z $(watchers) ]] && break
		sleep 0.1
	done
	if [[ -z $(watchers) ]]; then
		pass "$l: no wgfw-hook watcher runs in srv"
	else
		fail "$l: no wgfw-hook watcher runs in srv" "still running: $(watchers | paste -sd ' ')"
	fi
	assert_eq "$l: no hook state under /run/wgfw for srv" "" "$(srv_state_dirs)"
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

# ---------------------------------------------------------------------------------------------
step "wg-quick configs (srv: $SRV_CONF and, without the hook, $PLAIN_CONF; cli: $CLI_CONF)"
SRV_KEY=$(wg genkey)
CLI_KEY=$(wg genkey)
SRV_PUB=$(wg pubkey <<<"$SRV_KEY")
CLI_PUB=$(wg pubkey <<<"$CLI_KEY")
mkdir -p "/etc/netns/$SRV/wireguard" "$E2E_TMP/plain"
chmod 700 "/etc/netns/$SRV/wireguard" "$E2E_TMP/plain"
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
	cat >"$CLI_CONF" <<-EOF
		[Interface]
		Address = 10.66.0.2/32
		PrivateKey = $CLI_KEY

		[Peer]
		PublicKey = $SRV_PUB
		Endpoint = 203.0.113.2:$WG_PORT
		AllowedIPs = 10.66.0.0/24, 192.0.2.0/24
	EOF
)
srv test -f "/etc/wireguard/$SRV_IF.conf" || { echo "ip netns exec did not bind /etc/netns/$SRV/wireguard" >&2; exit 1; }
info "PostUp  = $BIN up %i --backend $BACKEND"
info "PreDown = $BIN down %i"

# ---------------------------------------------------------------------------------------------
step "private system bus and the firewalld stand-in in srv"
mkdir -p "$BUS_DIR"
cat >"$BUS_DIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$BUS_ADDR</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
bg "$SRV" "$E2E_TMP/dbus.log" dbus-daemon --nofork --nopidfile --config-file="$BUS_DIR/bus.conf"
DBUS_PID=$BG_PID
wait_for 10 test -S "$BUS_DIR/system_bus_socket" ||
	{ echo "dbus-daemon did not come up: $(cat "$E2E_TMP/dbus.log")" >&2; exit 1; }
bg "$SRV" "$E2E_TMP/standin.log" "$PY" "$STANDIN" "$BUS_ADDR" "$STANDIN_LIFETIME" "$$"
STANDIN_PID=$BG_PID
if ! wait_for 10 fw "$FWD" getDefaultZone; then
	echo "the firewalld stand-in did not answer on $BUS_ADDR:" >&2
	cat "$E2E_TMP/standin.log" >&2
	exit 1
fi
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
step "5: without the API (bus $NO_BUS): wgfw-hook up must fail cleanly, nothing left"
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
# when all goes well), the hook must say one line: the refusal, naming firewalld's table.
NOAPI_TRACE=$(grep -c '^\[#\] ' <<<"$NOAPI_ERR" || true)
NOAPI_SAID=$(grep -v '^\[#\] ' <<<"$NOAPI_ERR" | grep . || true)
info "stderr: $NOAPI_TRACE line(s) of [#] command trace, $(grep -c . <<<"$NOAPI_SAID" || true) other line(s)"
assert_eq "... and says exactly one line on stderr besides its [#] command trace" 1 "$(grep -c . <<<"$NOAPI_SAID" || true)"
assert_match "... that names the refusal (Operation not permitted in inet firewalld)" \
	'inet firewalld.*Operation not permitted|Operation not permitted.*inet firewalld' "$NOAPI_SAID"
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
step "the stand-in ran throughout"
if kill -0 "$STANDIN_PID" 2>/dev/null; then pass "the stand-in (pid $STANDIN_PID) still runs"; else fail "the stand-in (pid $STANDIN_PID) still runs" "$(cat "$E2E_TMP/standin.log")"; fi
assert_no_match "the stand-in's nft -i never complained" 'ERROR' "$(cat "$E2E_TMP/standin.log")"
bg_stop "$STANDIN_PID"
if wait_for 5 bash -c "! ip netns exec '$SRV' nft list table inet firewalld"; then
	pass "the stand-in stopped: its owned table went with its nft -i"
else
	fail "the stand-in stopped: its owned table went with its nft -i" "$(fw_table)"
fi
bg_stop "$DBUS_PID"

summary
