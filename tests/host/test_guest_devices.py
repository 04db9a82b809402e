"""The heartbeat guest's own devices, QEMU run directly under TCG (no luoinit).

- no devices: the output is the banner and the beat lines, nothing else;
- a virtio disk: a record on sector 0 every 10 beats, read back at boot;
- a virtio NIC on `-netdev dgram` (raw Ethernet frames as UDP payload to this
  test's socket): a broadcast per beat, ARP and the UDP echo on port 7;
- both across a save to a file and a restore in a new QEMU (plain migration
  with RAM in the stream, and luoinit's cpr-reboot with RAM in a memfd): the
  guest keeps writing to the same disk and keeps talking, never re-initialising.
"""
import os
import re
import socket
import struct
import subprocess
import time

import pytest

import helpers
from test_heartbeat import Qmp

QEMU = helpers.QEMU
RAM_MIB = 64
SEED = 7
APPEND = f"fill_mib=16 seed={SEED}"
GUEST_MAC = bytes.fromhex("525400123456")
GUEST_IP = bytes([10, 0, 0, 2])
PEER_MAC = bytes.fromhex("020000000001")   # this test, on the wire
PEER_IP = bytes([10, 0, 0, 1])
BEAT_LINE = re.compile(r"^heartbeat (\d+) pattern=ok$")
WROTE = re.compile(r"^disk: wrote (\d+)$")
RECORD = struct.Struct("<8sIII")           # vblk.c: magic, version, counter, seed
TIMEOUT = 60

pytestmark = pytest.mark.skipif(not os.path.exists(QEMU), reason=f"{QEMU} not installed")


@pytest.fixture(scope="module")
def elf():
    subprocess.run(["make", "--no-print-directory", "-C", helpers.ROOT,
                    os.path.relpath(helpers.GUEST, helpers.ROOT)], check=True)
    return helpers.GUEST


def wait(pred, what, timeout=TIMEOUT):
    return helpers.wait_for(pred, timeout, what, interval=0.05)


# ---- the guest in a QEMU ----------------------------------------------------

class Guest:
    """One QEMU running the guest; QMP over a socketpair, serial to a file."""

    def __init__(self, elf, serial_path, machine="q35", disk=None, readonly=False,
                 wire=None, net_device="virtio-net-pci", ram_fd=None, incoming=False,
                 extra=()):
        self.serial_path = serial_path
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [QEMU, "-nodefaults", "-no-user-config", "-display", "none",
                "-accel", "tcg", "-cpu", "qemu64", "-m", f"{RAM_MIB}M",
                "-kernel", elf, "-append", APPEND,
                "-chardev", f"socket,id=qmp,fd={theirs.fileno()},server=off",
                "-mon", "chardev=qmp,mode=control",
                "-chardev", f"file,id=ser0,path={serial_path}", "-serial", "chardev:ser0"]
        fds = [theirs.fileno()]
        if ram_fd is None:
            argv += ["-machine", machine]
        else:  # as luoinit does: guest RAM in a memfd, kept out of the stream
            argv += ["-machine", f"{machine},memory-backend=ram0", "-object",
                     f"memory-backend-file,id=ram0,size={RAM_MIB}M,"
                     f"mem-path=/proc/self/fd/{ram_fd},share=on"]
            fds.append(ram_fd)
        if disk:  # the form vmconf/argv.c gives a disk
            argv += ["-drive", f"file={disk},format=raw,if=virtio,id=disk0"
                     + (",readonly=on" if readonly else "")]
        if wire:
            argv += ["-netdev", wire.netdev("n0"), "-device",
                     f"{net_device},netdev=n0,mac={GUEST_MAC.hex(':')}"]
        argv += list(extra)
        if incoming:
            argv += ["-incoming", "defer"]
        self.proc = subprocess.Popen(argv, pass_fds=fds, stderr=subprocess.PIPE)
        theirs.close()
        self.qmp = Qmp(ours)

    def lines(self):
        return helpers.read_text(self.serial_path).splitlines()

    def beats(self):
        return [int(m.group(1)) for m in map(BEAT_LINE.match, self.lines()) if m]

    def wait_lines(self, pattern, n=1, timeout=TIMEOUT):
        """The first n lines matching pattern (waits for them)."""
        rx = re.compile(pattern)

        def found():
            assert self.proc.poll() is None, f"QEMU exited: {self.lines()[-5:]}"
            m = [x for x in map(rx.match, self.lines()) if x]
            return m[:n] if len(m) >= n else None
        return wait(found, f"{n} serial lines matching {pattern!r} "
                    f"(last: {self.lines()[-3:]})", timeout)

    def wait_beat(self, counter):
        self.wait_lines(rf"^heartbeat {counter} pattern=ok$")

    def migrate_out(self, path, cpr):
        self._caps(cpr)
        self.qmp.cmd("migrate", {"uri": f"file:{path}"})
        r = self._completed()
        assert self.qmp.cmd("query-status")["status"] == "postmigrate"
        return r

    def migrate_in(self, path, cpr):
        self._caps(cpr)
        self.qmp.cmd("migrate-incoming", {"uri": f"file:{path}"})
        self._completed()
        assert self.qmp.cmd("query-status")["status"] == "running"

    def _caps(self, cpr):
        if cpr:
            self.qmp.cmd("migrate-set-capabilities", {"capabilities": [
                {"capability": "x-ignore-shared", "state": True}]})
            self.qmp.cmd("migrate-set-parameters", {"mode": "cpr-reboot"})

    def _completed(self):
        def done():
            r = self.qmp.cmd("query-migrate")
            assert r.get("status") not in ("failed", "cancelled"), r
            return r if r.get("status") == "completed" else None
        return wait(done, "the migration to complete")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd("quit")
            except (EOFError, OSError, TimeoutError):
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.qmp.sock.close()
        return err


