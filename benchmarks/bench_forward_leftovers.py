"""What `modempool status` pays for its forward-leftovers line: `forward_leftovers.leftovers`
(the forward commands cut short with no mark) in a spool whose `forward_log` holds a long
history, on SQLite and a throwaway PostgreSQL.

    python benchmarks/bench_forward_leftovers.py                       # 1,000,000 rows
    python benchmarks/bench_forward_leftovers.py --rows 200000 --failed-share 0.2
    PYTHONPATH=/path/to/other/tree python benchmarks/bench_forward_leftovers.py   # A/B

The history: each received SMS forwarded to two numbers (`queued`; one in 20 refused,
`failed`) and run through the command (`ok`; a share `--failed-share` failed once first, then
`ok`), and `--leftovers` SMS whose command's only attempt failed with no mark. The tree
imported is the first on PYTHONPATH (this file's tree otherwise), so one copy of this file
measures two trees. Figures: median, 90th percentile and least of `--repeats` looks, in
milliseconds (on a shared machine the least says most).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))   # after PYTHONPATH: a tree named there is the one measured

from modempool.operator.db import ensure_schema  # noqa: E402
from modempool.operator.forward_leftovers import leftovers  # noqa: E402
from modempool.operator.forwarding import SCHEMA  # noqa: E402
from modempool.spool import Spool  # noqa: E402

COMMAND = "command sha256:0123456789abcdef"
NOW = "2026-12-07T12:00:00.000Z"
#: The ids 1..n of a recursive count (both engines run it).
COUNT = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "


def fill(spool: Spool, rows: int, failed_share: float, cut_short: int) -> int:
    """About `rows` rows of `forward_log` over the SMS they forward; the SMS count."""
    failing = max(1, round(1 / failed_share)) if failed_share > 0 else 0
    per_sms = 3 + (1 / failing if failing else 0)
    sms = int(rows / per_sms)
    ensure_schema(spool.db, SCHEMA)
    with spool.engine.tx() as conn:
        conn.execute(COUNT.format(n=sms) + "INSERT INTO inbound (sender, sim, text, received_at, "
                     "stored_at) SELECT '+86138' || CAST(100000 + i AS TEXT), 'm1', 'text', ?, ? "
                     "FROM n", (NOW, NOW))
        first = conn.execute("SELECT min(id) FROM inbound").fetchone()[0]
        leftover_at = {first + sms // (cut_short + 1) * (k + 1) for k in range(cut_short)}
        log = ("INSERT INTO forward_log (inbound_id, target, attempt, outcome, detail, "
               "created_at) SELECT {first} - 1 + i, {target}, {attempt}, {outcome}, '', ? "
               "FROM n WHERE {where}")
        numbers = log.format(first=first, target="'+8613900000000'", attempt=1,
                             outcome="CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'queued' END",
                             where="1 = 1")
        conn.execute(COUNT.format(n=sms) + numbers, (NOW,))
        conn.execute(COUNT.format(n=sms) + numbers.replace("+8613900000000", "+8613900000001")
                     .replace("i % 20 = 0", "1 = 0"), (NOW,))
        if failing:
            conn.execute(COUNT.format(n=sms) + log.format(
                first=first, target=f"'{COMMAND}'", attempt=1, outcome="'failed'",
                where=f"i % {failing} = 1"), (NOW,))
        done = log.format(first=first, target=f"'{COMMAND}'", attempt=(
            f"CASE WHEN i % {failing} = 1 THEN 2 ELSE 1 END" if failing else "1"),
            outcome="'ok'", where="1 = 1")
        conn.execute(COUNT.format(n=sms) + done, (NOW,))
        for inbound_id in leftover_at:   # its only command row: the failed attempt
            conn.execute("DELETE FROM forward_log WHERE inbound_id = ? AND target = ?",
                         (inbound_id, COMMAND))
            conn.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, detail,"
                         " created_at) VALUES (?, ?, 1, 'failed', 'exit status 1', ?)",
                         (inbound_id, COMMAND, NOW))
    if spool.engine.name == "postgresql":   # what autovacuum does after such a fill
        with spool.engine.tx() as conn:
            conn.execute("ANALYZE forward_log")
            conn.execute("ANALYZE inbound")
    return sms


def bench(target: Any, rows: int, failed_share: float, cut_short: int,
          repeats: int) -> list[str]:
    with Spool(target) as spool:
        sms = fill(spool, rows, failed_share, cut_short)
        total = spool.engine.rows("SELECT count(*) FROM forward_log")[0][0]
        found = len(leftovers(spool))
        assert found == cut_short, f"{found} leftovers found, {cut_short} made"
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            leftovers(spool)
            samples.append(1000 * (time.perf_counter() - start))
    ordered = sorted(samples)
    return [f"  {total} forward_log rows over {sms} SMS, {cut_short} leftovers",
            f"  leftovers: median {statistics.median(ordered):8.3f} ms  "
            f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:8.3f} ms  "
            f"min {ordered[0]:8.3f} ms  (n={len(ordered)})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="forward_log rows")
    parser.add_argument("--failed-share", type=float, default=0.05,
                        help="share of SMS whose command failed once before its success")
    parser.add_argument("--leftovers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway cluster)")
    args = parser.parse_args()
    import modempool

    print(f"tree: {Path(modempool.__file__).parents[1]}")
    shape = (args.rows, args.failed_share, args.leftovers, args.repeats)
    with tempfile.TemporaryDirectory() as directory:
        if args.only != "postgresql":
            print("sqlite")
            for line in bench(Path(directory) / "bench.db", *shape):
                print(line)
        if args.only == "sqlite":
            return
        from tests.pg_cluster import throwaway_cluster

        with throwaway_cluster(args.url is None) as cluster:
            print("postgresql")
            for line in bench(args.url or cluster.new_schema(), *shape):
                print(line)

if __name__ == "__main__":
    main()
