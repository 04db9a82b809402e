"""Firmware delivery (README, "Firmware images: delivery"): `luoinit ctl
image-push FILE` over the Unix socket into <state>/firmware/, status.firmware,
and what is refused or abandoned: a client killed halfway, an image larger
than the free space, a corrupted SHA-256; the retention keeps the newest
three. Images are synthetic bzImages (a setup header and a PE/COFF header),
one really signed with sbsign when it is installed."""
import base64
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

import helpers

EMPTY = {"version": 1, "vms": []}


def image(size, version="v1.2", pe=True, seed=0):
    """A bzImage-like file: 'MZ', 'HdrS' at 0x202, kernel_version pointing at a
    UTS string with '#VERSION', a PE32+ header with one section (what sbsign
    needs), padded to size with a pattern."""
    b = bytearray((bytes(range(256)) * (size // 256 + 1))[:size])
    b[0x40:0x400] = bytes(0x3c0)
    b[0:2] = b"MZ"
    b[0x1FE:0x200] = b"\x55\xaa"
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, 0x020F)
    struct.pack_into("<H", b, 0x20E, 0x300 - 0x200)
    uts = f"7.2.13 (luoinit@luoinit) #{version} SMP PREEMPT_DYNAMIC seed={seed}".encode() + b"\0"
    b[0x300:0x300 + len(uts)] = uts
    if pe:
        pe_off, opt_size = 0x40, 240
        struct.pack_into("<I", b, 0x3C, pe_off)
        b[pe_off:pe_off + 4] = b"PE\0\0"
        struct.pack_into("<HHIIIHH", b, pe_off + 4, 0x8664, 1, 0, 0, 0, opt_size, 0x0206)
        o = pe_off + 24
        text = size - 0x400
        struct.pack_into("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", b, o, 0x20b, 2, 0, text, 0, 0, 0x400, 0x400,
                         0, 0x200, 0x200, 0, 0, 0, 0, 0, 0, 0, 0x400 + text, 0x400, 0, 10, 0,
                         0, 0, 0, 0, 0, 16)
        struct.pack_into("<8sIIIIIIHHI", b, o + opt_size, b".text", text, 0x400, text, 0x400,
                         0, 0, 0, 0, 0x60000020)
    return bytes(b)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


def firmware(s):
    return s.status()["firmware"]


def fw_files(s):
    d = os.path.join(s.state_dir, "firmware")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def push(s, path, timeout=120):
    return s.ctl("image-push", path, timeout=timeout)


def test_push_appears_in_status(supervisors, tmpdir_short):
    s = supervisors(config=EMPTY)
    data = image(3 << 20, "v1.2")
    r = push(s, write(os.path.join(tmpdir_short, "a.efi"), data))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["version"] == "v1.2" and out["sha256"] == sha(data) and out["size"] == len(data)
    assert out["file"] == os.path.join(s.state_dir, "firmware", "v1.2.efi")
    assert out["signed"] is False and out["signed_by"] is None
    assert "100%" in r.stderr, r.stderr  # progress
    fw = firmware(s)
    assert fw["push"] is None and fw["keep"] == 3
    assert [(i["version"], i["sha256"], i["size"], i["signed_by"]) for i in fw["images"]] == \
        [("v1.2", sha(data), len(data), None)]
    assert "version" in fw["running"]
    with open(out["file"], "rb") as f:
        assert f.read() == data
    assert fw_files(s) == ["v1.2.efi"]
    # The same version again with other bytes: refused, the stored one stays.
    other = image(1 << 20, "v1.2", seed=1)
    r = push(s, write(os.path.join(tmpdir_short, "b.efi"), other))
    assert r.returncode == 1 and "already stored" in r.stderr, r.stderr
    assert fw_files(s) == ["v1.2.efi"]
    # Also in query-commands.
    names = {c["name"] for c in s.cmd("query-commands")}
    assert {"image-push-begin", "image-push-chunk", "image-push-end", "image-push-abort"} <= names


def test_abi_beside_the_image_goes_along(supervisors, tmpdir_short):
    """FILE.abi (make image writes it) is pushed with the image and stored as
    VERSION.efi.abi, where update reads the target's live-update ABI; a line
    that is not one is refused before anything is written."""
    s = supervisors(config=EMPTY)
    line = "kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13"
    path = write(os.path.join(tmpdir_short, "c.efi"), image(1 << 20, "v3"))
    with open(path + ".abi", "w") as f:
        f.write(line + "\n")
    r = push(s, path)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(s.state_dir, "firmware", "v3.efi.abi")) as f:
        assert f.read() == line + "\n"
    # An image without one gets none.
    r = push(s, write(os.path.join(tmpdir_short, "d.efi"), image(1 << 20, "v4")))
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(s.state_dir, "firmware", "v4.efi.abi"))
    # A bad line: refused at begin, no temporary file left.
    path = write(os.path.join(tmpdir_short, "e.efi"), image(1 << 20, "v5"))
    with open(path + ".abi", "w") as f:
        f.write("this is not an abi line\n")
    r = push(s, path)
    assert r.returncode == 1 and "abi: not a live-update ABI line" in r.stderr, r.stderr
    assert sorted(fw_files(s)) == ["v3.efi", "v3.efi.abi", "v4.efi"]


