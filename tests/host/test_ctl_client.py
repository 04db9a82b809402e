"""`luoinit ctl` against a scripted fake QMP server on a Unix socket: the
handshake (greeting, qmp_capabilities, a missing greeting, a new session
mid-command), argument typing, the shared-stream rules (unique id, events and
stale replies ignored), errors, timeouts, exit codes and `ctl watch`. No QEMU
needed.

LUOINIT may name the binary to test (default build/luoinit, built by make).
"""
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LUOINIT = os.environ.get("LUOINIT", os.path.join(ROOT, os.environ.get("B", "build"), "luoinit"))

pytestmark = pytest.mark.skipif(not os.access(LUOINIT, os.X_OK), reason=f"{LUOINIT} not built")


CLOSE = object()  # a script's output that makes the server hang up
GREETING = (json.dumps({"QMP": {"version": {"qemu": {"major": 0, "minor": 1, "micro": 0},
                                             "package": "fake"}, "capabilities": []}}) + "\n").encode()


class FakeServer:
    """Accepts one client, greets it (unless greet=False), answers its
    qmp_capabilities with caps(request) (default: success), records its lines
    and answers every other request with script(request)."""

    def __init__(self, path, script, greet=True, caps=None):
        self.path = path
        self.script = script
        self.greet = greet
        self.caps = caps or (lambda req: [line({"return": {}, "id": req["id"]})])
        self.lines = []
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn:
            if self.greet:
                conn.sendall(GREETING)
            f = conn.makefile("rb")
            while True:
                raw = f.readline()
                if not raw:
                    return
                self.lines.append(raw)
                if not raw.strip():
                    continue
                req = json.loads(raw)
                self.requests.append(req)
                answer = self.caps if req.get("execute") == "qmp_capabilities" else self.script
                for out in answer(req):
                    if out is None:
                        time.sleep(30)  # never answer; the client must time out
                        return
                    if out is CLOSE:
                        return
                    conn.sendall(out)

    def close(self):
        self.sock.close()


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "ctl.sock")


def ctl(*args, timeout=20):
    t0 = time.monotonic()
    p = subprocess.run([LUOINIT, "ctl", *args], capture_output=True, text=True, timeout=timeout)
    p.elapsed = time.monotonic() - t0
    return p


def line(obj):
    return (json.dumps(obj) + "\n").encode()


def test_success_and_argument_types(sock_path):
    seen = {}

    def script(req):
        seen.update(req)
        yield line({"return": {"echo": req["arguments"]}, "id": req["id"]})

    srv = FakeServer(sock_path, script)
    p = ctl("--socket", sock_path, "vm-log", "name=vm0", "bytes=4096", "neg=-3", "lead=007",
            "f=1.5", "yes=true", "no=false", "nil=null", "empty=", "raw:={\"a\":[1,null]}",
            "rs:=\"x y\"", "eq=a=b")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert seen["execute"] == "vm-log"
    assert re.fullmatch(r"ctl-\d+-[0-9a-f]{8}", seen["id"])
    want = {"name": "vm0", "bytes": 4096, "neg": -3, "lead": "007", "f": "1.5", "yes": True,
            "no": False, "nil": None, "empty": "", "raw": {"a": [1, None]}, "rs": "x y",
            "eq": "a=b"}
    assert seen["arguments"] == want
    assert json.loads(p.stdout) == {"echo": want}
    assert p.stdout.startswith("{\n")  # pretty
    # QMP: capabilities negotiated first, then the command.
    assert [r["execute"] for r in srv.requests] == ["qmp_capabilities", "vm-log"]
    # A leading newline ends any partial line left on a shared stream.
    assert srv.lines[0] == b"\n"


def test_ignores_events_stale_replies_and_junk(sock_path):
    def script(req):
        yield line({"return": {"stale": True}, "id": "ctl-1-deadbeef"})
        yield line({"event": "VM_STATE", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}})
        yield b"not json at all\n"
        yield line({"error": {"class": "GenericError", "desc": "old"}})  # no id
        yield line({"id": req["id"]})  # neither return nor error
        yield b'{"return": {"split": '
        time.sleep(0.2)
        yield b'true}, "id": ' + json.dumps(req["id"]).encode() + b"}\n"

    srv = FakeServer(sock_path, script)
    p = ctl("--socket", sock_path, "status")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"split": True}


def test_error_reply(sock_path):
    def script(req):
        yield line({"error": {"class": "CommandNotFound", "desc": "The command frob has not been found"},
                    "id": req["id"]})

    srv = FakeServer(sock_path, script)
    p = ctl("--socket", sock_path, "frob")
    srv.close()
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.strip() == "The command frob has not been found"


def test_timeout(sock_path):
    srv = FakeServer(sock_path, lambda req: iter([None]))
    p = ctl("--socket", sock_path, "--timeout", "1", "status")
    srv.close()
    assert p.returncode == 1
    assert sock_path in p.stderr and "no reply within 1 s" in p.stderr
    assert 0.9 < p.elapsed < 5


def test_closed_before_reply(sock_path):
    def script(req):
        yield line({"event": "X", "data": {}})
        yield CLOSE

    srv = FakeServer(sock_path, script)
    p = ctl("--socket=" + sock_path, "status")
    srv.close()
    assert p.returncode == 1
    assert sock_path in p.stderr and "closed" in p.stderr


# ---- the QMP handshake ---------------------------------------------------------

def test_no_greeting_negotiates_anyway(sock_path):
    """The management port may miss a new host session (ctl/server.c): no
    greeting comes, and the client negotiates after a second anyway."""
    srv = FakeServer(sock_path, lambda req: [line({"return": {"ok": 1}, "id": req["id"]})], greet=False)
    p = ctl("--socket", sock_path, "status")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"ok": 1}
    assert [r["execute"] for r in srv.requests] == ["qmp_capabilities", "status"]
    assert 0.9 < p.elapsed < 10


