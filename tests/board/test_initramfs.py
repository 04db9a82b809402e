"""The board initramfs is reproducible and holds what the appliance needs.

Builds it twice into two directories with initramfs/mkinitramfs from the same
inputs the Makefile uses, compares the bytes, and checks the listing.
Needs the board built (make check-board builds it first).
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(TOP, os.environ.get("B", "build"))
BOARD = os.environ.get("BOARD", "qemu-x86_64")
BB = os.path.join(B, BOARD)
# The appliance's QEMU: ours (initramfs/build-qemu.sh), as the Makefile's QEMU_BIN.
QEMU = os.path.join(B, "qemu", "usr", "bin", "qemu-system-x86_64")
DEBIAN_QEMU = "/usr/bin/qemu-system-x86_64"


def _need(path):
    if not os.path.exists(path):
        pytest.skip(f"{os.path.relpath(path, TOP)} not built (run make check-board)")


def build(out, compress="none", epoch=None, qemu=QEMU):
    for p in (os.path.join(B, "luoinit"), os.path.join(BB, "kernel.release"),
              os.path.join(BB, "kernel-obj", "usr", "gen_init_cpio"), qemu):
        _need(p)
    with open(os.path.join(BB, "kernel.release")) as f:
        rel = f.read().strip()
    env = dict(os.environ)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    subprocess.run([
        os.path.join(TOP, "initramfs", "mkinitramfs"), "--out", out,
        "--gen-init-cpio", os.path.join(BB, "kernel-obj", "usr", "gen_init_cpio"),
        "--init", os.path.join(B, "luoinit"),
        "--modules-root", os.path.join(BB, "modules"), "--kernel-release", rel,
        "--config", os.path.join(TOP, "board", BOARD, "initramfs-vmconf.json"),
        "--modules-list", os.path.join(TOP, "board", BOARD, "modules"),
        "--qemu", qemu, "--compress", compress,
        "--kernel-abi", os.path.join(BB, "bzImage.abi"),
        "--cmdline", os.path.join(BB, "firmware-cmdline")], check=True, env=env, cwd=TOP)
    return rel


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def listing(path):
    with open(path, "rb") as f:
        p = subprocess.run(["cpio", "-t", "-v", "--quiet"], stdin=f, check=True,
                           capture_output=True, text=True)
    return p.stdout.splitlines()


@pytest.fixture(scope="module")
def two_builds():
    d = tempfile.mkdtemp(prefix="luoinit-initramfs-")
    try:
        a, b = os.path.join(d, "a", "initramfs.img"), os.path.join(d, "b", "initramfs.img")
        rel = build(a)
        build(b)
        yield a, b, rel
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_two_builds_are_byte_identical(two_builds):
    a, b, _ = two_builds
    assert sha256(a) == sha256(b)


def test_compressed_builds_are_byte_identical():
    if not shutil.which("lz4"):
        pytest.skip("lz4 not installed")
    d = tempfile.mkdtemp(prefix="luoinit-initramfs-")
    try:
        a, b = os.path.join(d, "a.img"), os.path.join(d, "b.img")
        build(a, "lz4")
        build(b, "lz4")
        assert sha256(a) == sha256(b)
        with open(a, "rb") as fa:
            assert fa.read(4) == b"\x02\x21\x4c\x18", "the kernel needs lz4's legacy format"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def names_of(lines):
    return {ln.split()[-1] if " -> " not in ln else ln.split(" -> ")[0].split()[-1]
            for ln in lines}


def assert_ldd_closure(names, qemu):
    """Every library ldd names is there (by name, as the loader asks for it)."""
    out = subprocess.run(["ldd", qemu], check=True, capture_output=True, text=True).stdout
    for m in re.finditer(r"=>\s+/(\S+)", out):
        lib = m.group(1)
        lib = re.sub(r"^lib/", "usr/lib/", lib)
        assert lib in names, lib


def test_listing_has_init_qemu_libs_modules(two_builds):
    a, _, rel = two_builds
    lines = listing(a)
    names = names_of(lines)
    assert "init" in names
    assert "usr/bin/qemu-system-x86_64" in names
    assert "dev/console" in names
    for d in ("proc", "sys", "dev", "run", "tmp", "state"):
        assert d in names, d
    assert "etc/luoinit/vmconf.json" in names
    assert "etc/luoinit/modules" in names
    assert "etc/luoinit/kernel-abi" in names and "etc/luoinit/cmdline" in names
    assert f"usr/lib/modules/{rel}/modules.dep" in names
    # Our relocatable QEMU at /usr/bin reads its firmware from /usr/share/qemu.
    for fw in ("bios-256k.bin", "kvmvapic.bin", "multiboot_dma.bin", "linuxboot_dma.bin", "pvh.bin"):
        assert f"usr/share/qemu/{fw}" in names, fw
    assert not any(n.startswith("usr/share/seabios") for n in names)
    assert_ldd_closure(names, QEMU)
    # /init is luoinit stripped of its debug info (build/luoinit keeps it)
    init = [ln.split() for ln in lines if ln.split()[-1] == "init"][0]
    assert 0 < int(init[4]) < os.path.getsize(os.path.join(B, "luoinit")) * 2 // 3, init
    # every entry owned by root with one fixed mtime
    for ln in lines:
        f = ln.split()
        assert f[2] == "root" and f[3] == "root", ln


def test_debian_qemu_gets_debians_firmware_paths():
    """QEMU_BIN=/usr/bin/qemu-system-x86_64 still makes a working image:
    Debian's QEMU finds bios-256k.bin in /usr/share/seabios."""
    if not os.path.exists(DEBIAN_QEMU):
        pytest.skip(f"{DEBIAN_QEMU} not installed")
    d = tempfile.mkdtemp(prefix="luoinit-initramfs-")
    try:
        out = os.path.join(d, "i.img")
        build(out, qemu=DEBIAN_QEMU)
        names = names_of(listing(out))
        assert "usr/bin/qemu-system-x86_64" in names
        assert "usr/share/seabios/bios-256k.bin" in names
        assert "usr/share/qemu/multiboot_dma.bin" in names
        assert "usr/share/qemu/bios-256k.bin" not in names
        assert_ldd_closure(names, DEBIAN_QEMU)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_modules_dep_lists_virtio_rng(two_builds):
    a, _, rel = two_builds
    d = tempfile.mkdtemp(prefix="luoinit-initramfs-x-")
    try:
        with open(a, "rb") as f:
            subprocess.run(["cpio", "-i", "-d", "--quiet", f"usr/lib/modules/{rel}/modules.dep",
                            f"usr/lib/modules/{rel}/modules.builtin"], stdin=f, cwd=d, check=True)
        with open(os.path.join(d, "usr", "lib", "modules", rel, "modules.dep")) as f:
            dep = f.read()
        with open(os.path.join(d, "usr", "lib", "modules", rel, "modules.builtin")) as f:
            builtin = f.read()
        assert "virtio-rng.ko" in dep
        # KVM is built into the board's kernel: libkmod knows, nothing to load.
        assert "kvm-intel.ko" not in dep and "kvm-intel.ko" in builtin
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_make_built_image_matches():
    """The image `make` built is the one a fresh build makes."""
    img = os.path.join(BB, "initramfs.img")
    _need(img)
    opt = os.path.join(BB, "initramfs.opt")
    comp = open(opt).read().strip() if os.path.exists(opt) else "none"
    d = tempfile.mkdtemp(prefix="luoinit-initramfs-")
    try:
        out = os.path.join(d, "i.img")
        build(out, comp)
        # Digests, not the bytes: a mismatch of 8 MB is no diff to print.
        assert sha256(img) == sha256(out), "make's image differs from a fresh build of the same inputs"
    finally:
        shutil.rmtree(d, ignore_errors=True)
