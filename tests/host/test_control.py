"""The control protocol (design.md §4) of `luoinit --host` over a raw Unix socket,
and `luoinit ctl`: every bad request gets an error reply, the connection and the
supervisor carry on, the guest keeps beating. (The QMP handshake itself:
test_qmp_wire.py.)"""
import json
import os
import socket
import subprocess
import time

import pytest

import helpers
from helpers import beats, wait_for
from rtt import Baseline, timed

LINE_MAX = 64 * 1024


@pytest.fixture
def sup(one_vm):
    return one_vm()


def still_beating(s, name="vm0"):
    n = len(s.serial(name))
    s.wait_beats_after(name, n, count=2)
    v = s.vm(name)
    assert v["state"] == "running" and helpers.alive(v["pid"]), v
    assert s.proc.poll() is None


def err_of(reply):
    assert "error" in reply and "return" not in reply, reply
    e = reply["error"]
    assert isinstance(e.get("class"), str) and e["class"], reply
    assert isinstance(e.get("desc"), str) and e["desc"], reply
    return e


# ---- requests that are well-formed JSON but wrong --------------------------

BAD_REQUESTS = [
    # (request, class, words the desc must contain)
    ({"execute": "no-such-command"}, "CommandNotFound", ["The command no-such-command has not been found"]),
    ({"execute": "vm-stop"}, "GenericError", ["name", "missing"]),
    ({"execute": "vm-stop", "arguments": {"name": 5}}, "GenericError", ["name", "string"]),
    ({"execute": "vm-stop", "arguments": {"name": "vm0", "force": True}}, "GenericError", ["force"]),
    ({"execute": "vm-start", "arguments": {"name": "nope"}}, "DeviceNotFound", ["nope"]),
    ({"execute": "vmm-update", "arguments": {"name": "nope"}}, "DeviceNotFound", ["nope"]),
    ({"execute": "vm-log", "arguments": {"name": "vm0", "bytes": "9"}}, "GenericError", ["bytes"]),
    ({"execute": "vm-log", "arguments": {"name": "vm0", "bytes": -1}}, "GenericError", ["bytes"]),
    ({"execute": "vm-log", "arguments": {"name": "vm0", "bytes": 1 << 40}}, "GenericError", ["bytes"]),
    ({"execute": "vm-stop", "arguments": {"name": "vm0", "timeout": "0"}}, "GenericError", ["timeout"]),
    ({"execute": "vm-stop", "arguments": {"name": "vm0", "timeout": 1.5}}, "GenericError", ["timeout"]),
    ({"execute": "poweroff", "arguments": {"timeout": -1}}, "GenericError", ["timeout"]),
    ({"execute": "reboot", "arguments": {"now": True}}, "GenericError", ["now"]),
    ({"execute": "status", "arguments": {"verbose": True}}, "GenericError", ["verbose"]),
    ({"execute": "status", "arguments": []}, "GenericError", ["arguments"]),
    ({"execute": 42}, "GenericError", ["execute"]),
    ({"arguments": {}}, "GenericError", ["execute"]),
    ({"execute": "update"}, "GenericError", ["update"]),
    ({"execute": "update", "arguments": {"kernel": "/nonexistent/vmlinuz"}}, "GenericError", ["update"]),
]


@pytest.mark.parametrize("req,cls,words", BAD_REQUESTS,
                         ids=[f"{i}-{r.get('execute')}" for i, (r, _, _) in enumerate(BAD_REQUESTS)])
def test_bad_request_gets_an_error_and_the_connection_carries_on(sup, req, cls, words):
    with sup.conn() as c:
        for i in range(2):  # twice on the same connection
            msg = dict(req, id=f"bad-{i}")
            c.send_raw(json.dumps(msg).encode() + b"\n")
            r = c.read_msg(60)
            assert r.get("id") == f"bad-{i}", r
            e = err_of(r)
            assert e["class"] == cls, r
            for w in words:
                assert w in e["desc"], (w, r)
        # The same connection still serves a good request.
        st = c.cmd("status")
        assert st["vms"][0]["state"] == "running"
    assert sup.vm("vm0")["state"] == "running"


