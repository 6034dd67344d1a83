#!/usr/bin/env python3
"""The nf_tables commits of a network namespace, as the kernel announces them (benches/watch.sh).

    commits.py OUT MAXSECONDS
    commits.py heal OUT FIRST COUNT TIMES WIPER...

The first form listens, in the namespace it was started in, to the nf_tables notifications
(NETLINK_NETFILTER, group NFNLGRP_NFTABLES) and writes to OUT, one line each, flushed:

    NS GEN PID NAME     a commit (NFT_MSG_NEWGEN): its generation, the committing process's pid
                        and name (comm: 15 characters at most)
    NS mark-wipe        SIGUSR1: a wipe starts (written before what the socket holds then)
    NS mark-whole       SIGUSR2: the bench saw the plan whole (written after what it holds)
    NS enobufs          notifications were lost (the receive buffer overran)
    NS ready RCVBUF     listening, the signals handled: the bench may send them
    NS exit WHY         max-time, or parent-gone (seen before PR_SET_PDEATHSIG's SIGTERM)
    NS floor NS2        on the first commit after a mark-wipe: a netlink socket opened at once
                        (as every nft and iptables-nft program opens one) and a GETGEN on it,
                        answered NS2 nanoseconds after the commit was read: the least any program
                        must wait to look or commit. After a commit that deletes anything (a
                        flush, a rule, a table, even an empty one) 8-30 ms here; after one that
                        only adds, and on a socket opened before, 0.05-0.1 ms

NS: when the listener read it, CLOCK_MONOTONIC nanoseconds. It exits after MAXSECONDS, when its
parent goes (SIGTERM), or on SIGTERM/SIGINT (without an exit line).

The second form reads OUT: of the wipes marked FIRST (0 the first) to FIRST+COUNT-1, the time
from the wipe's last commit to the last repair commit before its mark-whole, in microseconds,
one a line to TIMES; and prints a note: repair commits per wipe, how long after the last one the
mark-whole came (the poll's lag), what it left out. A wipe's commits are those named
WIPER (as comm truncates it); WIPER "nft" (`nft flush ruleset`, one transaction, named as the
watcher's repairs are) is the first commit after the mark. Every other commit is a repair.
A wipe without a mark-whole (left half-repaired; `up` mended it) is left out.
"""

import ctypes
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NFT_MSG_NEWGEN = (10 << 8) | 15  # NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN
NFT_MSG_GETGEN = (10 << 8) | 16
NLM_F_REQUEST = 1
NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME = 1, 2, 3
NLMSG_HDR, NFGENMSG = 16, 4
RCVBUF = 32 << 20
PR_SET_PDEATHSIG = 1
COMM_LEN = 15


def newgens(data):
    """(gen, pid, name) of each NEWGEN message in a datagram (notifications come batched)."""
    off = 0
    while off + NLMSG_HDR <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < NLMSG_HDR:
            break
        if kind == NFT_MSG_NEWGEN:
            gen = pid = None
            name = "?"
            a, end = off + NLMSG_HDR + NFGENMSG, min(off + length, len(data))
            while a + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                value = data[a + 4 : a + alen]
                atype &= 0x3FFF  # NLA_F_NESTED, NLA_F_NET_BYTEORDER
                if atype == NFTA_GEN_ID and len(value) >= 4:
                    gen = struct.unpack_from("!I", value)[0]
                elif atype == NFTA_GEN_PROC_PID and len(value) >= 4:
                    pid = struct.unpack_from("!I", value)[0]
                elif atype == NFTA_GEN_PROC_NAME:
                    name = value.split(b"\0", 1)[0].decode(errors="replace").replace(" ", "_") or "?"
                a += (alen + 3) & ~3
            yield gen, pid, name
        off += (length + 3) & ~3


