"""The ambiguity rule's write history (schema 18): what a part marker costs, first write and new
attempt, and what the rule's reads cost, in a spool with a history of sent parts.

    python benchmarks/bench_write_history.py                 # SQLite and a throwaway PostgreSQL
    python benchmarks/bench_write_history.py --history 100000 --repeats 300
    python benchmarks/bench_write_history.py --card          # the markers of a modem's card hold

Figures per engine (median and 90th percentile, milliseconds):
- `first_marker`: `mark_part_writing` of a part never written (the common path: an insert);
- `again_marker`: the marker of a part's new attempt (requeued, claimed again): on schema 18 the
  trigger keeps the earlier write and draws the new one's place;
- `unmatched_report`: a delivery report that matches no sent part while one ambiguous message of
  that SIM and recipient waits, which it settles (the rule reads the SIM's previous and next
  writes), with `--history` parts of 8 SIMs in the spool (the measured SIM's among them).
With `--card` m1 holds a card, as a daemon's modem does: each marker probes the hold and (schema
20) writes the card, and the rule reads that card's writes.
Run it on two trees (before and after a change) one after the other, under the heavy lock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modempool.spool import Spool  # noqa: E402
from modempool.spool.model import to_text, utcnow  # noqa: E402



def history(spool: Spool, parts: int) -> None:
    """`parts` sent one-part messages of SIMs m0..m7, written straight into the tables."""
    ids = spool.enqueue_many({"to": f"+86139{i:08d}", "text": f"old {i}"} for i in range(parts))
    now = to_text(utcnow())
    with spool.engine.tx() as conn:
        conn.execute("UPDATE messages SET state = 'sent', sent_at = ?, sim = 'm' || "
                     "CAST(id % 8 AS TEXT) WHERE id <= ?", (now, max(ids)))
        conn.execute("INSERT INTO parts (message_id, seq, total, attempt, sim, state, "
                     "message_reference, writing_at, sent_at) SELECT id, 1, 1, 1, sim, 'sent', "
                     "id % 256, ?, ? FROM messages WHERE id <= ?", (now, now, max(ids)))


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return 1000 * (time.perf_counter() - start)


def figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    return (f"{name:>17}: median {statistics.median(ordered):7.3f} ms  "
            f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:7.3f} ms  (n={len(ordered)})")


def bench(target, parts: int, repeats: int, card: bool = False) -> list[str]:
    """Each round to a recipient of its own (no report of another round is a candidate): B's
    new attempt (refused once), A sent with a known reference, C killed after its marker, then
    the report A's next reference would be: the rule reads around C (previous A, next none)
    and settles it."""
    first, again, report = [], [], []
    with Spool(target) as spool:
        history(spool, parts)
        if card:
            hold = ("89860012345678901234", "bench:1:run", "m1")
            assert spool.card_holders.take(hold[0], hold[1], hold[2], lambda _: True) is None
            spool.claims.require_hold("o", hold)
        for i in range(repeats):
            to = f"+86137{i:08d}"
            b = spool.enqueue(to, f"again {i}")
            spool.claim(b.id, "m1", "o", 60)
            spool.mark_part_writing(b.id, 1, 1, lease_owner="o")
            spool.requeue(b.id, "+CMS ERROR: 500", lease_owner="o")
            spool.claim(b.id, "m1", "o", 60)
            again.append(timed(lambda: spool.mark_part_writing(b.id, 1, 1, lease_owner="o")))
            spool.mark_failed(b.id, "+CMS ERROR: 500", lease_owner="o")
            a = spool.enqueue(to, f"first {i}")
            spool.claim(a.id, "m1", "o", 60)
            first.append(timed(lambda: spool.mark_part_writing(a.id, 1, 1, lease_owner="o")))
            spool.mark_last_part_sent(a.id, 1, None, i % 256, lease_owner="o")
            c = spool.enqueue(to, f"lost {i}")
            spool.claim(c.id, "m1", "o", 60)
            spool.mark_part_writing(c.id, 1, 1, lease_owner="o")
            spool.mark_ambiguous(c.id, "no answer", lease_owner="o")
            report.append(timed(lambda: spool.store_delivery_report(
                "m1", (i + 1) % 256, to, 0, submitted_at=utcnow())))
            assert spool.get(c.id).state.value == "delivered", "the rule did not settle it"
    return [figures("first_marker", first), figures("again_marker", again),
            figures("unmatched_report", report)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=50_000, help="sent parts in the spool")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway cluster)")
    parser.add_argument("--card", action="store_true", help="m1 holds a SIM card")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        print(f"sqlite ({args.history} parts of history)")
        for line in bench(Path(directory) / "bench.db", args.history, args.repeats,
                          args.card):
            print(line)
        cluster = None
        if args.url is None:
            from tests.pg_cluster import PgCluster

            cluster = PgCluster()
            cluster.start()
        try:
            print(f"postgresql ({args.history} parts of history)")
            for line in bench(args.url or cluster.new_schema(), args.history, args.repeats,
                              args.card):
                print(line)
        finally:
            if cluster is not None:
                cluster.remove()


if __name__ == "__main__":
    main()
