"""Boot assessment (README, "Boot assessment"): the appliance boots through
UEFI (OVMF, then systemd-boot from the boot disk's EFI system partition,
make esp) into firmware.efi, whose entry starts on trial (+3) and is marked
good once vm0 runs. A live update into a second firmware installs its entry
(on trial, then good: every guest came back) as the default, and the next
cold boot starts it. Two deliberately broken firmwares (built here): a live
update into one whose init hangs ends in a watchdog reset, and the
appliance comes back on its default entry by itself and says which live
update failed; one whose init exits (the kernel panics, and reboots:
panic=10), installed for the next cold boot, uses up its three tries, and
systemd-boot falls back to the last good entry."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from test_boot import BB, TOP, clean_env, new_appliance
from test_firmware import FIRMWARE, debugfs_mkdir_put, image_version
from test_update import live_update, start, status, stop, vm0, wait_beating, wait_status

ESP = os.path.join(BB, "esp.img")


def make(*args):
    p = subprocess.run(["make", "--no-print-directory", "-s", *args], cwd=TOP, env=clean_env(),
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout + p.stderr


def boot_of(st):
    return st["firmware"]["boot"]


def esp_images(esp):
    """The files in the ESP's EFI/luoinit."""
    p = subprocess.run(["mdir", "-b", "-i", f"{esp}@@1048576", "::/EFI/luoinit"], capture_output=True,
                       text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    assert p.returncode == 0, p.stderr
    return sorted(os.path.basename(x.strip()) for x in p.stdout.splitlines() if x.strip())


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
    # The broken firmwares: the same kernel, an initramfs whose /init hangs
    # or exits.
    def broken_image(how, body):
        version = (v1 + "-" + how)[-64:]
        src, init, lst, cpio = (os.path.join(tmp, how + n) for n in (".c", ".init", ".list", ".cpio"))
        with open(src, "w") as f:
            f.write("#include <unistd.h>\nint main(void) { static const char m[] = \"broken firmware: init "
                    + how + "\\n\"; (void)!write(1, m, sizeof(m) - 1); " + body + " }\n")
        subprocess.run(["musl-gcc", "-static", "-Os", "-o", init, src], check=True)
        with open(lst, "w") as f:
            f.write(f"dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init {init} 0755 0 0\n")
        subprocess.run([os.path.join(BB, "kernel-obj", "usr", "gen_init_cpio"), "-o", cpio, lst], check=True)
        out = os.path.join(tmp, how + ".efi")
        make("image", f"VERSION={version}", f"IMAGE_OUT={out}", f"INITRAMFS_CPIO={cpio}")
        return version, out
    hangs, img_hangs = broken_image("hangs", "for (;;) pause();")
    exits, img_exits = broken_image("exits", "return 1;")
    a = new_appliance("luoinit-uefi-")
    a.esp = os.path.join(a.dir, "esp.img")
    subprocess.run(["cp", "--sparse=always", ESP, a.esp], check=True)
    # Leftovers no entry boots (an old release's image, a copy a power cut
    # broke off): marking an entry good removes them.
    junk = os.path.join(tmp, "junk")
    with open(junk, "wb") as f:
        f.write(b"MZ" + b"\0" * 4096)
    for name in ("stale.efi", "half.efi.tmp"):
        subprocess.run(["mcopy", "-i", f"{a.esp}@@1048576", junk, f"::/EFI/luoinit/{name}"], check=True,
                       env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    abi = os.path.join(BB, "bzImage.abi")
    debugfs_mkdir_put(a.state, {f"/firmware/{v2}.efi": img2, f"/firmware/{v2}.efi.abi": abi,
                                f"/firmware/{hangs}.efi": img_hangs, f"/firmware/{hangs}.efi.abi": abi,
                                f"/firmware/{exits}.efi": img_exits, f"/firmware/{exits}.efi.abi": abi}, a.dir)
    a.append = ""
    t0 = time.monotonic()
    start(a)
    a.boot_s = time.monotonic() - t0
    a.v1, a.v2, a.hangs, a.exits = v1, v2, hangs, exits
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
    assert boot["started_by"] == "efi-stub", boot
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
    # The guest went on: its counter continues and its memory check holds.
    # (Not assert_continued's "every last line says pattern=ok": now and then
    # one serial byte is lost across an update, "pattern=k"; an open defect
    # of its own, README Limits, which that check would turn into this
    # test's failure.)
    b1 = wait_beating(uefi, after=b0[-1][0] + 3)
    assert b1[-1][0] > b0[-1][0] and all(ok != "bad" for _, ok in b1), b1[-20:]
    st = wait_status(uefi, 120, lambda s: boot_of(s)["assessed"])
    boot = boot_of(st)
    # After the kexec systemd-boot's variable still names the first entry.
    assert boot["selected"] == f"luoinit-0001-{uefi.v1}+3.conf" and boot["started_by"] == "kexec", boot
    assert boot["entry"]["id"] == second and boot["entry"]["good"] is True, boot
    assert boot["default"] == second, boot
    log = uefi.ctl("log").get("log", "")
    assert f"installed luoinit-0002-{uefi.v2}+3.conf on trial" in log, log[-3000:]
    assert f"{second} marked good" in log, log[-3000:]
    # A power-off and a cold boot start the second firmware; vm0 starts
    # afresh (its RAM went with the power).
    stop(uefi)
    assert esp_entries(uefi.esp) == [first, second]
    # The first stays (the second's fallback); the leftovers went.
    assert esp_images(uefi.esp) == sorted([f"{uefi.v1}.efi", f"{uefi.v2}.efi"]), esp_images(uefi.esp)
    start(uefi)
    st = wait_status(uefi, 120, lambda s: boot_of(s)["assessed"] and vm0(s)["state"] == "running")
    assert st["firmware"]["running"]["version"] == uefi.v2, st["firmware"]
    boot = boot_of(st)
    assert boot["selected"] == second and boot["entry"]["good"] is True, boot
    assert boot["result"] == f"{second} was good already", boot
    assert st["boot_id"] != before["boot_id"]


def test_a_broken_firmware_falls_back_by_itself(uefi):
    """The live update into the broken firmware: its init hangs, nothing
    feeds the watchdog (armed and locked across the kexec), which resets the
    machine; systemd-boot starts the default entry (the good second
    firmware) and vm0 starts afresh."""
    second = f"luoinit-0002-{uefi.v2}.conf"
    before = status(uefi)
    assert before["firmware"]["running"]["version"] == uefi.v2
    rep = uefi.ctl("update", f"image={uefi.hangs}", timeout=120)
    assert rep.get("image") == uefi.hangs, rep
    st = wait_status(uefi, 400, lambda s: s["boot_id"] != before["boot_id"] and boot_of(s)["assessed"]
                     and vm0(s)["state"] == "running")
    with open(uefi.console, errors="replace") as f:
        console = f.read()
    assert "broken firmware: init hangs" in console, console[-3000:]
    assert st["watchdog"]["reset_by_watchdog"] is True, st["watchdog"]
    assert st["kexec_ms"] is None and st["firmware"]["running"]["version"] == uefi.v2, st["firmware"]
    boot = boot_of(st)
    assert boot["started_by"] == "efi-stub", boot
    assert boot["failed_live_update"] == uefi.hangs, boot
    assert boot["selected"] == second and boot["entry"]["good"] is True and boot["default"] == second, boot
    # Its entry was never written: nothing of it on the boot disk.
    assert not any(uefi.hangs in e["id"] for e in boot["entries"]), boot
    # vm0 started afresh: the update's saved state could not be used (its
    # LUO session went with the reset) and was set aside.
    assert "vm0" in (st["last_update_error"] or "") and vm0(st)["last_update"] is None, st
    log = uefi.ctl("log").get("log", "")
    assert f"the live update into firmware {uefi.hangs} never came back" in log, log[-3000:]
    # Said once: the record is gone, the next status has it from memory only.
    assert boot_of(status(uefi))["failed_live_update"] == uefi.hangs


def test_a_cold_boot_entry_that_never_becomes_good_uses_up_its_tries(uefi):
    """image-install puts the firmware whose init exits on trial as the next
    cold boot's default; after a reboot systemd-boot starts it three times
    (each a kernel panic and, 10 s later, a reboot), then the last good
    entry, whose init reports the bad one."""
    second, third = f"luoinit-0002-{uefi.v2}.conf", f"luoinit-0003-{uefi.exits}.conf"
    out = uefi.ctl("image-install", f"version={uefi.exits}")
    assert out == {"entry": f"luoinit-0003-{uefi.exits}+3.conf", "tries_left": 3}, out
    boot = boot_of(status(uefi))
    assert boot["default"] == third and boot["entry"]["id"] == second, boot
    with pytest.raises(RuntimeError) as e:
        uefi.ctl("image-install", f"version={uefi.exits}")
    assert "is the default entry already" in str(e.value), e.value
    before = status(uefi)
    with open(uefi.console, errors="replace") as f:
        seen = len(f.read())
    uefi.ctl("reboot")
    st = wait_status(uefi, 600, lambda s: s["boot_id"] != before["boot_id"] and boot_of(s)["assessed"]
                     and vm0(s)["state"] == "running")
    with open(uefi.console, errors="replace") as f:
        console = f.read()[seen:]
    assert console.count("broken firmware: init exits") == 3, console[-5000:]
    assert console.count("Rebooting in 10 seconds") == 3, console[-5000:]
    boot = boot_of(st)
    assert st["firmware"]["running"]["version"] == uefi.v2 and boot["selected"] == second, boot
    bad = [e for e in boot["entries"] if e["id"] == third]
    assert bad and bad[0]["tries_left"] == 0 and bad[0]["tries_done"] == 3, boot["entries"]
    assert boot["entries"][-1]["id"] == third and boot["default"] == second, boot
    assert boot["fell_back_from"] == [third], boot
