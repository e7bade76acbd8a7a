"""The counts the dashboard and /metrics read (messages by state, finished ones by SIM) are
kept by the database's triggers on both engines: after any mix of changes, concurrent ones and
a crash recovery included, they equal a count of the rows."""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
import pytest

from modempool.spool import Spool
from modempool.spool.records import SentPart
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import (act_as_a_daemon, claim_next, statements_of,
                                          without_inbound_hooks)

FINISHED = ("sent", "delivered", "failed", "ambiguous")


def counted(spool: Spool) -> dict[str, int]:
    out = {state: 0 for state in spool.counts()}
    for row in spool.rows("SELECT state, count(*) AS n FROM messages GROUP BY state"):
        out[row["state"]] = row["n"]
    return out


def counted_outcomes(spool: Spool) -> dict[tuple[str, str], int]:
    return {(row[0], row[1]): row[2] for row in spool.rows(
        "SELECT sim, state, count(*) FROM messages WHERE sim IS NOT NULL AND state IN "
        "('sent', 'delivered', 'failed', 'ambiguous') GROUP BY sim, state")}


def assert_kept(spool: Spool) -> None:
    assert spool.counts() == counted(spool)
    assert spool.metrics.sim_outcomes() == counted_outcomes(spool)


def every_change(spool: Spool) -> None:
    """Enqueue, cancel, claim, fail, send, deliver, expire, requeue, retry, ambiguous, delete."""
    first, second, third, fourth, fifth = (spool.enqueue(f"1380013800{i}", "hi")
                                           for i in range(5))
    spool.enqueue_many([{"to": "13800138009", "text": "x", "client_id": "k"}] * 2)  # one row
    assert spool.counts()["queued"] == 6
    assert_kept(spool)
    spool.cancel(first.id)
    assert spool.claim(second.id, "m1", "t")
    spool.mark_failed(second.id, "+CMS ERROR: 500", lease_owner="t")
    assert spool.claim(third.id, "m2", "t")
    spool.mark_part_writing(third.id, 1, 1, lease_owner="t")
    spool.mark_many_sent([SentPart(third.id, 1, None, 7, lease_owner="t")])
    assert spool.store_delivery_report("m2", 7, third.to, 0).part_id is not None
    assert spool.get(third.id).state.value == "delivered"
    assert spool.claim(fourth.id, "m1", "t")
    spool.requeue(fourth.id, "+CMS ERROR: 38", lease_owner="t", avoid_sim="m1")
    assert spool.claim(fourth.id, "m2", "t")
    spool.mark_part_writing(fourth.id, 1, 1, lease_owner="t")
    spool.mark_ambiguous(fourth.id, "no answer after the PDU", lease_owner="t")
    spool.retry(fourth.id)
    spool.retry(second.id)
    with spool.transaction() as conn:
        conn.execute("UPDATE messages SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
                     (fifth.id,))
    assert spool.expire_due() == [fifth.id]
    assert_kept(spool)
    assert (spool.counts()["cancelled"], spool.counts()["delivered"]) == (1, 1)
    with spool.transaction() as conn:
        conn.execute("DELETE FROM events")
        conn.execute("DELETE FROM parts WHERE message_id = ?", (first.id,))
        conn.execute("DELETE FROM messages WHERE id = ?", (first.id,))
    assert spool.counts()["cancelled"] == 0
    assert_kept(spool)


def test_kept_counts_follow_every_change(spool_target):
    with Spool(spool_target) as spool:
        every_change(spool)
        assert spool.queue_depth() == spool.counts()["queued"] == counted(spool)["queued"]


def test_a_crash_recovery_is_counted(spool_target):
    """A daemon killed with one message claimed and one with its marker written: recovery
    queues the first again and makes the second ambiguous, and the counts follow."""
    with Spool(spool_target) as spool:
        for i in range(3):
            spool.enqueue(f"1380013801{i}", "hi")
        untouched = claim_next(spool, "m1", "dead:1/m1")
        written = claim_next(spool, "m1", "dead:1/m1")
        spool.mark_part_writing(written.id, 1, 1, lease_owner="dead:1/m1")
        assert spool.counts()["sending"] == 2
        done = spool.recover_leases(include_live=True)
        assert (list(done.requeued), list(done.ambiguous)) == ([untouched.id], [written.id])
        assert spool.counts()["sending"] == 0 and spool.counts()["ambiguous"] == 1
        assert spool.metrics.sim_outcomes() == {("m1", "ambiguous"): 1}
        assert_kept(spool)


