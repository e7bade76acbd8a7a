"""A psycopg connection as the spool's rules use it, and a PostgreSQL URL named for people.

The rules' SQL is written once with `?` / `:name` parameters (SQLite's style): `PgConn` turns
them into psycopg's, reads rows by column name, and turns what is no bug (a NUL in text, a
right the role lacks, a statement the driver would not send) into the library's errors.
`describe` (postgres_url.py) names a URL without its password, for messages and logs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from modempool.errors import InvalidText
from modempool.spool.database_errors import forbidden, not_sent
from modempool.spool.engine import SpoolUnreachable, row_class
from modempool.spool.postgres_url import describe, hosts_of

_NAMED = re.compile(r"(?<!:):([A-Za-z_]\w*)")


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`?` and `:name` parameters (the rules' style, SQLite's) as psycopg's `%s`/`%(name)s`."""
    sql = sql.replace("%", "%%")
    sql = _NAMED.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


def named_rows(cursor: Any) -> Any:
    """psycopg's row factory, called for every statement: its rows as `Row`s (readable by
    column name). The names are read from the result, not from `cursor.description`, which
    makes a `Column` object per column each time (a tenth of a daemon's Python time at
    64 SMS a second, measured with py-spy)."""
    result = cursor.pgresult
    if result is None or not result.nfields:
        return tuple
    return _row_class_of(tuple(result.fname(i) for i in range(result.nfields)))


@lru_cache(maxsize=256)
def _row_class_of(names: tuple[bytes, ...]) -> type:
    return row_class(tuple(name.decode() for name in names))   # our column names are ASCII


class PgConn:
    """A connection as the rules use it: `execute`/`executemany` with their parameter style."""

    def __init__(self, raw: Any, schema: str = "public") -> None:
        self.raw = raw
        self.schema = schema   # the spool's, for a missing GRANT's message
        self.pipeline: Any = None   # psycopg's Pipeline in `one_trip`: answers come when asked for
        self._piped: list[tuple[Any, str]] = []   # its statements so far, with their SQL

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
                prepare: bool | None = None) -> Any:
        """`sql` with `params`; `prepare`: True prepares it on this connection at once
        (psycopg's default: after its fifth run here), so a plan it keeps is made once."""
        try:
            cursor = (self.raw.execute(translate(sql), params, prepare=prepare) if params
                      else self.raw.execute(sql, prepare=prepare))
        except Exception as exc:
            self._refuse(exc, sql)
            raise
        if self.pipeline is None:
            return cursor
        self._piped.append((cursor, sql))
        return PipedCursor(cursor, self.pipeline)

    def failed_statement(self) -> str:
        """In a pipeline that failed, the SQL of the statement the server refused: the first
        one sent with no answer (psycopg gives those before it theirs, not its own); '' if
        none is known."""
        return next((sql for cursor, sql in self._piped if cursor.pgresult is None), "")

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(translate(sql), rows)
        except Exception as exc:
            self._refuse(exc, sql)
            raise
        return cursor

    def refused(self, exc: Exception, sql: str = "") -> None:
        """`exc`, raised by a statement (sent in a pipeline: read back later), as `execute`
        raises it."""
        self._refuse(exc, sql)

    def _refuse(self, exc: Exception, sql: str) -> None:
        """A library error for what is no bug: a NUL in text, a right the role lacks; and a
        statement the driver would not send (a bug) told from the database away."""
        _refuse_nul(exc)
        import psycopg

        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            raise forbidden(exc, self.raw.info.user, self.schema, sql) from None
        refused = not_sent(exc, self.raw)
        if refused is not None:   # no cause kept: the server watch would read it as gone
            raise refused from None


class PipedCursor:
    """A statement's cursor in a pipeline: psycopg reads its rows when they are asked for
    (sending what came before), but leaves its row count at -1 until then; here the count
    is asked for too."""

    __slots__ = ("_cursor", "_pipeline")

    def __init__(self, cursor: Any, pipeline: Any) -> None:
        self._cursor = cursor
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        if self._cursor.pgresult is None:
            self._pipeline.sync()
        return self._cursor.rowcount

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Any:
        return iter(self._cursor)


def _refuse_nul(exc: Exception) -> None:
    """A U+0000 that no check of the library caught (`plain_text.refuse_nul` names the field)
    is still an InvalidText, not psycopg's DataError (a 500 for the API)."""
    import psycopg

    if isinstance(exc, psycopg.errors.UntranslatableCharacter) or (
            isinstance(exc, psycopg.DataError) and "NUL" in str(exc)):
        raise InvalidText("the text contains the NUL character (U+0000), which cannot be "
                          "stored; remove it", code="text_nul", params={"field": "text"}) from None


def refuse_standby(raw: Any, url: str) -> None:
    """SpoolUnreachable when the server `raw` reached is a standby (in recovery: it takes no
    write, and every command would fail with "try again" that no wait mends). At open only: a
    node that turns read-only later (a failover under a running daemon) is waited out as an
    outage (`unavailable`)."""
    if not raw.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        return
    node = hosts_of({"host": raw.info.host, "port": str(raw.info.port)})
    raise SpoolUnreachable(
        f"cannot use the spool at {describe(url)}: the server at {node} is a standby "
        "(read-only, in recovery); point the spool's URL at the primary, or name every node "
        "with ?target_session_attrs=read-write")
