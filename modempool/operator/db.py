"""Small helpers shared by the operator modules (contacts, campaigns, opt-outs...): time and transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any


def now_iso(now: datetime | None = None) -> str:
    """A time as fixed-width ISO-8601 UTC text (`2026-11-25T16:25:19.123Z`), the spool's format,
    so that text comparison in SQL orders times correctly."""
    moment = now or datetime.now(timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime | None:
    """ISO-8601 text (naive = local time) to an aware datetime."""
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()


def contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its `%`, `_` and `\\` taken literally (use
    with `LIKE ? ESCAPE '\\'`): searching for "%" finds a percent sign, not everything."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: The ESCAPE clause that goes with `contains`.
LIKE_ESCAPE = "ESCAPE '\\'"


def connection(db: Any) -> sqlite3.Connection:
    """The sqlite3 connection behind `db` (or `db` itself, a connection)."""
    return getattr(db, "conn", db)


@contextmanager
def transaction(db: Any) -> Iterator[Any]:
    """One atomic write, whatever the connection's isolation level; nests inside an open one.
    On `spool.db` (either engine) the engine's transaction, under its lock."""
    own = getattr(db, "transaction", None)
    if own is not None:
        with own() as joined:
            yield joined
        return
    conn = connection(db)
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def locked(db: Any, key: str) -> AbstractContextManager[Any]:
    """One atomic write that holds `key`'s lock (a sender, say) until its commit: a decision
    read and recorded inside it is made once, by one daemon at a time, on either engine
    (PostgreSQL: an advisory lock; SQLite: the file's write lock)."""
    own = getattr(db, "locked", None)
    return own(key) if own is not None else transaction(db)


def ensure_schema(db: Any, schema: str) -> None:
    """Create missing tables and indexes (statements `CREATE ... IF NOT EXISTS`, no `;` inside).
    `spool.db` asks its engine (PostgreSQL writes them in its own dialect; neither takes the
    write lock where they all exist)."""
    own = getattr(db, "ensure_schema", None)
    if own is not None:
        own(schema)
        return
    statements = [s.strip() for s in "\n".join(
        line.split("--", 1)[0] for line in schema.splitlines()).split(";") if s.strip()]
    with transaction(db) as conn:
        for statement in statements:
            conn.execute(statement)
