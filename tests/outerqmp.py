"""The board's outer QEMU's own QMP monitor (qemu.sh: qmp.sock next to
mgmt.sock), for the board tests and the bench's tools; and QmpStream, the
line reader under it, which the host tests' own QMP client shares."""
import json
import socket
import time


class QmpStream:
    """A connected QMP socket read a message (one JSON line) at a time."""

    def __init__(self, sock, who):
        self.sock = sock
        self.who = who  # for the errors: whose QMP
        self.buf = b""

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message from {self.who}'s QMP")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"{self.who} closed its QMP connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


class OuterQMP(QmpStream):
    """The outer QEMU's QMP monitor: commands, and every event kept."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        super().__init__(sock, "the outer QEMU")
        self.events = []
        assert "QMP" in self._read(timeout)
        self.cmd("qmp_capabilities")

    def cmd(self, name, timeout=30, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._read(timeout)
            if "event" in m:
                self.events.append(m)
            elif "error" in m:
                raise RuntimeError(f"{name}: {m['error']}")
            elif "return" in m:
                return m["return"]

    def wait_event(self, name, timeout):
        """The first event called name (kept ones first); the events read on
        the way are kept."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name:
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                m = self._read(left)
            except (TimeoutError, socket.timeout, EOFError):
                return None
            if "event" in m:
                self.events.append(m)

    def drain(self):
        """Read what has come so far (not waiting)."""
        self.wait_event("-none-", 0.5)
        return [e["event"] for e in self.events]

    def close(self):
        self.sock.close()
