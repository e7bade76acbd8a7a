"""The spool on SQLite: one file in WAL mode, the embedded default (one box needs no server).

One connection per `Spool`, shared between threads under a lock. Every write runs in a
`BEGIN IMMEDIATE` transaction, which takes the file's write lock at its first statement: a
claim's read and conditional update can never interleave with another process's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modempool.private_files import create_private
from modempool.spool.engine import (UNCERTAIN_PARTS, UNMATCHED_REPORTS, Engine, SpoolTooNew,
                                    SpoolUnreachable, created_names, row_class, statements)
from modempool.spool.schema import (FINISHED, MIGRATIONS, SCHEMA_VERSION, SYNCHRONOUS_MODES,
                                    latency_bucket, too_new)
from modempool.spool.upgrade_guard import (DAEMON_COLUMNS, OlderDaemonsRunning, breaks_older,
                                           daemon_rows, refuse_if_older_daemons_run)


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
TRIGRAM = 3
CHECKPOINT_ROUNDS = 8   # copies at most, while writers add to the WAL (`checkpoint`)
# A busy write lock is asked for again every millisecond at most (after 0.1, 0.2, 0.4 ms) for
# LOCK_POLLING seconds (`_begin`), then SQLite's busy handler waits for the rest of busy_timeout.
LOCK_POLLING = 0.05
LOCK_STEPS = (0.0001, 0.001)   # the first step, the longest
RESTART_WAIT_MS = 100   # the longest a checkpoint's last step waits for the write lock

# The dashboard's queue by state (issue 17): counting a million rows by state takes a few
# hundred milliseconds, so the count of each state is kept by triggers, in the writing
# transaction. The executemany of an enqueue pays a one-row UPDATE per message.
STATE_COUNTS = (
    "CREATE TABLE message_state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "INSERT INTO message_state_counts (state, n) SELECT state, count(*) FROM messages "
    "GROUP BY state",
    "CREATE TRIGGER message_state_counts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO message_state_counts (state, n) VALUES (new.state, 1) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER message_state_counts_delete AFTER DELETE ON messages BEGIN "
    "UPDATE message_state_counts SET n = n - 1 WHERE state = old.state; END",
    "CREATE TRIGGER message_state_counts_update AFTER UPDATE OF state ON messages "
    "WHEN old.state IS NOT new.state BEGIN "
    "UPDATE message_state_counts SET n = n - 1 WHERE state = old.state; "
    "INSERT INTO message_state_counts (state, n) VALUES (new.state, 1) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
)


# Webhook events (issue 15), written by triggers in the transaction of the change they report
# (see `Engine.ensure_webhook_outbox`); PostgreSQL's PL/pgSQL twins are in postgres_engine.py.
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_NEW_ID = "'msg_' || lower(hex(randomblob(12)))"
#: In the trigger that writes Kannel callbacks: an older one (without it) is made again.
DLR_MARK = "the message id as the payload"
#: ... and since its events carry their subject (the message), this too.
SUBJECT_MARK = "each event's subject"

#: The outbox of a spool from before subjects (schema step 13): the column, the subjects of its
#: pending message events (so that they too go in order), and the index `claim_due` asks (a
#: later event of a subject waits while an earlier one to the same endpoint is pending).
OUTBOX_SUBJECT = (
    "ALTER TABLE webhook_outbox ADD COLUMN subject TEXT",
    "UPDATE webhook_outbox SET subject = 'message:' || json_extract(payload, '$.data.id') "
    "WHERE state = 'pending' AND webhook_id IS NOT NULL AND type LIKE 'message.%'",
)
SUBJECT_INDEX = ("CREATE INDEX IF NOT EXISTS webhook_outbox_subject ON webhook_outbox "
                 "(webhook_id, subject, id) WHERE state = 'pending' AND subject IS NOT NULL")

WEBHOOK_OUTBOX = (
    f"""CREATE TRIGGER IF NOT EXISTS webhook_message_state AFTER UPDATE OF state ON messages
