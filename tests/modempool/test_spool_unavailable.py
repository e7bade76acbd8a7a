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