def listen(out_path, max_seconds):
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    deadline = time.monotonic() + max_seconds
    out = open(out_path, "a", buffering=1)

    def line(text, ns=None):
        out.write(f"{time.monotonic_ns() if ns is None else ns} {text}\n")

    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (CAP_NET_ADMIN)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.bind((0, 0))
    s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    s.setblocking(False)
    # The signals wake the loop through a pipe; a handler of Python's own must be set for that.
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda *_: None)
    if os.getppid() != parent:
        line("exit parent-gone")
        return
    line(f"ready {s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}")

    getgen = struct.pack("=IHHII", NLMSG_HDR + NFGENMSG, NFT_MSG_GETGEN, NLM_F_REQUEST, 0, 0) + bytes(4)
    probe = [False]

    def floor(ns):
        # A socket made anew, as every nft and iptables-nft program makes one.
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as g:
            g.send(getgen)
            g.recv(1 << 12)
        line(f"floor {time.monotonic_ns() - ns}")

    def drain():
        while True:
            try:
                data = s.recv(1 << 17)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                line("enobufs")
                continue
            ns = time.monotonic_ns()
            found = list(newgens(data))
            for gen, pid, name in found:
                line(f"{gen} {pid} {name}", ns)
            if found and probe[0]:
                probe[0] = False
                floor(ns)

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            line("exit max-time")
            return
        if os.getppid() != parent:
            line("exit parent-gone")
            return
        ready, _, _ = select.select([s, r], [], [], min(left, 1.0))
        if r in ready:
            ns = time.monotonic_ns()
            sigs = os.read(r, 64)
            # A wipe's mark goes before what the socket holds (the wipe starts after the signal);
            # the whole one after it (what made the plan whole came before the signal).
            for sig in sigs:
                if sig == signal.SIGUSR1:
                    line("mark-wipe", ns)
                    probe[0] = True
            drain()
            for sig in sigs:
                if sig == signal.SIGUSR2:
                    line("mark-whole", ns)
        else:
            drain()


def heal(out_path, first, count, times_path, wipers):
    wipers = {w[:COMM_LEN] for w in wipers}
    one = wipers == {"nft"}
    rounds, cur = [], None
    with open(out_path) as f:
        for text in f:
            fields = text.split(maxsplit=3)
            if len(fields) < 2:
                continue
            if fields[1] == "mark-wipe":
                cur = {"commits": [], "whole": False, "enobufs": 0, "floor": None}
                rounds.append(cur)
            elif cur is None:
                continue
            elif fields[1] == "floor" and len(fields) >= 3:
                cur["floor"] = cur["floor"] or int(fields[2])
            elif fields[1] == "enobufs":
                cur["enobufs"] += 1
            elif cur["whole"]:
                continue
            elif fields[1] == "mark-whole":
                cur["whole"] = int(fields[0])
            elif fields[1].isdigit() and len(fields) == 4:
                cur["commits"].append((int(fields[0]), fields[3].strip()))
    picked = rounds[first : first + count]
    enobufs = sum(rd["enobufs"] for rd in picked)
    times, lags, halves, unseen, late, repairs = [], [], 0, 0, 0, 0
    for rd in picked:
        if not rd["whole"]:
            halves += 1
            continue
        commits = rd["commits"]
        if one:
            at = next((i for i, (_, n) in enumerate(commits) if n == "nft"), None)
            wipe_at = [] if at is None else [at]
        else:
            wipe_at = [i for i, (_, n) in enumerate(commits) if n in wipers]
        if not wipe_at:
            unseen += 1
            continue
        first_wipe, last_wipe = wipe_at[0], wipe_at[-1]
        rep = [i for i in range(first_wipe + 1, len(commits)) if i not in wipe_at]
        repairs += len(rep)
        after = [i for i in rep if i > last_wipe]
        if not after:
            late += 1  # whole without a repair after the wipe's last commit
            continue
        times.append((commits[after[-1]][0] - commits[last_wipe][0]) / 1000)
        lags.append((rd["whole"] - commits[after[-1]][0]) / 1e6)
    with open(times_path, "w") as t:
        t.writelines(f"{v:.0f}\n" for v in times)
    notes = []
    measured = len(picked) - halves - unseen
    if measured:
        notes.append(f"repair commits per wipe: mean {repairs / measured:.1f}")
    floors = sorted(rd["floor"] / 1e6 for rd in picked if rd["floor"])
    if floors:
        notes.append(
            f"floor: a netlink socket opened on the wipe's first commit (as every nft opens one) "
            f"answered a median {floors[len(floors) // 2]:.1f} ms (max {floors[-1]:.1f}) later"
        )
    if lags:
        lags.sort()
        notes.append(f"the poll saw it whole a median {lags[len(lags) // 2]:.1f} ms later")
    if len(picked) < count:
        notes.append(f"{count - len(picked)} wipes not marked")
    if halves:
        notes.append(f"{halves} half-repaired left out")
    if unseen:
        notes.append(f"{unseen} with no commit of the wipe seen")
    if late:
        notes.append(f"{late} whole with no repair after the wipe's last commit")
    if enobufs:
        notes.append(f"ENOBUFS {enobufs}x: notifications lost")
    print("".join("; " + n for n in notes))


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "heal":
        heal(a[1], int(a[2]), int(a[3]), a[4], a[5:] or ["nft"])
    elif len(a) == 2:
        listen(a[0], float(a[1]))
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
