"""A QMP client nobody here wrote drives `luoinit --host`: QEMU's own Python
library, qemu.qmp (python/qemu/qmp in Debian's qemu source package, fetched
unmodified by `make check-host` into build/qemu-qmp), and its qmp-shell.
If these work, so do other tools that speak QMP."""
import asyncio
import os
import subprocess
import sys

import pytest

import helpers

QEMU_QMP = os.path.join(helpers.B, "qemu-qmp")


@pytest.fixture(scope="module")
def qemu_qmp():
    """build/qemu-qmp, fetched now if `make check-host` did not already."""
    if not os.path.exists(os.path.join(QEMU_QMP, ".stamp")):
        subprocess.run(["make", "-C", helpers.ROOT, "--no-print-directory",
                        os.path.relpath(os.path.join(QEMU_QMP, ".stamp"), helpers.ROOT)], check=True)
    py = os.path.join(QEMU_QMP, "python")
    if py not in sys.path:
        sys.path.insert(0, py)
    from qemu.qmp import QMPClient  # noqa: E402 - only importable now
    return QMPClient


@pytest.fixture
def sup(one_vm):
    return one_vm()


async def until_state(listener, name, new):
    """VM_STATE_CHANGED data of name up to (and with) new == new."""
    seen = []
    async for ev in listener:
        if ev["event"] == "VM_STATE_CHANGED" and ev["data"]["name"] == name:
            seen.append(ev["data"])
            if ev["data"]["new"] == new:
                return seen


def test_qemu_qmp_client(qemu_qmp, sup):
    QMPClient = qemu_qmp
    from qemu.qmp import ExecuteError

    async def session():
        qmp = QMPClient("luoinit-test")
        await qmp.connect(sup.sock_path)  # reads the greeting, negotiates
        try:
            assert qmp.greeting is not None
            assert qmp.greeting.QMP.version["package"].startswith("luoinit ")
            st = await qmp.execute("status")
            assert st["vms"][0]["name"] == "vm0" and st["vms"][0]["state"] == "running"
            names = [c["name"] for c in await qmp.execute("query-commands")]
            assert "vm-stop" in names and "qmp_capabilities" in names
            with pytest.raises(ExecuteError) as e:
                await qmp.execute("no-such-command")
            assert e.value.error_class == "CommandNotFound"
            assert str(e.value) == "The command no-such-command has not been found"
            with pytest.raises(ExecuteError) as e:
                await qmp.execute("vm-stop", {"name": "nope"})
            assert e.value.error_class == "DeviceNotFound"
            with qmp.listener("VM_STATE_CHANGED") as listener:
                r = await qmp.execute("vm-stop", {"name": "vm0", "timeout": 0})
                assert r["state"] == "stopped"
                stopped = await asyncio.wait_for(until_state(listener, "vm0", "stopped"), 60)
                r = await qmp.execute("vm-start", {"name": "vm0"})
                assert r["state"] == "running"
                started = await asyncio.wait_for(until_state(listener, "vm0", "running"), 60)
            return stopped, started
        finally:
            await qmp.disconnect()

    stopped, started = asyncio.run(session())
    assert stopped[0]["old"] == "running" and stopped[-1]["new"] == "stopped", stopped
    assert [(d["old"], d["new"]) for d in started] == [("stopped", "starting"), ("starting", "running")], started
    assert sup.vm("vm0")["state"] == "running"


def test_qmp_shell(qemu_qmp, sup, tmpdir_short):
    """qmp-shell, as a person would use it, with its input from a pipe."""
    shell = os.path.join(QEMU_QMP, "scripts", "qmp", "qmp-shell")
    cmds = "status\nvm-log name=vm0 bytes=200\nvm-stop name=vm0 timeout=0\nvm-start name=vm0\nfrob\n"
    p = subprocess.run([sys.executable, shell, sup.sock_path], input=cmds, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, HOME=tmpdir_short))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "Welcome to the QMP low-level shell!" in out
    assert "Connected to QEMU " in out  # the greeting's version triple
    assert '"boot_id"' in out and '"vms"' in out                        # status
    assert "heartbeat" in out                                            # vm-log
    assert '"state": "stopped"' in out and '"state": "running"' in out   # vm-stop, vm-start
    assert '"class": "CommandNotFound"' in out and "The command frob has not been found" in out
    assert sup.vm("vm0")["state"] == "running"
