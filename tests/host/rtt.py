"""Round-trip limits from a baseline measured in the same run.

A fixed limit (it was 2 s) is lax on a quiet machine, where a 1.9 s stall
passes, and flaky on a loaded one. Instead a test times round trips just
before the condition it puts the server in, on the same machine under the
same load, and allows FACTOR times the slowest of them: a server blocked
behind a client, a pipe or a QEMU misses that by far, a busy one does not.
FLOOR keeps scheduling noise on a shared 2-core machine (a few ms) from
counting as a stall when the baseline is a fraction of a millisecond.
"""
import time

FACTOR = 10
FLOOR = 0.05
SAMPLES = 10


def timed(fn):
    """Seconds fn() took."""
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def _ms(xs):
    return "[" + ", ".join(f"{x * 1000:.1f}" for x in xs) + "] ms"


class Baseline:
    """SAMPLES round trips of fn, spread over a moment so that the machine's
    current jitter is part of the baseline; limit = the allowed round trip."""

    def __init__(self, fn, what="status"):
        self.what = what
        self.samples = []
        for _ in range(SAMPLES):
            self.samples.append(timed(fn))
            time.sleep(0.02)
        self.limit = max(FACTOR * max(self.samples), FLOOR)

    def describe(self):
        return (f"limit {self.limit * 1000:.0f} ms = {FACTOR} x the slowest of {SAMPLES} {self.what} "
                f"round trips just before {_ms(self.samples)}, at least {FLOOR * 1000:.0f} ms")

    def fast(self, rtt):
        return rtt < self.limit

    def check(self, rtts, during):
        """Fail unless every round trip in rtts (or the one given) is within the limit."""
        rtts = [rtts] if isinstance(rtts, (int, float)) else list(rtts)
        assert rtts and max(rtts) < self.limit, f"{self.what} round trips {during}: {_ms(rtts)}; {self.describe()}"
