"""Guest networking on the board, across live updates: vm0's NIC is a tap on
br0, whose uplink eth0 is the outer QEMU's `-netdev dgram` to this test's
own ports (test_boot.Appliance picks free ones). This test is the other end
of that wire (tests/netwatch.py's frames):

- the beats arrive as broadcasts from vm0's MAC, counting up;
- an echo request to port 7 gets its answer;
- across two live updates the beats' counter continues (no reboot of the
  guest) and the echo answers again after each; the network blackout, from
  the last beat frame before to the first one after, is measured and
  printed beside luoinit's own blackout.
"""
import os
import sys
import threading
import time

import pytest

from test_boot import TOP
from test_update import UPDATE_TIMEOUT, boot, status, stop, vm0, wait_status

sys.path.insert(0, os.path.join(TOP, "tests"))
import netwatch  # noqa: E402

FRAME_TIMEOUT = 120


class Listener:
    """Every frame from the wire, stamped (monotonic), read by a thread, so
    that nothing is missed while the test waits on the appliance."""

    def __init__(self, wire):
        self.wire = wire
        self.frames = []
        self.cv = threading.Condition()
        self.done = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.done:
            f = self.wire.recv(0.2)
            if f is not None:
                with self.cv:
                    self.frames.append((time.monotonic(), f))
                    self.cv.notify_all()

    def wait(self, pred, timeout, what):
        """The first (time, frame) at index >= start for which pred holds."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for tf in self.frames:
                    if pred(tf):
                        return tf
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {what} within {timeout} s ({len(self.frames)} frames seen)")
                self.cv.wait(left)

    def beats(self, mac, since=0.0):
        """[(time, counter)] of mac's beats received after `since`."""
        with self.cv:
            out = []
            for t, f in self.frames:
                b = netwatch.beat_of(f)
                if t > since and b and b[0] == mac:
                    out.append((t, b[1]))
            return out

    def wait_beats(self, mac, n, since=0.0, timeout=FRAME_TIMEOUT):
        self.wait(lambda tf: len(self.beats(mac, since)) >= n, timeout, f"{n} beats of {mac.hex(':')}")
        return self.beats(mac, since)

    def echo(self, mac, payload, sport):
        """N of the guest's answer to payload sent to port 7 from sport."""
        t0 = time.monotonic()
        self.wire.send(netwatch.udp_frame(payload, netwatch.ECHO_PORT, sport, dmac=mac))
        _, f = self.wait(lambda tf: tf[0] > t0 and netwatch.echo_of(tf[1], sport) is not None,
                         FRAME_TIMEOUT, f"an echo answer to {payload!r}")
        gmac, n, got = netwatch.echo_of(f, sport)
        assert (gmac, got) == (mac, payload), (gmac, got)
        return n

    def rarps(self, mac, since):
        """QEMU's announcements (RARP, ethertype 0x8035) from mac after since."""
        with self.cv:
            return [t for t, f in self.frames if t > since and f[12:14] == b"\x80\x35" and f[6:12] == mac]

    def close(self):
        self.done = True
        self.t.join(5)
        self.wire.close()


@pytest.fixture(scope="module")
def net():
    a = boot()
    lst = Listener(netwatch.Dgram(a.net_port, a.net_peer_port))
    try:
        yield a, lst
    finally:
        lst.close()
        stop(a)


def guest_mac(st):
    return bytes.fromhex(vm0(st)["nics"][0]["mac"].replace(":", ""))


def test_network_in_status(net):
    a, _ = net
    st = status(a)
    assert st["network"] == {"bridges": [{"name": "br0", "uplink": "eth0", "error": None}]}, st["network"]
    nics = vm0(st)["nics"]
    assert len(nics) == 1, nics
    n = nics[0]
    assert (n["tap"], n["bridge"], n["model"], n["error"]) == ("lu-vm0-0", "br0", "virtio-net-pci", None), n
    # The inner VMs run under TCG here: no vhost-net for them.
    assert vm0(st)["accel"] == "tcg" and n["vhost"] is False, vm0(st)
    with open(a.net_ports) as f:
        assert f.read() == f"BOARD_NET_PORT={a.net_port}\nBOARD_NET_PEER_PORT={a.net_peer_port}\n"


def test_beats_arrive_over_the_uplink(net):
    a, lst = net
    mac = guest_mac(status(a))
    b = lst.wait_beats(mac, 5)
    c = [n for _, n in b]
    assert c == list(range(c[0], c[0] + len(c))), c


def test_echo_is_answered(net):
    a, lst = net
    mac = guest_mac(status(a))
    last = lst.wait_beats(mac, 1)[-1][1]
    assert lst.echo(mac, b"hello from the build host", 4321) >= last


@pytest.mark.parametrize("round_", [1, 2])
def test_live_update_keeps_the_network(net, round_):
    """A live update: the counter goes on over the wire, QEMU announces the
    guest's MAC again, the echo answers; the network blackout is printed."""
    a, lst = net
    before = status(a)
    mac = guest_mac(before)
    t_update = time.monotonic()
    last_t, last_n = lst.wait_beats(mac, 1, since=t_update - 5)[-1]
    rep = a.ctl("update", timeout=120)
    assert rep.get("vms") == 1, rep
    st = wait_status(a, UPDATE_TIMEOUT, lambda s: s.get("boot_id") != before["boot_id"]
                     and vm0(s) and vm0(s).get("state") == "running" and vm0(s).get("last_update"))
    assert guest_mac(st) == mac and vm0(st)["nics"][0]["tap"] == "lu-vm0-0", vm0(st)["nics"]
    assert st["network"]["bridges"][0]["error"] is None, st["network"]

    # The last beat frame before the blackout, the first after it: the one
    # gap in the stream far longer than the guest's beat period.
    beats = lst.wait_beats(mac, 3, since=last_t - 1e-6)
    gaps = [(beats[i + 1][0] - beats[i][0], i) for i in range(len(beats) - 1)]
    gap, i = max(gaps)
    (t0, n0), (t1, n1) = beats[i], beats[i + 1]
    assert n0 >= last_n and n1 > n0 and n1 <= n0 + 3, (n0, n1)  # continued, not rebooted
    counters = [n for _, n in beats[i + 1:]]
    assert counters == list(range(n1, n1 + len(counters))), counters
    lu = vm0(st)["last_update"]
    print(f"\nupdate {round_} ({lu['mode']}): network blackout {gap * 1000:.0f} ms "
          f"(beat {n0} last before, beat {n1} first after); luoinit's blackout {lu['blackout_ms']:.0f} ms")
    assert gap * 1000 >= lu["blackout_ms"] * 0.5, (gap, lu)
    # QEMU announced the guest after the restore (RARP), so bridges learn it.
    assert lst.rarps(mac, t0), "no RARP announcement from the restored guest"
    assert lst.echo(mac, f"after update {round_}".encode(), 4321 + round_) >= n1
