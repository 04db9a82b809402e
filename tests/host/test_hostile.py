"""Hostile and careless control clients against `luoinit --host` with a beating
VM (design.md §4): oversized and binary input, deep nesting, wrong argument
types, unknown VM names, half requests, 64 clients and one too many, clients
that vanish mid-reply or never read, and a non-root peer.

After each case the supervisor must still answer status and the guest's
heartbeat counter must keep increasing. Every bad request gets an error reply
(or the connection is closed).
"""
import fcntl
import json
import os
import random
import signal
import socket
import struct
import termios
import threading
import time

import pytest

from hardening_util import (Conn, Supervisor, expect_error_or_close, heartbeat_vm,
                            qmp_socket, wait_for)
from helpers import fd_links
from rtt import Baseline


@pytest.fixture(scope="module")
def sup():
    s = Supervisor(vms=lambda d: [heartbeat_vm("hb", d)], tag="luo-hostile")
    try:
        s.wait_socket()
        s.wait_running("hb")
        wait_for(lambda: s.beat("hb"), 60, "the first heartbeat", interval=0.2)
        yield s
    finally:
        code = s.stop()
        print(f"luoinit exit code {code}; log tail:\n{s.log()[-2000:]}")
        s.cleanup_dir()


def status_rtt(sup, timeout=30):
    t0 = time.monotonic()
    with sup.conn(timeout) as c:
        c.cmd("status", _timeout=timeout)
    return time.monotonic() - t0


def quiet(sup):
    """Status round trips with no misbehaving client: what the others are held to."""
    return Baseline(lambda: status_rtt(sup))


