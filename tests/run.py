#!/usr/bin/python3
"""Run one test tier and record its counts; or print the summary of all tiers.

  run.py --results DIR unit BIN...     cmocka binaries
  run.py --results DIR host|board DIR  pytest on a folder
  run.py --results DIR --summary       "check: N passed, N failed[, N skipped]"
"""
import os
import re
import subprocess
import sys


def run_cmocka(bins):
    passed = failed = 0
    for b in bins:
        p = subprocess.run([b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(p.stdout)
        m = re.search(r"\[  PASSED  \] (\d+) test", p.stdout)
        f = re.search(r"\[  FAILED  \] (\d+) test", p.stdout)
        np, nf = int(m.group(1)) if m else 0, int(f.group(1)) if f else 0
        if p.returncode != 0 and nf == 0:
            nf = 1  # crashed (sanitizer) before cmocka could count
            print(f"run.py: {b} exited with {p.returncode}")
        passed += np
        failed += nf
    return passed, failed, 0


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
    if p.returncode not in (0, 5) and failed == 0:
        failed = 1
    return counts["passed"], failed, counts["skipped"]


def main():
    a = sys.argv[1:]
    if a[0] != "--results":
        sys.exit(__doc__)
    results = a[1]
    if a[2] == "--summary":
        tot = [0, 0, 0]
        for name in sorted(os.listdir(results)):
            with open(os.path.join(results, name)) as f:
                vals = [int(x) for x in f.read().split()]
            print(f"{name}: {vals[0]} passed, {vals[1]} failed, {vals[2]} skipped")
            tot = [x + y for x, y in zip(tot, vals)]
        print(f"check: {tot[0]} passed, {tot[1]} failed, {tot[2]} skipped")
        sys.exit(1 if tot[1] or tot[0] == 0 else 0)
    tier = a[2]
    res = run_cmocka(a[3:]) if tier == "unit" else run_pytest(a[3], tier)
    with open(os.path.join(results, tier), "w") as f:
        f.write("%d %d %d\n" % res)
    print(f"{tier}: {res[0]} passed, {res[1]} failed, {res[2]} skipped")
    sys.exit(1 if res[1] else 0)


if __name__ == "__main__":
    main()
