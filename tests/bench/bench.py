#!/usr/bin/python3
"""make bench: the live-update blackout on the board, measured by luoinit.

For each guest RAM size (BENCH_SIZES, MiB) the guest fills all its RAM with a
pattern, then BENCH_RUNS live updates run through the LUO path and as many
through the full-RAM fallback (the appliance booted with liveupdate=off).
The floor is a bare kexec of the same kernel and initramfs to /init (an
update with no VM running), each right after one of the smallest size's
LUO runs on the same appliance (vm0 stopped for it, then started and
filled again): this machine's speed drifts over minutes, so the two
alternate to see the same load. The multi-VM row updates BENCH_MULTI VMs of
the smallest size together (0: skipped) and takes the slowest guest's
blackout of each run. Medians are printed as a table with the ratios the
blackout goals are stated in, written to build/BOARD/bench.txt and plotted
to build/BOARD/bench.png (gnuplot). The last line is
`luo/floor RATIO at SIZE MiB` for the largest size run.

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
MULTI = int(os.environ.get("BENCH_MULTI", "3"))
# BENCH_DISK_MIB=N: each VM also gets an N MiB raw virtio disk on /state
# (the guest writes a record to it every 10 beats).
DISK_MIB = int(os.environ.get("BENCH_DISK_MIB", "0"))
# Whole lines only: the guest may be in the middle of one when the log is read.
HB = re.compile(r"heartbeat (\d+) pattern=(\w+)\n")


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


class FillFailed(Exception):
    pass


class Box:
    """One appliance: its own state disk copy, socket, console."""

    def __init__(self, size_mib, liveupdate, cpu=CPU, n_vms=1):
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
        # More VMs: copies of vm0 with their own name, serial and seed.
        for i in range(1, n_vms):
            conf["vms"].append(dict(vm, name=f"vm{i}", serial=f"/state/log/vm{i}.serial",
                                    cmdline=f"fill_mib=all seed={i + 1}"))
        self.names = [v["name"] for v in conf["vms"]]
        for v in conf["vms"] if DISK_MIB else []:
            v["disks"] = [{"path": f"/state/guest/{v['name']}.img", "format": "raw", "readonly": False}]
        vmconf = os.path.join(self.dir, "vmconf.json")
        with open(vmconf, "w") as f:
            json.dump(conf, f)
        # Room for a full-RAM save of the largest guest.
        disk = f"{max(3, size_mib * n_vms // 1024 * 2 + 2)}G"
        subprocess.run(["sh", os.path.join(BOARD_DIR, "mkstate.sh"), self.state, disk, vmconf,
                        os.path.join(BB, "heartbeat.elf"), os.path.join(BB, "bzImage.signed"),
                        INITRAMFS], check=True, stdout=subprocess.DEVNULL)
        for name in self.names if DISK_MIB else []:
            img = os.path.join(self.dir, f"{name}.img")
            with open(img, "wb") as f:
                f.truncate(DISK_MIB << 20)
            # debugfs writes into the ext4 image without mounting it.
            subprocess.run(["debugfs", "-w", "-R", f"write {img} guest/{name}.img", self.state],
                           check=True, capture_output=True)
            os.unlink(img)

    def qemu(self, mode):
        env = dict(os.environ, LUOINIT_APPLIANCE_MEM=MEM)
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        return subprocess.run(
            ["sh", os.path.join(BOARD_DIR, "qemu.sh"), mode, "--dir", BB, "--state", self.state,
             "--kernel", os.path.join(BB, "bzImage.signed"), "--initrd", INITRAMFS, "--cpu", self.cpu,
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

    def beating(self, after=-1, timeout=1800, fill=False, below=None):
        """Every VM running, its last two beats ok and past beat `after`;
        below: a guest that booted afresh (beats under its old last one)."""
        def ok(st):
            if fill:
                # KVM nested on TCG's emulated SVM now and then stops a
                # guest with "KVM internal error" while it fills its RAM
                # (paused), or the guest resets (a restart): this box is
                # no good for measuring, before any update happened.
                bad = [v["name"] for v in st["vms"] if v["state"] in ("paused", "failed") or v["restarts"]]
                if bad:
                    raise FillFailed(f"{', '.join(bad)} stopped or restarted while filling RAM: "
                                     + "; ".join(str(v.get("last_error")) for v in st["vms"]))
            if any(v["state"] != "running" for v in st["vms"]):
                return False
            for name in self.names:
                b = HB.findall(self.ctl("vm-log", f"name={name}", "bytes=2048")["log"])
                if not (len(b) >= 2 and int(b[-1][0]) > after and b[-1][1] == "ok"):
                    return False
                if below is not None and not int(b[-2][0]) < int(b[-1][0]) < below:
                    return False
            return True
        return self.wait(ok, timeout, "every VM beating")

    def update(self):
        """One live update: the slowest VM's last_update, and the status."""
        before = self.ctl("status")
        self.ctl("update", timeout=600)
        st = self.wait(lambda s: s["boot_id"] != before["boot_id"]
                       and all(v["state"] == "running" and v.get("last_update") for v in s["vms"]),
                       1800, "the updated appliance")
        if st.get("last_update_error"):
            raise SystemExit(f"bench: update reported {st['last_update_error']}")
        for name in self.names:
            log = self.ctl("vm-log", f"name={name}", "bytes=2048")["log"]
            b = HB.findall(log)
            if b and b[-1][1] != "ok":
                raise SystemExit(f"bench: {name}: pattern={b[-1][1]} after an update; its serial log ends:\n"
                                 + log[-600:])
        lu = max((v["last_update"] for v in st["vms"]), key=lambda u: u["blackout_ms"])
        return lu, st

    def restart_filled(self):
        """vm0, stopped for a floor, started again: its guest boots afresh
        and fills its RAM before its first beat."""
        old = HB.findall(self.ctl("vm-log", "name=vm0", "bytes=2048")["log"])
        last = int(old[-1][0]) if old else 1 << 62
        for tries in range(30):  # the new boot may still be settling
            try:
                self.ctl("vm-start", "name=vm0", timeout=120)
                break
            except RuntimeError as e:
                if tries == 29:
                    raise SystemExit(f"bench: vm-start vm0 after a floor: {e}")
                time.sleep(1)
        try:
            return self.beating(fill=True, below=last)
        except FillFailed as e:  # mid-row: no fresh appliance to fall back on
            raise SystemExit(f"bench: vm0 after a floor: {e}")

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


