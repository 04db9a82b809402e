#!/usr/bin/python3
"""Watch the heartbeat guests' beats on the appliance's uplink and talk to
their UDP echo, from the build host (standard library only).

The appliance's uplink NIC is the outer QEMU's `-netdev dgram`: every
Ethernet frame it sends arrives here as one UDP datagram on
127.0.0.1:BOARD_NET_PEER_PORT, and every datagram sent to
127.0.0.1:BOARD_NET_PORT goes in as a frame. Both ports are in
build/qemu-x86_64/net-ports (written by `make run` / `make start`).

  tests/netwatch.py watch [--count N]          print the beats as they come
  tests/netwatch.py echo [--mac MAC] TEXT      send TEXT to port 7, print the answer

  --ports FILE      the net-ports file (default build/qemu-x86_64/net-ports)
  --port P --peer-port Q   the ports themselves
  --iface IF        a host interface instead (AF_PACKET, root), as the host
                    tests do inside their network namespace
  --json            one JSON object per line (for scripts and tests)

The heartbeat guest broadcasts each beat as UDP from 10.0.0.2:5555 to
255.255.255.255:5555 with its serial line as payload, answers ARP for
10.0.0.2 and answers UDP to port 7 with `echo N <payload>` (N: its last
beat). Several guests all use 10.0.0.2: an echo goes to one guest's MAC,
by default the first one heard beating.
"""
import argparse
import json
import os
import re
import socket
import struct
import sys
import time

BEAT_PORT = 5555
ECHO_PORT = 7
GUEST_IP = bytes([10, 0, 0, 2])
PEER_IP = bytes([10, 0, 0, 1])
PEER_MAC = bytes.fromhex("020000000001")   # this tool on the wire (locally administered)
BEAT = re.compile(rb"^heartbeat (\d+) pattern=(ok|bad)$")
ECHO = re.compile(rb"^echo (\d+) (.*)\Z", re.S)
ETH_P_ALL = 0x0003
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def udp_frame(payload, dport, sport=4321, dmac=b"\xff" * 6, dip=GUEST_IP, smac=PEER_MAC, sip=PEER_IP):
    """An Ethernet/IPv4/UDP frame (UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, sip, dip))
    ip[10:12] = struct.pack("!H", csum(bytes(ip)))
    frame = dmac + smac + b"\x08\x00" + bytes(ip) + udp
    return frame + bytes(max(0, 60 - len(frame)))


def parse_udp(f):
    """(dst MAC, src MAC, src IP, dst IP, sport, dport, payload) of an IPv4/UDP
    frame, or None for anything else (ARP, RARP, IPv6, a bad header)."""
    if len(f) < 42 or f[12:14] != b"\x08\x00" or f[14] != 0x45 or f[23] != 17 or csum(f[14:34]):
        return None
    total = struct.unpack("!H", f[16:18])[0]
    sport, dport, ulen = struct.unpack("!HHH", f[34:40])
    if ulen < 8 or ulen != total - 20 or 14 + total > len(f):
        return None
    return f[0:6], f[6:12], f[26:30], f[30:34], sport, dport, f[42:42 + ulen - 8]


def beat_of(f):
    """(guest MAC, counter, pattern) of a heartbeat broadcast, else None."""
    u = parse_udp(f)
    if not u or u[5] != BEAT_PORT or u[4] != BEAT_PORT:
        return None
    m = BEAT.match(u[6])
    return (u[1], int(m.group(1)), m.group(2).decode()) if m else None


def echo_of(f, sport):
    """(guest MAC, N, payload) of an echo answer to our port sport, else None."""
    u = parse_udp(f)
    if not u or u[4] != ECHO_PORT or u[5] != sport or u[0] != PEER_MAC:
        return None
    m = ECHO.match(u[6])
    return (u[1], int(m.group(1)), m.group(2)) if m else None


def mac_str(b):
    return b.hex(":")


class Dgram:
    """The outer QEMU's -netdev dgram: frames in on peer_port, out to port."""

    def __init__(self, port, peer_port):
        self.dest = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", peer_port))

    def send(self, frame):
        self.sock.sendto(frame, self.dest)

    def recv(self, timeout):
        """The next frame, or None after timeout seconds."""
        self.sock.settimeout(max(0.001, timeout))
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None

    def close(self):
        self.sock.close()


