"""The operator modules (contacts, campaigns, opt-outs, auto-replies, recurring jobs...) on a
PostgreSQL spool.

Those modules write plain SQL in SQLite's dialect against `spool.db`. On PostgreSQL `spool.db`
is an `OperatorDb`: the same `execute(sql, params)`, with the few SQLite-only forms they use
turned into PostgreSQL's here (one place), and their transactions and schema going through the
spool's engine, so that an opt-out and the message it stops share the database and its commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from modempool.spool.engine import Result


_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\s", re.I)
_OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)
_JSON_EACH = re.compile(r"json_each\(([^()]*)\)", re.I)
_JSON_GROUP_ARRAY = re.compile(r"json_group_array\(([^()]*)\)", re.I)
_INSERT_TABLE = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", re.I)

# The failed-auth throttle's (auth_throttle.py) writes: every address of a flush in one
# statement (one round trip, not one per address), in key order; an address already there
# adds its failures' time (the row's new clear_at less now) to the later of its time and now.
_AUTH_FAILED = (
    "INSERT INTO auth_failures (client, clear_at) "
    "SELECT client, :now + added FROM unnest(CAST(:clients AS text[]), "
    "CAST(:added AS double precision[])) AS failed (client, added) ORDER BY client "
    "ON CONFLICT (client) DO UPDATE SET clear_at = (EXCLUDED.clear_at - :now) + CASE "
    "WHEN auth_failures.clear_at > :now THEN auth_failures.clear_at ELSE :now END "
    "RETURNING client, clear_at")
# rows another server's flush holds are left for the next one, never waited for
_AUTH_DRAINED = ("DELETE FROM auth_failures WHERE ctid IN (SELECT ctid FROM auth_failures "
                 "WHERE clear_at <= ? FOR UPDATE SKIP LOCKED)")


class OperatorDb:
    """`spool.db` on PostgreSQL (see the module's docstring)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._keys: dict[str, tuple[str, ...]] = {}
        self._has_id: dict[str, bool] = {}

    @contextmanager
    def transaction(self) -> Iterator[OperatorDb]:
        """One atomic write (joins an open one): what `operator.db.transaction` uses."""
        with self.engine.tx():
            yield self

    @contextmanager
    def locked(self, key: str) -> Iterator[OperatorDb]:
        """A transaction holding `key`'s lock, which every daemon on the database respects."""
        with self.engine.tx() as conn:
            self.engine.lock_key(conn, key)
            yield self

    def ensure_schema(self, schema: str) -> None:
        """Create missing tables and indexes (SQLite DDL, integer keys as identity columns),
        once per engine and schema text, serialised with other daemons doing the same."""
        self.engine.ensure_schema(schema)

    def table_names(self) -> list[str]:
        return self.engine.table_names()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Result:
        sql = self._dialect(sql)
        table = _INSERT_TABLE.match(sql)
        wants_id = (table is not None and "RETURNING" not in sql.upper()
                    and self._table_has_id(table.group(1)))
        if wants_id:
            sql += " RETURNING id"
        with self.engine.tx() as conn:
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            lastrowid = rows[0][0] if wants_id and rows else None
            description = None if wants_id or cur.description is None else [
                (column.name, None, None, None, None, None, None) for column in cur.description]
            return Result([] if wants_id else rows, cur.rowcount, lastrowid, description)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Result:
        with self.engine.tx() as conn:
            return Result([], conn.executemany(self._dialect(sql), rows).rowcount)

    # -- the failed-auth throttle's statements (auth_throttle.py), in its transaction --------

    def clock(self) -> float:
        """Now on the spool's shared clock: the database's (several hosts share it)."""
        return float(self.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])

    def auth_failures_drained(self, now: float) -> None:
        """Delete the addresses whose failures have drained by `now`."""
        self.execute(_AUTH_DRAINED, (now,))

    def auth_failures_added(self, now: float, added: dict[str, float]) -> dict[str, float]:
        """Add `added` seconds to each address's time (from `now` if it had drained); each
        address's new time."""
        written = self.execute(_AUTH_FAILED, {"now": now, "clients": list(added),
                                              "added": list(added.values())}).fetchall()
        return {client: float(clear_at) for client, clear_at in written}

    def _dialect(self, sql: str) -> str:
        replace = _OR_REPLACE.match(sql)
        if replace:
            table, columns = replace.group(1), [c.strip() for c in replace.group(2).split(",")]
            return _upsert(sql, table, tuple(columns), self._primary_key(table))
        return _rewrite(sql)

    def _primary_key(self, table: str) -> tuple[str, ...]:
        if table not in self._keys:
            rows = self.engine.rows(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(? AS regclass) "
                "AND i.indisprimary", (table,))
            self._keys[table] = tuple(r[0] for r in rows)
        return self._keys[table]

    def _table_has_id(self, table: str) -> bool:
        if table not in self._has_id:
            self._has_id[table] = bool(self.engine.rows(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = ? AND column_name = 'id'", (table,)))
        return self._has_id[table]


@lru_cache(maxsize=512)
def _rewrite(sql: str) -> str:
    """INSERT OR IGNORE, json_each(...), json_group_array(...) in PostgreSQL's words."""
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("INSERT INTO ", sql) + " ON CONFLICT DO NOTHING"
    sql = _JSON_GROUP_ARRAY.sub(r"coalesce(CAST(json_agg(\1) AS text), '[]')", sql)
    return _JSON_EACH.sub(r"json_array_elements_text(CAST(\1 AS json))", sql)


@lru_cache(maxsize=128)
def _upsert(sql: str, table: str, columns: tuple[str, ...],
            key: tuple[str, ...]) -> str:
    """INSERT OR REPLACE as INSERT ... ON CONFLICT (key) DO UPDATE (the row is replaced)."""
    body = _OR_REPLACE.sub(lambda m: f"INSERT INTO {m.group(1)} ({m.group(2)})", sql)
    others = [c for c in columns if c not in key]
    if not key:
        return body
    action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in others)
              if others else "DO NOTHING")
    return _rewrite(body) + f" ON CONFLICT ({', '.join(key)}) {action}"