# ---- the disk -----------------------------------------------------------------

def make_disk(path, record=None):
    with open(path, "wb") as f:
        f.truncate(1 << 20)
        if record is not None:
            f.write(RECORD.pack(b"LUOHBREC", 1, *record))
    return str(path)


def disk_record(path):
    """(counter, seed) of the record on sector 0, or None."""
    with open(path, "rb") as f:
        sector = f.read(512)
    magic, version, counter, seed = RECORD.unpack_from(sector)
    if magic != b"LUOHBREC":
        return None
    assert version == 1 and sector[RECORD.size:] == bytes(512 - RECORD.size), sector
    return counter, seed


def wrote(g):
    return [int(m.group(1)) for m in map(WROTE.match, g.lines()) if m]


# ---- the wire: this test is the other end of `-netdev dgram` -------------------

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def udp_frame(payload, dport, sport=4321, dmac=GUEST_MAC, dip=GUEST_IP, bad_csum=False):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                               PEER_IP, dip))
    ip[10:12] = struct.pack("!H", csum(bytes(ip)) ^ (1 if bad_csum else 0))
    return dmac + PEER_MAC + b"\x08\x00" + bytes(ip) + udp


def parse_udp(f):
    """(dst MAC, src MAC, src IP, dst IP, sport, dport, payload) of an IPv4/UDP
    frame the guest sent, checking every header field it must get right."""
    assert len(f) >= 60, f"runt frame: {f.hex()}"
    assert f[12:14] == b"\x08\x00", f.hex()
    ip = f[14:34]
    ver_ihl, _, total, _, flags, ttl, proto, _, src, dst = struct.unpack("!BBHHHBBH4s4s", ip)
    assert ver_ihl == 0x45 and proto == 17 and ttl > 0 and flags & 0x3fff == 0, ip.hex()
    assert csum(ip) == 0, f"bad IPv4 header checksum: {ip.hex()}"
    sport, dport, ulen, ucsum = struct.unpack("!HHHH", f[34:42])
    assert ulen == total - 20 and ucsum == 0 and 14 + total <= len(f), f.hex()
    return f[0:6], f[6:12], src, dst, sport, dport, f[42:42 + ulen - 8]


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Wire:
    """This test's UDP socket (port P2) and the port QEMU binds (P1). A new QEMU
    after a restore binds the same P1, so the wire outlives the guest's QEMUs."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.qemu_port = free_udp_port()

    def netdev(self, name):
        return (f"dgram,id={name},local.type=inet,local.host=127.0.0.1,"
                f"local.port={self.qemu_port},remote.type=inet,remote.host=127.0.0.1,"
                f"remote.port={self.port}")

    def send(self, frame):
        self.sock.sendto(frame, ("127.0.0.1", self.qemu_port))

    def recv(self, timeout=TIMEOUT):
        """The guest's next frame. QEMU's own RARP announcements after a
        restore (qemu_announce_self, ethertype 0x8035) are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            frame, addr = self.sock.recvfrom(65536)
            assert addr == ("127.0.0.1", self.qemu_port), addr
            if frame[12:14] != b"\x80\x35":
                return frame

    def next_beat(self):
        """The counter of the next heartbeat broadcast; other frames are an error."""
        dmac, smac, src, dst, sport, dport, payload = parse_udp(self.recv())
        assert (dmac, smac, src, dst) == (b"\xff" * 6, GUEST_MAC, GUEST_IP, b"\xff" * 4)
        assert (sport, dport) == (5555, 5555)
        m = BEAT_LINE.match(payload.decode())
        assert m, payload
        return int(m.group(1))

    def replies(self, until):
        """The guest's frames other than beat broadcasts, up to and including
        the first one for which until(frame) holds."""
        got = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            f = self.recv(max(0.1, deadline - time.monotonic()))
            if f[0:6] == b"\xff" * 6 and f[12:14] == b"\x08\x00" and parse_udp(f)[5] == 5555:
                continue
            got.append(f)
            if until(f):
                return got

    def echo(self, payload, sport=4321):
        """Send payload to port 7; return N of the guest's `echo N <payload>`."""
        self.send(udp_frame(payload, 7, sport))
        got = self.replies(lambda f: f[12:14] == b"\x08\x00")
        assert len(got) == 1, [f.hex() for f in got]
        dmac, smac, src, dst, s, d, reply = parse_udp(got[0])
        assert (dmac, smac, src, dst, s, d) == (PEER_MAC, GUEST_MAC, GUEST_IP, PEER_IP, 7, sport)
        m = re.match(rb"echo (\d+) (.*)\Z", reply, re.S)
        assert m and m.group(2) == payload, reply
        return int(m.group(1))

    def close(self):
        self.sock.close()


