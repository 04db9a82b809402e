"""Guest RAM stays out of the CPR stream both ways `ram_backing: auto` can go.

Our QEMU (build/qemu, initramfs/build-qemu.sh with initramfs/qemu-fdset.patch)
resolves mem-path=/dev/fdset/N, so the probe picks fdset and the RAM memfd is
handed over with -add-fd. Debian's QEMU 10.0 opens mem-path with open(), so
auto falls back to procfd (mem-path=/proc/self/fd/N). Either way a vmm-update
saves device state only: ram_transferred (QEMU's ram.total of the save) stays
far below the RAM the guest has filled, and the guest keeps counting.
"""
import os
import re
import subprocess

import pytest

import helpers
from helpers import beats, boots, vm_config

MiB = 1 << 20
OUR_QEMU = os.path.join(helpers.B, "qemu", "usr", "bin", "qemu-system-x86_64")


def upstream_version(qemu):
    """What status should say: ours is built from the qemu-src.sh version
    (1:10.0.13+ds-0+deb13u1 -> 10.0.13), Debian's says it in --version."""
    if qemu == OUR_QEMU:
        top = os.path.join(os.path.dirname(__file__), "..", "..")
        v = subprocess.run(["sh", os.path.join(top, "initramfs", "qemu-src.sh"), "version"],
                           capture_output=True, text=True, check=True).stdout.strip()
        return re.match(r"(?:\d+:)?([\d.]+)", v).group(1)
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    return re.search(r"version ([\d.]+)", out).group(1)
MEMORY_MIB = 128
FILL_MIB = 32  # the heartbeat writes and checks a pattern over this much RAM
RAM_FD = 5     # the memfd's fd in QEMU (README: "How QEMU is run")
RAM_FDSET = 1


def qemu_argv(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def assert_ram_args(argv, backing):
    backend = [a for a in argv if a.startswith("memory-backend-file,id=ram0,")]
    assert len(backend) == 1, argv
    if backing == "fdset":
        i = argv.index("-add-fd")
        assert argv[i + 1] == f"fd={RAM_FD},set={RAM_FDSET}", argv
        assert f"mem-path=/dev/fdset/{RAM_FDSET}," in backend[0], backend
    else:
        assert "-add-fd" not in argv, argv
        assert f"mem-path=/proc/self/fd/{RAM_FD}," in backend[0], backend
    assert ",share=on" in backend[0], backend


def assert_maps_the_memfd(pid):
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "/memfd:luoinit:vm0" in maps, maps[-2000:]


@pytest.mark.parametrize("qemu,backing", [
    pytest.param(OUR_QEMU, "fdset", id="ours-fdset"),
    pytest.param(helpers.QEMU, "procfd", id="debian-procfd"),
])
def test_auto_backing_keeps_ram_out_of_the_stream(supervisors, tmpdir_short, qemu, backing):
    assert os.access(qemu, os.X_OK), f"{qemu} missing: make qemu (or make check-host) builds it"
    s = supervisors(config={"version": 1, "vms": [vm_config(
        "vm0", tmpdir_short, memory_mib=MEMORY_MIB, fill_mib=FILL_MIB, qemu=qemu, ram_backing="auto")]})
    v = s.wait_running("vm0")
    s.wait_beats_after("vm0", 0, count=3)
    st = s.status()
    assert st["fdset_probe"] is (backing == "fdset"), st["fdset_probe"]
    v = st["vms"][0]
    assert v["ram_backing"] == backing and v["qemu_version"] == upstream_version(qemu), v
    assert_ram_args(qemu_argv(v["pid"]), backing)
    assert_maps_the_memfd(v["pid"])

    text = s.serial("vm0")
    r = s.cmd("vmm-update", name="vm0", _timeout=180)
    assert r["state"] == "running" and r["pid"] != v["pid"], r
    lu = r["last_update"]
    assert lu["kind"] == "vmm-update" and lu["mode"] == "in-place", lu
    # The guest filled FILL_MIB of its RAM: none of it went into the stream.
    assert 0 <= lu["ram_transferred"] < 4 * MiB, lu
    assert r["ram_backing"] == backing, r
    # The restored QEMU took the RAM the same way and maps the same memfd.
    assert_ram_args(qemu_argv(r["pid"]), backing)
    assert_maps_the_memfd(r["pid"])
    after = s.wait_beats_after("vm0", len(text), count=3)
    assert after[0][0] > beats(text)[-1][0], after
    full = s.serial("vm0")
    assert boots(full) == 1, full[-2000:]
    assert all(p == "ok" for _, p in beats(full)), "the guest's RAM pattern broke"
