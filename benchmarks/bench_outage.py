"""The database away: how long a call takes to fail, and how soon calls work again after it.

    python benchmarks/bench_outage.py                  # a 70 s outage
    python benchmarks/bench_outage.py --outage 150 --calls 5
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_outage.py   # A/B another version

On a throwaway PostgreSQL cluster (initdb/pg_ctl in a temporary directory) a spool is opened
and used, then the cluster is stopped. Figures:
- each of `--calls` enqueues while the server is away: wall-clock seconds until it fails (the
  first may find live pooled connections broken; the later ones show whether each waits the
  pool's 10 s timeout or fails at once);
- after `--outage` seconds the cluster starts again: seconds from the server accepting
  connections to the first enqueue that succeeds, tried every 0.1 s (how long a client stays
  away after the server came back: psycopg's pool doubles the wait between its attempts).
The code measured is the `modempool` found first (the checkout this file is in, unless
PYTHONPATH names another); its path is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT))   # tests.pg_cluster, whichever modempool is measured

import modempool  # noqa: E402
from modempool.spool import Spool  # noqa: E402
from tests.pg_cluster import throwaway_cluster  # noqa: E402


def _enqueue(spool: Spool, text: str) -> bool:
    try:
        spool.enqueue("+8613800138000", text)
    except Exception:  # noqa: BLE001 - the outage's error, whichever the version raises
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=70.0, help="seconds the server is away")
    parser.add_argument("--calls", type=int, default=5, help="calls timed during the outage")
    args = parser.parse_args()
    print(f"modempool from {Path(modempool.__file__).parent}; load {os.getloadavg()[0]:.2f}")
    with throwaway_cluster() as cluster, Spool(cluster.new_schema()) as spool:
        assert _enqueue(spool, "before")
        cluster.stop()
        stopped = time.monotonic()
        for n in range(args.calls):
            began = time.monotonic()
            assert not _enqueue(spool, f"during {n}")
            print(f"call {n + 1} during the outage failed after {time.monotonic() - began:.3f} s")
        time.sleep(max(0.0, args.outage - (time.monotonic() - stopped)))  # the outage itself
        cluster.start()
        back = time.monotonic()
        tries = 1
        while not _enqueue(spool, "after"):
            time.sleep(0.1)
            tries += 1
        print(f"after a {args.outage:.0f} s outage: the first call succeeded "
              f"{time.monotonic() - back:.2f} s after the server was back ({tries} tries)")


if __name__ == "__main__":
    main()