# ---- tests ----------------------------------------------------------------------

@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_no_devices(elf, tmp_path, machine):
    """Without devices the output is what it always was: banner, then beats."""
    g = Guest(elf, str(tmp_path / "serial.log"), machine=machine)
    try:
        g.wait_beat(5)
    finally:
        g.stop()
    lines = g.lines()
    assert lines[0].startswith(f"heartbeat guest: fill_mib=16 seed={SEED} base="), lines[0]
    beats = lines[1:]
    if beats and not BEAT_LINE.match(beats[-1]):
        beats.pop()  # a line cut short by the quit
    assert beats == [f"heartbeat {i} pattern=ok" for i in range(len(beats))]


def test_modern_only_devices_ignored(elf, tmp_path):
    """Modern-only virtio (disable-legacy=on) is named and left alone."""
    disk = make_disk(tmp_path / "disk.img")
    g = Guest(elf, str(tmp_path / "serial.log"),
              extra=["-drive", f"file={disk},format=raw,if=none,id=d0",
                     "-device", "virtio-blk-pci,drive=d0,disable-legacy=on,disable-modern=off",
                     "-netdev", "hubport,id=u0,hubid=0",
                     "-device", "virtio-net-pci,netdev=u0,disable-legacy=on,disable-modern=off"])
    try:
        g.wait_beat(11)
    finally:
        g.stop()
    text = "\n".join(g.lines())
    assert re.search(r"^virtio-blk: 00:\w\w\.0 is modern-only", text, re.M), text[:500]
    assert re.search(r"^virtio-net: 00:\w\w\.0 is modern-only", text, re.M), text[:500]
    assert "disk:" not in text and disk_record(disk) is None


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_disk_record_read_and_written(elf, tmp_path, machine):
    """A record already on the disk is reported at boot, then overwritten
    every 10 beats by records the file shows, with this guest's seed."""
    disk = make_disk(tmp_path / "disk.img", record=(12345, 99))
    g = Guest(elf, str(tmp_path / "serial.log"), machine=machine, disk=disk)
    try:
        g.wait_lines(r"^disk: found record 12345$")
        g.wait_lines(WROTE.pattern, n=2)
        rec = disk_record(disk)
    finally:
        g.stop()
    text = "\n".join(g.lines())
    assert re.search(r"^virtio-blk: 00:\w\w\.0 io=0x[0-9a-f]{8} sectors=2048$", text, re.M), text
    w = wrote(g)
    assert w[:2] in ([0, 10], [10, 20]), w  # the first beat may come before the read completes
    assert w == list(range(w[0], w[0] + 10 * len(w), 10)), w
    assert rec is not None and rec[1] == SEED and rec[0] >= w[1], (rec, w)
    assert disk_record(disk) == (w[-1], SEED) or disk_record(disk) == (w[-1] + 10, SEED)