WHEN new.state != old.state AND new.state IN {FINISHED}
BEGIN
    -- {SUBJECT_MARK}: a message's events to one endpoint go in order (`Webhooks.claim_due`)
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at,
                                subject)
    SELECT {_NEW_ID}, w.id, w.url, 'message.' || new.state,
        json_object('type', 'message.' || new.state, 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'to', new.to_number, 'state', new.state, 'sim', new.sim,
            'parts', new.parts_total, 'attempts', new.attempts, 'error', new.error,
            'account', (SELECT account FROM message_accounts WHERE message_id = new.id),
            'created_at', new.created_at, 'sent_at', new.sent_at,
            'delivered_at', new.delivered_at)),
        {_NOW}, {_NOW}, 'message:' || new.id
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'message.' || new.state)
      AND (w.account IS NULL
           OR w.account = (SELECT account FROM message_accounts WHERE message_id = new.id));
    -- {DLR_MARK}: a message's callbacks are delivered in order (`Webhooks.claim_due`)
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, NULL,
        replace(replace(d.url, '%d', c.code), '%p', replace(new.to_number, '+', '%2B')),
        'kannel.dlr', CAST(new.id AS TEXT), {_NOW}, {_NOW}
    FROM kannel_dlr d, (SELECT CASE new.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 8
        WHEN 'failed' THEN CASE WHEN new.sent_at IS NULL THEN 16 ELSE 2 END
        ELSE 0 END AS code) c
    WHERE d.message_id = new.id AND (d.mask & c.code) != 0;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS webhook_inbound AFTER INSERT ON inbound
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'sms.received',
        json_object('type', 'sms.received', 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'from', new.sender, 'sim', new.sim, 'text', new.text,
            'parts', new.parts, 'complete', json(CASE new.complete WHEN 1 THEN 'true' ELSE 'false' END),
            'received_at', new.received_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'sms.received')
      AND (w.account IS NULL OR EXISTS (
          SELECT 1 FROM accounts a WHERE a.name = w.account AND (a.role = 'admin'
              OR a.sims IS NULL OR EXISTS (SELECT 1 FROM json_each(a.sims) WHERE value = new.sim))));
