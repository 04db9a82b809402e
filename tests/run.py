#!/usr/bin/python3
"""Run one test tier and record its counts; or print the summary of all tiers.

  run.py --results DIR unit BIN...     cmocka binaries
  run.py --results DIR host|board DIR  pytest on a folder
  run.py --results DIR --summary [TIER...]
                                       "check: N passed, N failed, N skipped";
                                       fails when a tier (default: unit host
                                       board) failed, left no result or ran
                                       no test
"""
import os
import re
import subprocess
import sys

TIERS = ("unit", "host", "board")


def _sum(pattern, text):
    return sum(int(n) for n in re.findall(pattern, text, re.M))


def run_cmocka(bins):
    """cmocka's own counts, summed over every group of every binary. A binary
    that ran fewer tests than it announced (a crash, a sanitizer abort), none
    at all, or exited nonzero with no failure counted, counts as failed."""
    passed = failed = skipped = 0
    for b in bins:
        p = subprocess.run([b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(p.stdout)
        planned = _sum(r"^\[==========\] Running (\d+) test", p.stdout)
        np_ = _sum(r"^\[  PASSED  \] (\d+) test", p.stdout)
        nf = _sum(r"^\[  FAILED  \] (\d+) test", p.stdout)
        ns = _sum(r"^\[  SKIPPED \] (\d+) test", p.stdout)
        if planned == 0:
            nf = max(nf, 1)
            print(f"run.py: {b} ran no test (exit {p.returncode})")
        elif np_ + nf + ns < planned:
            missing = planned - (np_ + nf + ns)
            nf += missing
            print(f"run.py: {b} announced {planned} tests, {missing} never finished (exit {p.returncode})")
        elif p.returncode != 0 and nf == 0:
            nf = 1
            print(f"run.py: {b} exited with {p.returncode} and no failed test")
        passed += np_
        failed += nf
        skipped += ns
    return passed, failed, skipped


def run_pytest(folder, tier):
    py = os.environ.get("PYTHON", "/usr/bin/python3")
    args = [py, "-m", "pytest", "-v", "-rfEs", "-p", "no:cacheprovider", folder]
    extra = os.environ.get("PYTEST_ARGS")
    if extra:
        args += extra.split()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("="):
            last = line
    p.wait()
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", last):
        counts[k] = int(n)
    failed = counts["failed"] + counts["error"]
    if p.returncode == 5:  # pytest collected nothing: a tier that tests nothing fails
        print(f"run.py: pytest collected no test in {folder}")
        failed = max(failed, 1)
    elif p.returncode != 0 and failed == 0:
        print(f"run.py: pytest exited with {p.returncode} and no failed test")
        failed = 1
    return counts["passed"], failed, counts["skipped"]


def summary(results, tiers):
    """One line per tier and the total; fails when a tier failed a test, left
    no result (it did not run, or stopped before its tests, e.g. on a build
    error), or ran no test at all (everything skipped)."""
    tot = [0, 0, 0]
    missing, empty = [], []
    for name in tiers:
        try:
            with open(os.path.join(results, name)) as f:
                vals = [int(x) for x in f.read().split()]
            if len(vals) != 3:
                raise ValueError(vals)
        except (OSError, ValueError):
            print(f"{name}: NO RESULT (the tier did not run, or stopped before its tests)")
            missing.append(name)
            continue
        print(f"{name}: {vals[0]} passed, {vals[1]} failed, {vals[2]} skipped")
        if vals[0] + vals[1] == 0:
            empty.append(name)
        tot = [x + y for x, y in zip(tot, vals)]
    line = f"check: {tot[0]} passed, {tot[1]} failed, {tot[2]} skipped"
    if missing:
        line += f"; no result from {', '.join(missing)}"
    if empty:
        line += f"; no test ran in {', '.join(empty)}"
    print(line)
    sys.exit(1 if tot[1] or missing or empty else 0)


def main():
    a = sys.argv[1:]
    if a[0] != "--results":
        sys.exit(__doc__)
    results = a[1]
    if a[2] == "--summary":
        summary(results, a[3:] or TIERS)
    tier = a[2]
    res = run_cmocka(a[3:]) if tier == "unit" else run_pytest(a[3], tier)
    with open(os.path.join(results, tier), "w") as f:
        f.write("%d %d %d\n" % res)
    print(f"{tier}: {res[0]} passed, {res[1]} failed, {res[2]} skipped")
    sys.exit(1 if res[1] else 0)


if __name__ == "__main__":
    main()
