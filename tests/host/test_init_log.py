"""The init's own log on /state (issue: /state never fills up by itself, and
an operator can read what happened before the last reboot or kexec): every
line goes to STATE/log/luoinit.log as well, `log` returns its tail across
rotations, and the status reports what a VM runs with."""
import os

import helpers


def test_log_command_returns_the_init_log(one_vm):
    s = one_vm()
    r = s.cmd("log", bytes=65536)
    assert r["path"] == os.path.join(s.state_dir, "log", "luoinit.log"), r
    # What the init said at start-up and about vm0's QEMU is there, stamped.
    assert "control socket" in r["log"] or "log also kept in" in r["log"], r["log"][-2000:]
    assert "vm0: QEMU" in r["log"], r["log"][-2000:]
    first = r["log"].splitlines()[0]
    assert first.split()[0].replace(".", "").isdigit() and first.split()[1].rstrip(":") in (
        "err", "warn", "info", "debug"), first
    with open(r["path"]) as f:
        assert f.read().endswith(r["log"][-200:])
    # A vm-stop shows up there too, newest last.
    s.cmd("vm-stop", name="vm0", timeout=0)
    tail = s.cmd("log", bytes=2000)["log"]
    assert "vm0" in tail.splitlines()[-1] or any("vm0" in l for l in tail.splitlines()[-5:]), tail


def test_log_command_bounds(one_vm):
    s = one_vm()
    assert s.cmd("log", bytes=0)["log"] == ""
    r = s.request("log", {"bytes": -1})
    assert r["error"]["class"] == "GenericError" and "bytes" in r["error"]["desc"], r
    r = s.request("log", {"colour": "red"})
    assert "error" in r and "colour" in r["error"]["desc"], r


def test_status_shows_the_machine_and_memory(one_vm):
    s = one_vm()
    st = s.status()
    v = st["vms"][0]
    assert v["config_pending"] == [], v
    assert v["machine"]["vcpus"] == 1 and v["machine"]["disks"] == [], v
    assert st["memory"]["total_kib"] > st["memory"]["available_kib"] > 0, st["memory"]
    # /state's room, and whether it counts as full (under 1% + 16 MiB free).
    state = st["state"]
    vfs = os.statvfs(s.state_dir)
    assert state["total_bytes"] == vfs.f_blocks * vfs.f_frsize, state
    assert abs(state["free_bytes"] - vfs.f_bavail * vfs.f_frsize) < 64 << 20, state
    assert state["full"] is (state["free_bytes"] < state["total_bytes"] // 100 + (16 << 20)), state