def test_already_negotiated_is_success(sock_path):
    """A port session an earlier client negotiated: QEMU's "already complete"."""
    def caps(req):
        yield line({"error": {"class": "CommandNotFound",
                              "desc": "Capabilities negotiation is already complete, command ignored"},
                    "id": req["id"]})

    srv = FakeServer(sock_path, lambda req: [line({"return": {"ok": 2}, "id": req["id"]})], greet=False,
                     caps=caps)
    p = ctl("--socket", sock_path, "status")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"ok": 2}


def test_new_session_mid_command_renegotiates_and_resends(sock_path):
    """A greeting after the command (a new host session on the port) and the
    command refused as not negotiated: negotiated again and sent again (it did
    not run), under a new id."""
    tries = []

    def script(req):
        tries.append(req)
        if len(tries) == 1:
            yield GREETING
            yield line({"error": {"class": "CommandNotFound",
                                  "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"},
                        "id": req["id"]})
        else:
            yield line({"return": {"try": len(tries)}, "id": req["id"]})

    srv = FakeServer(sock_path, script)
    p = ctl("--socket", sock_path, "vm-start", "name=vm0")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"try": 2}
    ex = [r["execute"] for r in srv.requests]
    assert ex[:2] == ["qmp_capabilities", "vm-start"] and ex[-1] == "vm-start", ex
    assert ex.count("vm-start") == 2 and "qmp_capabilities" in ex[2:-1], ex
    assert tries[0]["id"] != tries[1]["id"] and tries[1]["arguments"] == {"name": "vm0"}


def test_negotiation_error_exits_1(sock_path):
    def caps(req):
        yield line({"error": {"class": "GenericError", "desc": "Capability oob not available"},
                    "id": req["id"]})

    srv = FakeServer(sock_path, lambda req: [line({"return": {}, "id": req["id"]})], caps=caps)
    p = ctl("--socket", sock_path, "status")
    srv.close()
    assert p.returncode == 1
    assert p.stderr.strip() == "Capability oob not available"
    assert [r["execute"] for r in srv.requests] == ["qmp_capabilities"]


def test_refused_connection_says_why(sock_path):
    """A refused peer gets one error line without id and a close, no greeting."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)

    def refuse():
        conn, _ = srv.accept()
        conn.sendall(line({"error": {"class": "GenericError",
                                     "desc": "permission denied: only root may use this socket"}}))
        conn.close()

    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    p = ctl("--socket", sock_path, "status")
    srv.close()
    assert p.returncode == 1
    assert p.stderr.strip() == "permission denied: only root may use this socket"


def test_watch_prints_events_until_the_server_goes(sock_path):
    events = [{"event": "VM_STATE_CHANGED", "data": {"name": "vm0", "old": "running", "new": "stopped",
                                                     "reason": "stopped"},
               "timestamp": {"seconds": 1, "microseconds": 2}},
              {"event": "UPDATE_PHASE", "data": {"phase": "kexec", "ms": 812.5},
               "timestamp": {"seconds": 3, "microseconds": 4}}]

    def caps(req):
        yield line({"return": {}, "id": req["id"]})
        yield line({"return": {"stale": 1}, "id": "someone-else"})
        for e in events:
            yield line(e)
        yield CLOSE

    srv = FakeServer(sock_path, lambda req: [], caps=caps)
    p = ctl("--socket", sock_path, "watch")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert [json.loads(l) for l in p.stdout.splitlines()] == events
    assert "watching events on " + sock_path in p.stderr
    assert [r["execute"] for r in srv.requests] == ["qmp_capabilities"]


def test_watch_renegotiates_a_new_session(sock_path):
    """A greeting mid-watch (the appliance's init after a kexec, on the port):
    negotiated again, and the events of the new session are printed too."""
    n = []

    def caps(req):
        n.append(req)
        yield line({"return": {}, "id": req["id"]})
        if len(n) == 1:
            yield line({"event": "A", "data": {}, "timestamp": {"seconds": 1, "microseconds": 0}})
            yield GREETING
        else:
            yield line({"event": "B", "data": {}, "timestamp": {"seconds": 2, "microseconds": 0}})
            yield CLOSE

    srv = FakeServer(sock_path, lambda req: [], caps=caps)
    p = ctl("--socket", sock_path, "watch")
    srv.close()
    assert p.returncode == 0, p.stderr
    assert [json.loads(l)["event"] for l in p.stdout.splitlines()] == ["A", "B"]
    assert len(n) == 2
    assert p.stderr.count("watching") == 1


def test_watch_takes_no_arguments(sock_path):
    p = ctl("--socket", sock_path, "watch", "name=vm0")
    assert p.returncode == 2 and "watch takes no arguments" in p.stderr


def test_no_server(sock_path):
    p = ctl("--socket", sock_path, "status")
    assert p.returncode == 1
    assert "cannot connect to " + sock_path in p.stderr


@pytest.mark.parametrize("args", [
    [], ["--socket"], ["--timeout", "x", "status"], ["--timeout", "-1", "status"],
    ["--bogus", "status"], ["status", "novalue"], ["status", "=x"], ["status", "a=1", "a=2"],
    ["status", "j:={"], ["status", "j:=1 2"],
])
def test_usage_errors(args, sock_path):
    p = ctl("--socket", sock_path, *args) if args[:1] != ["--socket"] else ctl(*args)
    assert p.returncode == 2, (args, p.stderr)
    assert p.stderr


def test_help():
    p = ctl("--help")
    assert p.returncode == 0
    assert "usage: luoinit ctl" in p.stdout
