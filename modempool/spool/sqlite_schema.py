"""The SQLite spool's schema: the upgrade at open, run in one transaction, with this engine's
own steps (`OWN_STEPS`) after the shared script of each version (`schema.MIGRATIONS`), and the
FTS5 trigram indexes of history search (`TEXT_INDEX`), made once. PostgreSQL's counterpart is
postgres_schema.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modempool.spool.engine import SpoolTooNew, statements
from modempool.spool.report_cards import SENT_BY_CARD_STEP, SQLITE_REPORT_CARD_STEP
from modempool.spool.schema import MIGRATIONS, SCHEMA_VERSION, too_new
from modempool.spool.sims import SQLITE_STEP as CARD_IMSI_STEP
from modempool.spool.sqlite_counts import ACCOUNT_COUNTS
from modempool.spool.sqlite_webhooks import outbox_subject_step
from modempool.spool.upgrade_guard import (DAEMON_COLUMNS, breaks_older, daemon_rows,
                                           refuse_if_older_daemons_run)
from modempool.spool.write_history import SQLITE_CARD_STEP, SQLITE_STEP

if TYPE_CHECKING:
    from modempool.spool.sqlite_engine import SqliteEngine


# History search (issue 17): FTS5 trigram indexes over the text of messages and inbound, in
# the writing transaction. Trigrams match any substring of 3+ characters, which suits Chinese
# (no word boundaries); shorter searches fall back to a scan. Triggers keep inbound rows and
# every update and delete; new messages are indexed by `index_text`, one statement per
# enqueue (a trigger would cost FTS5 a flush per row of the batch: ten times slower).
TEXT_INDEX = tuple(
    statement
    for table in ("messages", "inbound")
    for statement in (
        f"CREATE VIRTUAL TABLE {table}_fts USING fts5(text, content='{table}', "
        f"content_rowid='id', tokenize='trigram')",
        *((f"CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table} BEGIN "
           f"INSERT INTO {table}_fts (rowid, text) VALUES (new.id, new.text); END",)
          if table == "inbound" else ()),
        f"CREATE TRIGGER {table}_fts_delete AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {table}_fts ({table}_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
        f"CREATE TRIGGER {table}_fts_update AFTER UPDATE OF text ON {table} BEGIN "
        f"INSERT INTO {table}_fts ({table}_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        f"INSERT INTO {table}_fts (rowid, text) VALUES (new.id, new.text); END",
        f"INSERT INTO {table}_fts ({table}_fts) VALUES ('rebuild')",   # what was there before
    ))

#: Schema steps of this engine's own, run after the shared script of the same version: SQL,
#: or a function of the upgrade's connection (a step that depends on what the file holds).
OWN_STEPS: dict[int, Sequence[str | Callable[[sqlite3.Connection], None]]] = {
    12: ACCOUNT_COUNTS, 13: (outbox_subject_step,), 18: SQLITE_STEP,
    20: SQLITE_CARD_STEP, 21: CARD_IMSI_STEP, 22: SQLITE_REPORT_CARD_STEP,
    23: SENT_BY_CARD_STEP}


def upgrade(engine: SqliteEngine) -> None:
    """Bring the engine's file to SCHEMA_VERSION in one transaction (a new file gets every
    step), refused across a step that breaks older daemons still running (upgrade_guard)
    unless the engine was opened `despite_older_daemons`."""
    with engine.tx() as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:  # another process upgraded it meanwhile
            raise SpoolTooNew(too_new(str(engine.path), version))
        if breaks_older(version) and not engine.despite_older_daemons:
            refuse_if_older_daemons_run(str(engine.path), version, daemon_rows(conn.execute(
                f"SELECT {DAEMON_COLUMNS} FROM daemons WHERE stopped_at IS NULL"
            ).fetchall()) if _has_table(conn, "daemons") else [])
        # A file from before versions were recorded (0) has version 1's tables, or none.
        for step in range(max(version, 0) + 1, SCHEMA_VERSION + 1):
            for statement in statements(MIGRATIONS[step]):
                conn.execute(statement)
            for statement in OWN_STEPS.get(step, ()):
                statement(conn) if callable(statement) else conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def make_text_index(engine: SqliteEngine) -> bool:
    """Make the trigram indexes once (an existing spool is indexed then, in one go);
    False when this SQLite has no FTS5 trigram tokenizer (searches then scan)."""
    present = "SELECT 1 FROM sqlite_master WHERE name = 'inbound_fts'"
    if engine.conn.execute(present).fetchone():
        made_by_first = "SELECT 1 FROM sqlite_master WHERE name = 'messages_fts_insert'"
        if engine.conn.execute(made_by_first).fetchone():   # index_text does it now
            with engine.tx() as conn:
                conn.execute("DROP TRIGGER IF EXISTS messages_fts_insert")
        return True
    try:
        with engine.tx() as conn:
            if not conn.execute(present).fetchone():   # another process may have made it
                for statement in TEXT_INDEX:
                    conn.execute(statement)
    except sqlite3.OperationalError:   # no fts5 or no trigram (SQLite < 3.34)
        return False
    return True
