"""The board kernel: every option of the fragment made it into the final
.config, the modules are there with modules.dep, and the kernel boots a trivial
initramfs to user space under TCG."""
import os
import subprocess
import tempfile

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(TOP, os.environ.get("B", "build"))
BOARD = os.environ.get("BOARD", "qemu-x86_64")
BB = os.path.join(B, BOARD)
FRAGMENT = os.path.join(TOP, "board", BOARD, "kernel.config")


def need(p):
    if not os.path.exists(p):
        pytest.skip(f"{os.path.relpath(p, TOP)} not built (run make check-board)")
    return p


def test_config_has_every_fragment_option():
    with open(need(os.path.join(BB, "kernel-obj", ".config"))) as f:
        config = set(f.read().splitlines())
    missing = []
    with open(FRAGMENT) as f:
        for line in f:
            line = line.strip()
            if line.startswith("CONFIG_") and line not in config:
                missing.append(line)
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                sym = line[2:-len(" is not set")]
                if any(c.startswith(sym + "=") for c in config):
                    missing.append(line)
    assert not missing, missing


def test_modules_and_depmod():
    rel = open(need(os.path.join(BB, "kernel.release"))).read().strip()
    base = os.path.join(BB, "modules", "lib", "modules", rel)
    dep = open(need(os.path.join(base, "modules.dep"))).read()
    for m in ("virtio_console.ko", "virtio-rng.ko", "rng-core.ko"):
        assert m in dep, m
    # KVM and the state disk's driver are built in (kernel.config: nothing
    # to load in an update's blackout).
    builtin = open(os.path.join(base, "modules.builtin")).read()
    for m in ("kvm.ko", "kvm-intel.ko", "kvm-amd.ko", "virtio_blk.ko"):
        assert m not in dep and m in builtin, m
    # virtio-rng needs rng-core: libkmod has real dependency work to do
    line = next(ln for ln in dep.splitlines() if "virtio-rng.ko:" in ln)
    assert "rng-core.ko" in line.split(":", 1)[1]


def test_boots_to_userspace_under_tcg():
    kernel = need(os.path.join(BB, "bzImage"))
    initrd = need(os.path.join(BB, "probe-initramfs.img"))
    rel = open(need(os.path.join(BB, "kernel.release"))).read().strip()
    with tempfile.NamedTemporaryFile(prefix="luoinit-probe-", suffix=".log") as log:
        subprocess.run(
            ["/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
             "-no-reboot", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2",
             "-m", "512M", "-kernel", kernel, "-initrd", initrd,
             "-append", "console=ttyS0 panic=-1 liveupdate=on kho=on",
             "-serial", f"file:{log.name}"], timeout=120, check=True)
        out = open(log.name, errors="replace").read()
    assert f"luoinit-probe: userspace reached on {rel}" in out, out[-3000:]
