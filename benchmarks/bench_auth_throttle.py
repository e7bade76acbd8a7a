"""What the shared failed-auth throttle costs (modempool/auth_throttle.py): a failed key check
writes one row (and deletes the drained ones) in the spool; a check before a key reads memory.

    python benchmarks/bench_auth_throttle.py [--failures 3000]

On an SQLite spool and on a throwaway PostgreSQL cluster (tests/pg_cluster.py, fsync off), it
prints the microseconds (wall clock and this process's CPU) of one `failed()` while a flood of
new addresses comes (each failing once, every 1 ms of the throttle's clock: the table holds the
last window's), the rows left, and the microseconds of one `retry_after()`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modempool.auth_throttle import FailureThrottle  # noqa: E402
from modempool.spool import Spool  # noqa: E402


def measure(target, failures: int) -> dict[str, float]:
    with Spool(target) as spool:
        throttle = FailureThrottle(spool, limit=10, window=1.0)   # a window of 1000 failures
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(failures):
            throttle.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", now=1000 + n / 1000)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows = spool.rows("SELECT count(*) FROM auth_failures")[0][0]
        started = time.perf_counter()
        for n in range(failures):
            throttle.retry_after(f"10.0.{n >> 8 & 255}.{n & 255}", now=1000 + failures / 1000)
        check = time.perf_counter() - started
    return {"failed_us": wall / failures * 1e6, "failed_cpu_us": cpu / failures * 1e6,
            "rows": rows, "retry_after_us": check / failures * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=3000)
    args = parser.parse_args()
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster() as cluster, tempfile.TemporaryDirectory() as directory:
        for name, target in (("sqlite", Path(directory) / "spool.db"),
                             ("postgresql", cluster.new_schema())):
            got = measure(target, args.failures)
            print(f"{name:<10} failed(): {got['failed_us']:7.0f} us wall, "
                  f"{got['failed_cpu_us']:5.0f} us CPU here; rows after {args.failures} "
                  f"addresses: {got['rows']}; retry_after(): {got['retry_after_us']:.2f} us")


if __name__ == "__main__":
    main()