class Packet(Dgram):
    """A host interface, raw (AF_PACKET): what the host tests use in their
    network namespace, on the peer of the bridge's uplink."""

    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.iface = iface

    def send(self, frame):
        self.sock.send(frame)

    def recv(self, timeout):
        self.sock.settimeout(max(0.001, timeout))
        try:
            while True:
                frame, addr = self.sock.recvfrom(65536)
                if addr[2] != socket.PACKET_OUTGOING:  # not our own sends
                    return frame
        except socket.timeout:
            return None


def read_ports(path):
    """{"BOARD_NET_PORT": n, "BOARD_NET_PEER_PORT": m} from a net-ports file."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k and v.isdigit():
                out[k] = int(v)
    return out


def next_beat(wire, timeout, mac=None):
    """(time, MAC, counter, pattern) of the next beat (of mac, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        f = wire.recv(deadline - time.monotonic())
        if f is None:
            return None
        b = beat_of(f)
        if b and (mac is None or b[0] == mac):
            return (time.time(),) + b


def echo(wire, mac, payload, timeout, sport=4321):
    """Send payload to the guest at mac, port 7; (N, round trip s) of its
    answer, or None. Beats and other frames in between are skipped."""
    t0 = time.monotonic()
    wire.send(udp_frame(payload, ECHO_PORT, sport, dmac=mac))
    while True:
        f = wire.recv(t0 + timeout - time.monotonic())
        if f is None:
            return None
        e = echo_of(f, sport)
        if e and e[0] == mac and e[2] == payload:
            return e[1], time.monotonic() - t0


def open_wire(a):
    if a.iface:
        return Packet(a.iface)
    port, peer = a.port, a.peer_port
    if port is None or peer is None:
        p = read_ports(a.ports)
        port = port if port is not None else p["BOARD_NET_PORT"]
        peer = peer if peer is not None else p["BOARD_NET_PEER_PORT"]
    return Dgram(port, peer)


def out(a, obj, text):
    print(json.dumps(obj) if a.json else text, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ports", default=os.path.join(ROOT, "build", "qemu-x86_64", "net-ports"))
    ap.add_argument("--port", type=int)
    ap.add_argument("--peer-port", type=int)
    ap.add_argument("--iface")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a frame")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch", help="print beats")
    w.add_argument("--count", type=int, default=0, help="stop after N beats (0: never)")
    e = sub.add_parser("echo", help="send TEXT to a guest's port 7")
    e.add_argument("--mac", help="the guest's MAC (default: the first one heard beating)")
    e.add_argument("text")
    a = ap.parse_args(argv)

    try:
        wire = open_wire(a)
    except (OSError, KeyError) as err:
        print(f"netwatch: {err} (is the appliance running? see --ports)", file=sys.stderr)
        return 1
    try:
        if a.cmd == "watch":
            n = 0
            while a.count == 0 or n < a.count:
                b = next_beat(wire, a.timeout)
                if b is None:
                    print(f"netwatch: no beat within {a.timeout:g} s", file=sys.stderr)
                    return 1
                n += 1
                t, mac, counter, pattern = b
                out(a, {"time": t, "mac": mac_str(mac), "counter": counter, "pattern": pattern},
                    f"{time.strftime('%H:%M:%S', time.localtime(t))}.{int(t * 1000) % 1000:03d} "
                    f"{mac_str(mac)} heartbeat {counter} pattern={pattern}")
            return 0
        mac = bytes.fromhex(a.mac.replace(":", "")) if a.mac else None
        if mac is None:
            b = next_beat(wire, a.timeout)
            if b is None:
                print(f"netwatch: no beat within {a.timeout:g} s to learn a guest's MAC", file=sys.stderr)
                return 1
            mac = b[1]
        r = echo(wire, mac, a.text.encode(), a.timeout)
        if r is None:
            print(f"netwatch: no answer from {mac_str(mac)} within {a.timeout:g} s", file=sys.stderr)
            return 1
        out(a, {"mac": mac_str(mac), "counter": r[0], "rtt_ms": r[1] * 1000},
            f"{mac_str(mac)}: echo {r[0]} {a.text} ({r[1] * 1000:.1f} ms)")
        return 0
    finally:
        wire.close()


if __name__ == "__main__":
    sys.exit(main())
