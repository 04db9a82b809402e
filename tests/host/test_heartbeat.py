"""The heartbeat guest under TCG: beats, a cpr-reboot save/restore on a memfd with
x-ignore-shared that continues the count, and a corrupted pattern that is caught.

The guest's RAM is a memory-backend-file on a memfd this test owns, as luoinit does.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from outerqmp import QmpStream  # noqa: E402

BB = os.path.join(ROOT, os.environ.get("BB", "build/qemu-x86_64"))
QEMU = shutil.which("qemu-system-x86_64")
RAM = 64 << 20
APPEND = "fill_mib=16 seed=1"
BEAT = re.compile(r"^heartbeat (\d+) pattern=(ok|bad)$")

pytestmark = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed")


@pytest.fixture(scope="module")
def guest():
    elf = os.path.join(BB, "heartbeat.elf")
    subprocess.run(["make", "--no-print-directory", "-C", ROOT,
                    os.path.relpath(elf, ROOT)], check=True)
    return elf


class Qmp(QmpStream):
    """Just enough QMP for the test: commands with ids, events skipped."""

    def __init__(self, sock):
        super().__init__(sock, "QEMU")
        self.id = 0
        greeting = self._read(30)
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None, fd=None, timeout=30):
        self.id += 1
        msg = {"execute": name, "id": self.id}
        if args is not None:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        if fd is None:
            self.sock.sendall(data)
        else:
            socket.send_fds(self.sock, [data], [fd])
        while True:
            r = self._read(timeout)
            if r.get("id") != self.id:
                continue  # an event
            if "error" in r:
                raise RuntimeError(f"{name}: {r['error']}")
            return r["return"]


class Vm:
    def __init__(self, elf, ram_fd, serial_path, incoming=False, append=APPEND):
        self.serial_path = serial_path
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [QEMU, "-nodefaults", "-no-user-config", "-display", "none",
                "-accel", "tcg", "-machine", "pc-q35-10.0,memory-backend=ram0",
                "-cpu", "qemu64", "-m", "64M",
                "-object", f"memory-backend-file,id=ram0,size={RAM},"
                           f"mem-path=/proc/self/fd/{ram_fd},share=on",
                "-kernel", elf, "-append", append,
                "-chardev", f"socket,id=qmp,fd={theirs.fileno()},server=off",
                "-mon", "chardev=qmp,mode=control",
                "-chardev", f"file,id=ser0,path={serial_path}",
                "-serial", "chardev:ser0"]
        if incoming:
            argv += ["-incoming", "defer"]
        self.proc = subprocess.Popen(argv, pass_fds=[ram_fd, theirs.fileno()],
                                     stderr=subprocess.PIPE)
        theirs.close()
        self.qmp = Qmp(ours)

    def lines(self):
        try:
            with open(self.serial_path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def beats(self, n, timeout=60):
        """Wait for n complete beat lines; return them as (counter, pattern)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            b = [BEAT.match(l) for l in self.lines()]
            b = [(int(m.group(1)), m.group(2)) for m in b if m]
            if len(b) >= n:
                return b
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"fewer than {n} beats: {self.lines()[-5:]}")

    def set_cpr(self):
        self.qmp.cmd("migrate-set-capabilities", {"capabilities": [
            {"capability": "x-ignore-shared", "state": True},
            {"capability": "events", "state": True}]})
        self.qmp.cmd("migrate-set-parameters", {"mode": "cpr-reboot"})

    def add_fd(self, path, flags):
        """Hand QEMU an fd over SCM_RIGHTS; return its /dev/fdset path."""
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            r = self.qmp.cmd("add-fd", fd=fd)
        finally:
            os.close(fd)
        return f"/dev/fdset/{r['fdset-id']}"

    def wait_migration(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.qmp.cmd("query-migrate")
            if r.get("status") == "completed":
                return r
            assert r.get("status") not in ("failed", "cancelled"), r
            time.sleep(0.05)
        pytest.fail("migration did not complete")

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


def memfd(name, size):
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return fd


def test_beats(guest, tmp_path):
    ram = memfd("ram", RAM)
    vm = Vm(guest, ram, str(tmp_path / "serial.log"))
    try:
        t0 = time.monotonic()
        vm.beats(1)
        t1 = time.monotonic()
        b = vm.beats(21)
        rate = (len(b) - 1) / (time.monotonic() - t1) if len(b) > 1 else 0
    finally:
        vm.stop()
        os.close(ram)
    lines = vm.lines()
    assert lines[0].startswith("heartbeat guest: fill_mib=16 seed=1 "), lines[0]
    assert [c for c, _ in b] == list(range(len(b)))
    assert all(p == "ok" for _, p in b)
    # about 10 per second; wide bounds because TCG (maybe nested) is slow
    assert 4 < rate < 16, (rate, t1 - t0)


def test_fill_all(guest, tmp_path):
    """fill_mib=all (the benchmark's setting) fills up to the top of RAM."""
    ram = memfd("ram", RAM)
    vm = Vm(guest, ram, str(tmp_path / "serial.log"), append="fill_mib=all seed=0x2a")
    try:
        b = vm.beats(3)
    finally:
        vm.stop()
    banner = vm.lines()[0]
    m = re.search(r"seed=42 base=(0x[0-9a-f]+) end=(0x[0-9a-f]+) ram_top=(0x[0-9a-f]+)", banner)
    assert m and banner.startswith("heartbeat guest: fill_mib=all "), banner
    base, end, top = (int(x, 16) for x in m.groups())
    assert end == top and end - base > RAM - (4 << 20)
    assert all(p == "ok" for _, p in b)
    # the pattern really is in the memfd, right up to the end
    word = int.from_bytes(os.pread(ram, 4, end - 4), "little")
    os.close(ram)
    assert word == pattern(end - 4, 42)


def pattern(addr, seed):
    """The guest's pattern word at addr (heartbeat.c: pattern())."""
    m = 0xffffffff
    x = ((addr ^ seed) * 0x9e3779b1) & m
    x ^= (x << 13) & m
    x ^= x >> 17
    x ^= (x << 5) & m
    return x


@pytest.mark.parametrize("corrupt", [False, True], ids=["continue", "corrupt"])
def test_cpr_restore(guest, tmp_path, corrupt):
    ram = memfd("ram", RAM)
    state = memfd("vmstate", 0)
    try:
        src = Vm(guest, ram, str(tmp_path / "serial1.log"))
        try:
            src.beats(5)
            src.set_cpr()
            path = src.add_fd(f"/proc/self/fd/{state}", os.O_WRONLY)
            src.qmp.cmd("migrate", {"uri": f"file:{path}"})
            info = src.wait_migration()
            assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        finally:
            err = src.stop()
        before = src.beats(1)
        last = before[-1][0]
        # guest RAM stayed in the memfd: only ROMs and device state were written
        total = info["ram"]["total"]
        assert total < 4 << 20, (total, err)
        size = os.fstat(state).st_size
        assert 0 < size < 4 << 20, size
        banner = src.lines()[0]
        m = re.search(r"base=(0x[0-9a-f]+) end=(0x[0-9a-f]+)", banner)
        assert m, banner
        if corrupt:
            # garbage over the first page of the pattern, checked on every beat
            os.pwrite(ram, b"\xde\xad\xbe\xef" * 1024, int(m.group(1), 16))

        dst = Vm(guest, ram, str(tmp_path / "serial2.log"), incoming=True)
        try:
            dst.set_cpr()
            path = dst.add_fd(f"/proc/self/fd/{state}", os.O_RDONLY)
            dst.qmp.cmd("migrate-incoming", {"uri": f"file:{path}"})
            dst.wait_migration()
            after = dst.beats(5)
            assert dst.qmp.cmd("query-status")["status"] == "running"
        finally:
            err = dst.stop()
        assert not any(l.startswith("heartbeat guest:") for l in dst.lines()), \
            "guest rebooted"
        counters = [c for c, _ in after]
        assert counters[0] > last - 1 and counters[0] <= last + 3, (last, counters)
        assert counters == list(range(counters[0], counters[0] + len(counters)))
        want = "bad" if corrupt else "ok"
        assert all(p == want for _, p in after), (after, err)
    finally:
        os.close(ram)
        os.close(state)
