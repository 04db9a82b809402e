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


def check_fd_layout(s, pid, taps=(), name="vm0"):
    """0-2 stdio, 3 QMP, 4 serial, 5 RAM, then each NIC's tap (under TCG no
    vhost-net), and nothing else of the supervisor's."""
    links = helpers.fd_links(pid)
    # The layout luoinit hands over (vmconf argv shows the same numbers).
    assert links[0] == "/dev/null", links
    assert links[1] == links[2] and links[1].startswith("pipe:"), links
    assert links[3].startswith("socket:") and links[4].startswith("socket:"), links
    ram = f"/memfd:luoinit:{name}"
    assert links[5].startswith(ram), links
    for i, tap in enumerate(taps):
        assert links[6 + i] == "/dev/net/tun", links
        with open(f"/proc/{pid}/fdinfo/{6 + i}") as f:
            assert f"iff:\t{tap}\n" in f.read(), (6 + i, tap)
    last = 5 + len(taps)
    # Everything else QEMU opened itself: event fds, its own reopen of the
    # RAM through /proc/self/fd/5. No file, pipe or socket of the supervisor
    # (a tap of another NIC or VM included).
    sup = set(helpers.fd_links(s.proc.pid).values())
    for fd, target in links.items():
        if fd <= last:
            continue
        assert target.startswith(("anon_inode:", ram, "/dev/")), (fd, target)
        # anon inodes carry no identity in their link; the rest must not be ours.
        if not target.startswith(("anon_inode:", ram)):
            assert target not in sup, (fd, target)


def test_inherited_fds_are_exactly_the_planned_ones(one_vm):
    s = one_vm()
    check_fd_layout(s, qemu_pid(s))


def test_inherited_fds_with_nics(netns, supervisors, tmpdir_short):
    """Two VMs with NICs in a network namespace of the test's own: each QEMU
    gets its own taps after its RAM, in order, and none of the other's."""
    vms = [helpers.vm_config(n, tmpdir_short, fill_mib=4, nics=[{"bridge": "br0"}] * k)
           for n, k in (("vm0", 2), ("vm1", 1))]
    s = supervisors(config={"version": 1, "network": {"bridges": [{"name": "br0", "uplink": None}]},
                            "vms": vms}, wrap=("ip", "netns", "exec", netns))
    for name, taps in (("vm0", ("lu-vm0-0", "lu-vm0-1")), ("vm1", ("lu-vm1-0",))):
        s.wait_running(name)
        check_fd_layout(s, qemu_pid(s, name), taps, name)


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
