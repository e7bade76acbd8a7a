"""The seam between what the spool promises and how a database does it.

The spool's rules (leases, part markers, recovery, counters, inbound reassembly) are written
once, in `claims.py`, `recovery.py`, `inbound.py`, `sims.py`, `messages.py`, as SQL that both
engines understand: `?` or `:name` parameters, `ON CONFLICT`, `RETURNING`, times as fixed-width
ISO text. What differs between SQLite and PostgreSQL is an `Engine`: how to connect, how a
write transaction is opened, how rows are locked for a claim, JSON lists, id allocation, and
the schema's DDL and version. One engine each: `sqlite_engine.py` (with `sqlite_schema.py`,
`sqlite_counts.py`, `sqlite_webhooks.py`), `postgres_engine.py` (with `postgres_pool.py`,
`postgres_conn.py`, `postgres_schema.py`, `postgres_webhooks.py`, `postgres_counts.py`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from modempool.errors import PoolError


class SpoolTooNew(PoolError):
    """The spool was written by a newer modempool: this one refuses it and leaves it untouched."""


class SpoolUnreachable(PoolError):
    """The spool's database cannot be reached or opened (names the host and the reason)."""


# The parts that may have gone out unrecorded, which `sims.sent_counts` adds to a SIM's day
# and month (status, dashboard, quotas): without this index that count reads every part the
# SIM ever sent (150 ms a SIM at a million messages, on either engine). Each engine makes it
# when it opens the spool.
UNCERTAIN_PARTS = ("CREATE INDEX IF NOT EXISTS parts_uncertain ON parts (sim, writing_at) "
                   "WHERE state IN ('writing', 'ambiguous')")
# The reports that matched no part when they came: each part recorded as sent looks there for
# one that came before its confirmation (`verdicts.early_report`). Made at open, as above.
UNMATCHED_REPORTS = ("CREATE INDEX IF NOT EXISTS delivery_reports_unmatched ON delivery_reports "
                     "(sim, message_reference) WHERE part_id IS NULL")


class Row(tuple):
    """A result row readable by position (`row[0]`) and by column name (`row["id"]`), like
    `sqlite3.Row`, so that the rules read rows the same way on both engines."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class Result:
    """What `spool.db.execute` returns on either engine: its rows already fetched (the
    connection is free again for another thread), `rowcount`, `lastrowid` for an insert into
    a table with an `id`, and `description`."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None = None,
                 description: list[tuple[Any, ...]] | None = None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.description = description  # DB-API: (name, ...) per column

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


@lru_cache(maxsize=256)
def row_class(names: tuple[str, ...]) -> type[Row]:
    """A `Row` subclass for one result's column names (made once per statement shape)."""
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