@pytest.mark.parametrize("args", [None, {"kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img", "cmdline": "quiet"}])
def test_update_is_refused_in_host_mode(sup, args):
    before = sup.vm("vm0")
    text = sup.serial("vm0")
    r = sup.request("update", args, id_="upd")
    e = err_of(r)
    assert r["id"] == "upd"
    d = e["desc"].lower()
    assert "update" in d and ("host" in d or "pid 1" in d), e
    # The VM was not touched: same QEMU, its count goes on.
    after = sup.vm("vm0")
    assert after["pid"] == before["pid"] and after["state"] == "running" and after["last_update"] is None, after
    still_beating(sup)
    assert boots_after(sup, text) == 0
    r = sup.ctl("update")
    assert r.returncode == 1 and "update" in r.stderr and r.stdout == "", r


def test_update_fault_is_refused_without_test_faults(sup):
    """fault= is a test switch: without luoinit.test_faults=1 (--test-faults
    here) it is refused, saying why, before anything else is looked at."""
    before = sup.vm("vm0")
    r = sup.request("update", {"fault": "kexec"}, id_="f")
    d = err_of(r)["desc"]
    assert "fault=kexec" in d and "luoinit.test_faults=1" in d and "--test-faults" in d, d
    assert "PID 1" not in d, d
    after = sup.vm("vm0")
    assert after["pid"] == before["pid"] and after["state"] == "running", after
    assert sup.status()["last_update_error"] is None


def test_update_fault_with_test_faults(supervisors):
    """With --test-faults a known fault passes the switch (and the update is
    then refused for --host mode, as any); an unknown one is named, with the
    known ones."""
    s = supervisors(config={"version": 1, "vms": []}, extra_args=["--test-faults"])
    d = err_of(s.request("update", {"fault": "kexec"}))["desc"]
    assert "PID 1" in d and "test_faults" not in d, d
    d = err_of(s.request("update", {"fault": "nope"}))["desc"]
    assert "fault=nope" in d and "no such fault" in d, d
    for known in ("kexec-load", "preserve-fd", "qemu-dies", "no-space", "umount", "kexec", "retrieve",
                  "size-mismatch", "corrupt-manifest"):
        assert known in d, (known, d)
    d = err_of(s.request("update", {"fault": 7}))["desc"]
    assert "fault" in d and "string" in d, d


def test_watchdog_and_power_button_are_pid1s(supervisors):
    """--host mode arms no watchdog and watches no power button (they are
    the host's); status says so. x-hang, the watchdog's test switch, is
    refused without --test-faults, and with it in --host mode (no watchdog
    here to reset anything); a bad how= is named; the supervisor carries on."""
    s = supervisors(config={"version": 1, "vms": []})
    st = s.status()
    w = st["watchdog"]
    assert w["device"] is None and w["timeout"] is None and w["last_feed"] is None, w
    assert w["feeds"] == 0 and w["reset_by_watchdog"] is False and w["error"] == "off in --host mode", w
    assert st["power_button"] == [], st
    d = err_of(s.request("x-hang", {}))["desc"]
    assert d.startswith("x-hang:") and "luoinit.test_faults=1" in d, d
    d = err_of(s.request("x-hang", {"how": "sideways"}))["desc"]
    assert "how=sideways" in d and "pid1 or panic" in d, d
    d = err_of(s.request("x-hang", {"when": "now"}))["desc"]
    assert "unknown argument 'when'" in d, d
    t = supervisors(config={"version": 1, "vms": []}, extra_args=["--test-faults"])
    for how in ("pid1", "panic"):
        d = err_of(t.request("x-hang", {"how": how}))["desc"]
        assert "--host mode" in d, d
    assert t.status()["pid1"] is False and s.proc.poll() is None and t.proc.poll() is None


