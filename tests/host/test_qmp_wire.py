"""The control protocol is QMP on the wire (design.md §4) with `luoinit --host`
and a beating VM: the greeting, capabilities negotiation first, QEMU's errors,
query-commands, events only after negotiation (VM_STATE_CHANGED on vm-stop and
vm-start, VM_RESTARTED from the restart policy) and `luoinit ctl watch`."""
import json
import os
import signal
import subprocess
import threading

import pytest

import helpers
from helpers import Conn

EXPECTING = "Expecting capabilities negotiation with 'qmp_capabilities'"


@pytest.fixture
def sup(one_vm):
    return one_vm()


def test_greeting_is_qemus_shape(sup):
    with Conn(sup.sock_path, negotiate=False) as c:
        g = c.read_greeting()
    assert set(g) == {"QMP"} and set(g["QMP"]) == {"version", "capabilities"}, g
    v = g["QMP"]["version"]
    assert set(v) == {"qemu", "package"} and v["package"].startswith("luoinit "), v
    assert set(v["qemu"]) == {"major", "minor", "micro"} and all(isinstance(x, int) for x in v["qemu"].values())
    assert g["QMP"]["capabilities"] == []
    # query-version says the same
    with Conn(sup.sock_path) as c:
        assert c.cmd("query-version") == v


def test_commands_before_negotiation_are_refused(sup):
    with Conn(sup.sock_path, negotiate=False) as c:
        c.read_greeting()
        for cmd in ("status", "vm-stop", "query-commands", "no-such-command"):
            r = c.request(cmd, {"name": "vm0"} if cmd == "vm-stop" else None)
            assert r["error"] == {"class": "CommandNotFound", "desc": EXPECTING}, r
        r = c.request("qmp_capabilities", {"enable": ["oob"]})
        assert r["error"]["class"] == "GenericError" and "oob" in r["error"]["desc"], r
        assert c.request("qmp_capabilities")["return"] == {}
        r = c.request("qmp_capabilities")
        assert r["error"] == {"class": "CommandNotFound",
                              "desc": "Capabilities negotiation is already complete, command ignored"}, r
        assert c.cmd("status")["vms"][0]["state"] == "running"
    # vm-stop before negotiation did not run
    assert sup.vm("vm0")["state"] == "running"


def test_query_commands(sup):
    with Conn(sup.sock_path) as c:
        names = [x["name"] for x in c.cmd("query-commands")]
    assert len(names) == len(set(names)), names
    assert set(names) >= {"qmp_capabilities", "query-commands", "query-version", "status", "vm-start",
                          "vm-stop", "vm-restart", "vmm-update", "vm-log", "update", "poweroff", "reboot"}
    # every listed command exists: none gets CommandNotFound (with an argument
    # no command takes, nothing runs)
    with Conn(sup.sock_path) as c:
        for n in names:
            r = c.request(n, {"no-such-argument": 1})
            assert r.get("error", {}).get("class") != "CommandNotFound" or n == "qmp_capabilities", r


def state_changes(conn, name, until):
    """(old, new, reason) of name's VM_STATE_CHANGED events up to new == until."""
    seen = []
    while True:
        e = conn.read_event(60)
        assert set(e) == {"event", "data", "timestamp"}, e
        assert set(e["timestamp"]) == {"seconds", "microseconds"}, e
        if e["event"] != "VM_STATE_CHANGED" or e["data"]["name"] != name:
            continue
        d = e["data"]
        assert set(d) == {"name", "old", "new", "reason"}, d
        seen.append((d["old"], d["new"], d["reason"]))
        if d["new"] == until:
            return seen


def test_events_only_after_negotiation(sup):
    early = Conn(sup.sock_path, negotiate=False)   # greeted, not negotiated
    watcher = Conn(sup.sock_path)                   # negotiated
    try:
        early.read_greeting()
        assert sup.cmd("vm-stop", name="vm0", timeout=0)["state"] == "stopped"
        changes = state_changes(watcher, "vm0", "stopped")
        assert changes[0][0] == "running" and changes[-1][1] == "stopped", changes
        # The one not negotiated got nothing: its next line is its reply.
        early.send(b'{"execute": "qmp_capabilities", "id": "late"}\n')
        assert json.loads(early.read_line(30)) == {"return": {}, "id": "late"}
        # Now both get the start.
        assert sup.cmd("vm-start", name="vm0")["state"] == "running"
        for c in (watcher, early):
            changes = state_changes(c, "vm0", "running")
            assert changes[0][:2] == ("stopped", "starting") and changes[-1][1] == "running", changes
    finally:
        early.close()
        watcher.close()


def test_vm_restarted_event(supervisors, tmpdir_short):
    s = supervisors(config={"version": 1, "vms": [helpers.vm_config("vm0", tmpdir_short, restart="always")]})
    pid = s.wait_running("vm0")["pid"]
    with Conn(s.sock_path) as c:
        os.kill(pid, signal.SIGKILL)
        while True:
            e = c.read_event(60)
            if e["event"] == "VM_RESTARTED":
                break
        assert e["data"] == {"name": "vm0", "restarts": 1}, e
        state_changes(c, "vm0", "running")
    assert s.wait_running("vm0", not_pid=pid)["restarts"] == 1


def test_ctl_watch_prints_events(sup):
    p = subprocess.Popen([helpers.LUOINIT, "ctl", "--socket", sup.sock_path, "watch"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Ready once it says so on stderr (negotiated: no event can be missed).
        ready = p.stderr.readline()
        assert ready.startswith("luoinit ctl: watching events on"), ready
        sup.cmd("vm-stop", name="vm0", timeout=0)
        sup.cmd("vm-start", name="vm0")
        got = []
        timer = threading.Timer(60, p.kill)
        timer.start()
        try:
            while not got or got[-1] != ("starting", "running"):
                line = p.stdout.readline()
                assert line, f"watch ended early: {got}"
                e = json.loads(line)  # one event per line
                assert set(e) == {"event", "data", "timestamp"}, e
                if e["event"] == "VM_STATE_CHANGED":
                    got.append((e["data"]["old"], e["data"]["new"]))
        finally:
            timer.cancel()
        assert got[0] == ("running", "stopped"), got
        assert got[-2:] == [("stopped", "starting"), ("starting", "running")], got
        # The server goes away: watch ends, exit 0.
        assert sup.stop() == 0
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_requests_need_no_newline(sup):
    """QMP is a stream of JSON objects: QEMU's own client sends no newline.
    Two objects on one line are two requests; junk after an object is a
    request of its own (an error); a line of junk stays one error."""
    with Conn(sup.sock_path) as c:
        c.send(b'{"execute": "status", "id": 1}')
        assert c.read_msg(30)["id"] == 1
        c.send(b'{"execute": "status", "id": 2}{"execute": "query-version", "id": 3} trailing\n')
        assert [c.read_msg(30).get("id") for _ in range(2)] == [2, 3]
        e = c.read_msg(30)
        assert "error" in e and "id" not in e and "malformed" in e["error"]["desc"], e
        c.send(b'{x}{"execute": "status", "id": 4}\n{"execute": "status", "id": 5}\n')
        e = c.read_msg(30)
        assert "error" in e and "id" not in e, e
        r = c.read_msg(30)
        assert r["id"] == 5 and "return" in r, r
