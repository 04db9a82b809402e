"""Boot assessment (README, "Boot assessment"): the appliance boots through
UEFI (OVMF, then systemd-boot from the boot disk's EFI system partition,
make esp) into firmware.efi, whose entry starts on trial (+3) and is marked
good once vm0 runs. A live update into a second firmware installs its entry
(on trial, then good: every guest came back) as the default, and the next
cold boot starts it."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from test_boot import BB, TOP, clean_env, new_appliance
from test_firmware import FIRMWARE, debugfs_mkdir_put, image_version
from test_update import assert_continued, live_update, start, status, stop, vm0, wait_status

ESP = os.path.join(BB, "esp.img")


def make(*args):
    p = subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=TOP, env=clean_env(),
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout + p.stderr


def boot_of(st):
    return st["firmware"]["boot"]


def esp_entries(esp):
    """The entry files on the boot disk (mtools, the partition at 1 MiB)."""
    p = subprocess.run(["mdir", "-b", "-i", f"{esp}@@1048576", "::/loader/entries"], capture_output=True,
                       text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert p.returncode == 0, p.stderr
    return sorted(os.path.basename(x.strip()) for x in p.stdout.splitlines() if x.strip().endswith(".conf"))


@pytest.fixture(scope="module")
def uefi():
    if not shutil.which("mdir") or not os.path.exists("/usr/share/OVMF/OVMF_CODE_4M.fd"):
        pytest.skip("mtools/ovmf not installed (make deps)")
    tmp = tempfile.mkdtemp(prefix="luoinit-uefi-")
    make("image")
    make("esp")
    v1 = image_version(FIRMWARE)
    v2 = (v1 + "-two")[-64:]
    img2 = os.path.join(tmp, "two.efi")
    make("image", f"VERSION={v2}", f"IMAGE_OUT={img2}")
    a = new_appliance("luoinit-uefi-")
    a.esp = os.path.join(a.dir, "esp.img")
    subprocess.run(["cp", "--sparse=always", ESP, a.esp], check=True)
    debugfs_mkdir_put(a.state, {f"/firmware/{v2}.efi": img2,
                                f"/firmware/{v2}.efi.abi": os.path.join(BB, "bzImage.abi")}, a.dir)
    a.append = ""
    t0 = time.monotonic()
    start(a)
    a.boot_s = time.monotonic() - t0
    a.v1, a.v2 = v1, v2
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def test_cold_boot_through_uefi_marks_its_entry_good(uefi):
    print(f"cold boot through OVMF and systemd-boot to a beating vm0: {uefi.boot_s:.0f} s")
    first = f"luoinit-0001-{uefi.v1}.conf"
    st = wait_status(uefi, 120, lambda s: boot_of(s)["assessed"] and vm0(s)["state"] == "running")
    boot = boot_of(st)
    # systemd-boot names the file it found, before its count.
    assert boot["esp"] and boot["selected"] == f"luoinit-0001-{uefi.v1}+3.conf", boot
    assert st["firmware"]["running"]["version"] == uefi.v1
    # On trial as made (+3), counted down by systemd-boot (+2-1), then good.
    assert boot["entry"] == {"id": first, "file": first, "version": uefi.v1, "good": True,
                             "tries_left": None, "tries_done": None}, boot
    assert boot["result"] == f"{first} marked good" and boot["error"] is None, boot
    assert boot["default"] == first and st["firmware"]["default"] == first, boot
    log = uefi.ctl("log").get("log", "")
    assert f"boot assessment: every VM runs; {first} marked good" in log, log[-3000:]


def test_update_into_a_second_firmware_becomes_the_default(uefi):
    first, second = f"luoinit-0001-{uefi.v1}.conf", f"luoinit-0002-{uefi.v2}.conf"
    before, b0, rep, st = live_update(uefi, f"image={uefi.v2}")
    assert rep.get("mode") == "luo" and rep.get("image") == uefi.v2, rep
    assert st["firmware"]["running"]["version"] == uefi.v2
    assert_continued(uefi, b0)
    st = wait_status(uefi, 120, lambda s: boot_of(s)["assessed"])
    boot = boot_of(st)
    # After the kexec systemd-boot's variable still names the first entry.
    assert boot["selected"] == f"luoinit-0001-{uefi.v1}+3.conf", boot
    assert boot["entry"]["id"] == second and boot["entry"]["good"] is True, boot
    assert boot["default"] == second, boot
    log = uefi.ctl("log").get("log", "")
    assert f"installed luoinit-0002-{uefi.v2}+3.conf on trial" in log, log[-3000:]
    assert f"{second} marked good" in log, log[-3000:]
    # A power-off and a cold boot start the second firmware; vm0 starts
    # afresh (its RAM went with the power).
    stop(uefi)
    assert esp_entries(uefi.esp) == [first, second]
    start(uefi)
    st = wait_status(uefi, 120, lambda s: boot_of(s)["assessed"] and vm0(s)["state"] == "running")
    assert st["firmware"]["running"]["version"] == uefi.v2, st["firmware"]
    boot = boot_of(st)
    assert boot["selected"] == second and boot["entry"]["good"] is True, boot
    assert boot["result"] == f"{second} was good already", boot
    assert st["boot_id"] != before["boot_id"]