END""",
    f"""CREATE TRIGGER IF NOT EXISTS webhook_optout AFTER INSERT ON optouts
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'optout.added',
        json_object('type', 'optout.added', 'timestamp', {_NOW}, 'data', json_object(
            'number', new.number, 'keyword', new.keyword, 'source', new.source,
            'inbound_id', new.inbound_id, 'created_at', new.created_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'optout.added');
END""",
)


# What /metrics asks on every scrape (issue 15), kept by triggers in the writing transaction
# instead of read from every sent message each time: each message's time from enqueue to sent
# observed once, when its sent_at is first set (a bucket index, the count and the seconds),
# and the finished messages per SIM and state.
_SECONDS = "(julianday({row}.sent_at) - julianday({row}.created_at)) * 86400.0"
METRIC_COUNTS = (
    "CREATE TABLE send_latency (bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
    "seconds REAL NOT NULL)",
    f"INSERT INTO send_latency (bucket, n, seconds) SELECT {latency_bucket('d')} AS b, count(*), "
    f"sum(d) FROM (SELECT {_SECONDS.format(row='messages')} AS d FROM messages "
    "WHERE sent_at IS NOT NULL) WHERE d IS NOT NULL GROUP BY b",
    "CREATE TRIGGER send_latency_observe AFTER UPDATE OF sent_at ON messages "
    "WHEN old.sent_at IS NULL AND new.sent_at IS NOT NULL BEGIN "
    f"INSERT INTO send_latency (bucket, n, seconds) SELECT {latency_bucket('d')}, 1, d "
    f"FROM (SELECT {_SECONDS.format(row='new')} AS d) WHERE d IS NOT NULL "
    "ON CONFLICT (bucket) DO UPDATE SET n = n + 1, seconds = seconds + excluded.seconds; END",
    "CREATE TABLE sim_outcome_counts (sim TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (sim, state))",
    "INSERT INTO sim_outcome_counts (sim, state, n) SELECT sim, state, count(*) FROM messages "
    f"WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state",
    "CREATE TRIGGER sim_outcome_counts_update AFTER UPDATE OF state, sim ON messages "
    "WHEN old.state IS NOT new.state OR old.sim IS NOT new.sim BEGIN "
    "UPDATE sim_outcome_counts SET n = n - 1 WHERE sim = old.sim AND state = old.state; "
    "INSERT INTO sim_outcome_counts (sim, state, n) SELECT new.sim, new.state, 1 "
    f"WHERE new.sim IS NOT NULL AND new.state IN {FINISHED} "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_counts_insert AFTER INSERT ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} BEGIN "
    "INSERT INTO sim_outcome_counts (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_counts_delete AFTER DELETE ON messages BEGIN "
    "UPDATE sim_outcome_counts SET n = n - 1 WHERE sim = old.sim AND state = old.state; END",
)

#: Outcomes reached per SIM (`modempool_sim_messages_total`): added to when a message enters a
#: finished state, never taken from (sim_outcome_counts follows what each message is now). An
#: existing spool's counts start from the messages in each outcome when it is opened.
REACHED_COUNTS = (
    "CREATE TABLE sim_outcome_totals (sim TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (sim, state))",
    "INSERT INTO sim_outcome_totals (sim, state, n) SELECT sim, state, count(*) FROM messages "
    f"WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state",
    "CREATE TRIGGER sim_outcome_totals_update AFTER UPDATE OF state, sim ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} "
    "AND (old.state IS NOT new.state OR old.sim IS NOT new.sim) BEGIN "
    "INSERT INTO sim_outcome_totals (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_totals_insert AFTER INSERT ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} BEGIN "
    "INSERT INTO sim_outcome_totals (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
)


#: Messages by state per account (its dashboard, `GET /v1/status`) and per campaign (its
#: progress), kept as the whole spool's are (STATE_COUNTS): one row per count, updated in the
#: writing transaction. A message counts for an account once both its row and its owner's
#: row (`message_accounts`, written after it) exist. Made by schema step 12 in the upgrade's
#: transaction, from the rows there are.
_OWNER_OF = "(SELECT account FROM message_accounts WHERE message_id = {row}.id)"
_ADD = "ON CONFLICT ({key}, state) DO UPDATE SET n = n + 1"
ACCOUNT_COUNTS = (
    "CREATE TABLE account_state_counts (account TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (account, state))",
    "INSERT INTO account_state_counts (account, state, n) SELECT o.account, m.state, count(*) "
    "FROM message_accounts o JOIN messages m ON m.id = o.message_id GROUP BY o.account, m.state",
    "CREATE TRIGGER account_state_counts_owned AFTER INSERT ON message_accounts BEGIN "
    "INSERT INTO account_state_counts (account, state, n) SELECT new.account, state, 1 "
    f"FROM messages WHERE id = new.message_id {_ADD.format(key='account')}; END",
    "CREATE TRIGGER account_state_counts_disowned AFTER DELETE ON message_accounts BEGIN "
    "UPDATE account_state_counts SET n = n - 1 WHERE account = old.account "
    "AND state = (SELECT state FROM messages WHERE id = old.message_id); END",
    "CREATE TRIGGER account_state_counts_update AFTER UPDATE OF state ON messages "
    "WHEN old.state IS NOT new.state BEGIN "
    f"UPDATE account_state_counts SET n = n - 1 WHERE account = {_OWNER_OF.format(row='new')} "
    "AND state = old.state; "
    "INSERT INTO account_state_counts (account, state, n) SELECT account, new.state, 1 "
    f"FROM message_accounts WHERE message_id = new.id {_ADD.format(key='account')}; END",
    "CREATE TRIGGER account_state_counts_delete AFTER DELETE ON messages BEGIN "
    f"UPDATE account_state_counts SET n = n - 1 WHERE account = {_OWNER_OF.format(row='old')} "
    "AND state = old.state; END",
    "CREATE TABLE campaign_state_counts (campaign_id INTEGER NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (campaign_id, state))",
    "INSERT INTO campaign_state_counts (campaign_id, state, n) SELECT campaign_id, state, "
    "count(*) FROM messages WHERE campaign_id IS NOT NULL GROUP BY campaign_id, state",
    "CREATE TRIGGER campaign_state_counts_insert AFTER INSERT ON messages "
    "WHEN new.campaign_id IS NOT NULL BEGIN "
    "INSERT INTO campaign_state_counts (campaign_id, state, n) "
    f"VALUES (new.campaign_id, new.state, 1) {_ADD.format(key='campaign_id')}; END",
    "CREATE TRIGGER campaign_state_counts_update AFTER UPDATE OF state, campaign_id ON messages "
    "WHEN old.state IS NOT new.state OR old.campaign_id IS NOT new.campaign_id BEGIN "
    "UPDATE campaign_state_counts SET n = n - 1 WHERE campaign_id = old.campaign_id "
    "AND state = old.state; "
    "INSERT INTO campaign_state_counts (campaign_id, state, n) "
    "SELECT new.campaign_id, new.state, 1 WHERE new.campaign_id IS NOT NULL "
    f"{_ADD.format(key='campaign_id')}; END",
    "CREATE TRIGGER campaign_state_counts_delete AFTER DELETE ON messages "
    "WHEN old.campaign_id IS NOT NULL BEGIN "
    "UPDATE campaign_state_counts SET n = n - 1 WHERE campaign_id = old.campaign_id "
    "AND state = old.state; END",
)

def _outbox_subject_step(conn: sqlite3.Connection) -> None:
    """Step 13: an outbox made before subjects gets the column, its pending message events
    their subject, and the index (a spool whose webhooks were never used has no outbox)."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(webhook_outbox)")]
    if columns and "subject" not in columns:
        for statement in OUTBOX_SUBJECT:
            conn.execute(statement)
    if columns:
        conn.execute(SUBJECT_INDEX)