class Engine(ABC):
    """One database under the spool: connections, transactions and the SQL that differs."""

    #: "sqlite" or "postgresql"
    name: str
    #: appended to a SELECT whose rows the transaction will update (PostgreSQL: FOR UPDATE)
    lock_rows: str = ""
    #: appended to a SELECT of rows taken only where no other transaction holds them: a
    #: claim's candidates, recovery's leases and their parts (PostgreSQL: FOR UPDATE SKIP LOCKED)
    skip_locked: str = ""
    #: `skip_locked` for rows the transaction updates without touching a key (recovery's):
    #: a foreign key's KEY SHARE (a report or part inserted against the row) does not stop it,
    #: every writer of the row does (PostgreSQL: FOR NO KEY UPDATE SKIP LOCKED)
    skip_locked_no_key: str = ""
    #: index hint for the expiry sweep (SQLite: INDEXED BY)
    expiry_index: str = ""
    #: LIKE blind to the case of Latin letters (SQLite's LIKE is; PostgreSQL: ILIKE)
    case_blind_like: str = "LIKE"
    #: whether a write may stand in a WITH of another (PostgreSQL): two in one round trip
    writes_in_with: bool = False
    #: whether `lock_key` takes a lock (PostgreSQL's writers run at once; SQLite's take turns)
    locks_keys: bool = False

    @property
    @abstractmethod
    def where(self) -> str:
        """Where the spool is, for messages (a file path, or user@host/db without password)."""

    @abstractmethod
    @contextmanager
    def tx(self) -> Iterator[Any]:
        """A write transaction; nested calls join the outer one (it commits). The connection
        yielded has `execute(sql, params)` and `executemany(sql, rows)`."""

    @contextmanager
    def one_trip(self) -> Iterator[Any]:
        """A write transaction whose statements a database server gets together (PostgreSQL:
        one pipeline, sent as the block is left; a row read inside the block sends what came
        before it, a round trip more: read after it what can wait). Here the same as `tx`
        (SQLite: no server to go to)."""
        with self.tx() as conn:
            yield conn

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """The rows of a query (inside the current transaction if one is open)."""

    @abstractmethod
    def new_ids(self, conn: Any, table: str, count: int) -> list[int]:
        """`count` fresh ids for `table`, reserved inside the transaction `conn`."""

    @abstractmethod
    def json_list_has(self, column: str, param: str) -> str:
        """SQL true when the JSON list in `column` holds the value of parameter `param`."""

    @abstractmethod
    def json_text_at(self, document: str, key: str) -> str:
        """SQL for the text under key `key` (an SQL expression, an integer id say) of the JSON
        object `document` (SQL: a parameter); NULL where there is none."""

    @abstractmethod
    def seconds_between(self, later: str, earlier: str) -> str:
        """SQL for the seconds from time column `earlier` to `later` (ISO text), a float."""

    @abstractmethod
    def among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """SQL true when `column` is one of `values`, and its parameters: one parameter however
        many values (a 100,000-recipient send's ids), all of one type (ids or names)."""

    @abstractmethod
    def ensure_schema(self, script: str) -> None:
        """Create the missing tables and indexes of a module that keeps its own in the spool
        (accounts, webhooks, console sessions, the operator features): `CREATE ... IF NOT
        EXISTS` statements in SQLite's words, integer keys as `INTEGER PRIMARY KEY`. Once per
        engine object and script; call it outside a transaction."""

    @abstractmethod
    def operator_db(self) -> Any:
        """`spool.db`: the operator modules' `execute` (SQLite's dialect), `transaction` and
        `ensure_schema` on this engine's connections, safe from any thread; and their
        statements that differ per engine (the failed-auth throttle's), one file per engine:
        `sqlite_operator.py`, `postgres_operator.py`."""

    @abstractmethod
    def ensure_webhook_outbox(self) -> None:
        """The triggers that write each webhook event (and Kannel dlr-url callback) into
        `webhook_outbox` in the very transaction of the change it reports: a message turning
        sent, delivered, failed or ambiguous, an SMS stored in `inbound`, a number added to
        `optouts`. The tables they read exist (`modempool.webhooks.store.install`)."""

    # What the dashboard and /metrics count, kept by triggers in the transaction of each
    # change (each engine its own way), so that no read scans the messages.

    @abstractmethod
    def state_counts(self) -> dict[str, int]:
        """Messages in each state (states with none may be missing, or 0)."""

    @abstractmethod
    def account_state_counts(self, account: str) -> dict[str, int]:
        """The messages `account` queued (`message_accounts`), in each state (states with
        none may be missing, or 0)."""

    @abstractmethod
    def campaign_state_counts(self, campaign_id: int) -> dict[str, int]:
        """The messages of a campaign in each state (states with none may be missing, or 0)."""

    @abstractmethod
    def send_latency(self) -> list[tuple[int, int, float]]:
        """The enqueue-to-sent histogram: (bucket index into SEND_LATENCY_BOUNDS, messages,
        their seconds) of each bucket seen; each message counted once, when first sent."""

    @abstractmethod
    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        """Finished messages (sent, delivered, failed, ambiguous) by (SIM, state)."""

    @abstractmethod
    def sim_outcomes_reached(self) -> dict[tuple[str, str], int]:
        """Messages that reached each finished state, by (SIM, state): a count that only
        rises (one sent then delivered stays counted as sent)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- hooks with a default ---------------------------------------------------------------

    def insert_new(self, conn: Any, table: str, columns: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> int:
        """Insert `rows` (values of `columns`) into `table` in the transaction `conn`, those
        that conflict with a unique key left out; returns how many went in."""
        marks = ", ".join("?" * len(columns))
        return conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
                                "ON CONFLICT DO NOTHING", rows).rowcount   # summed over the rows

    def lock_key(self, conn: Any, key: str) -> None:
        """Within the open write transaction `conn`, wait for and hold until its end a lock on
        `key` (a sender, say) that every daemon on this database respects. SQLite's write lock,
        held from BEGIN IMMEDIATE, already excludes every other writer."""

    def lock_keys(self, conn: Any, keys: Iterable[str]) -> None:
        """`lock_key` for each of `keys`, in one order whatever the caller's: two transactions
        locking overlapping sets never wait on each other in a cycle."""
        for key in sorted(set(keys)):
            self.lock_key(conn, key)

    def lock_keys_of(self, conn: Any, query: str, params: Sequence[Any]) -> None:
        """`lock_keys` of the keys (text) that `query` (`?` parameters) returns in the
        transaction `conn`: where a key names a row (a part's SIM), read and locked in one go."""
        self.lock_keys(conn, [row[0] for row in conn.execute(query, params).fetchall()])

    def notify_enqueued(self, conn: Any) -> None:
        """Tell idle dispatchers elsewhere that messages were queued (PostgreSQL: NOTIFY)."""

    def wait_for_enqueue(self, timeout: float) -> bool:
        """Block up to `timeout` s for an enqueue notification; False if none (or unsupported)."""
        return False

    def forget_listener(self) -> None:
        """Drop a failed notification connection (PostgreSQL)."""

    def checkpoint_when_told(self, *, backstop: int = 0) -> None:
        """SQLite: stop automatic WAL checkpoints but past `backstop` pages (the daemon and
        the API's server call `checkpoint`)."""

    #: What `checkpoint` does here, for the log line when it failed.
    checkpoint_does = "the WAL checkpoint"

    def checkpoint(self) -> None:
        """The daemon's housekeeping, once a second at a quiet moment (off the event loop).
        SQLite: copy the WAL into the database file; PostgreSQL: fold the kept counts."""

    def table_names(self) -> list[str]:
        """Tables in the spool's database (tests and `spool migrate` use it)."""
        raise NotImplementedError

    def index_text(self, conn: Any, table: str, ids: Sequence[int]) -> None:
        """Add the text of rows `ids` just inserted into `table` to the full-text index, in
        the inserting transaction (SQLite; ids that were not inserted are skipped)."""

    @contextmanager
    def text_index_together(self, conn: Any) -> Iterator[None]:
        """Within it, the messages `index_text` is given are indexed at its end, together
        (SQLite: FTS5 writes its index once per statement and savepoint, so a group commit's
        sends cost a write each). Only for writes that neither delete a message nor change
        its text meanwhile; rows rolled back meanwhile are skipped."""
        yield


    def newest_matching(self, table: str, text: str, limit: int,
                        before: int | None = None) -> list[int] | None:
        """Ids of the newest `limit` rows of `table` (below id `before`) whose text contains
        `text`, newest first; None when this engine has no faster way than `text_matches`."""
        return None

    def text_matches(self, table: str, text: str) -> tuple[str, list[Any]]:
        """An SQL condition true for rows of `table` (`messages` or `inbound`) whose text
        contains `text` (case-insensitive for Latin letters), and its parameters: the full-text
        index's where the engine has one (history search at scale), else `text_scan`'s."""
        return self.text_scan(table, text)

    def text_scan(self, table: str, text: str) -> tuple[str, list[Any]]:
        """The same condition read row by row (a LIKE; for rows already narrowed down)."""
        if table not in ("messages", "inbound"):
            raise ValueError(f"no text to search in {table!r}")
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"text {self.case_blind_like} ? ESCAPE '\\'", [f"%{escaped}%"]


#: The name a `CREATE ... IF NOT EXISTS name` statement makes.
CREATED = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+|VIRTUAL\s+)?(?:TABLE|INDEX|TRIGGER|VIEW)\s+"
                     r"IF\s+NOT\s+EXISTS\s+(\w+)", re.I)


def created_names(parts: Sequence[str], kinds: str = "TABLE|INDEX|TRIGGER|VIEW") -> list[str] | None:
    """The names the statements `parts` make, if each is a `CREATE ... IF NOT EXISTS` of one
    of `kinds`; else None (something else must run anyway)."""
    names = []
    for statement in parts:
        made = CREATED.match(statement)
        if made is None or not re.match(rf"\s*CREATE\s+(?:UNIQUE\s+|VIRTUAL\s+)?(?:{kinds})\s",
                                         statement, re.I):
            return None
        names.append(made.group(1))
    return sorted(set(names))


def statements(script: str) -> list[str]:
    """Split a schema script into statements (it has no semicolons inside strings)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_engine(target: Any, **options: Any) -> Engine:
    """The engine for a spool target: a `postgresql://` URL, or a path to an SQLite file."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from modempool.spool.postgres_engine import PostgresEngine

        options.pop("busy_timeout", None)
        options.pop("synchronous", None)
        options.pop("create", None)
        return PostgresEngine(text, **options)
    from modempool.spool.sqlite_engine import SqliteEngine

    return SqliteEngine(target, **options)
