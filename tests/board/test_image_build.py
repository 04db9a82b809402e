"""make image: the same tree and VERSION give the same bytes (two relinks in
work trees of their own), and the firmware note inside says what went in:
the version, the command line built into the kernel, the kernel's
live-update ABI and the version of the QEMU in its initramfs."""
import os
import re
import shutil
import subprocess
import tempfile

from test_boot import B, BB, TOP, clean_env
from test_firmware import image_version, note

FIRMWARE = os.path.join(BB, "firmware.efi")


def make_image(*args):
    p = subprocess.run(["make", "--no-print-directory", "-s", "image", *args],
                       cwd=TOP, env=clean_env(), capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout + p.stderr


def test_two_builds_are_byte_identical_and_the_note_says_what_went_in():
    tmp = tempfile.mkdtemp(prefix="luoinit-img-")
    try:
        outs = []
        for n in ("a", "b"):
            out = os.path.join(tmp, f"{n}.efi")
            make_image("VERSION=repro-1", f"IMAGE_OUT={out}", f"IMAGE_WORK={tmp}/obj-{n}")
            outs.append(out)
        a, b = (open(o, "rb").read() for o in outs)
        assert a == b, "two builds of the same tree and VERSION differ"
        assert image_version(outs[0]) == "repro-1"
        words = note(outs[0])
        with open(os.path.join(BB, "firmware-cmdline")) as f:
            assert words["cmdline"] == f.read().strip()
        with open(os.path.join(BB, "bzImage.abi")) as f:
            assert words["kernel-abi"] == f.readline().strip()
        qemu = os.path.join(B, "qemu", "usr", "bin", "qemu-system-x86_64")
        v = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
        assert words["qemu"] == re.match(r"QEMU emulator version ([0-9.]+)", v).group(1), (words, v)
        assert words["version"] == "repro-1"
        # The kernel has the same line built in (its .config, and the bytes).
        with open(os.path.join(tmp, "obj-a", ".config")) as f:
            assert f'CONFIG_CMDLINE="{words["cmdline"]}"\n' in f.read()
        # Another VERSION: another image, another note.
        make_image("VERSION=repro-2", f"IMAGE_OUT={tmp}/c.efi", f"IMAGE_WORK={tmp}/obj-a")
        assert note(f"{tmp}/c.efi")["version"] == "repro-2" and open(f"{tmp}/c.efi", "rb").read() != a
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
