"""What the shared failed-auth throttle costs (modempool/auth_throttle.py) under a flood of
wrong keys: a failure is counted in memory, and the process writes its new failures together
at most every `flush_every` (0.5 s), in one transaction that also deletes drained rows; past
`new_per_second` (100) new addresses a second a new address is refused from memory only.

    python benchmarks/bench_auth_throttle.py [--seconds 60] [--rate 1000]

On an SQLite spool and on a throwaway PostgreSQL cluster (tests/pg_cluster.py, fsync off), with
the server's defaults (10 failures a minute per address), the throttle's clock is driven by
hand: `--rate` failures a second for `--seconds`, half of them from new addresses (a flood of
addresses) and half from 50 addresses guessing again and again. It prints, for one `failed()`
call, the microseconds (p50, p99, max, wall) and this process's CPU per call; for the flushes
(run inline here, by the first failure after `flush_every`; a server runs them in a thread,
`keep_flushing`) how many, their milliseconds (mean, max, wall: the time the spool's write
lock is held) and the rows written each; the rows left in `auth_failures` at the end; and
the microseconds of one `retry_after()` (the check before a key, memory).

Measured (A/B pairs in one window, load 2.2-3.0, 2 cores): failed() p50 4.5-4.6 us, p99
8-10 us on both engines (p50 28-30 us, p99 150-220 us before forgetting old addresses stopped
copying the whole memory on each failure); flushes 0.8-1.0 ms on SQLite, 2.2 ms on PostgreSQL
(one statement; 9.5-10.6 ms when it was one an address), 100 addresses each; 650 rows left;
retry_after() 4-5 us. docs/http.md has them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modempool.auth_throttle import FailureThrottle  # noqa: E402
from modempool.spool import Spool  # noqa: E402

REPEATERS = 50   # addresses that keep guessing


def _address(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def measure(target, seconds: float, rate: int) -> dict[str, float]:
    with Spool(target) as spool:
        throttle = FailureThrottle(spool, limit=10, window=60.0)   # the server's defaults
        calls: list[float] = []
        flushes: list[tuple[float, int]] = []   # (seconds, rows written)
        total = int(seconds * rate)
        cpu = time.process_time()
        for n in range(total):
            now = 1000.0 + n / rate
            client = _address(1_000_000 + n) if n % 2 else _address(n // 2 % REPEATERS)
            writing = throttle.pending() + 1
            before = throttle._flushed_at
            started = time.perf_counter()
            throttle.failed(client, now=now)
            spent = time.perf_counter() - started
            if throttle._flushed_at != before:   # this call wrote the failures gathered
                flushes.append((spent, writing))
            else:
                calls.append(spent)
        cpu = time.process_time() - cpu
        rows = spool.rows("SELECT count(*) FROM auth_failures")[0][0]
        started = time.perf_counter()
        for n in range(total):
            throttle.retry_after(_address(n % 5000), now=1000 + seconds)
        check = time.perf_counter() - started
    calls.sort()
    return {"calls": len(calls), "p50_us": calls[len(calls) // 2] * 1e6,
            "p99_us": calls[int(len(calls) * 0.99)] * 1e6, "max_us": calls[-1] * 1e6,
            "cpu_us": cpu / total * 1e6, "flushes": len(flushes),
            "flush_ms": statistics.fmean(f[0] for f in flushes) * 1e3 if flushes else 0.0,
            "flush_max_ms": max((f[0] for f in flushes), default=0.0) * 1e3,
            "flush_rows": statistics.fmean(f[1] for f in flushes) if flushes else 0.0,
            "rows": rows, "retry_after_us": check / total * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=1000, help="failures a second")
    args = parser.parse_args()
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster() as cluster, tempfile.TemporaryDirectory() as directory:
        for name, target in (("sqlite", Path(directory) / "spool.db"),
                             ("postgresql", cluster.new_schema())):
            got = measure(target, args.seconds, args.rate)
            print(f"{name:<10} failed(): p50 {got['p50_us']:.1f} us, p99 {got['p99_us']:.1f} us, "
                  f"max {got['max_us']:.0f} us wall, {got['cpu_us']:.1f} us CPU a call (flushes "
                  f"included); {got['flushes']} flushes in {args.seconds:.0f} s: "
                  f"{got['flush_ms']:.2f} ms mean, {got['flush_max_ms']:.2f} ms max, "
                  f"{got['flush_rows']:.0f} addresses each; rows left: {got['rows']}; "
                  f"retry_after(): {got['retry_after_us']:.2f} us")

if __name__ == "__main__":
    main()
