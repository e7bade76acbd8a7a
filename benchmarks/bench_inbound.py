"""Inbound benchmark: the cost of storing received SMS, single and long, and of recognising
one handed over again (a restart, or the card moved to another box).

    python benchmarks/bench_inbound.py [--messages 2000] [--engines sqlite,postgresql]

On an SQLite file and on a throwaway PostgreSQL cluster (tests/pg_cluster.py, fsync off). Ten
SIMs, two of them one card (moved from a1 to b7). Per SMS, as the daemon's inbound lane stores
them (one committed transaction a part): N single SMS, N two-part SMS, then all of them again
under the card's other modem (each recognised, nothing stored); and N single SMS stored as the
daemon stores them, with their hooks marked pending, each followed by the transaction that passes
its hooks (the hooks' own writes not included: the mark's cost). Prints wall and this process's
CPU time per SMS (PostgreSQL's server time is in the wall figure only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modempool.spool import Spool

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CARD = "89860012345678901234"
RUN = "bench:1:place-run"   # the daemon run that runs the hooks


def timed(what: str, count: int, run: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {what:<44} {wall / count * 1e3:7.3f} ms wall, {cpu / count * 1e3:7.3f} ms CPU an SMS")
    return result


def singles(spool: Spool, sim: str, count: int) -> int:
    return sum(spool.store_inbound(f"+86139{i % 100:08d}", f"验证码 {i}", sim=sim,
                                   received_at=T0 + timedelta(seconds=i)) is not None
               for i in range(count))


def marked(spool: Spool, sim: str, count: int) -> int:
    """Single SMS as the daemon stores them (hooks marked pending), each followed by the
    transaction that passes its hooks (here hooks that write nothing else)."""
    stored = 0
    for i in range(count):
        row = spool.store_inbound(f"+86137{i % 100:08d}", f"验证码 {i}", sim=sim,
                                  received_at=T0 + timedelta(days=2, seconds=i), hooks_by=RUN)
        with spool.transaction() as conn:
            stored += spool.inbound_hooks.advance(conn, row.id, 0, 3, 3, RUN, sender=row.sender)
    return stored


def longs(spool: Spool, sim: str, count: int) -> int:
    stored = 0
    for i in range(count):
        at = T0 + timedelta(days=1, seconds=i)
        for seq in (1, 2):
            message = spool.store_inbound_part(sim, f"+86138{i % 100:08d}", i % 256, 2, seq,
                                               f"第{i}条长短信的第{seq}部分" * 4, received_at=at)
            stored += message is not None
    return stored


def measure(target: Any, count: int) -> None:
    with Spool(target) as spool:
        for n in range(8):
            spool.upsert_sim(f"m{n}", iccid=f"898600{n:014d}")
        spool.upsert_sim("a1", iccid=CARD)
        spool.upsert_sim("b7", iccid=CARD)
        got = timed(f"{count} single SMS stored", count, lambda: singles(spool, "a1", count))
        assert got == count, got
        got = timed(f"{count} two-part SMS stored", count, lambda: longs(spool, "a1", count))
        assert got == count, got
        got = timed(f"{count} single SMS, hooks marked then passed", count,
                    lambda: marked(spool, "a1", count))
        assert got == count, got
        again = timed("the single ones again, card moved (a1->b7)", count,
                      lambda: singles(spool, "b7", count))
        longs_again = timed("the two-part ones again, card moved", count,
                            lambda: longs(spool, "b7", count))
        print(f"  stored again: {again} single, {longs_again} long; "
              f"inbound rows {len(spool.inbound())} (expected {3 * count})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    engines = args.engines.split(",")
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster("postgresql" in engines) as cluster, \
            tempfile.TemporaryDirectory() as directory:
        for engine in engines:
            print(engine)
            measure(Path(directory) / "spool.db" if engine == "sqlite" else cluster.new_schema(),
                    args.messages)


if __name__ == "__main__":
    main()
