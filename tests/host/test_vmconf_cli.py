"""The vmconf CLI: exit codes and messages of `check` and `argv`, and proof
that the printed argv starts a real QEMU (TCG, fds laid out as luoinit does)."""
import json
import os
import select
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("B", "build"))
VMCONF = os.environ.get("VMCONF", os.path.join(BUILD, "vmconf"))
DATA = os.path.join(ROOT, "tests", "data", "vmconf")
QEMU = "/usr/bin/qemu-system-x86_64"

pytestmark = pytest.mark.skipif(not os.access(VMCONF, os.X_OK), reason=f"{VMCONF} not built")


def run(*args):
    return subprocess.run([VMCONF, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)


def data(name):
    return os.path.join(DATA, name)


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


# ---- check ----

@pytest.mark.parametrize("name", ["full.json", "minimal.json", "empty-vms.json", "tiny-tcg.json", "net.json"])
def test_check_valid(name):
    p = run("check", data(name))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{data(name)}: ok\n"
    assert p.stderr == ""


def test_check_collects_every_error():
    f = data("invalid-many.json")
    p = run("check", f)
    assert p.returncode == 1
    assert p.stdout == ""
    mem = "expected an integer from 16 to 1048576 that is a multiple of 2"
    assert p.stderr.splitlines() == [
        f'{f}: vms[0].memory_mib: {mem}, got "1G"',
        f"{f}: vms[0].vcpus: expected an integer from 1 to 256, got 0",
        f"{f}: vms[0].foo: expected no such key (known: name, memory_mib, vcpus, machine, cpu, "
        "accel, kernel, initrd, cmdline, disks, serial, restart, ram_backing, qemu, qemu_args, "
        "user, nics), got 1",
        f'{f}: vms[1].name: expected a name not used by another VM, got "vm0"',
        f'{f}: vms[1].accel: expected "kvm", "tcg" or "auto", got "hvf"',
        f'{f}: vms[1].disks[0].path: expected an absolute path of at most 4095 bytes, got "relative.img"',
        f'{f}: vms[1].disks[0].format: expected "raw" or "qcow2", got "vmdk"',
    ]


def test_check_syntax_error():
    f = data("invalid-syntax.json")
    p = run("check", f)
    assert p.returncode == 1
    assert p.stderr == (f"{f}: expected valid JSON, got a syntax error at line 3, column 19 "
                        "(byte 43): object value separator ',' expected\n")


def test_check_duplicate_key():
    f = data("invalid-duplicate-key.json")
    p = run("check", f)
    assert p.returncode == 1
    assert p.stderr == (f"{f}: vms[0].vcpus: expected a key that appears once in its object, "
                        "got it again at line 1, column 70 (byte 69)\n")


def test_check_hostile(tmp_path):
    big = write(tmp_path, "big.json", " " * (1024 * 1024 + 1))
    p = run("check", big)
    assert (p.returncode, p.stderr) == (1, f"{big}: expected at most 1048576 bytes, got more\n")
    empty = write(tmp_path, "empty.json", "")
    p = run("check", empty)
    assert (p.returncode, p.stderr) == (1, f"{empty}: expected a JSON object, got nothing\n")
    deep = write(tmp_path, "deep.json", "[" * 100000)
    p = run("check", deep)
    assert p.returncode == 1
    assert "expected at most 16 levels of nesting" in p.stderr
    nul = write(tmp_path, "nul.json", '{"version": 1, "vms": [{"name": "a\\u0000", '
                '"memory_mib": 99999999999999999999, "vcpus": 1e30}]}')
    p = run("check", nul)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f'{nul}: vms[0].name: expected a string without NUL bytes, got "a\\u0000"',
        f"{nul}: vms[0].memory_mib: expected an integer from 16 to 1048576 that is a multiple "
        "of 2, got 99999999999999999999",
        f"{nul}: vms[0].vcpus: expected an integer from 1 to 256, got 1e30",
    ]


def test_check_unreadable(tmp_path):
    missing = str(tmp_path / "missing.json")
    p = run("check", missing)
    assert p.returncode == 1
    assert p.stderr == f"vmconf: {missing}: expected a readable file, got No such file or directory\n"
    p = run("check", str(tmp_path))
    assert p.returncode == 1
    assert p.stderr == f"vmconf: {tmp_path}: expected a readable file, got Is a directory\n"


@pytest.mark.parametrize("args", [
    [], ["check"], ["check", "a", "b"], ["frobnicate"], ["argv"], ["argv", "f"],
    ["argv", "--accel", "hvf", "f", "vm0"], ["argv", "--ram-backing", "memfd", "f", "vm0"],
    ["argv", "--bogus", "x", "f", "vm0"], ["argv", "f", "vm0", "extra"], ["argv", "--accel"],
])
def test_usage(args):
    p = run(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "usage: vmconf check FILE\n" in p.stderr


def test_help():
    p = run("--help")
    assert p.returncode == 0
    assert p.stdout.startswith("usage: vmconf check FILE\n")


# ---- argv ----

def kvm_works():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def test_argv_tiny():
    p = run("argv", data("tiny-tcg.json"), "tiny")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        QEMU, "-name", "tiny", "-nodefaults", "-no-user-config", "-display", "none",
        "-machine", "q35,memory-backend=ram0", "-accel", "tcg", "-cpu", "max",
        "-smp", "1", "-m", "32M",
        "-object", "memory-backend-file,id=ram0,size=32M,mem-path=/proc/self/fd/5,share=on,align=2M",
        "-chardev", "socket,id=qmp,fd=3,server=off", "-mon", "chardev=qmp,mode=control",
        "-chardev", "socket,id=ser0,fd=4,server=off", "-serial", "chardev:ser0",
    ]


