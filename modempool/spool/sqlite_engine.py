"""The spool on SQLite: one file in WAL mode, the embedded default (one box needs no server).

One connection per `Spool`, shared between threads under a lock. Every write runs in a
`BEGIN IMMEDIATE` transaction, which takes the file's write lock at its first statement: a
claim's read and conditional update can never interleave with another process's. The
counts kept by triggers are in sqlite_counts.py, the webhook triggers in sqlite_webhooks.py,
the upgrade at open and history search's FTS5 indexes in sqlite_schema.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modempool.private_files import create_private
from modempool.spool.engine import (UNCERTAIN_PARTS, UNMATCHED_REPORTS, Engine, SpoolTooNew,
                                    SpoolUnreachable, created_names, row_class, statements)
from modempool.spool.schema import SCHEMA_VERSION, SYNCHRONOUS_MODES, too_new
from modempool.spool.sqlite_counts import METRIC_COUNTS, REACHED_COUNTS, STATE_COUNTS
from modempool.spool.sqlite_schema import make_text_index, upgrade
from modempool.spool.sqlite_webhooks import DLR_MARK, SUBJECT_INDEX, SUBJECT_MARK, WEBHOOK_OUTBOX
from modempool.spool.upgrade_guard import OlderDaemonsRunning

TRIGRAM = 3
CHECKPOINT_ROUNDS = 8   # copies at most, while writers add to the WAL (`checkpoint`)
# A busy write lock is asked for again every millisecond at most (after 0.1, 0.2, 0.4 ms) for
# LOCK_POLLING seconds (`_begin`), then SQLite's busy handler waits for the rest of busy_timeout.
LOCK_POLLING = 0.05
LOCK_STEPS = (0.0001, 0.001)   # the first step, the longest
RESTART_WAIT_MS = 100   # the longest a checkpoint's last step waits for the write lock


class SqliteEngine(Engine):
    name = "sqlite"
    expiry_index = " INDEXED BY messages_expiry"

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 synchronous: str = "normal", create: bool = True,
                 despite_older_daemons: bool = False) -> None:
        if synchronous.lower() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = Path(path)
        # upgrade even across a step that breaks older daemons still running (upgrade_guard)
        self.despite_older_daemons = despite_older_daemons
        self.lock = threading.RLock()
        self._ensured: set[str] = set()   # module schemas made (ensure_schema)
        self._index_later: list[int] | None = None   # messages to index (text_index_together)
        # A command that only reads, where no spool exists yet, sees an empty one in memory
        # and leaves no file (nor directory) behind.
        target = ":memory:" if not create and not self.path.exists() else str(self.path)
        try:
            if target != ":memory:":
                create_private(self.path)  # 0600: every SMS and contact is in it
            self.conn = sqlite3.connect(target, timeout=busy_timeout,
                                        isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise SpoolUnreachable(f"cannot open the spool {self.path}: "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:  # before anything writes to the file
                self.conn.close()
                raise SpoolTooNew(too_new(str(self.path), version))
            self._busy_ms = int(busy_timeout * 1000)
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self.conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: bulk enqueues in memory
            if version < SCHEMA_VERSION:  # else opening only reads (a viewer takes no write lock)
                upgrade(self)
        except OlderDaemonsRunning:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:  # garbage, truncated, read-only, disk full
            self.conn.close()
            raise SpoolUnreachable(f"cannot use the spool {self.path}: {exc} (is it a modempool "
                                   "spool, complete, on a writable disk with room?)") from None
        self.text_index = make_text_index(self)
        self._make_once("message_state_counts_update", STATE_COUNTS)
        self._make_once("parts_uncertain", (UNCERTAIN_PARTS,))
        self._make_once("delivery_reports_unmatched", (UNMATCHED_REPORTS,))
        self._make_once("sim_outcome_counts_delete", METRIC_COUNTS)
        self._make_once("sim_outcome_totals_insert", REACHED_COUNTS)

    def _make_once(self, last: str, script: Sequence[str]) -> None:
        """Run `script` unless the object it makes last exists (another process may race)."""
        present = "SELECT 1 FROM sqlite_master WHERE name = ?"
        if self.conn.execute(present, (last,)).fetchone():
            return
        with self.tx() as conn:
            if not conn.execute(present, (last,)).fetchone():
                for statement in script:
                    conn.execute(statement)

    def state_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self.rows("SELECT state, n FROM message_state_counts")}

    def ensure_schema(self, script: str) -> None:
        """Reads only where every table and index of `script` exists (the usual case): a
        module opened by a read-only page or command does not take the file's write lock."""
        if script in self._ensured:
            return
        with self.lock:
            # Inside another transaction what is made (or seen) may yet be rolled back with
            # it: then it is checked again next time instead of remembered.
            nested = self.conn.in_transaction
            parts = statements(script)
            if not self._all_exist(parts):
                with self.tx() as conn:
                    for statement in parts:
                        conn.execute(statement)
            if not nested:
                self._ensured.add(script)

    def _all_exist(self, parts: Sequence[str]) -> bool:
        """Whether each statement is a `CREATE ... IF NOT EXISTS` of something present."""
        names = created_names(parts)
        if names is None:
            return False
        present = self.rows("SELECT name FROM sqlite_master WHERE name IN "
                            "(SELECT value FROM json_each(?))", (json.dumps(names),))
        return len(present) == len(names)

    def operator_db(self) -> Any:
        """`spool.db` for the operator modules: this connection under this lock."""
        from modempool.spool.sqlite_operator import SqliteOperatorDb

        return SqliteOperatorDb(self)

    def ensure_webhook_outbox(self) -> None:
        if "webhook_outbox" not in self._ensured:
            self._outbox_subjects()
            self._make_once("webhook_optout", WEBHOOK_OUTBOX)
            older = ("SELECT 1 FROM sqlite_master WHERE name = 'webhook_message_state' "
                     "AND (instr(sql, ?) = 0 OR instr(sql, ?) = 0)")
            if self.rows(older, (DLR_MARK, SUBJECT_MARK)):
                with self.tx() as conn:
                    conn.execute("DROP TRIGGER IF EXISTS webhook_message_state")
                    conn.execute(WEBHOOK_OUTBOX[0])
            self._ensured.add("webhook_outbox")

    def _outbox_subjects(self) -> None:
        """The subjects' index of an outbox made since the upgrade (one from before got its
        column and index in schema step 13)."""
        index = "SELECT 1 FROM sqlite_master WHERE name = 'webhook_outbox_subject'"
        if self.conn.execute(index).fetchone():
            return
        with self.tx() as conn:
            conn.execute(SUBJECT_INDEX)

    def account_state_counts(self, account: str) -> dict[str, int]:
        return {row[0]: row[1] for row in self.rows(
            "SELECT state, n FROM account_state_counts WHERE account = ?", (account,))}

    def campaign_state_counts(self, campaign_id: int) -> dict[str, int]:
        return {row[0]: row[1] for row in self.rows(
            "SELECT state, n FROM campaign_state_counts WHERE campaign_id = ?", (campaign_id,))}

    def send_latency(self) -> list[tuple[int, int, float]]:
        return [tuple(row) for row in self.rows("SELECT bucket, n, seconds FROM send_latency")]

    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        return {(row[0], row[1]): row[2] for row in self.rows(
            "SELECT sim, state, n FROM sim_outcome_counts WHERE n > 0")}

    def sim_outcomes_reached(self) -> dict[tuple[str, str], int]:
        return {(row[0], row[1]): row[2] for row in self.rows(
            "SELECT sim, state, n FROM sim_outcome_totals WHERE n > 0")}

    def index_text(self, conn: Any, table: str, ids: Sequence[int]) -> None:
        if self._index_later is not None and table == "messages":
            self._index_later.extend(ids)
        elif self.text_index and ids and table == "messages":
            conn.execute("INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages "
                         "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))

    @contextmanager
    def text_index_together(self, conn: Any) -> Iterator[None]:
        if self._index_later is not None or not self.text_index:
            yield
            return
        self._index_later = []
        try:
            yield
            later = self._index_later
        finally:
            self._index_later = None
        self.index_text(conn, "messages", later)

    def newest_matching(self, table: str, text: str, limit: int,
                        before: int | None = None) -> list[int] | None:
        if not self.text_index or len(text) < TRIGRAM:
            return super().newest_matching(table, text, limit, before)
        if table not in ("messages", "inbound"):
            raise ValueError(f"no text to search in {table!r}")
        phrase = '"' + text.replace('"', '""') + '"'
        # FTS5 walks its index by rowid, newest first, and stops at the limit
        return [row[0] for row in self.rows(
            f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ? AND rowid < ? "
            f"ORDER BY rowid DESC LIMIT ?", (phrase, 2**63 - 1 if before is None else before,
                                             int(limit)))]

    def text_matches(self, table: str, text: str) -> tuple[str, list[Any]]:
        if not self.text_index or len(text) < TRIGRAM:
            return super().text_matches(table, text)
        if table not in ("messages", "inbound"):
            raise ValueError(f"no text to search in {table!r}")
        phrase = '"' + text.replace('"', '""') + '"'
        return f"id IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ?)", [phrase]

    @property
    def where(self) -> str:
        return str(self.path)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            if self.conn.in_transaction:  # nested: the outer one commits
                yield self.conn
                return
            self._begin()
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:  # a refused COMMIT (deferred constraint) leaves it open
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _begin(self) -> None:
        """BEGIN IMMEDIATE: the write lock, which another process may hold for a moment (the
        HTTP sidecar's group commit, the daemon's marker). SQLite's busy handler sleeps 1, 2,
        5, 10, 15, 20, 25... ms between its tries, so a lock held for 2 ms costs a waiter 3 and
        one held for 4 ms costs 8; and while it sleeps, a writer that never waits (the next
        batch of the group commit) takes the lock again. Here it is asked for again within a
        millisecond for the first LOCK_POLLING seconds, then the busy handler waits as before
        (busy_timeout in all)."""
        conn, budget = self.conn, self._busy_ms / 1000
        conn.execute("PRAGMA busy_timeout = 0")
        started, step = time.monotonic(), LOCK_STEPS[0]
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                waited = time.monotonic() - started
                if waited + step > min(LOCK_POLLING, budget):
                    break
                time.sleep(step)
                step = min(2 * step, LOCK_STEPS[1])
            conn.execute(f"PRAGMA busy_timeout = {max(0, int(1000 * (budget - waited)))}")
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self.lock:
            cur = self.conn.execute(sql, params)
            values = cur.fetchall()
        if not values:
            return values
        row = row_class(tuple(d[0] for d in cur.description))   # once, not for every row
        return [row(v) for v in values]

    def new_ids(self, conn: Any, table: str, count: int) -> list[int]:
        # The write lock is held from BEGIN IMMEDIATE: nobody else can take the same ids.
        first = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]
        return list(range(first, first + count))

    def json_list_has(self, column: str, param: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = {param})"

    def json_text_at(self, document: str, key: str) -> str:
        return f"json_extract({document}, '$.\"' || {key} || '\"')"

    def seconds_between(self, later: str, earlier: str) -> str:
        return f"(julianday({later}) - julianday({earlier})) * 86400.0"

    def among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]

    def checkpoint_when_told(self, *, backstop: int = 0) -> None:
        with self.lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(backstop)}")

    def checkpoint(self) -> None:
        """Copies without waiting for readers or writers (until its last step, below); it syncs
        the file, so call it off the event loop. It uses a connection of its own, so the
        spool's stays free meanwhile.

        Writers go on meanwhile, and the WAL starts over from its beginning only once a
        checkpoint has copied all of it. So while the copy leaves frames behind (committed
        during it), it copies again: each round has fewer to copy, and one that finds no new
        commit lets the next writer start the WAL over; else the WAL would grow for as long
        as the writes go on. Writers that never pause leave every round something new; then one
        RESTART copies the little that is left while holding writers back for at most
        RESTART_WAIT_MS to get the lock and then for that copy and its sync, so that the WAL
        starts over all the same (busy: it tries again at the next call)."""
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            before = None
            for _ in range(CHECKPOINT_ROUNDS):
                busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy or (frames == before and copied >= frames):
                    return
                before = frames
            conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            conn.close()

    def table_names(self) -> list[str]:
        return [r[0] for r in self.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def close(self) -> None:
        with self.lock:
            self.conn.close()