def uncompressed_size(path):
    """Bytes of the initramfs's cpio, whatever it is compressed with."""
    with open(path, "rb") as f:
        magic = f.read(4)
    tool = {b"\x02\x21\x4c\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}.get(magic)
    if magic[:2] == b"\x1f\x8b":
        tool = "gzip"
    if not tool:
        return os.path.getsize(path)
    p = subprocess.run([tool, "-dc", path], stdout=subprocess.PIPE, check=True)
    return len(p.stdout)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    for p in ("bzImage.signed", "initramfs.img", "heartbeat.elf"):
        if not os.path.exists(os.path.join(BB, p)):
            raise SystemExit(f"bench: {BB}/{p} missing (make {BB}/{p})")
    rows = []
    floor = []
    pairs = []  # the smallest size's LUO blackout / the floor right after it
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
    def measure(size, mode, n_vms=1):
        what = f"{n_vms} x {size} MiB guests" if n_vms > 1 else f"{size} MiB guest"
        log(f"bench: {what}, {mode}: booting and filling the guests' RAM")
        for attempt in range(1, 4):
            box = Box(size, mode == "luo", n_vms=n_vms)
            try:
                box.start()
                box.beating(fill=True)
                break
            except FillFailed as e:
                log(f"bench:   attempt {attempt}: {e}; a fresh appliance")
                box.close()
        else:
            raise SystemExit(f"bench: {what}: the guests never filled their RAM in three appliances")
        try:
            res = []
            alternate = mode == "luo" and size == SIZES[0] and n_vms == 1
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
                if alternate:  # the floor right after, on the same appliance
                    floor.append(box.floor())
                    pairs.append(lu["blackout_ms"] / floor[-1])
                    log(f"bench:   floor run {i + 1}: bare kexec {floor[-1]:.0f} ms "
                        f"(this run's LUO / floor {pairs[-1]:.2f})")
                    if i + 1 < RUNS:
                        box.restart_filled()
        finally:
            box.close()
        rows.append({
            "size": size, "mode": mode, "n": n_vms,
            "blackout": med([r["blackout_ms"] for r in res]),
            "save": med([r["phases"]["save_ms"] for r in res]),
            "kexec": med([r["phases"]["kexec_ms"] for r in res]),
            "qemu": med([r["phases"]["qemu_start_ms"] for r in res]),
            "restore": med([r["phases"]["restore_ms"] for r in res]),
            "vmstate": med([r["vmstate_bytes"] for r in res]),
        })

    for size in SIZES:
        for mode in ("luo", "full-ram"):
            measure(size, mode)
    if MULTI > 1:
        measure(SIZES[0], "luo", MULTI)
    fl = med(floor)
    initrd = os.path.getsize(INITRAMFS)
    lines = [f"luoinit live-update blackout, medians of {RUNS} runs (TCG, board {BOARD})",
             f"floor (bare kexec of the same kernel and initramfs to /init): {fl:.0f} ms",
             f"initramfs: {initrd / 2**20:.1f} MiB as loaded, {uncompressed_size(INITRAMFS) / 2**20:.1f} MiB "
             "uncompressed (goal <= 16)", "",
             f"{'RAM MiB':>8} {'VMs':>4} {'mode':>9} {'blackout ms':>12} {'save':>8} {'kexec':>8} {'qemu':>8} "
             f"{'restore':>8} {'vmstate B':>11} {'x floor':>8}"]
    for r in rows:
        lines.append(f"{r['size']:>8} {r['n']:>4} {r['mode']:>9} {r['blackout']:>12.0f} {r['save']:>8.0f} "
                     f"{r['kexec']:>8.0f} {r['qemu']:>8.0f} {r['restore']:>8.0f} {r['vmstate']:>11.0f} "
                     f"{r['blackout'] / fl:>8.2f}")
    lines.append("")
    by = {(r["size"], r["mode"], r["n"]): r for r in rows}

    def goal(what, ratio, limit):
        lines.append(f"{what}: {ratio:.2f} (goal <= {limit}: {'met' if ratio <= limit else 'NOT met'})")

    for s in SIZES:
        goal(f"{s} MiB: LUO blackout / floor", by[(s, "luo", 1)]["blackout"] / fl, 1.2)
    lines.append(f"{SIZES[0]} MiB: LUO blackout / the floor right after it, per run: median "
                 f"{med(pairs):.2f} ({', '.join(f'{p:.2f}' for p in pairs)})")
    for s in SIZES:
        ratio = by[(s, "luo", 1)]["blackout"] / by[(s, "full-ram", 1)]["blackout"]
        if s == 2048:  # the goal is stated at 2 GiB (smaller guests save fast on the full-RAM path too)
            goal(f"{s} MiB: LUO blackout / full-RAM blackout", ratio, 0.1)
        else:
            lines.append(f"{s} MiB: LUO blackout / full-RAM blackout: {ratio:.2f} (the goal is at 2048 MiB)")
    if len(SIZES) > 1:
        goal(f"LUO blackout {SIZES[-1]} MiB / {SIZES[0]} MiB",
             by[(SIZES[-1], "luo", 1)]["blackout"] / by[(SIZES[0], "luo", 1)]["blackout"], 1.1)
    if (SIZES[0], "luo", MULTI) in by:
        goal(f"{MULTI} x {SIZES[0]} MiB VMs together / one VM",
             by[(SIZES[0], "luo", MULTI)]["blackout"] / by[(SIZES[0], "luo", 1)]["blackout"], 1.3)
    lines.append(f"vmstate at {SIZES[-1]} MiB: {by[(SIZES[-1], 'luo', 1)]['vmstate'] / 1024:.0f} KiB")
    lines.append(f"luo/floor {by[(SIZES[-1], 'luo', 1)]['blackout'] / fl:.2f} at {SIZES[-1]} MiB")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(BB, "bench.txt"), "w") as f:
        f.write(text)
    dat = os.path.join(BB, "bench.dat")
    with open(dat, "w") as f:
        f.write("# size luo_blackout full_blackout floor\n")
        for s in SIZES:
            f.write(f"{s} {by[(s, 'luo', 1)]['blackout']} {by[(s, 'full-ram', 1)]['blackout']} {fl}\n")
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
