"""`spool.unavailable`: which errors of the engines' drivers say "the database cannot answer
now" (a front end says "try again": the HTTP API's 503) and which say something else (a bug, a
constraint: a 500 or a refusal). Real errors of real databases; the server stopped under a
running API is in tests/web/test_http_database_away.py."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from modempool.spool.unavailable import SpoolUnavailable, unavailable


def test_sqlites_write_lock_held_past_the_timeout_is_unavailable_other_errors_are_not(tmp_path):
    path = tmp_path / "spool.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as busy:
        waiter.execute("BEGIN IMMEDIATE")
    found = unavailable(busy.value)
    assert isinstance(found, SpoolUnavailable) and found.retry_after == 1
    assert "busy timeout" in str(found) and "database is locked" in found.reason
    with pytest.raises(sqlite3.OperationalError) as missing:
        waiter.execute("SELECT * FROM no_such_table")
    assert unavailable(missing.value) is None
    holder.execute("ROLLBACK")


def test_postgresqls_not_now_errors_are_unavailable_other_errors_are_not(pg_cluster):
    url = pg_cluster.new_schema()
    with psycopg.connect(url, autocommit=True) as conn, \
            psycopg.connect(url, autocommit=True) as other:
        conn.execute("CREATE TABLE t (x int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg.Error) as duplicate:
            conn.execute("INSERT INTO t VALUES (1)")
        assert unavailable(duplicate.value) is None   # a constraint: no use trying again
        with other.transaction():
            other.execute("SELECT * FROM t FOR UPDATE")
            conn.execute("SET lock_timeout = '1ms'")
            with pytest.raises(psycopg.Error) as locked:
                conn.execute("SELECT * FROM t FOR UPDATE")
        found = unavailable(locked.value)
        assert found is not None and "lock was not granted" in str(found)
        with pytest.raises(psycopg.Error) as gone:   # the server ends the connection
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert unavailable(gone.value).retry_after == 5


def test_sqlites_extended_busy_codes_are_unavailable_too(tmp_path):
    # a read snapshot that then writes after another writer committed: SQLITE_BUSY_SNAPSHOT
    # (517, the extended code of SQLITE_BUSY), which no busy timeout waits out
    path = tmp_path / "spool.db"
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("PRAGMA journal_mode=WAL")
    reader.execute("CREATE TABLE t (x)")
    writer = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    writer.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError) as stale:
        reader.execute("INSERT INTO t VALUES (2)")
    assert stale.value.sqlite_errorcode == 517
    found = unavailable(stale.value)
    assert isinstance(found, SpoolUnavailable) and found.retry_after == 1
    reader.execute("ROLLBACK")


def test_a_task_failing_while_the_database_is_away_says_so_once_a_bug_every_time(caplog):
    """A loop that fails every second through an outage writes its line once (and again only
    a minute later, with how many it held back); a bug keeps its traceback, every time."""
    import logging

    from modempool.spool.unavailable import RepeatedLines, log_failure

    away = sqlite3.OperationalError("database is locked")
    away.sqlite_errorcode = 5   # SQLITE_BUSY
    task = logging.getLogger("modempool.test.task")
    with caplog.at_level(logging.WARNING, logger="modempool.test.task"):
        for _ in range(5):
            log_failure(task, "could not read the requests", away)
            log_failure(task, "could not write the heartbeat", away)
            log_failure(task, "dispatch round failed", ValueError("a bug"))
    lines = [r.getMessage() for r in caplog.records]
    assert sum("could not read the requests" in line for line in lines) == 1
    assert sum("could not write the heartbeat" in line for line in lines) == 1
    assert sum(r.exc_info is not None for r in caplog.records) == 5   # the bug: each time
    now = [0.0]
    lines = RepeatedLines(60.0, clock=lambda: now[0])
    assert [lines.due(("a", "b")) for _ in range(3)] == [0, None, None]
    assert lines.due(("a", "other")) == 0
    now[0] = 61.0   # a minute later
    assert lines.due(("a", "b")) == 2   # said again, with the two held back
    assert lines.due(("a", "b")) is None


async def test_two_daemons_in_one_process_each_say_their_own_outage(caplog):
    """Each daemon's run has its own limiter of repeated lines (`own_repeated_lines`), also in
    its lanes' threads: a second daemon's "not now" line is not held back because the first
    said the same a moment ago (one process-wide limiter silenced it for a minute)."""
    import asyncio
    import logging

    from modempool.dispatch.spool_lane import SpoolLane
    from modempool.spool.unavailable import log_failure, own_repeated_lines

    away = sqlite3.OperationalError("database is locked")
    away.sqlite_errorcode = 5   # SQLITE_BUSY
    task = logging.getLogger("modempool.test.task")

    async def daemon() -> None:
        with own_repeated_lines():
            lane = SpoolLane(threads=1)
            for _ in range(3):   # in the lane's thread, as the daemon's records are
                await lane.run(log_failure, task, "could not record 1 sent messages", away)
            lane.close()

    with caplog.at_level(logging.WARNING, logger="modempool.test.task"):
        await asyncio.create_task(daemon())
        await daemon()   # in this task: its limiter is gone after it (the lines below: REPEATED)
        log_failure(task, "could not record 1 sent messages", away)   # outside any daemon
        log_failure(task, "could not record 1 sent messages", away)
    said = [r for r in caplog.records if "could not record" in r.getMessage()]
    assert len(said) == 3   # once per daemon, once outside, each repeat held back
