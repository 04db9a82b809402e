"""Host networking of `luoinit --host`, inside a network namespace each test
makes (conftest.netns: `eth0`, a veth whose other end `peer0` this test
listens and sends on): the configuration's bridges with their uplinks, a tap
per NIC on its bridge handed to QEMU (and nothing else), the heartbeat
guest's beats and UDP echo through tap, bridge and uplink, the tap kept
across a vmm-update, a missing uplink reported without holding anything up,
and no network change at all without a network section."""
import json
import os
import subprocess
import sys

import pytest

import helpers

ROOT = helpers.ROOT
NETWATCH = os.path.join(ROOT, "tests", "netwatch.py")
sys.path.insert(0, os.path.join(ROOT, "tests"))
import netwatch  # noqa: E402


def derived_mac(name, index):
    """README: 52 then the low 40 bits of FNV-1a 64 of "NAME/INDEX"."""
    h = 0xcbf29ce484222325
    for b in f"{name}/{index}".encode():
        h = ((h ^ b) * 0x100000001b3) & (2 ** 64 - 1)
    return "52:" + ":".join(f"{(h >> s) & 0xff:02x}" for s in (32, 24, 16, 8, 0))


def config(tmp, bridges, nics, **vm):
    return {"version": 1, "network": {"bridges": bridges},
            "vms": [helpers.vm_config("vm0", tmp, fill_mib=4, nics=nics, **vm)]}


def start(supervisors, netns, tmp, cfg):
    s = supervisors(config=cfg, wrap=("ip", "netns", "exec", netns))
    s.wait_running("vm0")
    return s


def peer(netns, *args, timeout=60):
    """tests/netwatch.py on peer0 inside the namespace -> its JSON lines."""
    r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, NETWATCH, "--iface", "peer0",
                        "--json", "--timeout", str(timeout), *args],
                       capture_output=True, text=True, timeout=timeout + 30)
    assert r.returncode == 0, f"netwatch {args}: {r.stderr}"
    return [json.loads(l) for l in r.stdout.splitlines()]


