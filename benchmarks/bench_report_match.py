"""A delivery report's match to its sent part by its modem's name and by its card (schema 23,
`spool/report_match.py`): the plan of the match's statement and what a report costs, in a spool
of many sent parts, and the upgrade from version 22 (its index built) on that spool.

    python benchmarks/bench_report_match.py                  # 1,000,000 parts, both engines
    python benchmarks/bench_report_match.py --parts 100000 --engines sqlite

The history: `--parts` sent one-part messages of 64 modems m0..m63, each modem's card its own
(`parts.card`), TP-MR counted by modem (its n-th part takes n modulo 256), to 1,000
recipients, one second apart. Figures per
engine: the statement's plan (EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN ANALYZE); `moved`: a
report back to a card in a modem it never wrote in (the match by card, on another modem),
`name`: one heard in the modem that wrote the part; median and 90th percentile in ms, each
report a part of its own, so every report settles one; `upgrade`: opening the spool set back
to version 22, in seconds. Runs on older trees too (without `report_match`: no plan, and the
moved report matches nothing there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modempool.spool import Spool  # noqa: E402
from modempool.spool.model import from_text, to_text  # noqa: E402

MODEMS = 64
RECIPIENTS = 1000


def fill(spool: Spool, parts: int) -> None:
    """`parts` sent parts (see the module's docstring), one second apart from 2000-01-01."""
    for first in range(0, parts, 50_000):
        spool.enqueue_many({"to": f"+86139{i % RECIPIENTS:08d}", "text": f"old {i}"}
                           for i in range(first, min(parts, first + 50_000)))
    # `to_text`'s form (the rules compare the text); PostgreSQL's colons spelt as chr(58), as
    # the engine reads `:name` as a parameter.
    sent_at = ("strftime('%Y-%m-%dT%H:%M:%S.000Z', '2000-01-01', '+' || id || ' seconds')"
               if spool.engine.name == "sqlite" else
               " || chr(58) || ".join(f"to_char(TIMESTAMP '2000-01-01' + id * INTERVAL '1 second', "
                                      f"'{form}')" for form in ('YYYY-MM-DD"T"HH24', "MI", "SS"))
               + " || '.000Z'")
    with spool.engine.tx() as conn:
        conn.execute(f"UPDATE messages SET state = 'sent', sent_at = {sent_at}, "
                     "sim = 'm' || CAST(id % 64 AS TEXT) WHERE id <= ?", (parts,))
        conn.execute("INSERT INTO parts (message_id, seq, total, attempt, sim, state, "
                     "message_reference, writing_at, sent_at, card) SELECT id, 1, 1, 1, sim, "
                     "'sent', (id / 64) % 256, sent_at, sent_at, '8986' || "
                     "substr('0000000000000000' || CAST(id % 64 AS TEXT), -16) "
                     "FROM messages WHERE id <= ?", (parts,))
    if spool.engine.name == "sqlite":
        with spool.engine.tx() as conn:
            conn.execute("ANALYZE")
    else:
        with spool.engine.pool.connection() as raw:
            raw.execute("VACUUM ANALYZE")


def plan(spool: Spool, moved: tuple) -> list[str]:
    """The match statement's plan for the moved report's parameters."""
    try:
        from modempool.spool import report_match
    except ImportError:
        return ["(no report_match on this tree)"]
    from modempool.spool.card_links import is_imsi, linked_keys_parameters

    sim, card, reference, to, stamp = moved
    keys = (card, *linked_keys_parameters(card))
    window = (to_text(stamp - report_match.WINDOW_AFTER), to_text(stamp + report_match.CLOCK_SLACK))
    sql = report_match._by_name_and_card(True, True, is_imsi(card))
    params = (*keys, reference, to, sim, reference, to, *keys, *window)
    with spool.engine.tx() as conn:
        if spool.engine.name == "sqlite":
            return [str(tuple(row)) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        return [row[0] for row in conn.execute("EXPLAIN ANALYZE " + sql, params)]


def timed(spool: Spool, reports: list[tuple]) -> list[float]:
    samples, matched = [], 0
    for sim, card, reference, to, stamp in reports:
        start = time.perf_counter()
        match = spool.store_delivery_report(sim, reference, to, 0, submitted_at=stamp, card=card)
        samples.append(1000 * (time.perf_counter() - start))
        matched += match.part_id is not None
    print(f"    matched {matched} of {len(reports)}")
    return samples


def figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    return (f"{name:>8}: median {statistics.median(ordered):7.3f} ms  "
            f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:7.3f} ms  (n={len(ordered)})")


def reports_of(spool: Spool, ids: list[int], moved: bool) -> list[tuple]:
    """A report for each part id: heard in the modem that wrote it, or (`moved`) in the next
    modem, its card there now."""
    out = []
    for part_id in ids:
        sim, card, reference, to, written = spool.rows(
            "SELECT parts.sim, parts.card, parts.message_reference, messages.to_number, "
            "parts.writing_at FROM parts JOIN messages ON messages.id = parts.message_id "
            "WHERE parts.id = ?", (part_id,))[0]
        heard_on = f"m{(int(sim[1:]) + 1) % MODEMS}" if moved else sim
        out.append((heard_on, card, reference, to, from_text(written) + timedelta(seconds=2)))
    return out


def upgrade_seconds(target) -> float:
    from tests.modempool.spool_driver import as_version_22, set_schema_version

    with Spool(target) as spool:
        with spool.engine.tx() as conn:
            as_version_22(conn)
            set_schema_version(spool, conn, 22)
    start = time.perf_counter()
    with Spool(target):
        pass
    return time.perf_counter() - start


def run(target, parts: int, repeats: int) -> None:
    with Spool(target) as spool:
        began = time.perf_counter()
        fill(spool, parts)
        print(f"    filled {parts} parts in {time.perf_counter() - began:.0f} s")
        step = max(1, parts // (2 * repeats + 1))
        ids = list(range(step, parts, step))[: 2 * repeats]
        moved = reports_of(spool, ids[0::2], moved=True)
        named = reports_of(spool, ids[1::2], moved=False)
        for line in plan(spool, moved[0]):
            print("    plan:", line)
        print("   ", figures("moved", timed(spool, moved)))
        print("   ", figures("name", timed(spool, named)))
    try:
        print(f"    upgrade 22 -> 23: {upgrade_seconds(target):.2f} s")
    except Exception as exc:   # an older tree: no step 23
        print(f"    upgrade: not measured ({exc})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        print(f"{engine}:")
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                run(Path(directory) / "spool.db", args.parts, args.repeats)
        else:
            from tests.pg_cluster import throwaway_cluster

            with throwaway_cluster() as cluster:
                run(cluster.new_schema(), args.parts, args.repeats)


if __name__ == "__main__":
    main()
