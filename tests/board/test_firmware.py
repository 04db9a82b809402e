"""Signed firmware images (make image): the appliance boots firmware.efi
cold (its initramfs built in), and `update image=VERSION` kexecs
/state/firmware/VERSION.efi after the kernel verified its signature against
its builtin trusted keys. A second image with another version is built here
(make image VERSION=... IMAGE_OUT=...); the heartbeat guest lives through
the update there and back. A tampered image, one signed by another key and
an unsigned kernel are refused by the kernel before anything stops, with its
verdict in words.

The first image, the bad ones and a nearly full /state (a filler and two
old images) are put there with debugfs before the boot (as test_handoff
puts its files); the second image is pushed over the management port
(`luoinit ctl image-push`, with its ABI): refused while /state is nearly
full, cut halfway once, then whole.
"""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile

import pytest

from test_boot import BB, LUOINIT, TOP, clean_env, new_appliance
from test_update import assert_continued, beats, live_update, start, status, stop, vm0, wait_beating, wait_status

FIRMWARE = os.path.join(BB, "firmware.efi")


def image_version(path):
    """VERSION of a bzImage: the token after '#' in its setup header's
    kernel_version string ("7.2.13 (luoinit@luoinit) #VERSION SMP ...")."""
    with open(path, "rb") as f:
        data = f.read(0x10000)
    assert data[0x202:0x206] == b"HdrS", f"{path}: not a bzImage"
    off = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
    s = data[off:data.index(b"\0", off)].decode()
    return s.split("#", 1)[1].split()[0]


def note_text(data):
    """The firmware note's text and where it starts (init/update/fwnote.h)."""
    i = data.rindex(b"LUOINIT-NOTE")
    n = int.from_bytes(data[i + 12:i + 16], "little")
    return data[i - n:i].decode(), i - n


def note(path):
    text, _ = note_text(open(path, "rb").read())
    lines = text.splitlines()
    assert lines[0] == "luoinit-firmware-note 1", text
    return dict(ln.split("=", 1) for ln in lines[1:] if ln)


def renote(src, dst, change, tmp, sign=True):
    """src with its note's text changed by change(text); signed again with
    the build's key (sign), or with its signature kept as it was."""
    data = open(src, "rb").read()
    if sign:
        plain = os.path.join(tmp, "renote.plain")
        shutil.copyfile(src, plain)
        subprocess.run(["sbattach", "--remove", plain], check=True, capture_output=True)
        data = open(plain, "rb").read()
    text, at = note_text(data)
    new = change(text)
    assert new != text
    if sign:
        body = data[:at]
        pad = (8 - (len(body) + len(new) + 16) % 8) % 8
        out = body + b"\0" * pad + new.encode() + b"LUOINIT-NOTE" + len(new).to_bytes(4, "little")
    else:
        assert len(new) == len(text)
        out = data[:at] + new.encode() + data[at + len(text):]
    with open(dst, "wb") as f:
        f.write(out)
    if sign:
        subprocess.run(["sbsign", "--key", os.path.join(TOP, "build/keys/firmware.key"),
                        "--cert", os.path.join(TOP, "build/keys/firmware.crt"), "--output", dst, dst],
                       check=True, capture_output=True)


