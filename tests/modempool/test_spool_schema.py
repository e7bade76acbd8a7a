"""Schema versions: an older spool is upgraded in place, a newer one is refused untouched."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from modempool.spool import Spool, SpoolTooNew
from modempool.spool.engine import statements
from modempool.spool.schema import MIGRATIONS, SCHEMA_VERSION
from tests.modempool.spool_driver import refused_and_left


_WHEN = "2026-01-01T00:00:00.000Z"


def _version_one_file(path) -> None:
    """A spool as modempool wrote it before versions 2 (user_version 1, one message)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements(MIGRATIONS[1]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO messages (id, to_number, text, created_at, updated_at) "
                 "VALUES (1, '+8613800138000', 'old', ?, ?)", (_WHEN, _WHEN))
    conn.close()


def test_an_older_spool_is_upgraded_in_place_and_keeps_its_messages(tmp_path):
    path = tmp_path / "old.db"
    _version_one_file(path)
    with Spool(path) as spool:
        assert spool.get(1).text == "old"
        assert "daemons" in spool.table_names()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_newer_spool_is_refused_with_a_clear_message_and_left_untouched(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SpoolTooNew, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade modempool"):
        Spool(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]  # no WAL left either


def test_an_sqlite_upgrade_that_fails_midway_changes_nothing(tmp_path):
    """Steps 6 and 7 of a version 5 spool: step 6 makes an index, step 7 fails (its table is
    a view here): the index is not left behind, the version stays 5, the messages stay."""
    path = tmp_path / "old.db"
    with Spool(path) as spool:
        spool.enqueue("13800138000", "kept")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP INDEX parts_ambiguous")
    conn.execute("DROP TABLE sim_counters")
    conn.execute("CREATE VIEW sim_counters AS SELECT '' AS sim_key")   # step 7's INSERT fails
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    assert refused_and_left(path, 5, "parts_ambiguous") == [("kept",)]


def test_a_postgresql_upgrade_that_fails_midway_changes_nothing(pg_cluster):
    """Step 11 of a version 10 spool makes sim_outcome_changes, then fails filling
    sim_outcome_totals (a view here): the table is not left behind, the version stays 10."""
    import psycopg

    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.enqueue("13800138000", "kept")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE sim_outcome_changes, sim_outcome_totals")
        conn.execute("CREATE VIEW sim_outcome_totals AS SELECT CAST('' AS text) AS sim, "
                     "CAST('' AS text) AS state, CAST(0 AS bigint) AS n")
        conn.execute("UPDATE modempool_schema SET version = 10")
    assert refused_and_left(url, 10, "sim_outcome_changes") == [("kept",)]
