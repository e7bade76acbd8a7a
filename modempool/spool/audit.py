"""The audit log (`events`): what happened to which message or SIM, and when."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow
from datetime import datetime


#: An event row inserted, its values (time, kind, message id, SIM, detail) to follow.
INSERT_EVENT = "INSERT INTO events (time, kind, message_id, sim, detail)"
_INSERT = INSERT_EVENT + " VALUES "
_ROW = "(?, ?, ?, ?, ?)"


class AuditLog:
    """Appends to and reads the `events` table. The other parts write through `record`, inside
    their own transaction, so that an event is stored with the change it describes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()   # the events held by `together`, per thread

    def record(self, conn: Any, kind: str, message_id: int | None = None, sim: str | None = None,
               detail: Any = None, now: str | None = None) -> None:
        """One event, written on `conn` (an open transaction)."""
        row = self.row(kind, message_id, sim, detail, now)
        held = getattr(self._local, "held", None)
        if held is not None:
            held.append(row)
        else:
            self._write(conn, [row])

    @staticmethod
    def row(kind: str, message_id: int | None = None, sim: str | None = None,
            detail: Any = None, now: str | None = None) -> tuple[Any, ...]:
        """The values of an event's row (`INSERT_EVENT`), as `record` writes them."""
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, ensure_ascii=False, default=str)
        return (now or to_text(utcnow()), kind, message_id, sim, detail)

    @contextmanager
    def together(self, conn: Any) -> Iterator[None]:
        """The events recorded in the block (in this thread) written at its end, in order, in
        one statement on `conn`, as if each had been written where it was recorded: a
        confirmation and the report applied with it cost one. A block that raises still
        writes those recorded before (its caller may catch and commit), where it can."""
        if getattr(self._local, "held", None) is not None:   # inside another: that one writes
            yield
            return
        held: list[tuple[Any, ...]] = []
        self._local.held = held
        try:
            yield
        except BaseException:
            self._local.held = None
            with contextlib.suppress(Exception):   # a failed transaction: the error is its
                self._write(conn, held)
            raise
        self._local.held = None
        self._write(conn, held)

    def write_held(self, conn: Any) -> None:
        """Inside `together`: write the events held so far now, before one the caller writes
        itself (in a statement of its own, `INSERT_EVENT`), so that they keep their order."""
        held = getattr(self._local, "held", None)
        if held:
            self._write(conn, held)
            held.clear()

    @staticmethod
    def _write(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.execute(_INSERT + ", ".join([_ROW] * len(rows)),
                         [value for row in rows for value in row])

    def add(self, kind: str, *, message_id: int | None = None, sim: str | None = None,
            detail: Any = None, now: datetime | None = None) -> None:
        """Append to the audit log; `detail` may be text or JSON-able data."""
        with self.engine.tx() as conn:
            self.record(conn, kind, message_id, sim, detail, to_text(now) if now else None)

    def __call__(self, message_id: int | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Audit log entries, oldest first (of one message if given; the last `limit`)."""
        sql, params = "SELECT * FROM events", []
        if message_id is not None:
            sql += " WHERE message_id = ?"
            params.append(message_id)
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) AS recent"
            params.append(int(limit))
        sql += " ORDER BY id"
        return [dict(r) for r in self.engine.rows(sql, params)]


def event_detail(row: dict[str, Any]) -> Any:
    """The `detail` of an event row, decoded when it is JSON."""
    text = row.get("detail")
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
