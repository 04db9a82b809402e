"""Shared pieces of the hardening tests (test_hostile.py, test_pid1_stress.py):
a `luoinit --host` supervisor with its own short-path state dir, a raw
control-protocol client that insists on strict UTF-8 JSON replies, heartbeat
log reading, /proc bookkeeping, and cleanup that kills every process a test
caused, even when the test fails.

Stdlib only (Debian's /usr/bin/python3). It shares helpers.py's polling and
/proc helpers and keeps its own supervisor and client, which check more.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LUOINIT = os.environ.get("LUOINIT") or os.path.join(ROOT, os.environ.get("B", "build"), "luoinit")
GUEST = os.path.join(ROOT, os.environ.get("BB", "build/qemu-x86_64"), "heartbeat.elf")
QEMU = "/usr/bin/qemu-system-x86_64"

BEAT = re.compile(r"heartbeat (\d+) pattern=(ok|bad)")
START_TIMEOUT = 90   # TCG on a busy 2-core machine shared with other testers
BEAT_TIMEOUT = 60

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this (pytest) process a child subreaper, so that whatever a dying
    supervisor leaves behind is reparented to us and can be found and killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


# Polling, /proc reading and the raw client are the other host tests' (helpers.py).
from helpers import Conn as _Conn  # noqa: E402
from helpers import qmp_socket  # noqa: E402,F401
from helpers import alive, all_stats, children_of, descendants, proc_stat, wait_for  # noqa: E402,F401


# ---- the control protocol ---------------------------------------------------

class Conn(_Conn):
    """helpers.Conn, stricter: a reply must be a UTF-8 JSON object with
    exactly one of return/error, and an error a class and a desc."""

    def read_msg(self, timeout=30):
        while True:
            line = self.read_line(timeout)
            if not line.strip():
                continue
            text = line.decode("utf-8")  # strict: a reply must be valid UTF-8
            msg = json.loads(text)
            assert isinstance(msg, dict), f"reply is not a JSON object: {text[:300]}"
            if "event" in msg:
                continue
            assert ("return" in msg) != ("error" in msg), f"malformed reply: {text[:300]}"
            if "error" in msg:
                e = msg["error"]
                assert isinstance(e, dict) and isinstance(e.get("class"), str) \
                    and isinstance(e.get("desc"), str), f"malformed error: {text[:300]}"
            return msg

    def request(self, execute, arguments=None, timeout=30, id_=None):
        return super().request(execute, arguments, timeout, id_)

    def cmd(self, execute, _timeout=30, **arguments):
        r = self.request(execute, arguments or None, timeout=_timeout)
        assert "return" in r, f"{execute} failed: {r}"
        return r["return"]


def expect_error_or_close(conn, timeout=30):
    """The next reply must be an error; a closed connection also counts.
    Returns the error object, or None when the server closed the connection."""
    try:
        msg = conn.read_msg(timeout)
    except EOFError:
        return None
    assert "error" in msg, f"expected an error reply, got {msg}"
    return msg["error"]


# ---- the heartbeat guest -----------------------------------------------------

def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def last_beat(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    m = None
    for m in BEAT.finditer(text):
        pass
    return (int(m.group(1)), m.group(2)) if m else None


def heartbeat_vm(name, tmpdir, **extra):
    c = {
        "name": name,
        "memory_mib": 64,
        "vcpus": 1,
        "machine": "pc-q35-10.0",
        "accel": "tcg",
        "ram_backing": "procfd",
        "kernel": GUEST,
        "cmdline": "fill_mib=16 seed=7",
        "serial": os.path.join(tmpdir, f"{name}.serial"),
        "restart": "never",
    }
    c.update(extra)
    return c


# ---- the supervisor ----------------------------------------------------------

class Supervisor:
    """`luoinit --host` in a fresh short /tmp directory (socket paths must fit
    in sun_path). stderr goes to a log file, or to `stderr` when given (an fd
    or subprocess constant). stop() always leaves nothing of ours running."""

    live = set()  # pids of supervisors not yet stopped

    def __init__(self, vms, log_level="debug", stderr=None, tag="luo-hard"):
        become_subreaper()
        self.dir = tempfile.mkdtemp(prefix=tag + "-", dir="/tmp")
        self.state_dir = os.path.join(self.dir, "state")
        self.sock_path = os.path.join(self.state_dir, "luoinit.sock")
        self.log_path = os.path.join(self.dir, "luoinit.log")
        self.config_path = os.path.join(self.dir, "vmconf.json")
        if callable(vms):  # vms(dir): lets serial files live in our directory
            vms = vms(self.dir)
        self.config = {"version": 1, "vms": vms}
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=1)
        self.seen = {}   # pid -> starttime of every descendant we saw
        self.exit_code = None
        self._log = None
        if stderr is None:
            self._log = open(self.log_path, "ab")
            stderr = self._log
        self.proc = subprocess.Popen(
            [LUOINIT, "--host", "--state-dir", self.state_dir, "--config", self.config_path,
             "--log-level", log_level],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        self.pid = self.proc.pid
        Supervisor.live.add(self.pid)

    def wait_socket(self, timeout=START_TIMEOUT):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"luoinit exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if not os.path.exists(self.sock_path):
                return False
            with Conn(self.sock_path, timeout=5):
                return True
        wait_for(ok, timeout, "the control socket", interval=0.2)

    def log(self):
        return read_bytes(self.log_path).decode("utf-8", "replace")

    def conn(self, timeout=30):
        return Conn(self.sock_path, timeout)

    def remember(self):
        if self.proc.poll() is None:
            stats = all_stats()
            for p in descendants(self.pid, stats):
                if p not in self.seen and p in stats:
                    self.seen[p] = stats[p][2]

    def status(self, timeout=30):
        self.remember()
        with self.conn(timeout) as c:
            return c.cmd("status", _timeout=timeout)

    def vm(self, name, timeout=30):
        for v in self.status(timeout)["vms"]:
            if v["name"] == name:
                return v
        raise KeyError(name)

    def wait_running(self, name, timeout=START_TIMEOUT):
        def ok():
            v = self.vm(name)
            return v if v["state"] == "running" and v.get("pid") and alive(v["pid"]) else None
        v = wait_for(ok, timeout, f"{name} running", interval=0.3)
        self.remember()
        return v

    def serial_path(self, name):
        for v in self.config["vms"]:
            if v["name"] == name:
                return v["serial"]
        raise KeyError(name)

    def beat(self, name):
        return last_beat(read_bytes(self.serial_path(name)))

    def wait_beat_above(self, name, n, timeout=BEAT_TIMEOUT):
        def ok():
            b = self.beat(name)
            return b if b and b[0] > n else None
        return wait_for(ok, timeout, f"{name}'s heartbeat counter to pass {n}", interval=0.2)

    def assert_healthy(self, name="hb", what=""):
        """The supervisor is alive and answers status, and the guest keeps beating."""
        assert self.proc.poll() is None, \
            f"luoinit died ({what}) with {self.proc.returncode}:\n{self.log()[-3000:]}"
        t0 = time.monotonic()
        st = self.status(timeout=30)
        rtt = time.monotonic() - t0
        names = {v["name"]: v for v in st["vms"]}
        if name is None:
            return rtt
        assert names[name]["state"] == "running", f"{what}: {names[name]}"
        before = self.beat(name)
        assert before, f"{what}: no heartbeat in the serial file yet"
        b = self.wait_beat_above(name, before[0])
        assert b[1] == "ok", f"{what}: heartbeat pattern {b}"
        return rtt

    def kill_leftovers(self):
        """SIGKILL every process we saw under the supervisor that still lives
        (same pid and start time), and whatever was reparented to us (we are a
        subreaper) that is not another live supervisor; reap those."""
        killed = []
        for pid, start in list(self.seen.items()):
            st = proc_stat(pid)
            if st and st[2] == start and st[0] not in ("Z", "X"):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        me = os.getpid()
        deadline = time.monotonic() + 10
        while True:
            strays = [p for p in children_of(me) if p not in Supervisor.live]
            if not strays or time.monotonic() >= deadline:
                break
            for p in strays:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(p, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.05)
        return killed

    def stop(self, timeout=60):
        """poweroff, else SIGTERM, else SIGKILL; then kill all that is left."""
        try:
            self.remember()
            if self.proc.poll() is None:
                try:
                    with Conn(self.sock_path, timeout=5) as c:
                        c.request("poweroff", {"timeout": 0}, timeout=10)
                except (OSError, EOFError, ValueError, AssertionError, TimeoutError):
                    pass
                try:
                    self.exit_code = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(signal.SIGTERM)
                    try:
                        self.exit_code = self.proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.exit_code = self.proc.wait(30)
            else:
                self.exit_code = self.proc.returncode
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(30)
            Supervisor.live.discard(self.pid)
            self.kill_leftovers()
            if self._log:
                self._log.close()
                self._log = None
        return self.exit_code

    def cleanup_dir(self):
        shutil.rmtree(self.dir, ignore_errors=True)
