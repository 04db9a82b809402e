#!/usr/bin/env python3
"""How much of QEMU's start after a kexec is this machine's TCG translating
code it has not seen: vm0 started again and again on one appliance, first in
the kernel it booted, then after a bare kexec (vm0 stopped, `update`), with
the outer QEMU's count of translated blocks (`info jit`, TB count) before and
after each start.

  BB=build/qemu-x86_64 python3 tests/bench/coldstart.py [STARTS]

Each line: the `vm-start` round trip (the control client's, until QEMU
greets on QMP, the machine created) and the blocks the outer QEMU translated
meanwhile. The outer TCG keys its translations by physical address: a
program whose pages sit where they sat the last time starts on translations
made then, one loaded afresh (a kexec unpacks the initramfs into other pages)
pays for them again. Hardware has nothing of the kind."""
import os
import re
import sys
import time

import bench

sys.path.insert(0, os.path.join(bench.TOP, "tests"))
from outerqmp import OuterQMP  # noqa: E402


def translated(mon):
    text = mon.cmd("human-monitor-command", **{"command-line": "info jit"})
    m = re.search(r"TB count\s+(\d+)", text)
    f = re.search(r"TB flush count\s+(\d+)", text)
    if not m or not f:
        raise SystemExit("coldstart: the outer QEMU's `info jit` has no TB count:\n" + text)
    return int(m[1]), int(f[1])


def starts(box, mon, n, what):
    rows = []
    for i in range(n):
        if box.ctl("status")["vms"][0]["state"] != "stopped":
            box.ctl("vm-stop", "name=vm0", "timeout=0", timeout=60)
            time.sleep(2)  # the stop's own work done
        tb0, fl0 = translated(mon)
        t = time.monotonic()
        box.ctl("vm-start", "name=vm0", timeout=120)
        ms = (time.monotonic() - t) * 1000
        tb1, fl1 = translated(mon)
        if fl1 != fl0:  # a flush empties the count: this start's figure is lost
            bench.log(f"coldstart: {what} start {i + 1}: the outer TCG flushed its cache, not counted")
            continue
        rows.append((ms, tb1 - tb0))
        bench.log(f"coldstart: {what} start {i + 1}: {ms:.0f} ms, {tb1 - tb0} blocks translated")
        time.sleep(2)
    return rows


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    box = bench.Box(64, True)
    try:
        box.start()
        box.beating()
        mon = OuterQMP(os.path.join(box.dir, "qmp.sock"))
        before = starts(box, mon, n, "booted kernel")
        kexec = box.floor()
        time.sleep(5)  # the new init's work after the kexec done
        after = starts(box, mon, n, "after a kexec")
        mon.close()
    finally:
        box.close()
    print(f"coldstart: bare kexec {kexec:.0f} ms")
    for what, rows in (("booted kernel", before), ("after a kexec", after)):
        print(f"coldstart: {what}: " + ", ".join(f"{ms:.0f} ms / {tb} TBs" for ms, tb in rows))


if __name__ == "__main__":
    main()
