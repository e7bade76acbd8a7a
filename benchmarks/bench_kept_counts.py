"""Kept counts benchmark: a sender's dashboard and a campaign's progress in a spool of 1,000,
100,000 or 1,000,000 messages, on SQLite or PostgreSQL.

    python benchmarks/bench_kept_counts.py --rows 100000                 # SQLite, a temporary file
    python benchmarks/bench_kept_counts.py --rows 100000 --postgresql    # a throwaway cluster
    python benchmarks/bench_kept_counts.py --rows 1000000 --keep DIR     # fill once, measure again
    python benchmarks/bench_kept_counts.py --url postgresql://...        # an existing database

The spool is filled by SQL: every message the sender `shop`'s (the worst case: an account that
owns them all), states mixed as a busy bank's (mostly delivered), 64 SIMs, and a tenth of the
messages one running campaign of the sender's; then folded and vacuumed as a running daemon's
housekeeping does. Figures, the median and 95th percentile of
--repeat calls, in milliseconds, and this process's CPU time per call (SQLite works in it;
PostgreSQL's server CPU is not counted): `AccountPool.status()` (what the sender's console
dashboard and `GET /v1/status` ask), `AccountPool.counts()` alone (its messages by state), and
`Pool.campaign_progress()` (the campaign's page and its live fragment).

It runs on modempool before schema version 12 too (the counts were then read from the
messages), so the same filled spool (a copy of the file or of the database) can be measured
before and after: `--keep` leaves it in DIR, and a later run with the same DIR measures
without filling (opening it with a newer modempool upgrades it first: that open is timed).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filled_bank import SIMS, iso, write_config  # noqa: E402 (beside this file)

STATES = (("delivered", 0.80), ("sent", 0.17), ("failed", 0.012), ("ambiguous", 0.003),
          ("queued", 0.01), ("cancelled", 0.005))


def fill(spool, rows: int, campaign_id: int) -> None:
    """`rows` messages by SQL, the first tenth of the campaign; then all of them the sender's."""
    rng = random.Random(18)
    now = datetime.now(timezone.utc)
    names, weights = [s for s, _ in STATES], [w for _, w in STATES]
    in_campaign = max(rows // 10, 1)
    for start in range(0, rows, 20_000):
        batch = []
        for i in range(start + 1, min(rows, start + 20_000) + 1):
            when = iso(now - timedelta(seconds=(rows - i) / rows * 30 * 86400))
            state = rng.choices(names, weights)[0]
            went = state in ("sent", "delivered", "ambiguous", "failed")
            batch.append((i, f"+86138{i % 100000000:08d}", f"bench {i}", state,
                          SIMS[i % len(SIMS)] if went else None, when, when,
                          when if went else None, campaign_id if i <= in_campaign else None))
        with spool.transaction() as conn:
            conn.executemany(
                "INSERT INTO messages (id, to_number, text, state, sim, created_at, updated_at, "
                "sent_at, campaign_id) VALUES (?,?,?,?,?,?,?,?,?)", batch)
        print(f"\r  filling: {min(rows, start + 20_000):,} messages", end="", flush=True)
    with spool.transaction() as conn:
        conn.execute("INSERT INTO message_accounts (message_id, account, created_at) "
                     "SELECT id, 'shop', created_at FROM messages")
        conn.execute("ANALYZE")
        if spool.engine.name == "postgresql":   # ids were given: the sequence follows
            conn.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), "
                         "(SELECT max(id) FROM messages))")
    print(f"\r  filled: {rows:,} messages, {in_campaign:,} of them the campaign's" + " " * 10)


def timed(call, repeat: int) -> tuple[float, float, float]:
    """Median and 95th percentile (ms, wall clock) and mean CPU time of this process (ms)."""
    call()   # the page cache warm, as a dashboard that refreshes
    times, cpu = [], time.process_time()
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    cpu = (time.process_time() - cpu) * 1000 / repeat
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], cpu


def measure(args: argparse.Namespace, directory: Path) -> None:
    from modempool.accounts import Accounts
    from modempool.config import load_config
    from modempool.pool import Pool
    from modempool.spool.schema import SCHEMA_VERSION

    config = load_config(write_config(directory, args.url, SIMS))
    started = time.perf_counter()
    spool = config.open_spool()
    opened = time.perf_counter() - started
    accounts = Accounts(spool)
    pool = Pool(config, spool=spool)
    if not spool.rows("SELECT 1 FROM messages LIMIT 1"):
        accounts.add("shop", "sender")
        desk = pool.for_account(accounts.get("shop")).campaign_desk()
        campaign = desk.create("bench", "您好，本周五开家长会", numbers=["13800138000"])
        spool.db.execute("UPDATE campaigns SET state = 'running' WHERE id = ?", [campaign.id])
        started = time.perf_counter()
        fill(spool, args.rows, campaign.id)
        spool.checkpoint()   # as a running daemon's housekeeping would (PostgreSQL: the fold)
        if spool.engine.name == "postgresql":   # and the vacuum of the folded changes it does
            spool.engine.counts.vacuum()
        print(f"  fill took {time.perf_counter() - started:.0f} s")
    else:
        print(f"  opened the filled spool in {opened:.2f} s (schema version {SCHEMA_VERSION} "
              "of this modempool: an older spool was upgraded in that time)")
    rows = spool.rows("SELECT count(*) FROM messages")[0][0]
    campaign_id = spool.rows("SELECT max(campaign_id) FROM messages")[0][0]
    sender = pool.for_account(accounts.get("shop"))
    calls = (("sender's dashboard  AccountPool.status()", sender.status),
             ("sender's counts     AccountPool.counts()", sender.counts),
             ("campaign progress   Pool.campaign_progress()",
              lambda: pool.campaign_progress(campaign_id)))
    assert sum(sender.counts().values()) == rows
    print(f"\n{rows:,} messages (the campaign's: "
          f"{sum(pool.campaign_progress(campaign_id).counts.values()):,}) on "
          f"{spool.engine.name}, schema version {SCHEMA_VERSION}, {args.repeat} calls each; ms")
    print(f"{'':46} {'median':>8} {'p95':>8} {'CPU here':>9}")
    for label, call in calls:
        median, p95, cpu = timed(call, args.repeat)
        print(f"{label:46} {median:8.2f} {p95:8.2f} {cpu:9.2f}")
    spool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="the spool (SQLite) and config in DIR, kept: a later run with the "
                             "same DIR measures it again without filling")
    parser.add_argument("--postgresql", action="store_true",
                        help="the spool in a throwaway PostgreSQL cluster")
    parser.add_argument("--url", default=None,
                        help="the spool in this PostgreSQL database (filled if empty)")
    args = parser.parse_args()
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster(args.postgresql and not args.url) as cluster, \
            tempfile.TemporaryDirectory(prefix="modempool-bench-kept-") as scratch:
        if cluster is not None:
            args.url = cluster.url()
        directory = Path(args.keep or scratch)
        directory.mkdir(parents=True, exist_ok=True)
        measure(args, directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
