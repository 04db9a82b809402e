"""Live update of the host kernel on the booted appliance (TCG), as design.md
section 6 describes it: two LUO updates in a row, the full-RAM fallback with
liveupdate=off, every injected fault, and a power cut during the update
followed by a cold boot. The guest's heartbeat is the witness: a guest that
survived continues its counter with pattern=ok; one that was rebooted starts
again at 0.
"""
import os
import subprocess
import time
import shutil
import json

import pytest

from test_boot import BOOT_TIMEOUT, HB, TOP, new_appliance

UPDATE_TIMEOUT = int(os.environ.get("LUOINIT_UPDATE_TIMEOUT", "240"))


def boot(append=""):
    """The appliance with fault injection allowed (`update fault=` is refused
    without luoinit.test_faults=1); the updates keep the cmdline (null in
    the board's config), so every kernel of a test has it."""
    a = new_appliance("luoinit-upd-")
    a.append = ("luoinit.test_faults=1 " + append).strip()
    start(a)
    return a


def start(a):
    env_append = f"QEMU_APPEND={a.append}"
    p = subprocess.run(
        ["make", "--no-print-directory", "-s", "start", *a.make_vars(), env_append],
        cwd=TOP, timeout=600, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")})
    assert p.returncode == 0, p.stdout + p.stderr
    wait_status(a, BOOT_TIMEOUT)
    wait_beating(a)


def stop(a):
    if a.running():
        a.make("stop", timeout=180)
    if a.running():
        with open(a.pidfile) as f:
            os.kill(int(f.read().strip()), 9)


def ctl(a, *args, timeout=30):
    """a.ctl, but a hang fails with what the appliance's console said."""
    try:
        return a.ctl(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ctl {' '.join(args)}: no answer in {timeout}s:\n" + a.console_tail(6000))


def status(a, timeout=30):
    return ctl(a, "status", timeout=timeout)


def wait_status(a, timeout, pred=lambda st: True):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not a.running():
            pytest.fail("the appliance's QEMU exited:\n" + a.console_tail())
        try:
            st = a.ctl("status", timeout=10)
            if pred(st):
                return st
            last = st
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            last = e
        time.sleep(1)
    pytest.fail(f"status condition not met within {timeout}s (last: {last}):\n" + a.console_tail())


def vm0(st):
    return next((v for v in st.get("vms", []) if v.get("name") == "vm0"), None)


def beats_in(log):
    return [(int(n), ok) for n, ok in HB.findall(log)]


def beats(a):
    return beats_in(ctl(a, "vm-log", "name=vm0", "bytes=8192").get("log", ""))


def wait_beating(a, after=None, timeout=120):
    """Wait until vm0 beats (beyond counter `after` when given); return the beats."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = a.ctl("status", timeout=30)
            v = vm0(st)
            if v and v.get("state") == "running":
                b = beats_in(a.ctl("vm-log", "name=vm0", "bytes=8192", timeout=30).get("log", ""))
                if len(b) >= 2 and (after is None or b[-1][0] > after):
                    return b
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
            pass
        time.sleep(1)
    pytest.fail(f"vm0 not beating (after={after}):\n" + a.console_tail())


def live_update(a, *args):
    """Run an update that must succeed: returns (status after, beats before)."""
    before = status(a)
    b0 = beats(a)
    rep = a.ctl("update", *args, timeout=120)
    assert rep.get("vms") == 1, rep
    st = wait_status(a, UPDATE_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"]
                     and vm0(s) and vm0(s).get("state") == "running"
                     and vm0(s).get("last_update") is not None)
    return before, b0, rep, st


def assert_continued(a, b0):
    """The guest went on counting: no reset, pattern intact."""
    b1 = wait_beating(a, after=b0[-1][0] + 3)
    log = ctl(a, "vm-log", "name=vm0", "bytes=16384").get("log", "")
    counters = [int(n) for n, _ in HB.findall(log)]
    last_before = b0[-1][0]
    # Every beat in the log after the last one seen before the update is
    # larger: a reboot would have restarted the count at 0.
    i = max(i for i, n in enumerate(counters) if n == last_before)
    after = counters[i + 1:]
    assert after and all(x > y for x, y in zip(after[1:], after[:-1])), after[:20]
    assert after[0] > last_before
    assert all(ok == "ok" for _, ok in b1[-10:]), b1[-10:]


@pytest.fixture(scope="module")
def app():
    a = boot()
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)


def test_two_live_updates_luo(app):
    assert status(app).get("luo") is True, "booted with liveupdate=on: /dev/liveupdate must exist"
    for round_ in range(2):
        before, b0, rep, st = live_update(app)
        assert rep.get("mode") == "luo", rep
        v = vm0(st)
        lu = v["last_update"]
        assert lu["kind"] == "update" and lu["mode"] == "luo", lu
        assert 0 < lu["vmstate_bytes"] < 2 * 1024 * 1024, lu
        # x-ignore-shared: guest RAM (64 MiB) stayed out of the stream.
        assert lu["ram_transferred"] < 8 * 1024 * 1024, lu
        assert lu["blackout_ms"] > 0 and lu["phases"]["kexec_ms"] > 0, lu
        assert st.get("last_update_error") is None, st
        assert st["pid1"] is True
        # The manifest came through LUO, before /state; the modules the
        # restore did not need (the appliance's virtio_rng) came after it.
        assert st["resume_manifest"] == "luo", st
        assert "virtio_rng" in st["modules_loaded"], st["modules_loaded"]
        log = open(app.console, errors="replace").read().split("luoinit starting")[-1]
        assert "module(s) before the restore, the rest after" in log, log[-3000:]
        assert log.index("live update done") < log.index("the rest loaded after the restore"), log[-3000:]
        # vm0 (no disks) had its QEMU started before /state was mounted;
        # its machine was created once /state was there.
        assert log.index("vm0: RAM and state retrieved, QEMU started before /state is mounted") \
            < log.index("mounted on /state") < log.index("vm0: QEMU up in"), log[-3000:]
        assert_continued(app, b0)
        print(f"update {round_ + 1}: blackout {lu['blackout_ms']:.0f} ms, phases {lu['phases']}, "
              f"vmstate {lu['vmstate_bytes']} bytes")


# Faults before the kexec: the update fails, every VM runs as before, the
# host kernel did not change, and a later update still works.
@pytest.mark.parametrize("fault", ["kexec-load", "preserve-fd", "qemu-dies", "no-space", "umount", "kexec"])
def test_fault_before_kexec_rolls_back(app, fault):
    before = status(app)
    b0 = beats(app)
    try:
        app.ctl("update", f"fault={fault}", timeout=120)
        synchronous = False
    except RuntimeError as e:
        assert "update" in str(e), e
        synchronous = True
    st = wait_status(app, 120, lambda s: (synchronous or s.get("last_update_error"))
                     and vm0(s) and vm0(s).get("state") == "running")
    assert st["boot_id"] == before["boot_id"], "the host must not have changed kernel"
    if not synchronous:
        assert "update failed before the kexec" in st["last_update_error"], st
    if fault == "qemu-dies":
        # Its device state is gone with it: the VM is restarted (fresh) per policy.
        wait_status(app, 120, lambda s: vm0(s)["restarts"] >= 1 and vm0(s)["state"] == "running")
        wait_beating(app)
    else:
        assert_continued(app, b0)


# Faults the new init must survive: the VM starts fresh and the stale state
# goes to /state/luoinit/stale/ with a clear reason.
@pytest.mark.parametrize("fault,why", [("corrupt-manifest", "corrupt manifest"),
                                       ("retrieve", "RETRIEVE_FD"),
                                       ("size-mismatch", "state is")])
def test_fault_after_kexec_starts_fresh(app, fault, why):
    before = status(app)
    rep = app.ctl("update", f"fault={fault}", timeout=120)
    assert rep.get("mode") == "luo"
    st = wait_status(app, UPDATE_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"]
                     and vm0(s) and vm0(s).get("state") == "running")
    assert why in (st.get("last_update_error") or ""), st
    wait_fresh_boot(app)


def test_fault_early_qemu_taken_over(app):
    """The QEMU the new init started before /state dies (the manifest carries
    the fault): one started the usual way takes over the same preserved RAM
    and state, and the guest goes on where it was: nothing lost."""
    wait_beating(app)
    before, b0, rep, st = live_update(app, "fault=early-qemu")
    assert rep.get("mode") == "luo", rep
    v = vm0(st)
    assert v["last_update"]["mode"] == "luo", v
    assert st.get("last_update_error") is None, st
    log = open(app.console, errors="replace").read().split("luoinit starting")[-1]
    assert "injecting fault 'early-qemu'" in log, log[-3000:]
    assert log.index("injecting fault 'early-qemu'") < log.index("the QEMU started before /state failed") \
        < log.index("vm0: QEMU up in") < log.index("vm0: live update done"), log[-3000:]
    assert_continued(app, b0)


def wait_fresh_boot(a, timeout=300):
    """The guest booted again: after its banner the count starts at 0 (under
    nested TCG its RAM fill takes a while before the banner)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            log = a.ctl("vm-log", "name=vm0", "bytes=16384", timeout=30).get("log", "")
            fresh = log.split("heartbeat guest:")[-1]
            if "heartbeat 0 pattern=ok" in fresh and "heartbeat 2 pattern=ok" in fresh:
                return
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
            pass
        time.sleep(2)
    pytest.fail("vm0 did not start fresh:\n" + a.console_tail())


def test_stopped_vm_stays_stopped_across_an_update(app):
    """The operator's vm-stop outlives the kexec (the manifest holds it back)."""
    ctl(app, "vm-stop", "name=vm0", "timeout=0", timeout=60)
    before = status(app)
    rep = app.ctl("update", timeout=120)
    assert rep.get("vms") == 0, rep
    # The new init serves requests only after its boot-time starts.
    st = wait_status(app, UPDATE_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"])
    v = vm0(st)
    assert v["state"] == "stopped" and v["pid"] is None, v
    assert st.get("last_update_error") is None, st
    assert ctl(app, "vm-start", "name=vm0", timeout=120)["state"] == "running"
    wait_beating(app)


def test_zz_update_after_faults_still_works(app):
    before, b0, rep, st = live_update(app)
    assert vm0(st)["last_update"]["mode"] == "luo"
    assert_continued(app, b0)


def test_fallback_full_ram():
    a = boot(append="liveupdate=off")
    try:
        assert status(a).get("luo") is False
        before, b0, rep, st = live_update(a)
        assert rep.get("mode") == "full-ram", rep
        lu = vm0(st)["last_update"]
        assert lu["mode"] == "full-ram", lu
        assert st["resume_manifest"] == "state", st  # no LUO: the file on /state
        # The whole RAM went through the stream (its non-zero pages at least).
        assert lu["ram_transferred"] > 8 * 1024 * 1024, lu
        assert_continued(a, b0)
    finally:
        stop(a)
        shutil.rmtree(a.dir, ignore_errors=True)


def test_power_cut_during_update_then_cold_boot():
    a = boot()
    try:
        a.ctl("update", timeout=120)
        # Cut the power as soon as the old init says it kexecs: the manifest
        # is on disk, the preserved memory dies with the machine.
        deadline = time.monotonic() + 120
        while "update: kexec now" not in a.console_tail(200000):
            assert time.monotonic() < deadline, a.console_tail()
            time.sleep(0.05)
        with open(a.pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, 9)
        # Gone for good (not even a zombie) before the same disk boots again.
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.1)
        os.unlink(a.pidfile)
        start(a)  # cold boot of the same disk
        st = status(a)
        assert "(cold boot or LUO off)" in (st.get("last_update_error") or "") or \
            "LUO session" in (st.get("last_update_error") or ""), st
        wait_fresh_boot(a)
    finally:
        stop(a)
        shutil.rmtree(a.dir, ignore_errors=True)
