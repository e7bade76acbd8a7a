"""The durable spool: one SQLite file (WAL) holding every message and its state.

`Spool` is the only place with SQL for messages. Enqueue, listing, cancel/retry/hold live
here; claiming and the send-side transitions in `spool_claim.py`; inbound messages and
delivery reports in `spool_inbound.py`; SIM status, counters and the audit log in
`spool_sims.py`. They are mixins of one `Spool` class so callers see one object.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from modempool.errors import InvalidNumber, NotFound, PoolError
from modempool.numbers import DEFAULT_REGION
from modempool.spool.claims import ClaimMixin
from modempool.spool.daemons import DaemonsMixin
from modempool.spool.decisions import DecisionsMixin
from modempool.spool.recovery import RecoveryMixin
from modempool.spool.inbound import InboundMessage, InboundMixin, ReportMatch
from modempool.spool.numbers import _normalise
from modempool.spool.model import (
    FINAL_STATES,
    RETRYABLE_STATES,
    SUCCESS_STATES,
    LeaseLost,
    Message,
    MessageState,
    Recovery,
    StateConflict,
    from_text,
    to_text,
    utcnow,
)
from modempool.spool.schema import connect
from modempool.spool.sims import SimsMixin

__all__ = [
    "FINAL_STATES",
    "InboundMessage",
    "RETRYABLE_STATES",
    "ReportMatch",
    "SUCCESS_STATES",
    "LeaseLost",
    "Message",
    "MessageState",
    "Recovery",
    "Spool",
    "StateConflict",
    "from_text",
    "to_text",
    "utcnow",
]

_ENQUEUE_KEYS = frozenset(
    {
        "to", "text", "client_id", "priority", "not_before", "expires_at", "campaign_id",
        "quiet_hours", "sims", "held", "region",
    }
)

_INSERT = """
INSERT OR IGNORE INTO messages (id, client_id, to_number, text, state, priority, not_before,
    expires_at, campaign_id, quiet_hours, sims, held, created_at, updated_at)
VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


