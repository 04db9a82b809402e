#!/usr/bin/env python3
"""Where the appliance's CPUs spend one live update's restore, sampled from
outside: the outer QEMU's own monitor (qmp.sock) is asked for every vCPU's
registers (`info registers -a`) as fast as it answers, while one LUO update
of a SIZE_MIB guest runs. The update's new kernel gets `nokaslr norandmaps`,
so that its kernel addresses are System.map's and user programs load where
they always do (a PIE at 0x555555554000, libraries below 0x7ffff8000000).

  BB=build/qemu-x86_64 python3 tests/bench/profile.py [SIZE_MIB] [TOP]

Prints what each vCPU did per 100 ms (halted, kernel, user by address
space), then, for the window from the new init's exec to "live update
done", the samples per address space (CR3: the init's is the first user one
after the kexec, QEMU's the next) with its top kernel functions and user
addresses (64 KiB buckets). TCG's eip is current only at a translated
block's end, and the sampling itself slows the appliance (a blackout about
1.5 x the bench's): read it for proportions, not times, and run it more
than once (README Benchmark: an item of one profile was absent in the
next). A kernel thread shows the address space it borrowed."""
import bisect
import collections
import json
import os
import re
import sys
import threading
import time

import bench

sys.path.insert(0, os.path.join(bench.TOP, "tests"))
from outerqmp import OuterQMP  # noqa: E402

REGS = re.compile(r"CPU#(\d+)\s.*?RIP=([0-9a-f]+) RFL=\S+ \[.*?\] CPL=(\d) .*?HLT=(\d).*?CR3=([0-9a-f]+)", re.S)
KERNEL = 0xffffffff80000000


def sample(path, out, stop):
    mon = OuterQMP(path)
    while not stop.is_set():
        t = time.monotonic()
        text = mon.cmd("human-monitor-command", **{"command-line": "info registers -a"})
        out.append((t, [(int(m[1]), int(m[2], 16), int(m[3]), m[4] == "1", int(m[5], 16))
                        for m in REGS.finditer(text.replace("\r", ""))]))
    mon.close()


def kernel_symbols():
    syms = []
    with open(os.path.join(bench.BB, "kernel-obj", "System.map")) as f:
        for line in f:
            addr, kind, name = line.split()[:3]
            if kind in "tTwW":
                syms.append((int(addr, 16), name))
    syms.sort()
    addrs = [a for a, _ in syms]
    return lambda rip: syms[bisect.bisect_right(addrs, rip) - 1][1]


def console_times(path):
    """Kernel timestamps of the new boot's /init exec and the restore's end."""
    run = done = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"\[\s*([0-9.]+)\]", line)
            if not m:
                continue
            if "Run /init as init process" in line:
                run, done = float(m[1]), None
            elif "live update done" in line and run is not None:
                done = float(m[1])
    return run, done


def main():
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    ksym = kernel_symbols()
    box = bench.Box(size, True)
    samples, stop = [], threading.Event()
    try:
        box.start()
        box.beating()
        before = box.ctl("status")
        base = before["firmware"]["running"]["kernel_cmdline"]
        th = threading.Thread(target=sample, args=(os.path.join(box.dir, "qmp.sock"), samples, stop))
        th.start()
        t0 = time.monotonic()
        try:
            box.ctl("update", f"cmdline={base} nokaslr norandmaps", timeout=600)
            t_reply = time.monotonic()  # the kernel is loaded: the blackout is next
            st = box.wait(lambda s: s["boot_id"] != before["boot_id"]
                          and all(v["state"] == "running" and v.get("last_update") for v in s["vms"]),
                          900, "the updated appliance")
        finally:
            stop.set()
            th.join()
        run, done = console_times(box.console)
    finally:
        box.close()
    lu = st["vms"][0]["last_update"]
    print(f"update: blackout {lu['blackout_ms']:.0f} ms, phases {json.dumps(lu['phases'])}; "
          f"{len(samples)} samples in {samples[-1][0] - samples[0][0]:.1f} s")
    if run is None or done is None:
        raise SystemExit("profile: no 'Run /init' and 'live update done' in the new boot's console")

    def what(cpu):
        _, rip, cpl, halted, cr3 = cpu
        if halted:
            return "halt"
        return f"user {cr3:x}" if cpl == 3 else ("kernel" if rip >= KERNEL else "other")

    print("\nper 100 ms since the update request (per vCPU sample):")
    buckets = collections.defaultdict(collections.Counter)
    for t, cpus in samples:
        for c in cpus:
            buckets[int((t - t0) * 10)][what(c)] += 1
    for b in sorted(buckets):
        print(f"{b / 10:6.1f} s  " + "  ".join(f"{k}={n}" for k, n in buckets[b].most_common(4)))

    # The window: from the new init's first user-mode sample (the first after
    # a second without any: the kernel's boot) for as long as the console
    # says the init took to the restore's end. (A nested guest shows as
    # its own registers, at CPL 0 here: not user mode.)
    start, last_user = None, t_reply
    for t, cpus in samples:
        if t < t_reply or not any(c[2] == 3 for c in cpus):
            continue
        if t - last_user >= 1.0:
            start = t
            break
        last_user = t
    if start is None:
        raise SystemExit("profile: no user-mode sample after a kernel's boot")
    end = start + (done - run)
    print(f"\nwindow: {start - t0:.2f}-{end - t0:.2f} s (the new init's exec to 'live update done', "
          f"{(done - run) * 1000:.0f} ms by the console)")
    per = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    for t, cpus in samples:
        if start <= t < end:
            for _, rip, cpl, halted, cr3 in cpus:
                key = "halt" if halted else f"{cr3:x}"
                total[key] += 1
                if not halted:
                    per[key][f"user {rip >> 16 << 16:x}" if cpl == 3 else f"kernel {ksym(rip)}"
                             if rip >= KERNEL else f"other {rip:x}"] += 1
    n = sum(total.values())
    for key, count in total.most_common():
        kern = sum(c for w, c in per[key].items() if w.startswith("kernel"))
        print(f"\n{'halted' if key == 'halt' else 'CR3 ' + key}: {count} samples, {100 * count / n:.0f} %"
              + ("" if key == "halt" else f" (kernel {100 * kern / count:.0f} %)"))
        for w, c in per[key].most_common(top):
            print(f"  {c:6d}  {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