def ext4_free(img):
    """What push will see on the mounted filesystem, from its superblock:
    statvfs's f_bavail (ext4_statfs: the free blocks less the root-reserved
    ones and the kernel's own reserve, 2 % of the blocks but at most 4096)
    and push's margin (5 % of the size: from the block count, which is at
    most a few MiB over f_blocks, the size less the metadata)."""
    out = subprocess.run(["dumpe2fs", "-h", img], capture_output=True, text=True, check=True).stdout
    f = dict((k.strip(), v.strip()) for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln))
    bs, blocks = int(f["Block size"]), int(f["Block count"])
    avail = (int(f["Free blocks"]) - int(f["Reserved block count"]) - min(blocks // 50, 4096)) * bs
    return avail, max(16 << 20, blocks * bs // 100 * 5), bs


def debugfs_fill(img, leave, tmp):
    """A file /filler of unwritten extents (no data on the host), so that
    about `leave` bytes stay available past push's margin."""
    avail, margin, bs = ext4_free(img)
    n = (avail - margin - leave) // bs
    assert n > 0, (avail, margin, leave)
    script = os.path.join(tmp, "fill.cmds")
    with open(script, "w") as f:
        f.write(f"write /dev/null /filler\nfallocate /filler 0 {n - 1}\nsif /filler size {n * bs}\n")
    p = subprocess.run(["debugfs", "-w", "-f", script, img], capture_output=True, text=True)
    assert p.returncode == 0 and "rror" not in p.stderr, p.stderr


def debugfs_mkdir_put(img, files, tmp):
    """Write files {dest: local path} into the ext4 image under /firmware."""
    cmds = ["mkdir /firmware"] + [f"write {src} {dest}" for dest, src in files.items()]
    script = os.path.join(tmp, "debugfs.cmds")
    with open(script, "w") as f:
        f.write("\n".join(cmds) + "\n")
    p = subprocess.run(["debugfs", "-w", "-f", script, img], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for dest in files:
        q = subprocess.run(["debugfs", "-R", f"stat {dest}", img], capture_output=True, text=True)
        assert "Inode:" in q.stdout, f"{dest} not in {img}: {q.stderr}"


@pytest.fixture(scope="module")
def fw():
    if not os.path.exists(FIRMWARE):
        pytest.skip("build/.../firmware.efi not built (make image)")
    tmp = tempfile.mkdtemp(prefix="luoinit-fw-")

    def make_image(*args):
        p = subprocess.run(["make", "--no-print-directory", "-s", "image", *args],
                           cwd=TOP, env=clean_env(), capture_output=True, text=True, timeout=3600)
        assert p.returncode == 0, p.stdout + p.stderr
    # firmware.efi as `make start` boots it (its VERSION follows the checkout).
    make_image()
    v1 = image_version(FIRMWARE)
    v2 = (v1 + "-two")[-64:]
    img2 = os.path.join(tmp, "two.efi")
    # A second image of the same tree: another version, same key, and a
    # command line of its own (fwtag.two=1: a dotted word the kernel ignores).
    with open(os.path.join(BB, "firmware-cmdline")) as f:
        cmdline1 = f.read().strip()
    make_image(f"VERSION={v2}", f"IMAGE_OUT={img2}", f"FIRMWARE_CMDLINE={cmdline1} fwtag.two=1",
               f"FIRMWARE_CMDLINE_FILE={tmp}/cmdline-two", f"INITRAMFS_CPIO={tmp}/initramfs-two.cpio")
    assert image_version(img2) == v2
    assert note(img2)["cmdline"] == cmdline1 + " fwtag.two=1" and note(FIRMWARE)["cmdline"] == cmdline1
    abi = os.path.join(BB, "bzImage.abi")
    # v2 is pushed over the management port (test_push_...). v1 goes
    # without a .abi beside it: its note says its ABI.
    files = {f"/firmware/{v1}.efi": FIRMWARE}
    # Two old images (copies of the first) on a nearly full /state.
    files["/firmware/old-a.efi"] = FIRMWARE
    files["/firmware/old-b.efi"] = FIRMWARE
    # One byte flipped in the middle of the signed image.
    data = bytearray(open(img2, "rb").read())
    data[len(data) // 2] ^= 0x01
    bad = os.path.join(tmp, "tampered.efi")
    with open(bad, "wb") as f:
        f.write(data)
    files["/firmware/tampered.efi"] = bad
    # One byte of the note changed (its command line): the signature covers it.
    notebad = os.path.join(tmp, "notetampered.efi")
    renote(img2, notebad, lambda t: t.replace("fwtag.two=1", "fwtag.two=2"), tmp, sign=False)
    files["/firmware/notetampered.efi"] = notebad
    # Signed right, but its note says its QEMU is 9.2.0: vm0's pc-q35-10.0
    # could not be restored there.
    oldqemu = os.path.join(tmp, "oldqemu.efi")
    renote(img2, oldqemu, lambda t: re.sub(r"(?m)^qemu=.*$", "qemu=9.2.0", t), tmp)
    files["/firmware/oldqemu.efi"] = oldqemu
    # The same kernel signed by a key the kernel does not trust.
    key, crt = os.path.join(tmp, "other.key"), os.path.join(tmp, "other.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
                    "-subj", "/CN=not the luoinit firmware key/", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    unsigned = os.path.join(tmp, "unsigned.efi")
    shutil.copyfile(img2, unsigned)
    subprocess.run(["sbattach", "--remove", unsigned], check=True, capture_output=True)
    other = os.path.join(tmp, "otherkey.efi")
    subprocess.run(["sbsign", "--key", key, "--cert", crt, "--output", other, unsigned],
                   check=True, capture_output=True)
    files["/firmware/otherkey.efi"] = other
    files["/firmware/unsigned.efi"] = unsigned
    # The live-update ABI beside the others, as before notes (kabi_target
    # reads KERNEL.abi when an image has none).
    for dest in list(files):
        if dest != f"/firmware/{v1}.efi":
            files[dest + ".abi"] = abi
    a = new_appliance("luoinit-fw-")
    debugfs_mkdir_put(a.state, files, a.dir)
    # Room for half of v2 past the margin: the push is refused until one
    # old image goes.
    debugfs_fill(a.state, os.path.getsize(img2) // 2, a.dir)
    # A word of this boot's own: a kexec into an image keeps it after the
    # image's built-in line.
    a.append = "fwtag.boot=1"
    start(a)
    a.v1, a.v2, a.img2 = v1, v2, img2
    yield a
    stop(a)
    shutil.rmtree(a.dir, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def test_boots_the_firmware_image(fw):
    st = status(fw)
    assert st["pid1"] is True
    assert st["firmware"]["running"]["version"] == fw.v1, st["firmware"]
    wait_beating(fw)


@pytest.mark.parametrize("name,verdict", [
    ("tampered", "its signature does not verify against the trusted keys (EKEYREJECTED)"),
    ("otherkey", "not signed by a key the kernel trusts (ENOKEY)"),
    ("unsigned", "no signature"),
    ("notetampered", "its signature does not verify against the trusted keys (EKEYREJECTED)"),
])
def test_refused_and_every_vm_keeps_running(fw, name, verdict):
    before = status(fw)
    b0 = beats(fw)
    with pytest.raises(RuntimeError) as e:
        fw.ctl("update", f"image={name}", timeout=120)
    msg = str(e.value)
    assert f"the kernel refused firmware {name}" in msg and verdict in msg, msg
    st = status(fw)
    assert st["boot_id"] == before["boot_id"], "the host must not have changed kernel"
    assert vm0(st)["state"] == "running" and vm0(st)["pid"] == vm0(before)["pid"], st
    assert st["firmware"]["running"]["version"] == fw.v1
    assert_continued(fw, b0)


def test_refused_for_a_qemu_that_lacks_the_guests_machine(fw):
    """An image signed right whose note says its QEMU is 9.2.0: vm0 runs on
    pc-q35-10.0, which that QEMU does not have; refused before anything is
    loaded, in words, every VM running on."""
    before, b0 = status(fw), beats(fw)
    with pytest.raises(RuntimeError) as e:
        fw.ctl("update", "image=oldqemu", timeout=120)
    msg = str(e.value)
    assert "vm0 runs on machine pc-q35-10.0, which firmware oldqemu's QEMU 9.2.0 does not have" in msg, msg
    st = status(fw)
    assert st["boot_id"] == before["boot_id"] and vm0(st)["pid"] == vm0(before)["pid"], st
    assert_continued(fw, b0)


@pytest.mark.parametrize("args,why", [
    (["image=v2", "kernel=/state/boot/vmlinuz"], "not both"),
    (["image=v2", "initrd=/state/boot/initramfs.img"], "not both"),
    (["image=../boot/vmlinuz"], "not a firmware version"),
    (["image=nosuchversion"], "/state/firmware/nosuchversion.efi"),
])
def test_bad_requests(fw, args, why):
    with pytest.raises(RuntimeError) as e:
        fw.ctl("update", *args, timeout=60)
    assert why in str(e.value), e.value


def stored(fw):
    return {os.path.basename(i["file"]): i for i in status(fw)["firmware"]["images"]}


def test_push_into_a_nearly_full_state_then_cut_then_whole(fw):
    """The second image over the management port. /state nearly full: the
    push is refused before a byte is written, in words with the numbers;
    image-remove of an old image makes room. A push cut halfway (the client
    killed) leaves nothing and gives the space back; the next push stores
    the image whole, with the same sha256 in its reply, in status and in
    the file that was sent."""
    with open(fw.img2, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    b0, pid = beats(fw), vm0(status(fw))["pid"]
    before = stored(fw)
    assert {"old-a.efi", "old-b.efi"} <= set(before) and f"{fw.v2}.efi" not in before, before
    with pytest.raises(RuntimeError) as e:
        fw.ctl("image-push", fw.img2, timeout=300)
    assert "no space left on /state" in str(e.value) and "MiB free, image is" in str(e.value), e.value
    st = status(fw)
    assert st["firmware"]["push"] is None and stored(fw) == before, st["firmware"]
    out = fw.ctl("image-remove", "version=old-a")
    assert out["file"].endswith("/firmware/old-a.efi") and out["size"] == os.path.getsize(FIRMWARE), out
    free = status(fw)["state"]["free_bytes"]
    # Cut: the client is killed once it reported 30 %.
    p = subprocess.Popen([LUOINIT, "ctl", "--socket", fw.sock, "--timeout", "600", "image-push", fw.img2],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in p.stderr:
            seen.append(line)
            if "(30%)" in line or "(40%)" in line:
                break
    finally:
        p.kill()
        p.wait()
    assert any("(30%)" in ln or "(40%)" in ln for ln in seen), "".join(seen)
    # Abandoned when the port's host leaves (or, at the latest, idle).
    st = wait_status(fw, 90, lambda st: st["firmware"]["push"] is None)
    assert f"{fw.v2}.efi" not in stored(fw)
    assert abs(st["state"]["free_bytes"] - free) < (2 << 20), (st["state"], free)
    # Whole.
    out = fw.ctl("image-push", fw.img2, timeout=900)
    assert out["version"] == fw.v2 and out["signed"] is True and out["sha256"] == want, out
    after = stored(fw)
    assert after[f"{fw.v2}.efi"]["sha256"] == want and after[f"{fw.v2}.efi"]["version"] == fw.v2, after
    assert f"{fw.v1}.efi" in after and len(after) <= 4, after  # the newest three and the running one
    # The guest ran on throughout (its log may have rotated past b0: only later beats).
    wait_beating(fw, after=b0[-1][0])
    assert vm0(status(fw))["pid"] == pid


def test_update_to_another_image_and_back(fw):
    assert f"{fw.v2}.efi" in stored(fw), "the push test stores it"
    imgs = stored(fw)
    assert imgs[f"{fw.v2}.efi"]["note"]["cmdline"].endswith(" fwtag.two=1"), imgs
    assert imgs[f"{fw.v2}.efi"]["note"]["qemu"] == vm0(status(fw))["qemu_version"], imgs
    for version in (fw.v2, fw.v1):
        before, b0, rep, st = live_update(fw, f"image={version}")
        assert rep.get("mode") == "luo" and rep.get("image") == version, rep
        assert st["boot_id"] != before["boot_id"]
        run = st["firmware"]["running"]
        assert run["version"] == version, st["firmware"]
        # The image's own command line, then this boot's word once (not the
        # old image's line again).
        own = imgs[f"{version}.efi"]["note"]["cmdline"]
        assert run["cmdline"] == own and run["cmdline_extra"] == "fwtag.boot=1", run
        assert run["kernel_cmdline"].strip() == own + " fwtag.boot=1", run
        assert ("fwtag.two=1" in run["kernel_cmdline"]) == (version == fw.v2), run
        assert st.get("last_update_error") is None, st
        assert vm0(st)["last_update"]["mode"] == "luo"
        assert_continued(fw, b0)
    # The plain update path still works from a firmware image: the state
    # disk's signed kernel and its initramfs.
    before, b0, rep, st = live_update(fw)
    assert rep.get("kernel") == "/state/boot/vmlinuz" and "image" not in rep, rep
    assert_continued(fw, b0)
