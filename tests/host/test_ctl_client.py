"""`luoinit ctl` against a scripted fake server on a Unix socket: argument
typing, the shared-stream rules (unique id, events and stale replies ignored),
errors, timeouts and exit codes. No QEMU needed.

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


class FakeServer:
    """Accepts one client, records its lines and answers with script(request)."""

    def __init__(self, path, script):
        self.path = path
        self.script = script
        self.lines = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        buf = b""
        with conn:
            while b"\n" not in buf.lstrip(b"\n"):
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            self.lines = buf.split(b"\n")
            req = json.loads(buf.lstrip(b"\n").split(b"\n")[0])
            for out in self.script(req):
                if out is None:
                    time.sleep(30)  # never answer; the client must time out
                    return
                conn.sendall(out)
            # Let the client read everything before the connection goes.
            conn.settimeout(5)
            try:
                conn.recv(1)
            except OSError:
                pass

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
    # A leading newline ends any partial line left on a shared stream.
    assert srv.lines[0] == b""


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
        return

    srv = FakeServer(sock_path, script)
    p = ctl("--socket=" + sock_path, "status")
    srv.close()
    assert p.returncode == 1
    assert sock_path in p.stderr and "closed" in p.stderr


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
