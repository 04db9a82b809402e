#!/usr/bin/python3
"""make bench: the live-update blackout on the board, measured by luoinit.

For each guest RAM size (BENCH_SIZES, MiB) the guest fills all its RAM with a
pattern, then BENCH_RUNS live updates run through the LUO path and as many
through the full-RAM fallback (the appliance booted with liveupdate=off).
The floor is a bare kexec of the same kernel and initramfs to /init (an
update with no VM running). Medians are printed as a table, written to
build/BOARD/bench.txt and plotted to build/BOARD/bench.png (gnuplot).

Every figure comes from luoinit's own status (last_update, kexec_ms):
CLOCK_REALTIME inside each init, the kexec itself through the TSC.
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(TOP, os.environ.get("B", "build"))
BOARD = os.environ.get("BOARD", "qemu-x86_64")
BB = os.path.join(B, BOARD)
BOARD_DIR = os.path.join(TOP, "board", BOARD)
LUOINIT = os.path.join(B, "luoinit")
SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "256 1024 2048").split()]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MEM = os.environ.get("BENCH_APPLIANCE_MEM", "5G")
# BENCH_INITRAMFS: another initramfs image (e.g. compressed) for boot and update;
# BENCH_FLOOR_ONLY=1: measure only the bare kexec (for the compression choice).
INITRAMFS = os.environ.get("BENCH_INITRAMFS", os.path.join(BB, "initramfs.img"))
FLOOR_ONLY = os.environ.get("BENCH_FLOOR_ONLY") == "1"
# The appliance's CPU: with SVM (the default here) the inner VMs get KVM nested
# on TCG's emulated SVM, fast enough to fill GiBs of guest RAM; max,svm=off
# keeps them on (much slower) nested TCG.
CPU = os.environ.get("BENCH_CPU", "max")
HB = re.compile(r"heartbeat (\d+) pattern=(\w+)")


def log(*a):
    print(*a, flush=True)


def free_udp_ports(n):
    """n free UDP ports on 127.0.0.1 for the appliance's -netdev dgram uplink."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Box:
    """One appliance: its own state disk copy, socket, console."""

    def __init__(self, size_mib, liveupdate, cpu=CPU):
        self.cpu = cpu
        self.dir = tempfile.mkdtemp(prefix="luoinit-bench-", dir="/tmp")
        self.state = os.path.join(self.dir, "state.img")
        self.sock = os.path.join(self.dir, "mgmt.sock")
        self.console = os.path.join(self.dir, "console.log")
        self.pidfile = os.path.join(self.dir, "qemu.pid")
        self.append = "" if liveupdate else "liveupdate=off"
        self.net_port, self.net_peer_port = free_udp_ports(2)  # the uplink's, this box's own
        with open(os.path.join(BOARD_DIR, "vmconf.json")) as f:
            conf = json.load(f)
        vm = conf["vms"][0]
        vm["memory_mib"] = size_mib
        vm["cmdline"] = "fill_mib=all seed=1"
        vmconf = os.path.join(self.dir, "vmconf.json")
        with open(vmconf, "w") as f:
            json.dump(conf, f)
        # Room for a full-RAM save of the largest guest.
        disk = f"{max(3, size_mib // 1024 * 2 + 2)}G"
        subprocess.run(["sh", os.path.join(BOARD_DIR, "mkstate.sh"), self.state, disk, vmconf,
                        os.path.join(BB, "heartbeat.elf"), os.path.join(BB, "bzImage"),
                        INITRAMFS], check=True, stdout=subprocess.DEVNULL)

    def qemu(self, mode):
        env = dict(os.environ, LUOINIT_APPLIANCE_MEM=MEM)
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        return subprocess.run(
            ["sh", os.path.join(BOARD_DIR, "qemu.sh"), mode, "--dir", BB, "--state", self.state,
             "--initrd", INITRAMFS, "--cpu", self.cpu,
             "--socket", self.sock, "--console", self.console, "--pidfile", self.pidfile,
             "--append", self.append, "--net-port", str(self.net_port),
             "--net-peer-port", str(self.net_peer_port),
             "--net-ports", os.path.join(self.dir, "net-ports")],
            env=env, capture_output=True, text=True, timeout=300)

    def start(self):
        """Boot the appliance and wait until it answers."""
        p = self.qemu("start")
        if p.returncode:
            raise SystemExit(p.stdout + p.stderr)
        self.wait(lambda s: True, 600, "the first status")

    def ctl(self, *args, timeout=30):
        p = subprocess.run([LUOINIT, "ctl", "--socket", self.sock, "--timeout", str(timeout), *args],
                           capture_output=True, text=True, timeout=timeout + 10)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip())
        return json.loads(p.stdout)

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st = self.ctl("status", timeout=10)
                if pred(st):
                    return st
            except (RuntimeError, subprocess.TimeoutExpired, ValueError):
                pass
            time.sleep(1)
        raise SystemExit(f"bench: {what} not reached within {timeout}s; console tail:\n"
                         + open(self.console, errors="replace").read()[-3000:])

    def beating(self, after=-1, timeout=1800):
        def ok(st):
            v = st["vms"][0]
            if v["state"] != "running":
                return False
            b = HB.findall(self.ctl("vm-log", "name=vm0", "bytes=2048")["log"])
            return len(b) >= 2 and int(b[-1][0]) > after and b[-1][1] == "ok"
        return self.wait(ok, timeout, "a beating vm0")

    def update(self):
        before = self.ctl("status")
        self.ctl("update", timeout=600)
        st = self.wait(lambda s: s["boot_id"] != before["boot_id"] and s["vms"][0]["state"] == "running"
                       and s["vms"][0].get("last_update"), 1800, "the updated appliance")
        lu = st["vms"][0]["last_update"]
        if st.get("last_update_error"):
            raise SystemExit(f"bench: update reported {st['last_update_error']}")
        b = HB.findall(self.ctl("vm-log", "name=vm0", "bytes=2048")["log"])
        if b and b[-1][1] != "ok":
            raise SystemExit("bench: pattern=bad after an update")
        return lu, st

    def floor(self):
        # No VM in the update (a stopped vm0 stays stopped in the new kernel).
        self.ctl("vm-stop", "name=vm0", "timeout=0", timeout=60)
        before = self.ctl("status")
        self.ctl("update", timeout=600)
        st = self.wait(lambda s: s["boot_id"] != before["boot_id"] and s.get("kexec_ms"), 900, "the kexec")
        return st["kexec_ms"]

    def close(self):
        try:
            self.ctl("poweroff", "timeout=0")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        self.qemu("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    for p in ("bzImage", "initramfs.img", "heartbeat.elf"):
        if not os.path.exists(os.path.join(BB, p)):
            raise SystemExit(f"bench: {BB}/{p} missing (make {BB}/{p})")
    rows = []
    floor = []
    if FLOOR_ONLY:
        box = Box(SIZES[0], True)
        try:
            box.start()
            for i in range(RUNS):
                floor.append(box.floor())
                log(f"bench:   floor run {i + 1}: bare kexec {floor[-1]:.0f} ms")
        finally:
            box.close()
        print(f"bench: floor with {os.path.basename(INITRAMFS)} ({os.path.getsize(INITRAMFS)} bytes): "
              f"median {med(floor):.0f} ms of {floor}")
        return 0
    for size in SIZES:
        for mode in ("luo", "full-ram"):
            log(f"bench: {size} MiB guest, {mode}: booting and filling the guest's RAM")
            box = Box(size, mode == "luo")
            try:
                box.start()
                box.beating()
                res = []
                for i in range(RUNS):
                    lu, st = box.update()
                    box.beating()
                    res.append(lu)
                    log(f"bench:   run {i + 1}: blackout {lu['blackout_ms']:.0f} ms (mode {lu['mode']}, "
                        f"save {lu['phases']['save_ms']:.0f}, kexec {lu['phases']['kexec_ms']:.0f}, "
                        f"qemu {lu['phases']['qemu_start_ms']:.0f}, restore {lu['phases']['restore_ms']:.0f}), "
                        f"vmstate {lu['vmstate_bytes']} B")
                    if lu["mode"] != mode:
                        raise SystemExit(f"bench: expected mode {mode}, got {lu['mode']}")
                if mode == "luo" and size == SIZES[0]:
                    for i in range(RUNS):
                        floor.append(box.floor())
                        log(f"bench:   floor run {i + 1}: bare kexec {floor[-1]:.0f} ms")
            finally:
                box.close()
            rows.append({
                "size": size, "mode": mode,
                "blackout": med([r["blackout_ms"] for r in res]),
                "save": med([r["phases"]["save_ms"] for r in res]),
                "kexec": med([r["phases"]["kexec_ms"] for r in res]),
                "qemu": med([r["phases"]["qemu_start_ms"] for r in res]),
                "restore": med([r["phases"]["restore_ms"] for r in res]),
                "vmstate": med([r["vmstate_bytes"] for r in res]),
            })
    fl = med(floor)
    lines = [f"luoinit live-update blackout, medians of {RUNS} runs (TCG, board {BOARD})",
             f"floor (bare kexec of the same kernel and initramfs to /init): {fl:.0f} ms", "",
             f"{'RAM MiB':>8} {'mode':>9} {'blackout ms':>12} {'save':>8} {'kexec':>8} {'qemu':>8} "
             f"{'restore':>8} {'vmstate B':>11} {'x floor':>8}"]
    for r in rows:
        lines.append(f"{r['size']:>8} {r['mode']:>9} {r['blackout']:>12.0f} {r['save']:>8.0f} {r['kexec']:>8.0f} "
                     f"{r['qemu']:>8.0f} {r['restore']:>8.0f} {r['vmstate']:>11.0f} {r['blackout'] / fl:>8.2f}")
    lines.append("")
    by = {(r["size"], r["mode"]): r for r in rows}
    for s in SIZES:
        if (s, "luo") in by and (s, "full-ram") in by:
            lines.append(f"{s} MiB: LUO blackout is {by[(s, 'luo')]['blackout'] / by[(s, 'full-ram')]['blackout']:.3f} "
                         f"of the full-RAM path's; vmstate {by[(s, 'luo')]['vmstate'] / 1024:.0f} KiB")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(BB, "bench.txt"), "w") as f:
        f.write(text)
    dat = os.path.join(BB, "bench.dat")
    with open(dat, "w") as f:
        f.write("# size luo_blackout full_blackout floor\n")
        for s in SIZES:
            f.write(f"{s} {by.get((s, 'luo'), {}).get('blackout', 'nan')} "
                    f"{by.get((s, 'full-ram'), {}).get('blackout', 'nan')} {fl}\n")
    png = os.path.join(BB, "bench.png")
    gp = (f"set terminal png size 800,500; set output '{png}';"
          "set title 'luoinit: host kernel live update, guest blackout (median)';"
          "set xlabel 'guest RAM (MiB)'; set ylabel 'blackout (s)'; set logscale x 2; set key left top;"
          "set grid; set yrange [0:*];"
          f"plot '{dat}' using 1:($2/1000) with linespoints lw 2 title 'LUO + cpr-reboot',"
          f" '' using 1:($3/1000) with linespoints lw 2 title 'full-RAM fallback',"
          f" '' using 1:($4/1000) with lines dt 2 lw 2 title 'floor: bare kexec'")
    subprocess.run(["gnuplot", "-e", gp], check=True)
    print(f"bench: wrote {os.path.relpath(BB, TOP)}/bench.txt and bench.png")


if __name__ == "__main__":
    sys.exit(main())