def boots_after(s, text):
    return helpers.boots(s.serial("vm0")[len(text):])


# ---- ids -------------------------------------------------------------------

@pytest.mark.parametrize("id_", ["abc", 7, -3, 0, 2.5, True, {"a": [1, "x"]}, [1, 2], "ü ☃", ""],
                         ids=lambda v: type(v).__name__ + ":" + repr(v)[:10])
def test_id_is_echoed(sup, id_):
    with sup.conn() as c:
        c.send_raw(json.dumps({"execute": "status", "id": id_}).encode() + b"\n")
        r = c.read_msg()
        assert "return" in r and r["id"] == id_, r
        c.send_raw(json.dumps({"execute": "nope", "id": id_}).encode() + b"\n")
        r = c.read_msg()
        assert "error" in r and r["id"] == id_, r


def test_null_id_is_echoed(sup):
    """QMP echoes the id as given; a JSON null is a valid id."""
    with sup.conn() as c:
        c.send_raw(b'{"execute": "status", "id": null}\n')
        r = c.read_msg()
        assert "return" in r
        assert "id" in r and r["id"] is None, f"id null not echoed: keys {sorted(r)}"


def test_no_id_no_id_in_reply(sup):
    with sup.conn() as c:
        c.send_raw(b'{"execute": "status"}\n')
        r = c.read_msg()
        assert "return" in r and "id" not in r, sorted(r)


# ---- bytes that are not a request ---------------------------------------------

JUNK = [
    b'{"execute": "status"',                 # truncated
    b'{"execute": "status",}',               # trailing comma
    b"{'execute': 'status'}",                 # not JSON
    b"[1, 2, 3]",                             # not an object
    b'"status"',
    b"42",
    b"null",
    b"\x00\x01\x02\xff\xfe\xfd junk \x80\x81",
    b'{"execute": "st\xc3\x28tus"}',          # invalid UTF-8
    b"[" * 5000 + b"]" * 5000,                # nesting
    b"\x1b[2J\x1b[H",                         # terminal escapes
]


@pytest.mark.parametrize("junk", JUNK, ids=[f"junk{i}" for i in range(len(JUNK))])
def test_junk_gets_an_error_and_the_connection_carries_on(sup, junk):
    with sup.conn() as c:
        c.send_raw(junk + b"\n")
        r = c.read_msg(60)
        e = err_of(r)
        assert e["class"] == "GenericError", r
        # Then a good request on the same connection.
        c.send_raw(b'{"execute": "status", "id": "after"}\n')
        r = c.read_msg(60)
        assert r.get("id") == "after" and "return" in r, r


def test_junk_with_nul_is_described_as_malformed(sup):
    with sup.conn() as c:
        c.send_raw(b"\x00\xff\xfe junk\n")
        e = err_of(c.read_msg())
        assert "malformed" in e["desc"].lower() or "invalid" in e["desc"].lower(), e


def test_blank_lines_are_ignored(sup):
    with sup.conn() as c:
        c.send_raw(b"\n\r\n   \n\t\n" + b'{"execute": "status", "id": 1}\n')
        r = c.read_msg()
        assert r.get("id") == 1 and "return" in r, r


def test_crlf_and_pipelined_requests(sup):
    with sup.conn() as c:
        c.send_raw(b"".join(json.dumps({"execute": "status", "id": i}).encode() + b"\r\n" for i in range(20)))
        ids = [c.read_msg()["id"] for _ in range(20)]
        assert ids == list(range(20))


def test_request_split_across_writes(sup):
    with sup.conn() as c:
        data = json.dumps({"execute": "vm-log", "arguments": {"name": "vm0", "bytes": 100}, "id": "split"}).encode()
        for i in range(0, len(data), 7):
            c.send_raw(data[i:i + 7])
            time.sleep(0.01)
        c.send_raw(b"\n")
        r = c.read_msg()
        assert r["id"] == "split" and "log" in r["return"], r


