"""The appliance's hardware watchdog and power button (issue 15), seen from
the outer QEMU's own QMP monitor (qemu.sh: qmp.sock next to mgmt.sock):

- the watchdog (an i6300esb, luoinit.watchdog default 60 s) stays armed and
  counting through a live update: the new kernel finds it locked and running
  ("nowayout already set"), the new init feeds it, no WATCHDOG or RESET event
  comes, the guest counts on; an update that would leave it unfed is refused;
- a hung PID 1 (x-hang) and a panicking kernel (x-hang how=panic) are reset
  by it: the outer QEMU reports WATCHDOG, the appliance boots cold and vm0
  starts again from 0;
- the ACPI power button (system_powerdown) powers the appliance off cleanly:
  the guest is stopped, /state is unmounted, its ext4 is clean.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from test_boot import BOOT_TIMEOUT, TOP
from test_update import (assert_continued, boot, ctl, live_update, status, stop, vm0, wait_beating,
                         wait_fresh_boot, wait_status)

sys.path.insert(0, os.path.join(TOP, "tests"))
from outerqmp import OuterQMP  # noqa: E402

DEFAULT_TIMEOUT = 60
HANG_TIMEOUT = 10


def qmp_path(a):
    return os.path.join(a.dir, "qmp.sock")


def boots_on_console(a):
    return a.console_tail(10 ** 7).count("luoinit starting as PID 1")


def assert_fed(w, timeout):
    assert w["device"] == "/dev/watchdog" and w["timeout"] == timeout, w
    assert w["identity"] == "i6300ESB timer", w
    assert w["error"] is None and w["feeds"] >= 1, w
    # Fed from the loop every third of the timeout (with room for a slow status).
    assert w["last_feed"] > 0 and 0 <= w["since_feed_ms"] < timeout * 1000 / 3 + 5000, w


@pytest.fixture(scope="module")
def app():
    a = boot()
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)


def test_watchdog_armed_at_boot(app):
    st = status(app)
    assert_fed(st["watchdog"], DEFAULT_TIMEOUT)
    assert st["watchdog"]["reset_by_watchdog"] is False, st["watchdog"]
    # The feeding goes on by itself: fed again after a third of the timeout.
    feeds = st["watchdog"]["feeds"]
    st = wait_status(app, DEFAULT_TIMEOUT, lambda s: s["watchdog"]["feeds"] > feeds)
    assert_fed(st["watchdog"], DEFAULT_TIMEOUT)


def test_update_refused_that_would_leave_it_unfed(app):
    before = status(app)
    with pytest.raises(RuntimeError) as e:
        app.ctl("update", "cmdline=console=ttyS0 liveupdate=on kho=on luoinit.watchdog=0", timeout=120)
    assert "luoinit.watchdog=0, but the watchdog is armed (60 s)" in str(e.value), e.value
    after = status(app)
    assert after["boot_id"] == before["boot_id"] and vm0(after)["pid"] == vm0(before)["pid"], after
    assert vm0(after)["state"] == "running" and after["last_update_error"] is None, after


def test_watchdog_stays_armed_through_a_live_update(app):
    q = OuterQMP(qmp_path(app))
    try:
        q.drain()
        q.events.clear()
        n_boots = boots_on_console(app)
        before, b0, rep, st = live_update(app)
        assert rep.get("mode") == "luo", rep
        # The new kernel found it running and locked: the probe could not stop it.
        after_kexec = app.console_tail(10 ** 7).split("update: kexec now")[-1]
        assert re.search(r"i6300[eE][sS][bB].*nowayout already set", after_kexec), after_kexec[-6000:]
        assert boots_on_console(app) == n_boots + 1
        w = st["watchdog"]
        assert_fed(w, DEFAULT_TIMEOUT)
        assert w["reset_by_watchdog"] is False, w
        assert_continued(app, b0)
        # No reset of the machine at any point: the kexec is the guest's own.
        seen = q.drain()
        assert "WATCHDOG" not in seen and "RESET" not in seen, q.events
    finally:
        q.close()


def test_zz_power_button_powers_off_cleanly(app):
    st = status(app)
    assert any(d["name"] == "Power Button" for d in st["power_button"]), st["power_button"]
    assert vm0(st)["state"] == "running", st
    q = OuterQMP(qmp_path(app))
    try:
        q.cmd("system_powerdown")
    finally:
        q.close()
    # The guests get SUP_SHUTDOWN_TIMEOUT (10 s) to power down; then QEMU exits.
    deadline = time.monotonic() + 180
    while app.running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not app.running(), "QEMU still runs after the power button:\n" + app.console_tail()
    log = app.console_tail(20000)
    i = log.find("power button (Power Button): power off")
    assert i >= 0, log
    tail = log[i:]
    for line in ("vm0: stopping", "vm0: stopped", "powering off now"):
        assert line in tail, (line, tail)
    assert tail.index("vm0: stopped") < tail.index("powering off now"), tail
    fsck = subprocess.run(["e2fsck", "-fn", app.state], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_hung_pid1_and_kernel_panic_reset_the_appliance():
    # panic=0: the panic stays (the board's panic=10 would reboot before the watchdog).
    a = boot(append=f"luoinit.watchdog={HANG_TIMEOUT} panic=0")
    q = None
    try:
        assert_fed(status(a)["watchdog"], HANG_TIMEOUT)
        q = OuterQMP(qmp_path(a))
        for how in ("pid1", "panic"):
            before = status(a)
            n_boots = boots_on_console(a)
            q.drain()
            q.events.clear()
            assert ctl(a, "x-hang", f"how={how}") == {}
            t0 = time.monotonic()
            # It is gone: nothing answers any more.
            with pytest.raises((subprocess.TimeoutExpired, RuntimeError)):
                a.ctl("status", timeout=3)
            ev = q.wait_event("WATCHDOG", HANG_TIMEOUT + 60)
            waited = time.monotonic() - t0
            assert ev is not None, f"{how}: no WATCHDOG event:\n" + a.console_tail()
            assert ev["data"]["action"] == "reset", ev
            # Not before the timeout, less the last feed's age (a third of it).
            assert waited > HANG_TIMEOUT * 2 / 3 - 1, waited
            if how == "panic":
                assert "Kernel panic" in a.console_tail(50000), a.console_tail()
            # A cold boot: a new kernel (no kexec), vm0 fresh, the reset reported.
            st = wait_status(a, BOOT_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"]
                             and vm0(s) and vm0(s).get("state") == "running")
            assert st["kexec_ms"] is None, st
            w = st["watchdog"]
            assert_fed(w, HANG_TIMEOUT)
            assert w["reset_by_watchdog"] is True, w
            assert boots_on_console(a) == n_boots + 1
            wait_fresh_boot(a)
            wait_beating(a)
            print(f"x-hang how={how}: WATCHDOG after {waited:.1f} s")
    finally:
        if q:
            q.close()
        stop(a)
        shutil.rmtree(a.dir, ignore_errors=True)
