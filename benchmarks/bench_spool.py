"""Spool benchmark: enqueue 100k messages; claim + mark cost per message as the spool grows.

    python benchmarks/bench_spool.py [--sizes 1000,100000,1000000] [--messages 500]

Prints wall and CPU time. For each size the spool holds that many rows; two layouts:
`queued` (every row waiting: the claim must still find the head at once) and `history`
(all but a few thousand already sent). Per message, as the dispatcher does: dispatchable and
claim, mark_part_writing, mark_part_sent, mark_sent (four committed transactions).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from modempool.spool import Spool


def bench_enqueue(directory: Path, count: int, synchronous: str) -> None:
    path = directory / f"enqueue-{synchronous}.db"
    with Spool(path, synchronous=synchronous) as spool:
        rows = [{"to": f"1380{i:07d}", "text": f"消息 {i}", "client_id": f"c{i}"}
                for i in range(count)]
        wall, cpu = time.perf_counter(), time.process_time()
        ids = spool.enqueue_many(rows)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(ids) == count and spool.queue_depth() == count
    print(f"enqueue_many {count:>9,} distinct numbers, client ids, sync={synchronous:<6}: "
          f"{wall:6.2f} s wall, {cpu:6.2f} s CPU ({count / wall:,.0f} msg/s)")
    with Spool(path, synchronous=synchronous) as spool:
        wall = time.perf_counter()
        for i in range(200):
            spool.enqueue(f"1390{i:07d}", "one by one")
        wall = time.perf_counter() - wall
    print(f"enqueue one at a time (200 calls), sync={synchronous:<6}: {wall / 200 * 1e3:6.2f} ms each")


def build(path: Path, size: int, layout: str) -> None:
    """A spool of `size` rows, generated in SQL (enqueue speed is measured separately)."""
    with Spool(path, synchronous="off") as spool:
        now = "2026-01-01T00:00:00.000Z"
        history = max(size - 5000, 0) if layout == "history" else 0
        spool.db.execute(
            "INSERT INTO messages (to_number, text, state, sim, attempts, created_at, updated_at) "
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
            "SELECT printf('+86138%08d', x % 1000), 'benchmark', "
            "CASE WHEN x <= ? THEN 'sent' ELSE 'queued' END, "
            "CASE WHEN x <= ? THEN 'm1' END, CASE WHEN x <= ? THEN 1 ELSE 0 END, ?, ? FROM n",
            [size, history, history, history, now, now])
        spool.db.execute("ANALYZE")


def bench_claims(directory: Path, size: int, layout: str, messages: int, syncs: list[str]) -> None:
    path = directory / f"claims-{size}-{layout}.db"
    started = time.perf_counter()
    build(path, size, layout)
    print(f"spool of {size:,} rows ({layout}) built in {time.perf_counter() - started:.1f} s")
    for synchronous in syncs:
        with Spool(path, synchronous=synchronous) as spool:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(messages):
                message = spool.claim(next(spool.dispatchable(limit=1)).id, "m1", "bench", 60)
                spool.mark_part_writing(message.id, 1, 1, lease_owner="bench")
                spool.mark_part_sent(message.id, 1, None, message.id % 256)
                spool.mark_sent(message.id, lease_owner="bench")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"claim+mark, {size:>9,} rows ({layout:<7}), sync={synchronous:<6}: "
              f"{wall / messages * 1e3:6.2f} ms wall, {cpu / messages * 1e3:6.3f} ms CPU per message")
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enqueue", type=int, default=100_000)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--sync", default="full,normal", help="synchronous modes to compare")
    args = parser.parse_args()
    syncs = args.sync.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for synchronous in syncs:
            bench_enqueue(directory, args.enqueue, synchronous)
        for size in (int(s) for s in args.sizes.split(",")):
            for layout in ("queued", "history"):
                bench_claims(directory, size, layout, args.messages, syncs)


if __name__ == "__main__":
    main()
