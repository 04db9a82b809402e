#!/usr/bin/python3
"""make soak: SOAK_UPDATES (default 20) live updates in a row on the board.

After each one: the guest beats on with pattern=ok and its counter never
went back (a reset would mean the guest rebooted), the mode is luo, and the
blackout is printed. At the end every beat line of the serial log must be
whole (no byte lost anywhere in it), and the init's own open fds
(status.open_fds) must be where they were after the first update: no fd,
memfd or LUO session leaks from one update to the next.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from bench import HB, Box  # noqa: E402

N = int(os.environ.get("SOAK_UPDATES", "20"))
WHOLE = re.compile(r"heartbeat \d+ pattern=(ok|bad)$")
LOG_BYTES = 64 * 1024  # vm-log's most: a soak's whole serial log


def counters(box):
    log = box.ctl("vm-log", "name=vm0", "bytes=16384")["log"]
    return [(int(n), ok) for n, ok in HB.findall(log)]


def main():
    box = Box(64, True, cpu=os.environ.get("SOAK_CPU", "max,svm=off"))
    fds = []
    try:
        box.start()
        box.beating()
        last = counters(box)[-1][0]
        for i in range(N):
            lu, st = box.update()
            box.beating(after=last)
            seen = counters(box)
            # Every beat after the last one seen before the update is larger.
            idx = [k for k, (n, _) in enumerate(seen) if n == last]
            after = [n for n, _ in seen[idx[-1] + 1:]] if idx else [n for n, _ in seen]
            if not after or after[0] <= last or any(y <= x for x, y in zip(after, after[1:])):
                raise SystemExit(f"soak: update {i + 1}: the counter went back: {last} then {after[:10]}")
            bad = [f"{n} pattern={ok}" for n, ok in seen[-20:] if ok != "ok"]
            if bad:
                raise SystemExit(f"soak: update {i + 1}: {', '.join(bad)}")
            if lu["mode"] != "luo":
                raise SystemExit(f"soak: update {i + 1}: mode {lu['mode']}")
            fds.append(st.get("open_fds"))
            last = seen[-1][0]
            print(f"soak: update {i + 1}/{N}: blackout {lu['blackout_ms']:.0f} ms "
                  f"(kexec {lu['phases']['kexec_ms']:.0f}), vmstate {lu['vmstate_bytes']} B, "
                  f"counter {seen[-1][0]}, init fds {fds[-1]}", flush=True)
        # Every beat line whole: a byte lost anywhere in one (README Limits,
        # an open defect) shows here, not only in the counter or the pattern.
        log = box.ctl("vm-log", "name=vm0", f"bytes={LOG_BYTES}")["log"]
        whole = log.splitlines()[1:]  # the first may be cut by the window
        if not log.endswith("\n"):
            whole = whole[:-1]  # the guest is printing the last one
        # Other lines (the guest's banners) cannot be checked; one lost byte
        # leaves "beat" or "pattern" in a beat line, a lost newline joins two.
        torn = [ln for ln in whole if ("beat" in ln or "pattern" in ln)
                and not (WHOLE.match(ln) or ln.startswith("heartbeat guest:"))]
        if torn:
            raise SystemExit(f"soak: {len(torn)} torn serial line(s): {torn[:5]}")
    finally:
        box.close()
    if fds and len(set(fds[1:] or fds)) != 1:
        raise SystemExit(f"soak: the init's fd count moved: {fds}")
    print(f"soak: {N} live updates, guest never reset, pattern ok, init fds flat at {fds[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