def unread(conn):
    """Bytes conn sent that the server has not read yet (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(conn.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def wait_read(conns, what):
    """Wait until the server has read everything the clients sent."""
    wait_for(lambda: all(unread(c) == 0 for c in conns), 10, f"the server to read {what}")


def fd_count(sup):
    """The supervisor's open fds with no client connected: the least of a
    few looks (a client that just left may not have been closed yet)."""
    n = []
    for _ in range(5):
        n.append(len(fd_links(sup.pid)))
        time.sleep(0.02)
    return min(n)


# ---- oversized, binary and deep input ----------------------------------------

def test_one_mib_line_without_newline(sup):
    with sup.conn() as c:
        c.send(b"a" * (1 << 20))
        err = expect_error_or_close(c)
        if err is not None:
            assert "longer" in err["desc"] or "long" in err["desc"], err
            # the rest of the line is discarded; the next line is a fresh request
            c.send(b"\n")
            r = c.request("status", id_="after-long")
            assert "return" in r, r
    sup.assert_healthy(what="after a 1 MiB line without newline")


def test_one_mib_line_then_request_on_same_connection(sup):
    with sup.conn() as c:
        c.send(b'{"execute": "status", "id": "' + b"x" * (1 << 20) + b'"}\n'
               + b'{"execute": "status", "id": "next"}\n')
        err = expect_error_or_close(c)
        if err is not None:
            msg = c.read_msg()
            assert msg.get("id") == "next" and "return" in msg, \
                f"after an oversized line, expected the next request's reply, got {msg}"
    sup.assert_healthy(what="after a 1 MiB line with newline")


def _nonblank_lines(data):
    return [l for l in data.split(b"\n") if l.strip(b" \t\r")]


def test_binary_junk(sup):
    rng = random.Random(20261126)
    junk = bytes(rng.getrandbits(8) for _ in range(16384))
    lines = _nonblank_lines(junk)
    assert all(len(l) < 65536 for l in lines)
    with sup.conn() as c:
        c.send(junk + b"\n")
        c.send(b'{"execute": "status", "id": "after-junk"}\n')
        errors = 0
        while True:
            try:
                msg = c.read_msg(30)
            except EOFError:
                msg = None
                break
            if msg.get("id") == "after-junk":
                assert "return" in msg, msg
                break
            assert "error" in msg, f"junk got a non-error reply: {msg}"
            errors += 1
        if msg is not None:
            assert errors == len(lines), \
                f"{len(lines)} junk lines got {errors} error replies (each must get one)"
    # junk without a final newline, then EOF: the last partial line counts too
    with sup.conn() as c:
        c.send(b"\x00\xff\xfe{{{\x01\x02garbage")
        c.sock.shutdown(socket.SHUT_WR)
        err = expect_error_or_close(c)
        if err is not None:
            with pytest.raises(EOFError):
                c.read_msg(10)
    sup.assert_healthy(what="after binary junk")


@pytest.mark.parametrize("payload", [
    pytest.param(b"[" * 100000 + b"]" * 100000, id="array-100k-deep"),
    pytest.param(b'{"execute": "status", "arguments": ' + b'{"a": ' * 100000 + b"1" + b"}" * 100000 + b"}",
                 id="object-100k-deep"),
    pytest.param(b"[" * 60000, id="unterminated-60k-deep"),
    pytest.param(b'{"execute": "status", "id": ' + b"[" * 30000 + b"]" * 30000 + b"}",
                 id="id-30k-deep-within-line-limit"),
    pytest.param(b'{"execute": "status", "arguments": ' + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}",
                 id="arguments-10k-deep-within-line-limit"),
])
def test_deep_nesting(sup, payload):
    with sup.conn() as c:
        c.send(payload + b"\n")
        err = expect_error_or_close(c)
        if err is not None:
            r = c.request("status", id_="after-deep")
            assert "return" in r, r
    sup.assert_healthy(what="after deeply nested JSON")


# ---- wrong types, unknown commands, unknown VMs ------------------------------

WRONG = [
    # (raw line, echoes id)
    ('{"execute": 5, "id": "w1"}', "w1"),
    ('{"execute": null, "id": "w2"}', "w2"),
    ('{"execute": ["status"], "id": "w3"}', "w3"),
    ('{"id": "w4"}', "w4"),
    ('{"execute": "", "id": "w5"}', "w5"),
    ('{"execute": "no-such-command", "id": "w6"}', "w6"),
    ('{"execute": "status", "arguments": [], "id": "w7"}', "w7"),
    ('{"execute": "status", "arguments": "x", "id": "w8"}', "w8"),
    ('{"execute": "vm-start", "arguments": {"name": 5}, "id": "w9"}', "w9"),
    ('{"execute": "vm-start", "id": "w10"}', "w10"),
    ('{"execute": "vm-stop", "arguments": {"name": ["hb"]}, "id": "w11"}', "w11"),
    ('{"execute": "vm-stop", "arguments": {"name": {"n": "hb"}}, "id": "w12"}', "w12"),
    ('{"execute": "vm-stop", "arguments": {"name": "hb", "timeout": "soon"}, "id": "w13"}', "w13"),
    ('{"execute": "vm-stop", "arguments": {"name": "hb", "timeout": -1}, "id": "w14"}', "w14"),
    ('{"execute": "vm-stop", "arguments": {"name": "hb", "timeout": 1.5}, "id": "w15"}', "w15"),
    ('{"execute": "vm-stop", "arguments": {"name": "hb", "timeout": 99999999999}, "id": "w16"}', "w16"),
    ('{"execute": "vm-stop", "arguments": {"name": "hb", "timeout": true}, "id": "w17"}', "w17"),
    ('{"execute": "vm-restart", "arguments": {"name": true}, "id": "w18"}', "w18"),
    ('{"execute": "vm-restart", "arguments": {"name": "hb", "timeout": [1]}, "id": "w19"}', "w19"),
    ('{"execute": "vm-log", "arguments": {"name": "hb", "bytes": "100"}, "id": "w20"}', "w20"),
    ('{"execute": "vm-log", "arguments": {"name": "hb", "bytes": -1}, "id": "w21"}', "w21"),
    ('{"execute": "vm-log", "arguments": {"name": "hb", "bytes": 1.5}, "id": "w22"}', "w22"),
    ('{"execute": "vm-log", "arguments": {"name": "hb", "bytes": [1]}, "id": "w23"}', "w23"),
    ('{"execute": "vm-log", "arguments": {"name": "hb", "bogus": 1}, "id": "w24"}', "w24"),
    ('{"execute": "vmm-update", "arguments": {"name": 7}, "id": "w25"}', "w25"),
    ('{"execute": "update", "arguments": {"kernel": 5}, "id": "w26"}', "w26"),
    ('{"execute": "update", "arguments": {"cmdline": ["a"]}, "id": "w27"}', "w27"),
    ('{"execute": "poweroff", "arguments": {"timeout": "now"}, "id": "w28"}', "w28"),
    ('{"execute": "poweroff", "arguments": {"timeout": -5}, "id": "w29"}', "w29"),
    ('{"execute": "poweroff", "arguments": {"force": true}, "id": "w30"}', "w30"),
    ('{"execute": "reboot", "arguments": {"timeout": [1]}, "id": "w31"}', "w31"),
    ('{"execute": "reboot", "arguments": "now", "id": "w32"}', "w32"),
    ('{"execute": "status", "arguments": {"name": 1}, "id": "w33"}', None),  # tolerated: see TOLERANT
    ("[]", None),
    ('"status"', None),
    ("null", None),
    ("42", None),
    ("true", None),
    ('{"execute": "status",}', None),
    ("{'execute': 'status'}", None),
    ('{"execute": "st\\u0000atus", "id": "w34"}', "w34"),
    ('{"execute": "status\\u0000", "id": "w35"}', "w35"),
    ('{"execute": "\\ud800", "id": "w36"}', "w36"),
    ('{"execute": "status", "id": "\\ud800"}', None),  # tolerated: see TOLERANT
    (b'{"execute": "st\xffatus", "id": "w37"}', None),  # invalid UTF-8 in the request
]


# Requests that are odd rather than wrong: a return is tolerated, but the
# reply must still be strict JSON (a lone surrogate id may come back as U+FFFD).
TOLERANT = {b'{"execute": "status", "arguments": {"name": 1}, "id": "w33"}',
            b'{"execute": "status", "id": "\\ud800"}'}


@pytest.mark.parametrize("line,id_", WRONG, ids=[f"w{i}" for i in range(len(WRONG))])
def test_wrong_requests_get_errors(sup, line, id_):
    if isinstance(line, str):
        line = line.encode()
    with sup.conn() as c:
        c.send(line + b"\n")
        try:
            msg = c.read_msg(30)
        except EOFError:
            msg = None
        if msg is not None:
            if line in TOLERANT:
                pass
            else:
                assert "error" in msg, f"{line[:120]!r} got {msg}"
                if id_ is not None:
                    assert msg.get("id") == id_, f"error does not echo the id: {msg}"
            r = c.request("status", id_="after-wrong")
            assert "return" in r, r
    sup.assert_healthy(what=f"after {line[:60]!r}")


def test_id_of_any_json_type_is_echoed(sup):
    with sup.conn() as c:
        for id_ in [0, -1, 1.5, "x", [1, [2, {"a": None}]], {"k": "v"}, True, "é€😀"]:
            r = c.request("status", id_=id_)
            assert "return" in r and r.get("id") == id_, r


BAD_NAMES = ["nope", "", "HB", "hb ", " hb", "../hb", "hb/..", "a" * 10000, "é" * 3000,
             "😀" * 2000, "\n", "hb\n"]


@pytest.mark.parametrize("cmd", ["vm-start", "vm-stop", "vm-restart", "vmm-update", "vm-log"])
def test_unknown_vm_names(sup, cmd):
    with sup.conn() as c:
        for name in BAD_NAMES:
            r = c.request(cmd, {"name": name})
            assert "error" in r, f"{cmd} {name[:40]!r}: {r}"
    sup.assert_healthy(what=f"{cmd} with unknown names")


def test_vm_name_with_nul_is_not_the_vm(sup):
    """'hb\\u0000x' is not 'hb': a name cut at the NUL would let a request act
    on a VM it did not name."""
    with sup.conn() as c:
        r = c.request("vm-log", {"name": "hb\u0000x", "bytes": 100})
        assert "error" in r, f"vm-log of 'hb\\u0000x' answered with hb's log: {r}"
        r = c.request("vm-start", {"name": "hb\u0000"})
        assert "error" in r, r
    sup.assert_healthy(what="after NUL names")


def test_lone_surrogate_name_gives_valid_utf8_error(sup):
    with sup.conn() as c:
        c.send(b'{"execute": "vm-log", "arguments": {"name": "\\ud800\\udfff\\ud800"}, "id": "s"}\n')
        msg = c.read_msg()  # strict UTF-8 decode inside
        assert "error" in msg, msg
    sup.assert_healthy(what="after a surrogate name")


# ---- slow, many, vanishing clients -------------------------------------------

def test_half_request_does_not_block_others(sup):
    base = quiet(sup)
    with sup.conn() as a:
        a.send(b'{"execute": "status", "id": "ha')
        wait_read([a], "the half request")
        rtts = [status_rtt(sup) for _ in range(5)]
        base.check(rtts, "while a half request is held")
        # several half requests at once
        holders = [sup.conn() for _ in range(8)]
        try:
            for h in holders:
                h.send(b'{"execute": "vm-log", "argu')
            wait_read(holders, "8 more half requests")
            rtts = [status_rtt(sup) for _ in range(5)]
            base.check(rtts, "with 9 half requests held")
        finally:
            for h in holders:
                h.close()
        # the first client finishes its request later and is answered
        a.send(b'lf"}\n')
        msg = a.read_msg()
        assert msg.get("id") == "half" and "return" in msg, msg
    # half a request, then the write side closed: an error (or close), no hang
    with sup.conn() as c:
        c.send(b'{"execute": "status", "id": "h')
        c.sock.shutdown(socket.SHUT_WR)
        err = expect_error_or_close(c, timeout=10)
        if err is not None:
            with pytest.raises(EOFError):
                c.read_msg(10)
    sup.assert_healthy(what="after half requests")


def test_byte_at_a_time_client(sup):
    req = b'{"execute": "status", "id": "slow"}\n'
    base = quiet(sup)
    with sup.conn() as c:
        for i in range(len(req)):
            c.send(req[i:i + 1])
            if i % 8 == 0:
                base.check(status_rtt(sup), f"after byte {i} of a byte-at-a-time request")
            time.sleep(0.01)
        msg = c.read_msg()
        assert msg.get("id") == "slow" and "return" in msg, msg
    sup.assert_healthy(what="after a byte-at-a-time client")


def _open_clients(sup, n):
    conns = [None] * n
    errors = []
    replies = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        try:
            c = Conn(sup.sock_path, timeout=60)
            conns[i] = c
            barrier.wait(60)
            replies[i] = c.request("status", id_=f"c{i}", timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))
            try:
                barrier.abort()
            except Exception:  # noqa: BLE001
                pass

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return conns, replies, errors


def test_64_clients_and_one_too_many(sup):
    base = quiet(sup)
    fds = fd_count(sup)
    conns, replies, errors = _open_clients(sup, 64)
    try:
        assert not errors, f"of 64 concurrent clients, these failed: {errors[:10]}"
        assert all(r and "return" in r for r in replies), [r for r in replies if not r or "return" not in r][:3]
        # the 65th: an error line or a closed connection, never service
        try:
            extra = Conn(sup.sock_path, timeout=10, negotiate=False)
        except OSError:
            extra = None  # refused at connect: fine too
        if extra is not None:
            with extra:
                try:
                    extra.send(b'{"execute": "status", "id": "c65"}\n')
                except OSError:
                    pass
                try:
                    msg = extra.read_msg(15)
                except (EOFError, ConnectionResetError):
                    msg = None
                except TimeoutError:
                    pytest.fail("the 65th client got neither an error nor a close within 15 s")
                if msg is not None:
                    assert "error" in msg, f"the 65th client was served: {msg}"
                    with pytest.raises(EOFError):
                        extra.read_msg(10)
        # the 64 are unaffected
        for i, c in enumerate(conns):
            r = c.request("status", id_=f"again{i}")
            assert "return" in r, r
    finally:
        for c in conns:
            if c:
                c.close()
    # the slots are given back: 64 new clients are all served again
    wait_for(lambda: len(fd_links(sup.pid)) <= fds, 10, f"the supervisor back to {fds} fds (clients closed)")
    base.check(status_rtt(sup), "after 65 clients left")
    conns, replies, errors = _open_clients(sup, 64)
    try:
        assert not errors, f"second round of 64 clients (slots leaked?): {errors[:10]}"
        assert all(r and "return" in r for r in replies)
    finally:
        for c in conns:
            if c:
                c.close()
    wait_for(lambda: len(fd_links(sup.pid)) <= fds, 10, f"the supervisor back to {fds} fds (clients closed)")
    sup.assert_healthy(what="after 64 + 1 clients")


def test_disconnect_mid_reply(sup):
    big = b'{"execute": "vm-log", "arguments": {"name": "hb", "bytes": 65536}}\n'
    st = b'{"execute": "status"}\n'
    base = quiet(sup)
    for i in range(60):
        s = qmp_socket(sup.sock_path, timeout=10)
        if i % 2:
            # abortive close: RST instead of FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if i % 3 == 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.sendall(big * (1 + i % 5) + st * (i % 4))
        if i % 7 == 0:
            s.recv(10)  # read a few bytes of the reply, then vanish
        s.close()
    base.check(status_rtt(sup), "after 60 clients vanished mid-reply")
    sup.assert_healthy(what="after clients vanished mid-reply")


def test_client_that_never_reads(sup):
    """A client pipelines requests and never reads a reply: it must not stall
    the loop or grow the server without bound; others are served meanwhile."""
    base = quiet(sup)
    s = qmp_socket(sup.sock_path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    line = b'{"execute": "vm-log", "arguments": {"name": "hb", "bytes": 65536}}\n'
    sent = 0
    closed_by_server = False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and sent < 8 * 1024 * 1024:
            try:
                sent += s.send(line * 64)
            except BlockingIOError:
                time.sleep(0.05)
                base.check(status_rtt(sup), "while a client does not read its replies")
            except (BrokenPipeError, ConnectionResetError):
                closed_by_server = True
                break
        rtts = [status_rtt(sup) for _ in range(3)]
        base.check(rtts, "after a client stopped reading")
    finally:
        s.close()
    print(f"non-reading client: sent {sent} bytes, closed by the server: {closed_by_server}")
    sup.assert_healthy(what="after a client that never reads")


# ---- a non-root peer ---------------------------------------------------------

def _as_nobody(path, timeout=20):
    """Fork a child that drops to uid/gid 65534 and tries status on path.
    Returns what it saw: {"connect": "ok"|errno name, "reply": line|None|"EOF"}."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on
        out = {}
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(path)
                out["connect"] = "ok"
            except OSError as e:
                out["connect"] = f"errno {e.errno}"
            if out["connect"] == "ok":
                try:
                    s.sendall(b'{"execute": "status", "id": "nobody"}\n')
                except OSError as e:
                    out["send"] = f"errno {e.errno}"
                buf = b""
                try:
                    while b"\n" not in buf:
                        d = s.recv(65536)
                        if not d:
                            break
                        buf += d
                    out["reply"] = buf.decode("utf-8", "replace") if buf else "EOF"
                except socket.timeout:
                    out["reply"] = "TIMEOUT"
                except OSError as e:
                    out["reply"] = f"errno {e.errno}"
        except BaseException as e:  # noqa: BLE001
            out["child_error"] = repr(e)
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    done = 0  # the child's pid once reaped: never waited for twice (ECHILD)
    try:
        while True:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            if not done:
                done, _ = os.waitpid(pid, os.WNOHANG)
            chunk = b""
            import select
            rl, _, _ = select.select([r], [], [], 0.1)
            if rl:
                chunk = os.read(r, 65536)
                data += chunk
            if done and not chunk and not rl:
                break
            if done and rl and not chunk:
                break
    finally:
        os.close(r)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return json.loads(data or b"{}")