class Spool(ClaimMixin, RecoveryMixin, DecisionsMixin, InboundMixin, SimsMixin, DaemonsMixin):
    """A spool file: `Spool("modempool.db")` creates or opens it.

    One object per thread of use is simplest; an object may be shared between threads
    (calls are serialised by a lock). Several processes may open the same file: every
    write runs in a `BEGIN IMMEDIATE` transaction and waits up to `busy_timeout` seconds.
    `synchronous="normal"` (WAL) makes each commit survive a killed process; "full" also
    survives a power cut, at one disk flush per commit.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        region: str = DEFAULT_REGION,
        tz: tzinfo | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "normal",
    ) -> None:
        self.path = Path(path)
        self.region = region
        self.tz = tz  # local time zone for day/month counters; None = the system's
        self._conn = connect(self.path, busy_timeout=busy_timeout, synchronous=synchronous)
        self._lock = threading.RLock()
        self._db: Any = None

    @property
    def db(self) -> Any:
        """The file as a `sqlite_utils.Database` (other modules may add their own tables)."""
        if self._db is None:
            import sqlite_utils  # imported on first use: it takes a while (numpy)

            self._db = sqlite_utils.Database(self._conn)
        return self._db

    # ---- plumbing -------------------------------------------------------------------------

    def checkpoint_when_told(self) -> None:
        """Stop this connection's automatic WAL checkpoints (a commit that crosses the WAL
        threshold copies it into the database, a stall of milliseconds wherever it falls): the
        daemon calls `checkpoint()` itself, at moments when no modem waits for it."""
        with self._lock:
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, without waiting for readers. It
        syncs the file: call it off the event loop (`asyncio.to_thread`); it uses a connection
        of its own, so the spool's stays free meanwhile."""
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database lock from its first statement."""
        with self._lock:
            if self._conn.in_transaction:  # nested: the outer one commits
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def transaction(self) -> Any:
        """One write transaction (nests inside an open one): modules that keep their own tables
        in the spool file (accounts, webhooks) write them in the same commit as a message."""
        return self._tx()

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query on the spool's connection (as `sqlite3.Row`)."""
        return self._rows(sql, params)

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = sqlite3.Row
            return cur.execute(sql, params).fetchall()

    def _message(self, message_id: int) -> Message:
        rows = self._rows("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise NotFound(f"no message with id {message_id}")
        return Message.from_row(rows[0])

    def _event(
        self, kind: str, message_id: int | None = None, sim: str | None = None,
        detail: Any = None, now: str | None = None,
    ) -> None:
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, ensure_ascii=False, default=str)
        self._conn.execute(
            "INSERT INTO events (time, kind, message_id, sim, detail) VALUES (?, ?, ?, ?, ?)",
            (now or to_text(utcnow()), kind, message_id, sim, detail),
        )

    # ---- enqueue --------------------------------------------------------------------------

    def _prepare(self, row: dict[str, Any], now: str) -> tuple[Any, ...]:
        """Validate one message and return its INSERT parameters (id first, filled later)."""
        unknown = set(row) - _ENQUEUE_KEYS
        if unknown:
            raise PoolError(f"unknown message field(s): {', '.join(sorted(unknown))}")
        if "to" not in row or "text" not in row:
            raise PoolError("a message needs 'to' and 'text'")
        text = row["text"]
        if not isinstance(text, str) or text == "":
            raise PoolError("message text is empty")
        to = _normalise(str(row["to"]), row.get("region") or self.region)
        sims = row.get("sims")
        if isinstance(sims, str):
            sims = [sims]
        client_id = row.get("client_id")
        return (
            None,
            str(client_id) if client_id is not None else None,
            to,
            text,
            int(row.get("priority") or 0),
            _time_param(row.get("not_before")),
            _time_param(row.get("expires_at")),
            row.get("campaign_id"),
            1 if row.get("quiet_hours") else 0,
            json.dumps(list(sims), ensure_ascii=False) if sims else None,
            1 if row.get("held") else 0,
            now,
            now,
        )

    def enqueue(
        self,
        to: str,
        text: str,
        *,
        client_id: str | None = None,
        priority: int = 0,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
        campaign_id: int | None = None,
        quiet_hours: bool = False,
        sims: list[str] | None = None,
        held: bool = False,
        region: str | None = None,
    ) -> Message:
        """Queue one SMS; the same `client_id` twice returns the first message unchanged.

        Raises InvalidNumber for a number that is not valid in E.164 or in `region`.
        """
        row = dict(
            to=to, text=text, client_id=client_id, priority=priority, not_before=not_before,
            expires_at=expires_at, campaign_id=campaign_id, quiet_hours=quiet_hours,
            sims=sims, held=held, region=region,
        )
        return self._message(self.enqueue_many([row])[0])

    def enqueue_many(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Queue many SMS in one transaction and return their ids, in order.

        Every row is validated first: one bad number raises (naming its row) and queues
        nothing. Rows whose client_id already exists get the existing id.
        """
        now = to_text(utcnow())
        prepared = []
        for index, row in enumerate(rows):
            try:
                prepared.append(list(self._prepare(row, now)))
            except InvalidNumber as exc:
                raise InvalidNumber(f"row {index + 1}: {exc}") from None
            except PoolError as exc:
                raise PoolError(f"row {index + 1}: {exc}") from None
        if not prepared:
            return []
        with self._tx() as conn:
            first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0]
            for offset, params in enumerate(prepared):
                params[0] = first + offset
            conn.executemany(_INSERT, prepared)
            ids = [params[0] for params in prepared]
            inserted = conn.execute(
                "SELECT count(*) FROM messages WHERE id BETWEEN ? AND ?", (first, ids[-1])
            ).fetchone()[0]
            if inserted != len(ids):  # some client_ids existed: return their messages
                present = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM messages WHERE id BETWEEN ? AND ?", (first, ids[-1])
                    )
                }
                for index, params in enumerate(prepared):
                    if params[0] not in present:
                        existing = conn.execute(
                            "SELECT id FROM messages WHERE client_id = ?", (params[1],)
                        ).fetchone()
                        if existing is None:
                            raise PoolError(f"row {index + 1} could not be stored")
                        ids[index] = existing[0]
        return ids

    # ---- reading --------------------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """The message with this id, or NotFound."""
        return self._message(message_id)

    def get_by_client_id(self, client_id: str) -> Message | None:
        rows = self._rows("SELECT * FROM messages WHERE client_id = ?", (client_id,))
        return Message.from_row(rows[0]) if rows else None

    def list(
        self,
        state: MessageState | str | None = None,
        campaign_id: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Messages in id order, optionally of one state and/or campaign (the last `limit`)."""
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(MessageState(state).value)
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        sql = "SELECT * FROM messages" + (" WHERE " + " AND ".join(where) if where else "")
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            params.append(int(limit))
        else:
            sql += " ORDER BY id"
        return [Message.from_row(r) for r in self._rows(sql, params)]

    def counts(self) -> dict[str, int]:
        """Number of messages in each state (every state present, zeros included)."""
        out = {state.value: 0 for state in MessageState}
        for row in self._rows("SELECT state, count(*) AS n FROM messages GROUP BY state"):
            out[row["state"]] = row["n"]
        return out

    def queue_depth(self) -> int:
        """Messages waiting to be sent (queued, including held and scheduled ones)."""
        return self._rows("SELECT count(*) AS n FROM messages WHERE state = 'queued'")[0]["n"]

    def parts(self, message_id: int) -> list[dict[str, Any]]:
        """The `parts` rows of a message (latest attempt overwrites earlier ones), by seq."""
        rows = self._rows("SELECT * FROM parts WHERE message_id = ? ORDER BY seq", (message_id,))
        return [dict(r) for r in rows]

    def events(self, message_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit log entries, oldest first (of one message if given)."""
        sql, params = "SELECT * FROM events", []
        if message_id is not None:
            sql += " WHERE message_id = ?"
            params.append(message_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY id', 'ORDER BY id DESC')} LIMIT ?) ORDER BY id"
            params.append(int(limit))
        return [dict(r) for r in self._rows(sql, params)]

    def last_sim_for(self, to: str) -> str | None:
        """The SIM that last sent to this number (for the sticky strategy after a restart)."""
        rows = self._rows(
            "SELECT sim FROM messages WHERE to_number = ? AND state IN ('sent', 'delivered') "
            "ORDER BY id DESC LIMIT 1",
            (to,),
        )
        return rows[0]["sim"] if rows else None


def _time_param(value: datetime | str | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return to_text(value)
