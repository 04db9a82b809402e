"""Shared pieces of the host-level supervisor tests: a `luoinit --host` process
with its own state dir, a raw control-protocol (QMP) client, the heartbeat
serial log parser, and process bookkeeping that makes sure no QEMU we caused
survives.

Only the standard library: the tests run with Debian's /usr/bin/python3.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(ROOT, os.environ.get("B", "build"))
BB = os.path.join(ROOT, os.environ.get("BB", "build/qemu-x86_64"))
LUOINIT = os.environ.get("LUOINIT") or os.path.join(B, "luoinit")
GUEST = os.path.join(BB, "heartbeat.elf")
QEMU = "/usr/bin/qemu-system-x86_64"

BEAT = re.compile(r"heartbeat (\d+) pattern=(ok|bad)")
BANNER = "heartbeat guest:"

# TCG on a busy 2-core machine: be generous, but poll, never sleep long.
START_TIMEOUT = 60
BEAT_TIMEOUT = 60


def wait_for(pred, timeout, what, interval=0.1):
    """Poll pred() until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError, EOFError) as e:  # transient: socket not up yet, etc.
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# ---- processes -----------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def all_stats():
    """{pid: (state, ppid, starttime)} of every process now."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                out[int(d)] = st
    return out


def children_of(pid, stats=None):
    """{child pid: stat} of pid's direct children."""
    stats = stats if stats is not None else all_stats()
    return {p: st for p, st in stats.items() if st[1] == pid}


