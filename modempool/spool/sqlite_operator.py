"""The operator modules (contacts, campaigns, opt-outs, auto-replies, recurring jobs...) on an
SQLite spool.

`spool.db` shares the spool's one connection, which several threads use at once (the HTTP
server's group-commit writer, the console's requests, the webhook worker, the daemon). SQLite
keeps one transaction per connection, not per thread: a statement run without the engine's
lock would land inside another thread's open transaction, be committed or rolled back with
it, or read what it has not committed yet. So each `execute` holds the lock for the statement
and its rows, and `transaction` is the engine's own (the lock held until the commit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from modempool.spool.engine import Result

# The failed-auth throttle's (auth_throttle.py) writes: an address already there adds its
# failures' time to the later of its time and now. One statement per address: in-process
# statements, no round trips to save.
_AUTH_FAILED = (
    "INSERT INTO auth_failures (client, clear_at) VALUES (:client, :now + :add) "
    "ON CONFLICT (client) DO UPDATE SET clear_at = :add + CASE "
    "WHEN auth_failures.clear_at > :now THEN auth_failures.clear_at ELSE :now END "
    "RETURNING clear_at")


class SqliteOperatorDb:
    """`spool.db` on SQLite (see the module's docstring): the same calls as PostgreSQL's
    `OperatorDb`, so the operator modules are written once."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def transaction(self) -> AbstractContextManager[Any]:
        """One atomic write (joins this thread's open one): what `operator.db.transaction` uses."""
        return self.engine.tx()

    def locked(self, key: str) -> AbstractContextManager[Any]:
        """A transaction holding `key`'s lock: the file's write lock already excludes every
        other writer, in this process and in others."""
        return self.engine.tx()

    def ensure_schema(self, schema: str) -> None:
        """Create missing tables and indexes; reads only where they all exist."""
        self.engine.ensure_schema(schema)

    def table_names(self) -> list[str]:
        return self.engine.table_names()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        with self.engine.lock:
            cur = self.engine.conn.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            return Result(rows, cur.rowcount, cur.lastrowid, cur.description)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Result:
        with self.engine.lock:
            return Result([], self.engine.conn.executemany(sql, rows).rowcount)

    # -- the failed-auth throttle's statements (auth_throttle.py), in its transaction --------

    def clock(self) -> float:
        """Now on the spool's shared clock: this host's (an SQLite file has one host)."""
        return time.time()

    def auth_failures_drained(self, now: float) -> None:
        """Delete the addresses whose failures have drained by `now`."""
        self.execute("DELETE FROM auth_failures WHERE clear_at <= ?", (now,))

    def auth_failures_added(self, now: float, added: dict[str, float]) -> dict[str, float]:
        """Add `added` seconds to each address's time (from `now` if it had drained), in
        the order given; each address's new time."""
        return {client: float(self.execute(_AUTH_FAILED, {
            "client": client, "now": now, "add": add}).fetchone()[0])
            for client, add in added.items()}
