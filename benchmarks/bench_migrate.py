"""Migration benchmark: `spool migrate` of a big SQLite spool into PostgreSQL, the first run and
a rerun (which copies nothing but checks every row), in seconds of wall clock and of this
process's CPU (the server's own work is in the wall clock only).

    python benchmarks/bench_migrate.py                      # 100,000 messages, a part each
    python benchmarks/bench_migrate.py --messages 460000 --reruns 2

Run it with PYTHONPATH set to the tree to measure (an older one for an A/B: the script uses
only `migrate()`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scaleout import DELIVERED_HISTORY  # noqa: E402
from modempool.spool import Spool  # noqa: E402
from modempool.spool.migrate import migrate  # noqa: E402
from tests.pg_cluster import throwaway_cluster  # noqa: E402


def filled_sqlite(path: Path, size: int) -> None:
    """`size` delivered messages with a part each."""
    with Spool(path) as spool:
        for first in range(0, size, 50_000):
            spool.enqueue_many({"to": f"+86138{i % 100000000:08d}", "text": f"old {i}"}
                               for i in range(first, min(size, first + 50_000)))
        with spool.engine.tx() as conn:
            for statement in DELIVERED_HISTORY:
                conn.execute(statement)


def timed(source: Path, url: str) -> tuple[float, float, bool]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = migrate(source, url)
    return time.perf_counter() - wall, time.process_time() - cpu, result.agrees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--reruns", type=int, default=1)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {args.messages:,} messages, a part each")
    with tempfile.TemporaryDirectory() as directory, throwaway_cluster() as cluster:
        source = Path(directory) / "spool.db"
        filled_sqlite(source, args.messages)
        url = cluster.new_schema()
        wall, cpu, agrees = timed(source, url)
        print(f"first run: {wall:7.2f} s wall, {cpu:7.2f} s CPU here, agrees={agrees}")
        for _ in range(args.reruns):
            wall, cpu, agrees = timed(source, url)
            print(f"rerun:     {wall:7.2f} s wall, {cpu:7.2f} s CPU here, agrees={agrees}")


if __name__ == "__main__":
    main()
