"""Boot the appliance (make start, under TCG here) on a private copy of
state.img and check it through the management port with `luoinit ctl`:
luoinit is PID 1 on the board kernel, modules came through libkmod, /state was
found by label, vm0 runs and beats; then poweroff leaves a clean filesystem.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(TOP, os.environ.get("B", "build"))
BOARD = os.environ.get("BOARD", "qemu-x86_64")
BB = os.path.join(B, BOARD)
LUOINIT = os.path.join(B, "luoinit")
BOOT_TIMEOUT = int(os.environ.get("LUOINIT_BOOT_TIMEOUT", "240"))
# Whole lines only: the guest may be in the middle of one when the log is read.
HB = re.compile(r"heartbeat (\d+) pattern=(\w+)\n")


def clean_env():
    # Not the parent make's jobserver: this make is a separate run.
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def free_udp_ports(n):
    """n UDP ports on 127.0.0.1 that are free now (held together while picked,
    so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Appliance:
    def __init__(self, d):
        self.dir = d
        self.state = os.path.join(d, "state.img")
        self.sock = os.path.join(d, "mgmt.sock")
        self.console = os.path.join(d, "console.log")
        self.pidfile = os.path.join(d, "qemu.pid")
        # The uplink's -netdev dgram ports: each appliance its own, so that
        # one booted after another (or beside `make run`) never collides.
        self.net_port, self.net_peer_port = free_udp_ports(2)
        self.net_ports = os.path.join(d, "net-ports")
        self.esp = None  # BOARD_BOOT=direct; a path: UEFI from this boot disk

    def make_vars(self):
        """The make variables that point `make start`/`stop` at this copy."""
        boot = ["BOARD_BOOT=uefi", f"ESP_IMG={self.esp}"] if self.esp else ["BOARD_BOOT=direct"]
        return boot + [f"STATE_IMG={self.state}", f"MGMT_SOCK={self.sock}", f"CONSOLE_LOG={self.console}",
                f"QEMU_PIDFILE={self.pidfile}", f"BOARD_NET_PORT={self.net_port}",
                f"BOARD_NET_PEER_PORT={self.net_peer_port}", f"NET_PORTS_FILE={self.net_ports}"]

    def make(self, target, timeout=600, *extra):
        """make TARGET for this copy; in its own process group, so that a
        timeout kills everything it started (QEMU daemonizes out of it)."""
        with tempfile.TemporaryFile("w+") as out:
            p = subprocess.Popen(
                ["make", "--no-print-directory", "-s", target, *self.make_vars(), *extra],
                cwd=TOP, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = -1
            out.seek(0)
            text = out.read()
        return subprocess.CompletedProcess(p.args, rc, text, "")

    def ctl(self, *args, timeout=30):
        p = subprocess.run([LUOINIT, "ctl", "--socket", self.sock, *args],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"ctl {' '.join(args)}: rc={p.returncode} {p.stderr.strip()}")
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def running(self):
        try:
            with open(self.pidfile) as f:
                os.kill(int(f.read().strip()), 0)
            return True
        except (OSError, ValueError):
            return False

    def console_tail(self, n=4000):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


def new_appliance(prefix):
    """An Appliance in a fresh /tmp dir with its own copy of state.img
    (skips when the board is not built)."""
    for p in (LUOINIT, os.path.join(BB, "state.img"), os.path.join(BB, "bzImage"),
              os.path.join(BB, "initramfs.img")):
        if not os.path.exists(p):
            pytest.skip(f"{os.path.relpath(p, TOP)} not built (run make check-board)")
    a = Appliance(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    subprocess.run(["cp", "--sparse=always", os.path.join(BB, "state.img"), a.state], check=True)
    return a


@pytest.fixture(scope="module")
def app():
    a = new_appliance("luoinit-board-")
    d = a.dir
    p = a.make("start")
    assert p.returncode == 0, p.stdout + p.stderr
    # Wait for the control protocol to answer on the management port.
    deadline = time.monotonic() + BOOT_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if not a.running():
            pytest.fail("the appliance's QEMU exited during boot:\n" + a.console_tail())
        try:
            a.ctl("status", timeout=10)
            break
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            last = e
            time.sleep(2)
    else:
        a.make("stop", timeout=120)
        pytest.fail(f"no status within {BOOT_TIMEOUT}s ({last}):\n" + a.console_tail())
    yield a
    if a.running():
        a.make("stop", timeout=180)
    if a.running():  # make stop kills after its bound; be sure anyway
        with open(a.pidfile) as f:
            os.kill(int(f.read().strip()), 9)
    shutil.rmtree(d, ignore_errors=True)


def test_pid1_on_board_kernel(app):
    st = app.ctl("status")
    with open(os.path.join(BB, "kernel.release")) as f:
        rel = f.read().strip()
    assert st.get("pid1") is True, st
    assert st.get("kernel") == rel, st


def test_module_loaded_by_libkmod(app):
    st = app.ctl("status")
    assert "virtio_rng" in st.get("modules_loaded", []), st


def test_state_found_by_label(app):
    st = app.ctl("status")
    state = st.get("state")
    assert isinstance(state, dict), st
    assert state.get("mounted") is True, st
    assert str(state.get("device", "")).startswith("/dev/"), st


def beats(app):
    log = app.ctl("vm-log", "name=vm0", "bytes=4096").get("log", "")
    return [(int(n), ok) for n, ok in HB.findall(log)]


def test_vm0_running_and_beating(app):
    deadline = time.monotonic() + 120
    while True:
        st = app.ctl("status")
        vm = next((v for v in st.get("vms", []) if v.get("name") == "vm0"), None)
        b = beats(app) if vm and vm.get("state") == "running" else []
        if len(b) >= 2:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"vm0 not beating: {vm}\n{app.console_tail()}")
        time.sleep(2)
    first = b[-1][0]
    assert all(ok == "ok" for _, ok in b[-5:]), b[-5:]
    time.sleep(2)
    b2 = beats(app)
    assert b2, "no heartbeat lines"
    assert b2[-1][0] > first, (first, b2[-3:])
    assert b2[-1][1] == "ok"


def test_management_port_answers_every_request(app):
    """Clients one after another on the virtio-serial port: each gets its
    reply. (The guest can read a new host session's request before it sees
    that session open; that reply once got lost, one call in a hundred.)"""
    failures = []
    t0 = time.monotonic()
    for i in range(150):
        for args in (("status",), ("vm-log", "name=vm0", "bytes=16384")):
            p = subprocess.run([LUOINIT, "ctl", "--socket", app.sock, "--timeout", "5", *args],
                               capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                failures.append((i, args[0], p.stderr.strip()))
    print(f"300 requests in {time.monotonic() - t0:.1f} s")
    assert not failures, failures[:5]


def test_zz_poweroff_leaves_clean_state(app):
    p = app.make("stop", timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not app.running()
    fsck = subprocess.run(["e2fsck", "-fn", app.state], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