def descendants(pid, stats=None):
    """Every process below pid, from one /proc scan."""
    stats = stats if stats is not None else all_stats()
    kids = {}
    for p, st in stats.items():
        kids.setdefault(st[1], []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def fd_links(pid):
    """{fd number: link target} of a process."""
    out = {}
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            out[int(fd)] = os.readlink(f"{base}/{fd}")
        except OSError:
            pass
    return out


# ---- heartbeat serial log ------------------------------------------------

def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def beats(text):
    """[(counter, pattern)] in the order the guest printed them."""
    return [(int(m.group(1)), m.group(2)) for m in BEAT.finditer(text)]


def boots(text):
    return text.count(BANNER)


# ---- control protocol ----------------------------------------------------

class CtlError(Exception):
    def __init__(self, error):
        super().__init__(f"{error.get('class')}: {error.get('desc')}")
        self.cls = error.get("class")
        self.desc = error.get("desc")


class Conn:
    """One raw connection to the control socket, QMP: the greeting is read and
    capabilities negotiated first (negotiate=False leaves both to the test)."""

    def __init__(self, path, timeout=30, negotiate=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_id = 0
        self.greeting = None
        try:
            self.sock.connect(path)
            if negotiate:
                self.negotiate(timeout)
        except BaseException:
            self.sock.close()
            raise

    def read_greeting(self, timeout=60):
        """The first line: {"QMP": {"version": ..., "capabilities": [...]}}."""
        line = self.read_line(timeout)
        msg = json.loads(line)
        assert isinstance(msg, dict) and isinstance(msg.get("QMP"), dict), \
            f"expected the QMP greeting, got {line[:300]!r}"
        self.greeting = msg
        return msg

    def negotiate(self, timeout=60):
        """QMP: the greeting, then qmp_capabilities, before any command."""
        self.read_greeting(timeout)
        r = self.request("qmp_capabilities", timeout=timeout)
        assert r.get("return") == {}, f"qmp_capabilities: {r}"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    send = send_raw

    def read_line(self, timeout=60):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply line; have {self.buf[:200]!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                data = b""
            if not data:
                raise EOFError(f"connection closed; have {self.buf[:200]!r}")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_event(self, timeout=60):
        """Next event (replies in between are an error)."""
        line = self.read_line(timeout).strip()
        msg = json.loads(line)
        assert "event" in msg, f"expected an event, got {msg}"
        return msg

    def read_msg(self, timeout=60):
        """Next reply (events are skipped)."""
        while True:
            line = self.read_line(timeout).strip()
            if not line:
                continue
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    def request(self, execute, arguments=None, timeout=120, id_=None):
        """Send one request, return the whole reply object."""
        if id_ is None:
            self.next_id += 1
            id_ = f"t{self.next_id}"
        req = {"execute": execute, "id": id_}
        if arguments is not None:
            req["arguments"] = arguments
        self.send_raw(json.dumps(req).encode() + b"\n")
        reply = self.read_msg(timeout)
        assert reply.get("id") == id_, f"reply id {reply.get('id')!r} != {id_!r}: {reply}"
        return reply

    def cmd(self, execute, _timeout=120, **arguments):
        r = self.request(execute, arguments or None, timeout=_timeout)
        if "error" in r:
            raise CtlError(r["error"])
        assert "return" in r, r
        return r["return"]


def qmp_socket(path, timeout=30):
    """A bare socket with the QMP handshake done, for tests that then write
    and read (or do not read) on their own."""
    c = Conn(path, timeout)
    assert not c.buf, f"unread bytes after the handshake: {c.buf[:200]!r}"
    return c.sock


# ---- the supervisor ------------------------------------------------------

def vm_config(name, tmp, memory_mib=64, restart="on-failure", seed=7, fill_mib=16, **extra):
    c = {
        "name": name,
        "memory_mib": memory_mib,
        "vcpus": 1,
        "accel": "tcg",
        "kernel": GUEST,
        "cmdline": f"fill_mib={fill_mib} seed={seed}",
        "serial": os.path.join(str(tmp), f"{name}.serial"),
        "restart": restart,
    }
    c.update(extra)
    return c


class Supervisor:
    """`luoinit --host` in tmp/state with its log in tmp/luoinit.log.

    Every QEMU it reports or that is seen as its child is remembered (pid and
    start time), and stop() kills whatever of them survives."""

    def __init__(self, tmp, config=None, config_path=None, log_level="debug", extra_args=(), wrap=()):
        self.tmp = str(tmp)
        self.state_dir = os.path.join(self.tmp, "state")
        self.sock_path = os.path.join(self.state_dir, "luoinit.sock")
        self.log_path = os.path.join(self.tmp, "luoinit.log")
        if config_path is None:
            config_path = os.path.join(self.tmp, "vmconf.json")
            with open(config_path, "w") as f:
                json.dump(config, f, indent=1)
        self.config_path = config_path
        self.config = config
        self.seen = {}  # pid -> starttime of QEMUs we caused
        self.exit_code = None
        self._log = open(self.log_path, "ab")
        # wrap: e.g. ["ip", "netns", "exec", NS], which execs luoinit (same pid).
        self.proc = subprocess.Popen(
            [*wrap, LUOINIT, "--host", "--state-dir", self.state_dir, "--config", config_path,
             "--log-level", log_level, *extra_args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid
        try:
            wait_for(lambda: self._connectable(), START_TIMEOUT, "the control socket")
        except BaseException:
            self.stop()
            raise

    def _connectable(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"luoinit exited with {self.proc.returncode}:\n{self.log()}")
        if not os.path.exists(self.sock_path):
            return False
        with Conn(self.sock_path, timeout=5):
            return True

    def log(self):
        return read_text(self.log_path)

    def serial_path(self, name):
        for v in (self.config or {}).get("vms", []) if isinstance(self.config, dict) else []:
            if isinstance(v, dict) and v.get("name") == name and isinstance(v.get("serial"), str):
                return v["serial"]
        return os.path.join(self.tmp, f"{name}.serial")

    def serial(self, name):
        return read_text(self.serial_path(name))

    def conn(self, timeout=30):
        return Conn(self.sock_path, timeout)

    def cmd(self, execute, _timeout=120, **arguments):
        with self.conn() as c:
            r = c.cmd(execute, _timeout=_timeout, **arguments)
        self._remember_from(r)
        return r

    def request(self, execute, arguments=None, timeout=120, id_=None):
        with self.conn() as c:
            return c.request(execute, arguments, timeout=timeout, id_=id_)

    def _remember(self, pid):
        st = proc_stat(pid)
        if st and pid not in self.seen:
            self.seen[pid] = st[2]

    def _remember_from(self, r):
        if not isinstance(r, dict):
            return
        vms = r.get("vms") if "vms" in r else [r] if "state" in r and "name" in r else []
        for v in vms or []:
            if isinstance(v, dict) and v.get("pid"):
                self._remember(v["pid"])

    def remember_children(self):
        if self.proc.poll() is None:
            for p in descendants(self.pid):
                self._remember(p)

    def status(self):
        self.remember_children()
        return self.cmd("status")

    def vm(self, name):
        for v in self.status()["vms"]:
            if v["name"] == name:
                return v
        raise KeyError(name)

    def ctl(self, *args, timeout=120):
        """`luoinit ctl --socket S ARGS...` -> CompletedProcess."""
        r = subprocess.run([LUOINIT, "ctl", "--socket", self.sock_path, *args],
                           capture_output=True, text=True, timeout=timeout)
        return r

    # --- waiting on the guest ---

    def wait_running(self, name, timeout=START_TIMEOUT, not_pid=None):
        def ok():
            v = self.vm(name)
            if v["state"] == "running" and v["pid"] and v["pid"] != not_pid and alive(v["pid"]):
                return v
            return None
        return wait_for(ok, timeout, f"{name} running" + (f" with a pid other than {not_pid}" if not_pid else ""))

    def wait_beats_after(self, name, offset, count=3, timeout=BEAT_TIMEOUT):
        """Wait until the serial log holds `count` beats past byte `offset`; return them."""
        def ok():
            b = beats(self.serial(name)[offset:])
            return b if len(b) >= count else None
        return wait_for(ok, timeout, f"{count} heartbeats of {name} after byte {offset}")

    def serial_len(self, name):
        return len(self.serial(name))

    # --- the end ---

    def stop(self, timeout=60, graceful=True):
        """SIGTERM, wait, SIGKILL; then kill any QEMU of ours still alive."""
        self.remember_children()
        if self.proc.poll() is None and graceful:
            # poweroff timeout=0: the heartbeat guest ignores ACPI anyway.
            try:
                with Conn(self.sock_path, timeout=10) as c:
                    c.request("poweroff", {"timeout": 0}, timeout=30)
                self.exit_code = self.proc.wait(timeout)
            except (OSError, EOFError, ValueError, AssertionError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.exit_code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.exit_code = self.proc.wait(30)
        else:
            self.exit_code = self.proc.returncode
        self.reap_leftovers()
        self._log.close()
        return self.exit_code

    def leftovers(self):
        """QEMUs we caused that are still alive (same pid and start time)."""
        out = []
        for pid, start in self.seen.items():
            st = proc_stat(pid)
            if st and st[2] == start and st[0] not in ("Z", "X"):
                out.append(pid)
        return out

    def reap_leftovers(self):
        left = self.leftovers()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


# ---- network namespaces (tests/host/test_network.py) ---------------------

def ip(*args, ns=None, check=True):
    """`ip [-n NS] ARGS...` -> stdout."""
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def links(ns):
    """{name: `ip -d -j link` entry} of the namespace's interfaces."""
    return {l["ifname"]: l for l in json.loads(ip("-d", "-j", "link", "show", ns=ns))}
