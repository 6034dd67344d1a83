#!/usr/bin/env python3
"""Sends IPv4 packets the kernel would not build: spoofed sources (a flood of distinct ones), or
destinations an application cannot reach through an interface (127.0.0.1 into a tunnel).

    rawsend.py IFACE [--mac MAC] --dst ADDR --dport PORT [--proto udp|tcp]
               [--src ADDR | --flood-from ADDR --count N]

IFACE: the interface to send on, inside the caller's network namespace. With --mac (an
Ethernet interface) the frame goes to that MAC; without, IFACE is a layer-3 device (a tun, such
as a WireGuard interface of wireguard-go). UDP packets carry a few bytes; TCP ones are SYNs.
--flood-from sends COUNT packets, each from the next address after ADDR. Used only by the
end-to-end tests, inside the namespaces they create.
"""

import argparse
import ipaddress
import socket
import struct
import sys

ETH_P_IP = 0x0800


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4(proto: str, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    if proto == "udp":
        payload = b"wgfw-e2e"
        header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
        segment = header + payload
        pseudo = src + dst + struct.pack("!BBH", 0, 17, len(segment))
        csum = checksum(pseudo + segment) or 0xFFFF
        return segment[:6] + struct.pack("!H", csum) + segment[8:]
    # A SYN with an MSS option.
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 6 << 4, 0x02, 64240, 0, 0)
    segment = header + struct.pack("!BBH", 2, 4, 1460)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    csum = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def packet(proto: str, src: bytes, dst: bytes, sport: int, dport: int, ident: int) -> bytes:
    body = l4(proto, src, dst, sport, dport)
    number = 17 if proto == "udp" else 6
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident & 0xFFFF, 0, 64,
                         number, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + body


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("--mac")
    ap.add_argument("--dst", required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--proto", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--src")
    ap.add_argument("--flood-from")
    ap.add_argument("--count", type=int, default=1)
    a = ap.parse_args()
    if (a.src is None) == (a.flood_from is None):
        ap.error("give --src or --flood-from")
    if not 1 <= a.count <= 1_000_000:
        ap.error("--count: 1 to 1,000,000")
    dst = ipaddress.IPv4Address(a.dst).packed
    first = ipaddress.IPv4Address(a.src or a.flood_from)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    mac = bytes.fromhex(a.mac.replace(":", "")) if a.mac else b""
    address = (a.iface, ETH_P_IP, 0, 0, mac) if mac else (a.iface, ETH_P_IP)
    sent = 0
    for i in range(a.count):
        src = (first + (i if a.flood_from else 0)).packed
        sport = 1024 + (i % 60000)
        try:
            s.sendto(packet(a.proto, src, dst, sport, a.dport, i), address)
            sent += 1
        except BlockingIOError:
            pass
        except OSError as e:
            print(f"rawsend: {e}", file=sys.stderr)
            return 1
    print(f"sent {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