@pytest.mark.skipif(not shutil.which("sbsign") or not shutil.which("openssl"),
                    reason="sbsigntool/openssl not installed")
def test_signed_image(supervisors, tmpdir_short):
    s = supervisors(config=EMPTY)
    key, crt = os.path.join(tmpdir_short, "k.pem"), os.path.join(tmpdir_short, "c.pem")
    subprocess.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "1", "-subj", "/O=Throwaway/CN=luoinit test signer"],
                   check=True, capture_output=True)
    raw = write(os.path.join(tmpdir_short, "raw.efi"), image(1 << 20, "v2.0-signed"))
    signed = os.path.join(tmpdir_short, "signed.efi")
    subprocess.run(["sbsign", "--key", key, "--cert", crt, "--output", signed, raw], check=True,
                   capture_output=True)
    r = push(s, signed)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["signed"] is True and out["signed_by"] == "luoinit test signer", out
    [img] = firmware(s)["images"]
    assert img["signed_by"] == "luoinit test signer" and img["version"] == "v2.0-signed"
    with open(signed, "rb") as f:
        assert img["sha256"] == sha(f.read())


def test_cut_connection_leaves_nothing(supervisors, tmpdir_short):
    """A raw client that begins and sends half, then closes; then `luoinit
    ctl image-push` killed mid-push (stopped once the init has part of it):
    no file is left in firmware/, and the next push succeeds."""
    s = supervisors(config=EMPTY)
    data = image(1 << 20, "v3")
    c = s.conn()
    h = c.cmd("image-push-begin", size=len(data), sha256=sha(data))["handle"]
    for off in range(0, len(data) // 2, 32768):
        c.cmd("image-push-chunk", handle=h, offset=off,
              data=base64.b64encode(data[off:off + 32768]).decode())
    assert firmware(s)["push"]["received"] == len(data) // 2
    # One at a time: a second push is refused while this one runs.
    with s.conn() as c2:
        with pytest.raises(helpers.CtlError) as e:
            c2.cmd("image-push-begin", size=len(data), sha256=sha(data))
        assert "another push is in progress" in str(e.value)
        # Nor may another connection continue it.
        with pytest.raises(helpers.CtlError) as e:
            c2.cmd("image-push-chunk", handle=h, offset=len(data) // 2, data="AAAA")
        assert "another connection" in str(e.value)
    assert len(fw_files(s)) == 1  # the temporary file
    c.close()
    helpers.wait_for(lambda: firmware(s)["push"] is None, 10, "the push to be abandoned")
    assert fw_files(s) == []
    assert "its client disconnected" in s.log()

    big = write(os.path.join(tmpdir_short, "big.efi"), image(96 << 20, "v3.1"))
    p = subprocess.Popen([helpers.LUOINIT, "ctl", "--socket", s.sock_path, "image-push", big],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def midway():
            fw = firmware(s)
            if p.poll() is not None:
                raise AssertionError(f"the push ended before it could be cut: {p.communicate()}")
            return fw["push"] and fw["push"]["received"] > 0
        helpers.wait_for(midway, 60, "the push to start", interval=0.02)
        p.send_signal(signal.SIGSTOP)
        fw = firmware(s)
        assert fw["push"] and 0 < fw["push"]["received"] < fw["push"]["size"]
        p.kill()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    helpers.wait_for(lambda: firmware(s)["push"] is None, 10, "the push to be abandoned")
    assert fw_files(s) == []
    r = push(s, write(os.path.join(tmpdir_short, "ok.efi"), data))
    assert r.returncode == 0, r.stderr
    assert fw_files(s) == ["v3.efi"]


def test_corrupt_sha256_refused(supervisors, tmpdir_short):
    s = supervisors(config=EMPTY)
    data = image(256 << 10, "v4")
    bad = bytearray(data)
    bad[100000] ^= 1
    with s.conn() as c:
        h = c.cmd("image-push-begin", size=len(data), sha256=sha(data))["handle"]
        for off in range(0, len(bad), 32768):
            c.cmd("image-push-chunk", handle=h, offset=off,
                  data=base64.b64encode(bytes(bad[off:off + 32768])).decode())
        with pytest.raises(helpers.CtlError) as e:
            c.cmd("image-push-end", handle=h)
        assert "sha256 mismatch" in str(e.value) and "nothing kept" in str(e.value)
        # Bad chunks: named, nothing written, the push goes on.
        h = c.cmd("image-push-begin", size=len(data), sha256=sha(data))["handle"]
        for args, needle in (({"offset": 4, "data": "AAAA"}, "'offset' 4"),
                             ({"offset": 0, "data": "A*AA"}, "bad base64"),
                             ({"offset": 0, "data": "A" * 50000}, "per chunk"),
                             ({"offset": 0, "data": 5}, "'data' must be a string")):
            with pytest.raises(helpers.CtlError) as e:
                c.cmd("image-push-chunk", handle=h, **args)
            assert needle in str(e.value)
        with pytest.raises(helpers.CtlError) as e:
            c.cmd("image-push-chunk", handle=h + 1, offset=0, data="AAAA")
        assert "no push with handle" in str(e.value)
        c.cmd("image-push-abort", handle=h)
    assert fw_files(s) == []
    assert firmware(s)["images"] == []


def test_no_version_refused(supervisors, tmpdir_short):
    s = supervisors(config=EMPTY)
    data = bytearray(image(64 << 10, "v5"))
    data[0x300:0x340] = b"7.2.13 (luoinit@luoinit) SMP".ljust(0x40, b"\0")
    r = push(s, write(os.path.join(tmpdir_short, "nov.efi"), bytes(data)))
    assert r.returncode == 1 and "no '#VERSION' token" in r.stderr, r.stderr
    assert fw_files(s) == []


def test_too_big_for_free_space(supervisors, tmpdir_short):
    """firmware/ on a 32 MiB tmpfs: 16 MiB are kept free, so one 10 MiB
    image fits and a second is refused before a byte is written; removing
    the first (image-remove) makes room for it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    s = supervisors(config=EMPTY)
    fwdir = os.path.join(s.state_dir, "firmware")
    os.makedirs(fwdir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "luoinit-test", fwdir], check=True)
    try:
        r = push(s, write(os.path.join(tmpdir_short, "one.efi"), image(10 << 20, "v6")))
        assert r.returncode == 0, r.stderr
        two = write(os.path.join(tmpdir_short, "two.efi"), image(10 << 20, "v7"))
        r = push(s, two)
        assert r.returncode == 1, r.stderr
        assert "no space left on" in r.stderr and "MiB free, image is 10.0 MiB" in r.stderr, r.stderr
        assert "100%" not in r.stderr and "0%" not in r.stderr  # refused at begin
        assert os.listdir(fwdir) == ["v6.efi"]
        out = s.cmd("image-remove", version="v6")
        assert out == {"file": os.path.join(fwdir, "v6.efi"), "size": 10 << 20}, out
        r = push(s, two)
        assert r.returncode == 0, r.stderr
        assert os.listdir(fwdir) == ["v7.efi"]
    finally:
        subprocess.run(["umount", fwdir], check=False)


def test_image_remove(supervisors, tmpdir_short):
    """image-remove deletes a stored image and its ABI; never the running
    one; a missing image or a name that is no version is an error that
    says so, and nothing else is touched."""
    s = supervisors(config=EMPTY)
    path = write(os.path.join(tmpdir_short, "a.efi"), image(1 << 20, "old1"))
    with open(path + ".abi", "w") as f:
        f.write("kho=kho-v4 luo=luo-v5 memfd=memfd-v2 release=7.2.13\n")
    assert push(s, path).returncode == 0
    assert push(s, write(os.path.join(tmpdir_short, "b.efi"), image(1 << 20, "old2"))).returncode == 0
    assert fw_files(s) == ["old1.efi", "old1.efi.abi", "old2.efi"]
    assert s.cmd("image-remove", version="old1")["size"] == 1 << 20
    assert fw_files(s) == ["old2.efi"]
    assert [i["version"] for i in firmware(s)["images"]] == ["old2"]
    for version, why in (("old1", "no image old1 stored"), ("../old2", "is not an image version"),
                         ("", "is not an image version")):
        r = s.request("image-remove", {"version": version})
        assert "error" in r and why in r["error"]["desc"], r
    assert fw_files(s) == ["old2.efi"]
    assert "firmware: removed" in s.log()
    # A version of digits only (a git short hash can be): the command line
    # client sends it as a number, the init takes its text.
    assert push(s, write(os.path.join(tmpdir_short, "d.efi"), image(1 << 20, "1053384"))).returncode == 0
    r = s.ctl("image-remove", "version=1053384")
    assert r.returncode == 0 and json.loads(r.stdout)["file"].endswith("/1053384.efi"), r.stderr
    assert fw_files(s) == ["old2.efi"]
    running = firmware(s)["running"]["version"]
    if running:
        assert push(s, write(os.path.join(tmpdir_short, "c.efi"), image(1 << 20, running))).returncode == 0
        r = s.request("image-remove", {"version": running})
        assert "error" in r and "is the running firmware" in r["error"]["desc"], r
        assert f"{running}.efi" in fw_files(s)


def test_retention_keeps_three(supervisors, tmpdir_short):
    s = supervisors(config=EMPTY)
    pushed = []
    for i in range(5):
        v = f"r{i}"
        r = push(s, write(os.path.join(tmpdir_short, f"{v}.efi"), image(64 << 10, v)))
        assert r.returncode == 0, r.stderr
        pushed.append(v)
        time.sleep(0.02)  # distinct mtimes
        out = json.loads(r.stdout)
        if i >= 3:
            assert out["removed"] == [f"r{i - 3}.efi"], out
    fw = firmware(s)
    assert [i["version"] for i in fw["images"]] == ["r4", "r3", "r2"]
    assert fw_files(s) == ["r2.efi", "r3.efi", "r4.efi"]
    assert "firmware: removed" in s.log()