def _folder(target, writers: list[threading.Thread], folds: list[bool],
            errors: list[BaseException]) -> None:
    """Another daemon's housekeeping (its own connections): fold and vacuum while the
    writers write; the two folders take turns by the fold's try-lock."""
    try:
        with Spool(target) as spool:
            while any(w.is_alive() for w in writers):
                folds.append(spool.engine.counts.fold())
                spool.engine.counts.vacuum()
    except BaseException as exc:   # the test fails on it
        errors.append(exc)


def test_concurrent_writers_keep_the_counts_right(spool_target):
    """Four writers at once, each with its own connection, and reads (which fold the kept
    rows on PostgreSQL) meanwhile; on PostgreSQL two daemons' housekeeping folds and vacuums
    too: the counts equal a count of the rows afterwards, after every fold."""
    with Spool(spool_target) as spool:
        errors: list[BaseException] = []
        writers = [threading.Thread(target=act_as_a_daemon, args=(spool_target, f"m{n}", 40, errors))
                   for n in range(4)]
        folds: list[bool] = []
        folder = threading.Thread(target=_folder, args=(spool_target, writers, folds, errors))
        for writer in writers:
            writer.start()
        if spool.engine.name == "postgresql":
            folder.start()
        while any(w.is_alive() for w in writers):
            spool.counts()
            spool.metrics.sim_outcomes()
            if spool.engine.name == "postgresql":
                spool.engine.counts.fold()
        for writer in writers:
            writer.join()
        if spool.engine.name == "postgresql":
            folder.join()
            assert any(folds)
        assert not errors
        assert sum(spool.counts().values()) == 160
        assert_kept(spool)
        assert sum(n for (_, state), n in spool.metrics.sim_outcomes().items()
                   if state == "sent") == counted(spool)["sent"] > 0
        sent = spool.rows("SELECT count(*) FROM messages WHERE sent_at IS NOT NULL")[0][0]
        assert sum(n for _, n, _ in spool.engine.send_latency()) == sent
        if spool.engine.name == "postgresql":   # and once everything is folded
            spool.engine.counts.fold()
            assert spool.rows("SELECT count(*) FROM message_counts")[0][0] == 0
            assert_kept(spool)
            assert sum(n for _, n, _ in spool.engine.send_latency()) == sent


def test_an_existing_sqlite_spool_gets_its_counts_when_opened(tmp_path):
    path = tmp_path / "old.db"
    with Spool(path) as spool:
        spool.enqueue("13800138000", "a")
        spool.enqueue("13800138001", "b")
    with sqlite3.connect(path) as conn:   # as made before the counts were kept
        conn.execute("DROP TABLE message_state_counts")
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER message_state_counts_{trigger}")
    with Spool(path) as spool:
        assert spool.counts()["queued"] == 2 and spool.counts() == counted(spool)