def test_last_request_without_newline_before_eof(sup):
    s = helpers.qmp_socket(sup.sock_path)
    s.sendall(b'{"execute": "status", "id": "eof"}')
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    r = json.loads(data.splitlines()[0])
    assert r["id"] == "eof" and "return" in r, r


# ---- line length ---------------------------------------------------------------

def padded(req, total):
    """A request of exactly `total` bytes before its newline (the padding is
    inside the object: a request ends at its closing brace)."""
    b = json.dumps(req).encode()
    assert len(b) <= total
    return b[:-1] + b" " * (total - len(b)) + b"}"


def test_line_of_64k_is_served(sup):
    with sup.conn() as c:
        c.send_raw(padded({"execute": "status", "id": "max"}, LINE_MAX) + b"\n")
        r = c.read_msg()
        assert r.get("id") == "max" and "return" in r, r


@pytest.mark.parametrize("size", [LINE_MAX + 1, LINE_MAX + 3, 200 * 1024, 4 * 1024 * 1024])
def test_oversized_line_gets_an_error_and_the_connection_carries_on(sup, size):
    with sup.conn() as c:
        big = padded({"execute": "status", "id": "big"}, size)
        c.send_raw(big + b"\n" + b'{"execute": "status", "id": "next"}\n')
        r = c.read_msg(60)
        e = err_of(r)
        assert "longer" in e["desc"] or "too long" in e["desc"] or "65536" in e["desc"], r
        assert r.get("id") != "big"  # the oversized request itself was not run
        r = c.read_msg(60)
        assert r.get("id") == "next" and "return" in r, r
        # Exactly one error for one oversized line.
        c.send_raw(b'{"execute": "status", "id": "third"}\n')
        assert c.read_msg(60).get("id") == "third"
    still_beating(sup)


