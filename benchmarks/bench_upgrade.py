"""Upgrade benchmark: how long opening a big PostgreSQL spool of an older schema version takes
(the upgrade runs at start, in one transaction), and what it holds meanwhile.

    python benchmarks/bench_upgrade.py                   # 1,000,000 messages (minutes to fill)
    python benchmarks/bench_upgrade.py --messages 100000
    python benchmarks/bench_upgrade.py --url postgresql://bench@db/bench   # an existing cluster

The spool is filled as bench_scaleout's cost benchmark fills it (delivered messages, a part
each, vacuumed and checkpointed), then put back into the shape of version 8 (before the queue
indexes of version 9) or 9 (before the totals of version 10), and opened. Figures: the open
of the spool as it is (no upgrade), and the opens that upgrade from 11, 9 and 8, in seconds.
Version 12 counts what is there per account and per campaign: half of the messages are an
account's here (`message_accounts`), a tenth one campaign's.
Version 9 builds two indexes over `messages` (`CREATE INDEX`, not `CONCURRENTLY`: it cannot run
inside the upgrade's transaction), which holds a SHARE lock on `messages` until the upgrade
commits: reads go on, every change of a message (enqueue, claim, marker) waits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scaleout import fresh_target, load_history  # noqa: E402
from modempool.spool import Spool  # noqa: E402
from modempool.spool.postgres_counts import SUMMED_BY_INDEX  # noqa: E402
from tests.modempool.spool_driver import UNDO_INBOUND_HOOKS  # noqa: E402

_AUTOVACUUM = ("autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
               "autovacuum_analyze_scale_factor, autovacuum_analyze_threshold")

#: A spool of version 12 put back as version 11 left it: no counts per account or campaign,
#: no index of a campaign's sends (`message_accounts` was the accounts module's table, made
#: with the first account).
AS_VERSION_11 = (
    *UNDO_INBOUND_HOOKS,   # version 14's
    "DROP TRIGGER account_counts_owned ON message_accounts",
    "DROP TRIGGER account_counts_disowned ON message_accounts",
    "DROP FUNCTION account_counts_owned()",
    "DROP TABLE account_state_changes, account_state_totals, campaign_state_changes, "
    "campaign_state_totals",
    "DROP INDEX messages_campaign_sent",
    "UPDATE modempool_schema SET version = 11",
)
#: ... as version 9 left it: the counts' totals back among the
#: rows of changes, the covering indexes of version 9.
AS_VERSION_9 = (
    *UNDO_INBOUND_HOOKS,
    "INSERT INTO message_counts (state, sim, n) SELECT state, nullif(sim, ''), n "
    "FROM message_count_totals",
    "INSERT INTO send_latency_counts (bucket, n, seconds) SELECT bucket, n, seconds "
    "FROM send_latency_totals",
    "DROP TABLE message_count_totals, send_latency_totals",
    "ALTER TABLE message_counts RESET (autovacuum_vacuum_scale_factor, "
    "autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay)",
    "ALTER TABLE send_latency_counts RESET (autovacuum_vacuum_scale_factor, "
    "autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay)",
    *SUMMED_BY_INDEX,
    "UPDATE modempool_schema SET version = 9",
)
#: ... and as version 8 left it: the claim index of before, autovacuum as PostgreSQL's default.
AS_VERSION_8 = (
    "DROP INDEX messages_queue, messages_state, message_counts_sums, send_latency_counts_sums",
    "CREATE INDEX messages_claim ON messages (state, held, priority DESC, id)",
    f"ALTER TABLE messages RESET ({_AUTOVACUUM})",
    f"ALTER TABLE parts RESET ({_AUTOVACUUM})",
    "UPDATE modempool_schema SET version = 8",
)


def rewind(target: str, steps: tuple[str, ...]) -> None:
    """Put the spool back into an older version's shape, then let the database settle (as a
    spool that has been running for a while: vacuumed, its pages written out)."""
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        with conn.transaction():
            for statement in steps:
                conn.execute(statement)
        conn.execute("VACUUM ANALYZE")
        try:
            conn.execute("CHECKPOINT")
        except psycopg.Error:   # not a superuser (--url)
            pass


def owned_and_in_a_campaign(spool: Spool, size: int) -> None:
    """Every other message an account's, the first tenth one campaign's (by SQL: the kept
    counts follow, as for the API's sends)."""
    with spool.engine.tx() as conn:
        conn.execute("INSERT INTO message_accounts (message_id, account, created_at) "
                     "SELECT id, 'shop', created_at FROM messages WHERE id % 2 = 0")
        conn.execute("UPDATE messages SET campaign_id = 1 WHERE id <= ?", (max(size // 10, 1),))
    spool.engine.counts.fold()


def kept(spool: Spool) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """What the dashboards and a campaign's progress read."""
    return spool.counts(), spool.scoped.counts("shop"), spool.reports.campaign_counts(1)


def timed_open(target: str, counts: tuple[dict[str, int], ...] | None = None
               ) -> tuple[float, int]:
    """Seconds to open the spool (with its upgrade), and its version then; the counts of the
    dashboards are checked against `counts` (what they were before the rewind)."""
    start = time.perf_counter()
    with Spool(target) as spool:
        seconds = time.perf_counter() - start
        version = spool.rows("SELECT version FROM modempool_schema")[0][0]
        if counts is not None and kept(spool) != counts:
            raise SystemExit(f"the counts changed in the upgrade: {kept(spool)} != {counts}")
    return seconds, version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway cluster)")
    args = parser.parse_args()
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster(not args.url) as cluster:
        target = fresh_target("postgresql", cluster, Path("."), "upgrade", args.url)
        started = time.perf_counter()
        with Spool(target) as spool:
            load_history(spool, args.messages)
            owned_and_in_a_campaign(spool, args.messages)
            size = spool.rows("SELECT pg_size_pretty(pg_total_relation_size('messages'))")[0][0]
            counts = kept(spool)
        print(f"spool of {args.messages:,} messages (messages and its indexes: {size}), "
              f"filled in {time.perf_counter() - started:.0f} s")
        seconds, version = timed_open(target)
        print(f"  open at version {version}, nothing to upgrade: {seconds:6.2f} s")
        rewind(target, AS_VERSION_11)
        seconds, version = timed_open(target, counts)
        print(f"  open from version 11 (counts per account and campaign) to {version}: "
              f"{seconds:6.2f} s")
        rewind(target, AS_VERSION_9)
        seconds, version = timed_open(target, counts)
        print(f"  open from version 9 (totals of the kept counts) to {version}: {seconds:6.2f} s")
        rewind(target, AS_VERSION_9 + AS_VERSION_8)
        seconds, version = timed_open(target, counts)
        print(f"  open from version 8 (two indexes over messages) to {version}: {seconds:6.2f} s;"
              " changes of messages wait meanwhile, reads do not")
    return 0


if __name__ == "__main__":
    sys.exit(main())
