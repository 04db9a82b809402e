#!/usr/bin/env python3
"""An A/B of one kernel command-line word on the LUO blackout, on one
appliance: live updates alternate between the boot's own command line (A)
and the same with WORDS added (B), so both arms share the machine's load.
Prints each update's phases and the medians per arm.

  BB=build/qemu-x86_64 python3 tests/bench/ab_cmdline.py "transparent_hugepage=always" [PAIRS] [SIZE_MIB]

B can be another initramfs instead: "initrd=FILE" copies FILE onto the
state disk and B's updates boot it (`update initrd=`), A's the board's own;
for a change in what the initramfs holds (another QEMU build, say).

For the README's measurements of single changes (Benchmark, "Tried and
not kept"): build the change so that WORDS turn it off, and compare."""
import statistics
import subprocess
import sys

import bench


def main():
    words = sys.argv[1]
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    box = bench.Box(size, True)
    initrd = words[len("initrd="):] if words.startswith("initrd=") else None
    if initrd:
        # debugfs writes into the ext4 image without mounting it.
        subprocess.run(["debugfs", "-w", "-R", f"write {initrd} boot/initramfs-b.img", box.state],
                       check=True, capture_output=True)
    arms = {"A": [], "B": []}
    try:
        box.start()
        box.beating()
        base = box.ctl("status")["firmware"]["running"]["kernel_cmdline"]
        for i in range(pairs):
            for arm in ("B", "A") if i % 2 else ("A", "B"):
                if initrd:
                    args = [f"initrd=/state/boot/initramfs{'-b' if arm == 'B' else ''}.img"]
                else:
                    args = [f"cmdline={base}" if arm == "A" else f"cmdline={base} {words}"]
                before = box.ctl("status")
                box.ctl("update", *args, timeout=600)
                st = box.wait(lambda s: s["boot_id"] != before["boot_id"]
                              and all(v["state"] == "running" and v.get("last_update") for v in s["vms"]),
                              1800, "the updated appliance")
                if st.get("last_update_error"):
                    raise SystemExit(f"ab: update reported {st['last_update_error']}")
                lu = st["vms"][0]["last_update"]
                ph = lu["phases"]
                arms[arm].append(lu)
                bench.log(f"ab: {arm}: blackout {lu['blackout_ms']:.0f} ms, "
                          f"kexec {ph['kexec_ms']:.0f}, qemu {ph['qemu_start_ms']:.0f}, "
                          f"restore {ph['restore_ms']:.0f}")
                box.beating()
    finally:
        box.close()
    for arm, res in arms.items():
        what = ("the board's own" if arm == "A" else words) if initrd else \
            ("the boot's own line" if arm == "A" else f"+ {words}")
        print(f"{arm} ({what}), {len(res)} updates: median blackout "
              f"{statistics.median(r['blackout_ms'] for r in res):.0f} ms, qemu phase "
              f"{statistics.median(r['phases']['qemu_start_ms'] for r in res):.0f} ms, kexec "
              f"{statistics.median(r['phases']['kexec_ms'] for r in res):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