#: Schema steps of this engine's own, run after the shared script of the same version: SQL,
#: or a function of the upgrade's connection (a step that depends on what the file holds).
OWN_STEPS: dict[int, Sequence[str | Callable[[sqlite3.Connection], None]]] = {
    12: ACCOUNT_COUNTS, 13: (_outbox_subject_step,)}


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
                self._upgrade()
        except OlderDaemonsRunning:
            self.conn.close()
            raise
        except sqlite3.DatabaseError as exc:  # garbage, truncated, read-only, disk full
            self.conn.close()
            raise SpoolUnreachable(f"cannot use the spool {self.path}: {exc} (is it a modempool "
                                   "spool, complete, on a writable disk with room?)") from None
        self.text_index = self._text_index()
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

    def _text_index(self) -> bool:
        """Make the trigram indexes once (an existing spool is indexed then, in one go);
        False when this SQLite has no FTS5 trigram tokenizer (searches then scan)."""
        present = "SELECT 1 FROM sqlite_master WHERE name = 'inbound_fts'"
        if self.conn.execute(present).fetchone():
            if self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts_insert'"
                                 ).fetchone():   # made by the first version: index_text does it
                with self.tx() as conn:
                    conn.execute("DROP TRIGGER IF EXISTS messages_fts_insert")
            return True
        try:
            with self.tx() as conn:
                if not conn.execute(present).fetchone():   # another process may have made it
                    for statement in TEXT_INDEX:
                        conn.execute(statement)
        except sqlite3.OperationalError:   # no fts5 or no trigram (SQLite < 3.34)
            return False
        return True

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

    def _upgrade(self) -> None:
        """Bring the file to SCHEMA_VERSION in one transaction (a new file gets every step)."""
        with self.tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:  # another process upgraded it meanwhile
                raise SpoolTooNew(too_new(str(self.path), version))
            if breaks_older(version) and not self.despite_older_daemons:
                refuse_if_older_daemons_run(str(self.path), version, daemon_rows(conn.execute(
                    f"SELECT {DAEMON_COLUMNS} FROM daemons WHERE stopped_at IS NULL"
                ).fetchall()) if self._has_table(conn, "daemons") else [])
            # A file from before versions were recorded (0) has version 1's tables, or none.
            for step in range(max(version, 0) + 1, SCHEMA_VERSION + 1):
                for statement in statements(MIGRATIONS[step]):
                    conn.execute(statement)
                for statement in OWN_STEPS.get(step, ()):
                    statement(conn) if callable(statement) else conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _has_table(conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (name,)).fetchone() is not None

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
