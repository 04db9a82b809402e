"""A QEMU that writes much to its stderr while luoinit waits for it.

QEMU's stderr is a pipe that luoinit reads; QEMU writes to it blocking, from
whichever thread, with its big lock held. Were the pipe read only from the
event loop, a command that waits for QEMU outside it (the save and the
restore of an update) would wait for a QEMU that waits for luoinit, until
the command's timeout failed the update. Here QEMU traces every vmstate
field it saves and loads (`-trace vmstate_*`: about 250 KB per save, four
times the pipe's 64 KiB), and a vmm-update must go through all the same.
"""
from helpers import beats, boots, vm_config


def test_vmm_update_of_a_qemu_that_floods_its_stderr(supervisors, tmpdir_short):
    s = supervisors(config={"version": 1, "vms": [vm_config(
        "vm0", tmpdir_short, qemu_args=["-trace", "vmstate_*"])]})
    s.wait_running("vm0")
    s.wait_beats_after("vm0", 0, count=2)
    v = s.status()["vms"][0]
    text = s.serial("vm0")
    r = s.cmd("vmm-update", name="vm0", _timeout=180)
    assert r["state"] == "running" and r["pid"] != v["pid"], r
    assert r["last_update"]["kind"] == "vmm-update", r["last_update"]
    after = s.wait_beats_after("vm0", len(text), count=2)
    assert after[0][0] > beats(text)[-1][0], after
    assert boots(s.serial("vm0")) == 1
    # What QEMU wrote went into the log, the restore's lines too.
    log = s.log()
    assert "vmstate_save" in log and "vmstate_load" in log, log[-3000:]
