"""Hand-off safety on the booted appliance (issue: a guest comes back on
exactly the machine it was saved from, or the update is refused).

- Three VMs of different sizes, one writing to a virtio disk, updated in one
  blackout: every guest continues, the disk guest keeps writing to the same
  disk. A fault on one VM during the save rolls back: the others continue.
- An update into an initramfs whose config changed vm1's disk and vcpus and
  dropped vm2: vm1 comes back on its saved machine (config_pending lists the
  changes, vm-restart applies them), vm2's preserved RAM is released.
- Pre-flight refusals (no initramfs, no liveupdate=on, a different live-update
  ABI with mode=luo, fault= without the test flag): nothing changes; with
  mode=auto an ABI change takes the lossless full-RAM path.

State images are prepared before the boot with debugfs (no root mount); the
second initramfs is built with initramfs/mkinitramfs like the Makefile's.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

import pytest

from test_boot import B, BB, LUOINIT, TOP, new_appliance
from test_update import (HB, UPDATE_TIMEOUT, ctl, start, status, stop, wait_status)

BOARD_DIR = os.path.join(TOP, "board", os.environ.get("BOARD", "qemu-x86_64"))
GUEST = "/state/guest/heartbeat.elf"
DISK_MAGIC = b"LUOHBREC"
FAULTS = "luoinit.test_faults=1"


def vm_conf(name, mib, fill, disks=(), vcpus=1):
    return {"name": name, "memory_mib": mib, "vcpus": vcpus, "machine": "q35", "cpu": "max",
            "accel": "auto", "kernel": GUEST, "initrd": None, "cmdline": f"fill_mib={fill} seed={mib}",
            "disks": [{"path": d, "format": "raw", "readonly": False} for d in disks],
            "serial": f"/state/log/{name}.serial", "restart": "on-failure", "ram_backing": "auto",
            "qemu": "/usr/bin/qemu-system-x86_64", "qemu_args": []}


def config(vms):
    return {"version": 1, "vms": vms,
            "update": {"kernel": "/state/boot/vmlinuz", "initrd": "/state/boot/initramfs.img", "cmdline": None}}


THREE = config([vm_conf("vm0", 64, 8), vm_conf("vm1", 96, 4, ["/state/guest/vm1.img"]),
                vm_conf("vm2", 128, 4)])
# What the second firmware's config says: vm1 on another disk with 2 vCPUs,
# vm2 gone.
CHANGED = config([vm_conf("vm0", 64, 8), vm_conf("vm1", 96, 4, ["/state/guest/vm1b.img"], vcpus=2)])


def debugfs_put(img, files, tmp):
    """Write files {dest: bytes} into the ext4 image (replacing any)."""
    cmds = []
    for i, (dest, data) in enumerate(files.items()):
        src = os.path.join(tmp, f"put{i}")
        with open(src, "wb") as f:
            f.write(data)
        cmds += [f"rm {dest}", f"write {src} {dest}"]
    script = os.path.join(tmp, "debugfs.cmds")
    with open(script, "w") as f:
        f.write("\n".join(cmds) + "\n")
    p = subprocess.run(["debugfs", "-w", "-f", script, img], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for dest in files:
        q = subprocess.run(["debugfs", "-R", f"stat {dest}", img], capture_output=True, text=True)
        assert "Inode:" in q.stdout, f"{dest} not in {img}: {q.stderr}"


def debugfs_get(img, path):
    p = subprocess.run(["debugfs", "-R", f"cat {path}", img], capture_output=True)
    return p.stdout


def mkinitramfs(out, cfg_path):
    with open(os.path.join(BB, "kernel.release")) as f:
        release = f.read().strip()
    qemu = os.path.join(B, "qemu", "usr", "bin", "qemu-system-x86_64")
    p = subprocess.run(
        [os.path.join(TOP, "initramfs", "mkinitramfs"), "--out", out,
         "--gen-init-cpio", os.path.join(BB, "kernel-obj", "usr", "gen_init_cpio"), "--init", LUOINIT,
         "--modules-root", os.path.join(BB, "modules"), "--kernel-release", release,
         "--config", cfg_path, "--modules-list", os.path.join(BOARD_DIR, "modules"),
         "--qemu", qemu if os.path.exists(qemu) else "/usr/bin/qemu-system-x86_64",
         "--compress", "lz4", "--kernel-abi", os.path.join(BB, "bzImage.abi")],
        capture_output=True, text=True, cwd=TOP)
    assert p.returncode == 0, p.stdout + p.stderr


def board_cmdline(append):
    with open(os.path.join(BOARD_DIR, "cmdline")) as f:
        words = " ".join(line.strip() for line in f if line.strip() and not line.startswith("#"))
    return f"{words} {append}".strip()


def vm(st, name):
    return next((v for v in st.get("vms", []) if v.get("name") == name), None)


def log_of(a, name, n=16384):
    return ctl(a, "vm-log", f"name={name}", f"bytes={n}", timeout=60).get("log", "")


def counters(a, name):
    return [int(n) for n, _ in HB.findall(log_of(a, name))]


def disk_writes(a, name):
    return [int(n) for n in re.findall(r"disk: wrote (\d+)", log_of(a, name))]


def wait_counting(a, names, after=None, timeout=240):
    """Every named VM running and beating past after[name] (when given)."""
    def ok(st):
        for n in names:
            v = vm(st, n)
            if not v or v["state"] != "running":
                return False
            c = counters(a, n)
            if len(c) < 2 or (after and c[-1] <= after[n] + 2):
                return False
        return True
    return wait_status(a, timeout, ok)


def assert_continued(a, name, last_before):
    """No reset: every beat after last_before in the log is larger."""
    c = counters(a, name)
    assert last_before in c, (name, last_before, c[-20:])
    i = max(i for i, n in enumerate(c) if n == last_before)
    after = c[i + 1:]
    assert after and after[0] > last_before and all(x > y for x, y in zip(after[1:], after[:-1])), \
        (name, last_before, after[:20])


def update_and_wait(a, names, *args):
    before = status(a)
    last = {n: counters(a, n)[-1] for n in names}
    rep = a.ctl("update", *args, timeout=180)
    st = wait_status(a, UPDATE_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"] and all(
        vm(s, n) and vm(s, n)["state"] == "running" and vm(s, n)["last_update"] for n in names))
    return before, last, rep, st


def appliance(files, append=FAULTS):
    """A booted appliance whose state disk got `files` first."""
    a = new_appliance("luoinit-handoff-")
    debugfs_put(a.state, files, a.dir)
    a.append = append
    start_any(a)
    return a


def start_any(a):
    """make start, then wait for the control protocol (start() also wants vm0
    beating, which holds for every config here)."""
    start(a)


@pytest.fixture(scope="module")
def three():
    tmp = tempfile.mkdtemp(prefix="luoinit-handoff-cfg-")
    try:
        cfg2 = os.path.join(tmp, "vmconf.json")
        with open(cfg2, "w") as f:
            json.dump(CHANGED, f, indent=1)
        img2 = os.path.join(tmp, "initramfs2.img")
        mkinitramfs(img2, cfg2)
        with open(img2, "rb") as f:
            initrd2 = f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a = appliance({"/vmconf.json": json.dumps(THREE).encode(),
                   "/guest/vm1.img": bytes(1 << 20), "/guest/vm1b.img": bytes(1 << 20),
                   "/boot/initramfs2.img": initrd2})
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)


def test_three_vms_one_blackout(three):
    a = three
    names = ["vm0", "vm1", "vm2"]
    wait_counting(a, names)
    wait_status(a, 120, lambda s: len(disk_writes(a, "vm1")) >= 2)
    w0 = disk_writes(a, "vm1")[-1]
    before, last, rep, st = update_and_wait(a, names)
    assert rep.get("vms") == 3 and rep.get("mode") == "luo", rep
    assert st.get("last_update_error") is None, st
    wait_counting(a, names, after=last)
    for n in names:
        assert_continued(a, n, last[n])
        lu = vm(st, n)["last_update"]
        assert lu["mode"] == "luo" and lu["ram_transferred"] < 8 << 20, (n, lu)
        assert vm(st, n)["config_pending"] == [], vm(st, n)
    # One blackout: every guest stopped within the same second.
    stops = [vm(st, n)["last_update"]["stopped_at_ms"] for n in names]
    assert max(stops) - min(stops) < 1000, stops
    # vm1's disk lives on /state, yet its QEMU started before /state was
    # mounted: the disk came by QMP (blockdev-add) once it was, in place of
    # the -drive of the QEMU that saved it.
    log = open(a.console, errors="replace").read().split("luoinit starting")[-1]
    marks = ["vm1: RAM and state retrieved, QEMU started before /state is mounted", "mounted on /state",
             "vm1: QEMU up in"]
    assert all(m in log for m in marks), "\n".join(l for l in log.splitlines() if "luoinit" in l)[-4000:]
    assert log.index(marks[0]) < log.index(marks[1]) < log.index(marks[2]), log[-3000:]
    # The disk guest went on writing to the same disk, never starting over.
    wait_status(a, 120, lambda s: disk_writes(a, "vm1") and disk_writes(a, "vm1")[-1] > w0 + 10)
    after = log_of(a, "vm1").split(f"disk: wrote {w0}")[-1]
    assert "disk: no record" not in after and "failed: status" not in after, after[-2000:]
    print(f"blackouts: {[round(vm(st, n)['last_update']['blackout_ms']) for n in names]} ms")

    # The other way: the QEMU that got its disk by QMP saved, one with the
    # usual -drive restores it (vmm-update), and the guest writes on.
    w1 = disk_writes(a, "vm1")[-1]
    last1 = counters(a, "vm1")[-1]
    r = ctl(a, "vmm-update", "name=vm1", timeout=180)
    assert r["state"] == "running" and r["last_update"]["kind"] == "vmm-update", r
    wait_counting(a, ["vm1"], after={"vm1": last1})
    assert_continued(a, "vm1", last1)
    wait_status(a, 120, lambda s: disk_writes(a, "vm1")[-1] > w1 + 10)
    after = log_of(a, "vm1").split(f"disk: wrote {w1}")[-1]
    assert "disk: no record" not in after and "failed: status" not in after, after[-2000:]


def test_fault_on_one_vm_rolls_back_the_others_continue(three):
    """qemu-dies kills vm0's QEMU during its save: the update fails before the
    kexec; vm1 and vm2 were saved alongside and simply continue."""
    a = three
    before = status(a)
    last = {n: counters(a, n)[-1] for n in ("vm1", "vm2")}
    rep = a.ctl("update", "fault=qemu-dies", timeout=180)
    assert rep.get("vms") == 3, rep
    st = wait_status(a, 240, lambda s: s.get("last_update_error") and all(
        vm(s, n)["state"] == "running" for n in ("vm0", "vm1", "vm2")))
    assert st["boot_id"] == before["boot_id"], "the host must not have changed kernel"
    assert "update failed before the kexec" in st["last_update_error"], st
    wait_counting(a, ["vm1", "vm2"], after=last)
    for n in ("vm1", "vm2"):
        assert_continued(a, n, last[n])
    # vm0's QEMU died with its device state: its restart policy restarted it.
    wait_status(a, 240, lambda s: vm(s, "vm0")["restarts"] >= 1 and vm(s, "vm0")["state"] == "running")


def test_config_change_waits_for_the_cold_start(three):
    """An update into an initramfs whose config moves vm1 to another disk with
    2 vCPUs and drops vm2: vm1 continues on its saved machine, vm2's RAM is
    released; vm-restart then applies the new config."""
    a = three
    wait_counting(a, ["vm0", "vm1", "vm2"])
    avail_before = status(a)["memory"]["available_kib"]
    w0 = disk_writes(a, "vm1")[-1]
    cmdline = board_cmdline(f"{a.append} luoinit.config=/etc/luoinit/vmconf.json")
    before, last, rep, st = update_and_wait(a, ["vm0", "vm1"], "initrd=/state/boot/initramfs2.img",
                                            f"cmdline={cmdline}")
    assert rep.get("vms") == 3, rep
    assert vm(st, "vm2") is None, st
    assert "vm2 not in the configuration" in (st.get("last_update_error") or ""), st
    v1 = vm(st, "vm1")
    assert sorted(v1["config_pending"]) == ["disks[0].path", "vcpus"], v1
    assert v1["machine"]["vcpus"] == 1 and v1["machine"]["disks"] == ["/state/guest/vm1.img"], v1
    assert v1["machine"]["machine"].startswith("pc-q35-"), v1  # the alias resolved when it was saved
    assert vm(st, "vm0")["config_pending"] == [], vm(st, "vm0")
    wait_counting(a, ["vm0", "vm1"], after=last)
    assert_continued(a, "vm1", last["vm1"])
    assert_continued(a, "vm0", last["vm0"])
    wait_status(a, 120, lambda s: disk_writes(a, "vm1")[-1] > w0 + 10)
    # PRESERVE_FD filled every hole: vm0's and vm1's RAM now take their whole
    # 64 + 96 MiB (before, only what the guests had touched), and vm2's 128
    # MiB would too if its session had not been released. Released: about
    # 160 MiB less available than before; kept: about 290 MiB less.
    avail_after = st["memory"]["available_kib"]
    print(f"MemAvailable before {avail_before} KiB, after {avail_after} KiB")
    assert avail_after > avail_before - (64 + 96 + 40) * 1024, (avail_before, avail_after)
    assert "released the LUO session luoinit.vm2" in a.console_tail(400000)

    # The operator's cold start applies the new machine.
    ctl(a, "vm-restart", "name=vm1", "timeout=0", timeout=180)
    st = wait_status(a, 240, lambda s: vm(s, "vm1")["state"] == "running" and
                     vm(s, "vm1")["config_pending"] == [])
    v1 = vm(st, "vm1")
    assert v1["machine"]["vcpus"] == 2 and v1["machine"]["disks"] == ["/state/guest/vm1b.img"], v1
    wait_status(a, 240, lambda s: "disk: no record" in log_of(a, "vm1").split("heartbeat guest:")[-1])


# ---- pre-flight refusals on the single-VM board ----

@pytest.fixture(scope="module")
def plain():
    # Signed (KEXEC_SIG_FORCE: the kernel loads no other).
    with open(os.path.join(BB, "bzImage.signed"), "rb") as f:
        kernel = f.read()
    with open(os.path.join(BB, "bzImage.abi")) as f:
        abi = f.read()
    other = re.sub(r"luo=\S+", "luo=luo-v4", abi)
    assert other != abi
    a = appliance({"/boot/vmlinuz-other": kernel, "/boot/vmlinuz-other.abi": other.encode()}, append="")
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)


@pytest.mark.parametrize("args,why", [
    (["initrd="], "no initramfs"),
    (["cmdline=console=ttyS0 luoinit.state=LABEL=luoinit-state"], "liveupdate=on"),
    (["cmdline=console=ttyS0 liveupdate=on luoinit.state=LABEL=luoinit-state"], "kho=on"),
    (["kernel=/state/boot/vmlinuz-other", "mode=luo"], "luo-v4"),
    (["fault=kexec"], "luoinit.test_faults=1"),
    (["mode=sideways"], "auto, luo or full-ram"),
])
def test_refused_before_anything_changes(plain, args, why):
    a = plain
    before = status(a)
    last = counters(a, "vm0")[-1]
    with pytest.raises(RuntimeError) as e:
        a.ctl("update", *args, timeout=120)
    assert why in str(e.value), e.value
    st = status(a)
    assert st["boot_id"] == before["boot_id"] and vm(st, "vm0")["state"] == "running", st
    assert vm(st, "vm0")["pid"] == vm(before, "vm0")["pid"], "vm0's QEMU must be the same"
    wait_counting(a, ["vm0"], after={"vm0": last})
    assert_continued(a, "vm0", last)


def test_abi_change_takes_the_full_ram_path(plain):
    """mode=auto across a different live-update ABI: lossless, through /state."""
    a = plain
    before, last, rep, st = update_and_wait(a, ["vm0"], "kernel=/state/boot/vmlinuz-other")
    assert rep.get("mode") == "full-ram", rep
    assert vm(st, "vm0")["last_update"]["mode"] == "full-ram"
    wait_counting(a, ["vm0"], after=last)
    assert_continued(a, "vm0", last["vm0"])
    assert "full-RAM path" in a.console_tail(400000) and "luo-v4" in a.console_tail(400000)