def test_non_root_peer_refused(sup):
    # as configured (0700 dir, 0600 socket): nobody cannot even connect
    seen = _as_nobody(sup.sock_path)
    assert "child_error" not in seen, seen
    assert seen.get("connect") != "ok" or '"return"' not in (seen.get("reply") or ""), \
        f"uid 65534 was served: {seen}"
    # with the file permissions loosened by mistake, SO_PEERCRED must still refuse
    modes = [(p, os.stat(p).st_mode & 0o7777) for p in (sup.dir, sup.state_dir, sup.sock_path)]
    try:
        os.chmod(sup.dir, 0o755)
        os.chmod(sup.state_dir, 0o755)
        os.chmod(sup.sock_path, 0o666)
        seen = _as_nobody(sup.sock_path)
    finally:
        for p, m in modes:
            os.chmod(p, m)
    assert "child_error" not in seen, seen
    assert seen.get("connect") == "ok", f"expected the loosened socket to accept the connect: {seen}"
    reply = seen.get("reply")
    assert reply is not None and reply != "TIMEOUT", f"uid 65534 got neither an error nor a close: {seen}"
    assert '"return"' not in reply, f"uid 65534 was served: {seen}"
    if reply not in ("EOF",) and not reply.startswith("errno"):
        msg = json.loads(reply.split("\n")[0])
        assert "error" in msg, msg
    sup.assert_healthy(what="after a non-root peer")
