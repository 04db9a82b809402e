"""QEMU confinement: exactly the fds it was meant to get, -sandbox where the
installed QEMU supports it, an unprivileged user when the config names one,
and guest RAM and saved state that other users cannot read."""
import os
import stat

import helpers


def qemu_pid(s, name="vm0"):
    return s.vm(name)["pid"]


def argv_of(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


def test_inherited_fds_are_exactly_the_planned_ones(one_vm):
    s = one_vm()
    pid = qemu_pid(s)
    links = helpers.fd_links(pid)
    # The layout luoinit hands over (vmconf argv shows the same numbers).
    assert links[0] == "/dev/null", links
    assert links[1] == links[2] and links[1].startswith("pipe:"), links
    assert links[3].startswith("socket:") and links[4].startswith("socket:"), links
    assert links[5].startswith("/memfd:luoinit:vm0"), links
    # Everything else QEMU opened itself: event fds, its own reopen of the
    # RAM through /proc/self/fd/5. No file, pipe or socket of the supervisor.
    sup = set(helpers.fd_links(s.proc.pid).values())
    for fd, target in links.items():
        if fd <= 5:
            continue
        assert target.startswith(("anon_inode:", "/memfd:luoinit:vm0", "/dev/")), (fd, target)
        # anon inodes carry no identity in their link; the rest must not be ours.
        if not target.startswith(("anon_inode:", "/memfd:luoinit:vm0")):
            assert target not in sup, (fd, target)


def test_sandbox_when_supported(one_vm):
    s = one_vm()
    st = s.status()
    argv = argv_of(qemu_pid(s))
    # Debian's QEMU is built with seccomp: the probe must say so, and QEMU
    # must run under the filter with the deny options.
    assert st["sandbox"] is True, st
    i = argv.index(b"-sandbox")
    opts = argv[i + 1].decode()
    for want in ("on", "obsolete=deny", "elevateprivileges=deny", "spawn=deny", "resourcecontrol=deny"):
        assert want in opts.split(","), opts
    with open(f"/proc/{qemu_pid(s)}/status") as f:
        assert "Seccomp:\t2" in f.read(), "QEMU is not under a seccomp filter"


def test_runs_as_the_configured_user(one_vm):
    s = one_vm(user="nobody")
    pid = qemu_pid(s)
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    uid_line = next(l for l in text.splitlines() if l.startswith("Uid:"))
    assert uid_line.split()[1:] == ["65534"] * 4, uid_line
    groups = next(l for l in text.splitlines() if l.startswith("Groups:"))
    assert groups.split()[1:] in ([], ["65534"]), groups
    # And it still survives an in-place QEMU restart under that user.
    s.cmd("vmm-update", name="vm0")
    with open(f"/proc/{qemu_pid(s)}/status") as f:
        assert uid_line in f.read()
    s.wait_beats_after("vm0", 0, count=2)


def test_ram_not_readable_by_other_users(one_vm):
    s = one_vm()
    pid = qemu_pid(s)
    # Another user may not reach the guest's RAM through /proc.
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                fd = os.open(f"/proc/{pid}/fd/5", os.O_RDONLY)
                os.close(fd)
                os.write(w, b"opened")
            except PermissionError:
                os.write(w, b"denied")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(child, 0)
    assert os.read(r, 16) == b"denied"
    os.close(r)
    # The serial log and the state dir are the owner's only.
    mode = os.stat(s.serial_path("vm0")).st_mode
    assert stat.S_IMODE(mode) & 0o077 == 0, oct(mode)