def test_argv_options_and_auto():
    p = run("argv", "--ram-backing", "fdset", "--accel=kvm", data("full.json"), "vm0")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[out.index("-accel") + 1] == "kvm"
    i = out.index("-add-fd")
    assert out[i:i + 4] == ["-add-fd", "fd=5,set=1", "-object",
                            "memory-backend-file,id=ram0,size=1024M,mem-path=/dev/fdset/1,share=on,align=2M"]
    assert out[-4:] == ["-kernel", "/state/guest/vm0.elf", "-drive",
                        "file=/state/guest/vm0.img,format=raw,if=virtio,id=disk0"]
    # accel "auto" follows /dev/kvm; ram_backing "auto" is procfd.
    p = run("argv", data("full.json"), "vm0")
    out = p.stdout.splitlines()
    assert out[out.index("-accel") + 1] == ("kvm" if kvm_works() else "tcg")
    assert "memory-backend-file,id=ram0,size=1024M,mem-path=/proc/self/fd/5,share=on,align=2M" in out
    assert "-add-fd" not in out


def test_argv_nics():
    """NIC fds follow the RAM's, in order, as luoinit lays them: under TCG a
    tap each; under KVM with /dev/vhost-net also a vhost-net fd each."""
    p = run("argv", "--accel", "tcg", data("net.json"), "vm0")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-8:] == [
        "-netdev", "tap,id=net0,fd=6", "-device", "virtio-net-pci,netdev=net0,mac=52:72:00:7c:10:c3,bus=pcie.0,romfile=",
        "-netdev", "tap,id=net1,fd=7", "-device", "virtio-net-pci,netdev=net1,mac=52:54:00:ab:cd:ef,bus=pcie.0,romfile="]
    p = run("argv", "--accel", "kvm", data("net.json"), "vm1")
    out = p.stdout.splitlines()
    tap = "tap,id=net0,fd=6,vhost=on,vhostfd=7" if os.path.exists("/dev/vhost-net") else "tap,id=net0,fd=6"
    assert out[-4:-2] == ["-netdev", tap] and out[-1].endswith(",bus=pci.0,romfile="), out


def test_argv_escapes_and_extras(tmp_path):
    f = write(tmp_path, "c.json", {"version": 1, "vms": [{
        "name": "x", "memory_mib": 64, "vcpus": 1, "accel": "tcg", "cmdline": "a, b",
        "disks": [{"path": "/d,1.img", "format": "qcow2", "readonly": True}],
        "qemu_args": ["-device", "virtio-rng-pci"]}]})
    p = run("argv", f, "x")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-6:] == [
        "-append", "a, b", "-drive", "file=/d,,1.img,format=qcow2,if=virtio,id=disk0,readonly=on",
        "-device", "virtio-rng-pci"]


def test_argv_errors():
    f = data("full.json")
    p = run("argv", f, "vm9")
    assert (p.returncode, p.stdout, p.stderr) == (1, "", f"vmconf: no VM named vm9 in {f}\n")
    f = data("invalid-many.json")
    p = run("argv", f, "vm0")
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith(f'{f}: vms[0].memory_mib: expected')


# ---- the argv against a real QEMU ----

def recv_line(sock, deadline):
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no line from QMP, got {buf!r}"
        r, _, _ = select.select([sock], [], [], left)
        if r:
            chunk = sock.recv(65536)
            assert chunk, f"QMP closed, got {buf!r}"
            buf += chunk
    return buf


def qmp(sock, cmd, deadline):
    sock.sendall(json.dumps({"execute": cmd}).encode() + b"\n")
    while True:
        for line in recv_line(sock, deadline).splitlines():
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg


@pytest.mark.skipif(not os.access(QEMU, os.X_OK), reason="no QEMU")
def test_argv_starts_qemu():
    p = run("argv", "--accel", "tcg", data("tiny-tcg.json"), "tiny")
    assert p.returncode == 0, p.stderr
    argv = p.stdout.splitlines()

    qmp_ours, qmp_theirs = socket.socketpair()
    ser_ours, ser_theirs = socket.socketpair()
    mem = os.memfd_create("tiny-ram")  # CLOEXEC: only the dup2 copies reach QEMU
    os.ftruncate(mem, 32 << 20)

    def layout():
        # Through high numbers first, so no source is overwritten by another's target.
        hi = [os.dup2(fd, 100 + i) for i, fd in enumerate(
            (qmp_theirs.fileno(), ser_theirs.fileno(), mem))]
        for i, fd in enumerate(hi):
            os.dup2(fd, 3 + i)

    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=False, preexec_fn=layout)
    try:
        qmp_theirs.close()
        ser_theirs.close()
        deadline = time.monotonic() + 20
        greeting = json.loads(recv_line(qmp_ours, deadline).splitlines()[0])
        assert "QMP" in greeting
        assert "return" in qmp(qmp_ours, "qmp_capabilities", deadline)
        time.sleep(1)  # let the guest run for a moment
        st = qmp(qmp_ours, "query-status", deadline)
        assert st["return"]["status"] == "running", st
        mem_devs = qmp(qmp_ours, "query-memdev", deadline)["return"]
        assert [(m["id"], m["size"], m["share"]) for m in mem_devs] == [("ram0", 32 << 20, True)]
        qmp(qmp_ours, "quit", deadline)
        proc.wait(timeout=20)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        qmp_ours.close()
        ser_ours.close()
        os.close(mem)