def test_oversized_line_without_newline_then_close(sup):
    with sup.conn() as c:
        try:
            c.send_raw(b"x" * (300 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass
    still_beating(sup)


# ---- many clients, stalled clients, abrupt disconnects ------------------------------

def test_stalled_and_vanishing_clients_do_not_block_others(sup):
    base = Baseline(sup.status)
    stalled = sup.conn()
    stalled.send_raw(b'{"execute": "status", "id": "half')  # never finished
    quiet = sup.conn()                                       # never says anything
    for _ in range(10):                                      # send and hang up without reading
        s = helpers.qmp_socket(sup.sock_path)
        s.sendall(b'{"execute": "status"}\n' * 50)
        s.close()
    st = {}
    base.check(timed(lambda: st.update(sup.status())), "with a stalled, a quiet and 10 vanished clients")
    assert st["vms"][0]["state"] == "running"
    # The stalled one can still finish its request.
    stalled.send_raw(b'"}\n')
    assert stalled.read_msg()["id"] == "half"
    stalled.close()
    quiet.close()
    still_beating(sup)


def test_client_reading_nothing_of_large_replies(sup):
    """A client that floods requests with big replies and never reads must not
    wedge the supervisor."""
    s = helpers.qmp_socket(sup.sock_path)
    s.setblocking(False)
    req = json.dumps({"execute": "vm-log", "arguments": {"name": "vm0", "bytes": 65536}}).encode() + b"\n"
    base = Baseline(sup.status)
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sent < 4000:
        try:
            s.send(req)
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    st = {}
    base.check(timed(lambda: st.update(sup.status())), "while a client reads none of its replies")
    assert st["vms"][0]["state"] == "running"
    s.close()
    still_beating(sup)


def _being_stopped(sup):
    """True while a vm-stop of vm0 is under way, False otherwise. The probe is
    a vm-stop with a bad timeout: refused as "being stopped" during a stop
    (the VM is checked before the arguments), as a bad timeout otherwise, so
    it never acts itself."""
    r = sup.request("vm-stop", {"name": "vm0", "timeout": "x"})
    desc = r.get("error", {}).get("desc", "")
    assert "being stopped" in desc or "'timeout' must be" in desc, r
    return "being stopped" in desc


def test_other_clients_are_served_while_a_vm_stops(sup):
    """A vm-stop waiting for a guest that ignores ACPI (5 s) must not make the
    supervisor deaf: other clients are still answered. The test sees the stop
    under way before and after the status it asks for (the stop cannot have
    finished in between); otherwise it fails."""
    with sup.conn() as a:
        a.send_raw(b'{"execute": "vm-stop", "arguments": {"name": "vm0", "timeout": 5}, "id": "stop"}\n')
        wait_for(lambda: _being_stopped(sup), 5, "the vm-stop to be under way")
        st = sup.status()
        assert _being_stopped(sup), "the vm-stop ended before the status was answered"
        assert st["vms"][0]["state"] == "running", st  # still powering down
        r = a.read_msg(60)
        assert r["id"] == "stop" and r["return"]["state"] == "stopped", r


def test_poweroff_cuts_a_vm_stop_short(sup):
    """A vm-stop waiting 10 minutes for a guest that ignores ACPI gives way
    to a poweroff asked meanwhile: it answers, and the shutdown (its own 1 s
    grace) ends the guest and the supervisor at once."""
    pid = sup.vm("vm0")["pid"]
    with sup.conn() as a:
        a.send_raw(b'{"execute": "vm-stop", "arguments": {"name": "vm0", "timeout": 600}, "id": "stop"}\n')
        helpers.wait_for(lambda: "being stopped" in err_of(sup.request("vm-start", {"name": "vm0"}))["desc"],
                         10, "the vm-stop to be waiting")
        t0 = time.monotonic()
        assert sup.ctl("poweroff", "timeout=1").returncode == 0
        r = a.read_msg(60)
        assert r["id"] == "stop" and "return" in r, r
    assert sup.proc.wait(60) == 0, sup.log()[-3000:]
    took = time.monotonic() - t0
    assert took < 30, f"the shutdown waited {took:.1f} s for a vm-stop"
    assert "a shutdown is pending" in sup.log()
    helpers.wait_for(lambda: not helpers.alive(pid), 10, "QEMU to go")


def test_socket_is_private(sup):
    st = os.stat(sup.sock_path)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


# ---- luoinit ctl -------------------------------------------------------------------

def test_ctl_success_prints_the_return(sup):
    r = sup.ctl("status")
    assert r.returncode == 0, r
    st = json.loads(r.stdout)
    assert st["vms"][0]["name"] == "vm0" and st["mode"] == "host"
    assert r.stderr == ""
    r = sup.ctl("vm-log", "name=vm0", "bytes=200")
    assert r.returncode == 0, r
    log = json.loads(r.stdout)["log"]
    assert len(log.encode()) <= 200 and beats(log), log
    r = sup.ctl("vm-log", "name=vm0", "bytes:=50")
    assert r.returncode == 0 and len(json.loads(r.stdout)["log"].encode()) <= 50, r


def test_ctl_socket_option_forms(sup):
    for args in (["--socket=" + sup.sock_path, "status"], ["--timeout", "30", "--socket", sup.sock_path, "status"]):
        r = subprocess.run([helpers.LUOINIT, "ctl", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and json.loads(r.stdout)["mode"] == "host", r


@pytest.mark.parametrize("args,words", [
    (["no-such-command"], ["The command no-such-command has not been found"]),
    (["vm-stop"], ["missing", "name"]),
    (["vm-stop", "name=nope"], ["nope"]),
    (["vm-stop", "name=vm0", "force=true"], ["force"]),
    (["vm-log", "name=vm0", "bytes=lots"], ["bytes"]),
    (["update"], ["update"]),
])
def test_ctl_error_exits_1_with_desc_on_stderr(sup, args, words):
    r = sup.ctl(*args)
    assert r.returncode == 1, r
    assert r.stdout == "", r
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr  # just the desc
    assert sup.vm("vm0")["state"] == "running"


@pytest.mark.parametrize("args", [
    [],                               # no command
    ["status", "notkeyvalue"],
    ["status", "=x"],
    ["status", "a=1", "a=2"],
    ["status", "a:={bad json"],
    ["--bogus", "status"],
    ["--timeout", "soon", "status"],
    ["--socket"],
])
def test_ctl_usage_errors_exit_2(sup, args):
    cmd = [helpers.LUOINIT, "ctl"]
    if args and args[0] != "--socket":
        cmd += ["--socket", sup.sock_path]
    r = subprocess.run(cmd + args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.strip(), r
    assert r.stdout == "", r


def test_ctl_cannot_connect_exits_1(built, tmpdir_short):
    path = os.path.join(tmpdir_short, "no.sock")
    r = subprocess.run([helpers.LUOINIT, "ctl", "--socket", path, "status"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1, r
    assert path in r.stderr and "No such file" in r.stderr, r


def test_ctl_times_out_on_a_silent_server(built, tmpdir_short):
    path = os.path.join(tmpdir_short, "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        t0 = time.monotonic()
        r = subprocess.run([helpers.LUOINIT, "ctl", "--socket", path, "--timeout", "1", "status"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r
        assert "no reply" in r.stderr, r
        assert time.monotonic() - t0 < 20
    finally:
        srv.close()


def test_ctl_ignores_events_and_other_replies(built, tmpdir_short):
    """On a shared stream (the management port) the CLI waits for the reply
    with its own id, skipping events and others' replies."""
    path = os.path.join(tmpdir_short, "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    proc = subprocess.Popen([helpers.LUOINIT, "ctl", "--socket", path, "status"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        srv.settimeout(30)
        conn, _ = srv.accept()
        conn.settimeout(30)
        conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 0, "minor": 1, "micro": 0}, "package": ""}, '
                     b'"capabilities": []}}\n')
        f = conn.makefile("rb")

        def next_request():
            while True:
                line = f.readline()
                assert line, "the client hung up"
                if line.strip():
                    return json.loads(line)
        caps = next_request()
        assert caps["execute"] == "qmp_capabilities", caps
        conn.sendall(json.dumps({"return": {}, "id": caps["id"]}).encode() + b"\n")
        req = next_request()
        assert req["execute"] == "status" and isinstance(req["id"], str)
        conn.sendall(b'{"event": "X", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}\n'
                     b'{"return": {"other": 1}, "id": "someone-else"}\n'
                     b'garbage line\n' +
                     json.dumps({"return": {"mine": True}, "id": req["id"]}).encode() + b"\n")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (out, err)
        assert json.loads(out) == {"mine": True}
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.close()


# ---- replies are valid JSON whatever the guest prints --------------------------

@pytest.mark.parametrize("junk", [b"bin\x00ary\n", b"bad utf-8 \xff\xfe \xc3\n", b"\xe2\x98"],
                         ids=["nul", "invalid-utf8", "split-char"])
def test_vm_log_with_binary_guest_output(sup, junk):
    """A guest may print any byte. vm-log must still return a valid (UTF-8)
    JSON reply holding the most recent lines, not stop at a NUL."""
    # Append to the serial log as the guest's output would be (O_APPEND on both sides).
    with open(sup.serial_path("vm0"), "ab") as f:
        f.write(junk)
    n = len(sup.serial("vm0"))
    sup.wait_beats_after("vm0", n, count=3)
    with sup.conn() as c:
        c.send_raw(b'{"execute": "vm-log", "arguments": {"name": "vm0", "bytes": 400}, "id": "bin"}\n')
        line = c.read_line()
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        pytest.fail(f"vm-log reply is not UTF-8 ({e}): {line[-200:]!r}")
    r = json.loads(text)
    log = r["return"]["log"]
    latest = beats(sup.serial("vm0")[n:])
    got = beats(log)
    assert got and got[-1][0] >= latest[2][0], f"vm-log misses the latest lines: {log[-300:]!r}"
    still_beating(sup)