def fdinfo_iff(pid, fd):
    """The tap a /dev/net/tun fd of pid is attached to (its fdinfo says)."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("iff:"):
                return line.split()[1]
    return None


def test_bridges_taps_and_traffic(supervisors, netns, tmpdir_short):
    """br0 with uplink eth0, br1 without; vm0's NICs on each: taps named
    lu-vm0-N on their bridges, QEMU with exactly the planned fds and argv,
    the derived MAC as documented, beats out through the uplink and an echo
    answered."""
    cfg = config(tmpdir_short, [{"name": "br0", "uplink": "eth0"}, {"name": "br1", "uplink": None}],
                 [{"bridge": "br0"}, {"bridge": "br1", "mac": "52:54:00:AA:00:01"}])
    s = start(supervisors, netns, tmpdir_short, cfg)
    st = s.status()
    assert st["network"] == {"bridges": [{"name": "br0", "uplink": "eth0", "error": None},
                                         {"name": "br1", "uplink": None, "error": None}]}, st["network"]
    mac0 = derived_mac("vm0", 0)
    vm = s.vm("vm0")
    assert vm["nics"] == [
        {"tap": "lu-vm0-0", "mac": mac0, "bridge": "br0", "model": "virtio-net-pci", "vhost": False, "error": None},
        {"tap": "lu-vm0-1", "mac": "52:54:00:aa:00:01", "bridge": "br1", "model": "virtio-net-pci",
         "vhost": False, "error": None}], vm["nics"]

    ln = helpers.links(netns)
    for br in ("br0", "br1"):
        assert ln[br]["linkinfo"]["info_kind"] == "bridge" and "UP" in ln[br]["flags"], ln[br]
    assert ln["eth0"].get("master") == "br0" and "UP" in ln["eth0"]["flags"], ln["eth0"]
    for tap, br in (("lu-vm0-0", "br0"), ("lu-vm0-1", "br1")):
        info = ln[tap]["linkinfo"]
        assert info["info_kind"] == "tun" and ln[tap].get("master") == br, ln[tap]
        assert info["info_data"]["type"] == "tap" and info["info_data"]["pi"] is False, info
        assert info["info_data"]["vnet_hdr"] is True and info["info_data"]["persist"] is False, info
        assert "UP" in ln[tap]["flags"], ln[tap]

    # QEMU: the taps right after the RAM, in order (TCG: no vhost fds).
    pid = vm["pid"]
    fds = helpers.fd_links(pid)
    assert fds[6] == fds[7] == "/dev/net/tun", fds
    assert (fdinfo_iff(pid, 6), fdinfo_iff(pid, 7)) == ("lu-vm0-0", "lu-vm0-1")
    assert [fd for fd, t in fds.items() if t == "/dev/net/tun"] == [6, 7], fds
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    i = argv.index("-netdev")
    assert argv[i:i + 8] == ["-netdev", "tap,id=net0,fd=6", "-device",
                             f"virtio-net-pci,netdev=net0,mac={mac0},bus=pcie.0,romfile=",
                             "-netdev", "tap,id=net1,fd=7", "-device",
                             "virtio-net-pci,netdev=net1,mac=52:54:00:aa:00:01,bus=pcie.0,romfile="], argv

    # The wire behind the uplink: beats counting up from the guest's MAC
    # (its first NIC: the second's bridge has no uplink), and the echo.
    beats = peer(netns, "watch", "--count", "3")
    assert [b["mac"] for b in beats] == [mac0] * 3, beats
    c = [b["counter"] for b in beats]
    assert c == list(range(c[0], c[0] + 3)), c
    e = peer(netns, "echo", "--mac", mac0, "hello over br0")
    assert e[0]["mac"] == mac0 and e[0]["counter"] >= c[-1], e


OUR_QEMU = os.path.join(helpers.B, "qemu", "usr", "bin", "qemu-system-x86_64")


@pytest.mark.parametrize("qemu", [pytest.param(OUR_QEMU, id="ours"), pytest.param(helpers.QEMU, id="debian")])
def test_vmm_update_keeps_the_tap(supervisors, netns, tmpdir_short, qemu):
    """The same tap (same interface, still on br0) serves the new QEMU: its
    fd 6 is attached to it, beats go on from where they were, the echo
    answers. With the appliance's own QEMU too (what it lacks, e.g. a PXE
    ROM, must not be asked for)."""
    assert os.access(qemu, os.X_OK), f"{qemu} missing: make qemu (or make check-host) builds it"
    cfg = config(tmpdir_short, [{"name": "br0", "uplink": "eth0"}], [{"bridge": "br0"}], qemu=qemu)
    s = start(supervisors, netns, tmpdir_short, cfg)
    before = helpers.links(netns)["lu-vm0-0"]
    old_pid = s.vm("vm0")["pid"]
    last = peer(netns, "watch", "--count", "1")[0]["counter"]

    r = s.cmd("vmm-update", name="vm0")
    assert r["last_update"]["kind"] == "vmm-update", r
    vm = s.wait_running("vm0", not_pid=old_pid)
    after = helpers.links(netns)["lu-vm0-0"]
    assert after["ifindex"] == before["ifindex"] and after.get("master") == "br0", (before, after)
    assert fdinfo_iff(vm["pid"], 6) == "lu-vm0-0"
    assert [fd for fd, t in helpers.fd_links(s.pid).items() if t == "/dev/net/tun"] != [], \
        "the supervisor keeps the tap's fd"
    beats = [b["counter"] for b in peer(netns, "watch", "--count", "2")]
    assert last < beats[0] and beats[1] == beats[0] + 1, (last, beats)
    assert peer(netns, "echo", "after the vmm-update")[0]["counter"] >= beats[0]
    assert s.vm("vm0")["nics"][0]["tap"] == "lu-vm0-0"


def test_missing_uplink_is_reported(supervisors, netns, tmpdir_short):
    """An uplink that does not exist: network.bridges[].error and the log
    say so; the bridge is up anyway and the VM runs with its tap on it."""
    cfg = config(tmpdir_short, [{"name": "br0", "uplink": "nosuch0"}], [{"bridge": "br0"}])
    s = start(supervisors, netns, tmpdir_short, cfg)
    want = "uplink nosuch0 of bridge br0: no such interface"
    assert s.status()["network"]["bridges"] == [{"name": "br0", "uplink": "nosuch0", "error": want}]
    assert want in s.log()
    ln = helpers.links(netns)
    assert "UP" in ln["br0"]["flags"] and ln["lu-vm0-0"].get("master") == "br0", ln
    assert ln["eth0"].get("master") is None
    vm = s.vm("vm0")
    assert vm["state"] == "running" and vm["nics"][0]["error"] is None, vm
    s.wait_beats_after("vm0", 0, count=2)


def test_tap_without_its_bridge(supervisors, netns, tmpdir_short):
    """A bridge that cannot be made (its name is taken by the uplink's peer,
    not a bridge): reported, and the NIC's tap runs alone, said in its
    error; the VM runs."""
    cfg = config(tmpdir_short, [{"name": "peer0", "uplink": None}], [{"bridge": "peer0"}])
    s = start(supervisors, netns, tmpdir_short, cfg)
    assert s.status()["network"]["bridges"][0]["error"] == "peer0 exists and is not a bridge"
    nic = s.vm("vm0")["nics"][0]
    assert nic["tap"] == "lu-vm0-0" and "cannot put tap lu-vm0-0 on bridge peer0" in nic["error"], nic
    assert s.vm("vm0")["state"] == "running"


def test_no_network_section_changes_nothing(supervisors, netns, tmpdir_short):
    """--host without a network section leaves its namespace alone."""
    before = sorted(helpers.links(netns))
    s = supervisors(config={"version": 1, "vms": []}, wrap=("ip", "netns", "exec", netns))
    st = s.status()
    assert st["network"] is None
    assert sorted(helpers.links(netns)) == before


@pytest.mark.parametrize("machine,bus", [("pc", "pci.0")])
def test_nic_on_pc(supervisors, netns, tmpdir_short, machine, bus):
    """On pc the NIC sits on pci.0, where the guest finds it."""
    cfg = config(tmpdir_short, [{"name": "br0", "uplink": "eth0"}], [{"bridge": "br0"}], machine=machine)
    s = start(supervisors, netns, tmpdir_short, cfg)
    with open(f"/proc/{s.vm('vm0')['pid']}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    assert f"virtio-net-pci,netdev=net0,mac={derived_mac('vm0', 0)},bus={bus},romfile=" in argv
    assert peer(netns, "watch", "--count", "1")[0]["mac"] == derived_mac("vm0", 0)