def test_a_postgresql_spool_of_version_7_gets_its_counts_at_the_upgrade(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        every_change(spool)
        latency = spool.metrics.send_latency()
        expected = counted(spool), counted_outcomes(spool)
    with psycopg.connect(url, autocommit=True) as conn:   # as version 7 left it
        for name in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER message_counts_{name} ON messages")
        conn.execute("DROP FUNCTION message_counts_follow(), message_counts_inserted()")
        conn.execute("DROP TABLE message_counts, send_latency_counts, message_count_totals, "
                     "send_latency_totals, sim_outcome_changes, sim_outcome_totals")
        without_inbound_hooks(conn)   # step 14
        conn.execute("UPDATE modempool_schema SET version = 7")
    with Spool(url) as spool:
        assert (spool.counts(), spool.metrics.sim_outcomes()) == expected
        # the counters that only rise start from the messages in each outcome
        assert spool.metrics.sim_outcomes_reached() == expected[1]
        assert spool.metrics.send_latency() == latency
        assert spool.rows("SELECT version FROM modempool_schema")[0][0] == SCHEMA_VERSION


def test_folding_keeps_the_counts_and_an_idle_spool_is_not_rewritten(pg_cluster):
    with Spool(pg_cluster.new_schema()) as spool:
        every_change(spool)
        before = (spool.counts(), spool.metrics.sim_outcomes(), spool.metrics.send_latency(),
                  spool.metrics.sim_outcomes_reached())
        rows = spool.rows("SELECT count(*) FROM message_counts")[0][0]
        assert spool.engine.counts.fold()
        assert spool.rows("SELECT count(*) FROM message_counts")[0][0] < rows
        assert spool.rows("SELECT count(*) FROM sim_outcome_changes")[0][0] == 0
        assert (spool.counts(), spool.metrics.sim_outcomes(), spool.metrics.send_latency(),
                spool.metrics.sim_outcomes_reached()) == before
        assert not spool.engine.counts.fold()   # every count one row already


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_scrape_reads_no_message_rows(engine, tmp_path, request):
    """What /metrics and the dashboard count is read from the kept counts: the statements of
    a read name no `messages` table (PostgreSQL: pg_stat_statements is not needed, the
    engine's statements are traced by wrapping its connection)."""
    target = (tmp_path / "spool.db" if engine == "sqlite"
              else request.getfixturevalue("pg_cluster").new_schema())
    with Spool(target) as spool:
        every_change(spool)
        statements = statements_of(spool, lambda: (
            spool.counts(), spool.metrics.sim_outcomes(), spool.metrics.send_latency(),
            spool.queue_depth()))
        assert statements and not [s for s in statements if "FROM messages" in s]


def test_a_sims_uncertain_parts_are_counted_from_an_index(spool_target):
    """`sent_counts` (status, dashboard, quotas) must not read every part a SIM ever sent."""
    spool = Spool(spool_target)
    query = ("SELECT sim, count(*) FROM parts WHERE state IN ('writing', 'ambiguous') "
             "AND writing_at >= ? AND writing_at <= ? GROUP BY sim")   # every SIM's at once
    try:
        if spool.engine.name == "sqlite":
            plan = " ".join(str(row[3]) for row in spool.rows(f"EXPLAIN QUERY PLAN {query}",
                                                              ("a", "b")))
        else:
            with spool.transaction() as conn:   # as on a big spool, where a scan costs more
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = " ".join(r[0] for r in conn.execute(f"EXPLAIN {query}", ("a", "b")))
        assert "parts_uncertain" in plan
        assert spool.sent_counts("m1") == (0, 0, 0)
    finally:
        spool.close()


def no_snapshot_from_before_now(spool: Spool, timeout: float = 120.0) -> None:
    """Wait until no other session of the spool's database holds a snapshot taken before now:
    a vacuum removes only the rows no open snapshot may still see, and autovacuum's ANALYZE of
    any table in the database (a catalog after the spool's tables were made, another test's
    table in a shared database) holds one for as long as it reads. Polled: nothing to await."""
    now = spool.rows("SELECT txid_snapshot_xmin(txid_current_snapshot())")[0][0]
    deadline = time.monotonic() + timeout
    while True:
        older = spool.rows(
            "SELECT pid, backend_type, left(query, 60) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xmin::text::bigint < ?", (now,))   # a fresh cluster: no wraparound
        if not older:
            return
        assert time.monotonic() < deadline, f"snapshots older than the fold stay open: {older}"
        time.sleep(0.05)


def test_a_read_after_a_bulk_change_scans_no_emptied_pages(pg_cluster):
    """A bulk change (20,000 messages cancelled in one statement) adds 40,000 rows of
    changes; a read folds them into the totals, and the next housekeeping (another daemon's
    or `serve`'s, with nothing left to fold) vacuums the emptied pages away, so a read costs a
    few pages again, not the 200 the rows took. (Autovacuum is kept off that table here: the
    housekeeping must do it.) The spool has a database of its own, and the housekeeping comes
    once no snapshot from before the fold is open in it: the suite's other tests share a
    database, where autovacuum's ANALYZE of their tables kept the vacuum from removing the
    folded rows (once 1.9 MB were left under -n 2)."""
    from modempool.spool.postgres_counts import STATE_COUNTS

    url = pg_cluster.new_database()
    with Spool(url) as spool:
        with spool.transaction() as conn:
            conn.execute("ALTER TABLE message_counts SET (autovacuum_enabled = false)")
        spool.enqueue_many({"to": f"+86138{i:08d}", "text": "campaign"} for i in range(20_000))
        with spool.transaction() as conn:
            conn.execute("UPDATE messages SET state = 'cancelled'")
        assert spool.rows("SELECT count(*) FROM message_counts")[0][0] > 40_000
        assert spool.counts()["cancelled"] == 20_000   # a read that summed many: folded
        assert spool.rows("SELECT count(*) FROM message_counts")[0][0] == 0
        assert spool.rows("SELECT pg_relation_size('message_counts')")[0][0] > 100 * 8192
        no_snapshot_from_before_now(spool)
        with Spool(url) as housekeeper:
            housekeeper.checkpoint()
        assert spool.rows("SELECT pg_relation_size('message_counts')")[0][0] == 0
        with spool.transaction() as conn:
            plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {STATE_COUNTS}"
                                ).fetchone()[0][0]["Plan"]
        assert plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0) < 10
        assert spool.counts()["cancelled"] == 20_000 == counted(spool)["cancelled"]