def test_readonly_disk(elf, tmp_path):
    disk = make_disk(tmp_path / "disk.img", record=(42, 1))
    g = Guest(elf, str(tmp_path / "serial.log"), disk=disk, readonly=True)
    try:
        g.wait_lines(r"^disk: found record 42$")
        g.wait_beat(21)  # two chances to write, not taken
    finally:
        g.stop()
    assert any(re.match(r"^virtio-blk: .* read-only$", l) for l in g.lines()), g.lines()[:4]
    assert wrote(g) == [] and disk_record(disk) == (42, 1)


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_net(elf, tmp_path, machine):
    """Beats broadcast in order, ARP answered, echo on port 7 answered to the
    sender; frames not for the guest get nothing."""
    wire = Wire()
    g = Guest(elf, str(tmp_path / "serial.log"), machine=machine, wire=wire)
    try:
        first = wire.next_beat()
        assert first in (0, 1), first
        nxt = [wire.next_beat() for _ in range(3)]
        assert nxt == [first + 1, first + 2, first + 3]
        text = "\n".join(g.lines())
        assert re.search(r"^virtio-net: 00:\w\w\.0 io=0x[0-9a-f]{8} "
                         r"mac=52:54:00:12:34:56 ip=10\.0\.0\.2$", text, re.M), text

        # ARP: a request for another address is ignored, ours answered.
        def arp(tpa):
            return (b"\xff" * 6 + PEER_MAC + b"\x08\x06" +
                    struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + PEER_MAC + PEER_IP +
                    bytes(6) + tpa)
        wire.send(arp(bytes([10, 0, 0, 3])))
        wire.send(arp(GUEST_IP))
        got = wire.replies(lambda f: f[12:14] == b"\x08\x06")
        assert len(got) == 1, [f.hex() for f in got]
        a = got[0]
        assert a[0:12] == PEER_MAC + GUEST_MAC and len(a) >= 60
        assert a[14:42] == (struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) +
                            GUEST_MAC + GUEST_IP + PEER_MAC + PEER_IP)

        # Echo: N is the last beat printed when the guest answered.
        before = max(g.beats())
        n = wire.echo(b"hello, guest")
        assert before <= n <= max(g.beats()), (before, n)
        assert wire.echo(b"", sport=9) >= n
        big = bytes(range(256)) * 5
        assert wire.echo(big, sport=65535) >= n

        # Not for the echo: another MAC, broadcast, another port, a bad IP
        # checksum. The guest handles frames in order, so the first reply
        # after them must be the one to the valid request that follows.
        wire.send(udp_frame(b"other mac", 7, dmac=bytes.fromhex("525400999999")))
        wire.send(udp_frame(b"broadcast", 7, dmac=b"\xff" * 6))
        wire.send(udp_frame(b"port 8", 8))
        wire.send(udp_frame(b"bad csum", 7, bad_csum=True))
        assert wire.echo(b"last") >= n
    finally:
        g.stop()
        wire.close()


@pytest.mark.parametrize("cpr", [False, True], ids=["file", "cpr-reboot"])
def test_devices_across_restore(elf, tmp_path, cpr):
    """Save to a file, restore in a new QEMU with the same disk and wire: the
    guest continues its count, keeps writing records to the same disk (the
    counter there rises beyond its value at the save) and keeps broadcasting
    and echoing, without re-initialising anything."""
    disk = make_disk(tmp_path / "disk.img")
    state = str(tmp_path / "vmstate")
    wire = Wire()
    ram = None
    if cpr:
        ram = os.memfd_create("ram", os.MFD_CLOEXEC)
        os.ftruncate(ram, RAM_MIB << 20)
    try:
        src = Guest(elf, str(tmp_path / "serial1.log"), disk=disk, wire=wire, ram_fd=ram)
        try:
            src.wait_lines(r"^disk: no record$")
            src.wait_lines(WROTE.pattern, n=2)
            assert wire.echo(b"before") >= 0
            info = src.migrate_out(state, cpr)
        finally:
            src.stop()
        if cpr:
            assert info["ram"]["total"] < 4 << 20, info  # RAM stayed in the memfd
        last = max(src.beats())
        saved = disk_record(disk)
        w = wrote(src)
        # A write in flight at the save completes in the destination's log.
        assert saved in ((w[-1], SEED), (w[-1] + 10, SEED)), (saved, w)

        dst = Guest(elf, str(tmp_path / "serial2.log"), disk=disk, wire=wire,
                    ram_fd=ram, incoming=True)
        try:
            dst.migrate_in(state, cpr)
            after = dst.wait_lines(rf"^disk: wrote (\d+)$", n=2)
            counters = [int(m.group(1)) for m in after]
            assert counters[0] in (saved[0], saved[0] + 10), (saved, counters)
            assert counters[1] == counters[0] + 10
            rec = disk_record(disk)
            assert rec[1] == SEED and rec[0] >= counters[1] > saved[0], (rec, saved)

            # The wire: beats broadcast from where the count was, and the echo.
            beat = wire.next_beat()
            while beat <= last:  # frames the source sent before its save
                beat = wire.next_beat()
            assert wire.next_beat() == beat + 1
            n = wire.echo(b"after")
            assert n > last
        finally:
            dst.stop()
        lines = dst.lines()
        assert not any(l.startswith(("heartbeat guest:", "virtio-", "disk: found", "disk: no"))
                       for l in lines), lines[:5]
        b = dst.beats()
        assert last - 1 <= b[0] <= last + 3 and b == list(range(b[0], b[0] + len(b))), (last, b[:5])
    finally:
        wire.close()
        if ram is not None:
            os.close(ram)
