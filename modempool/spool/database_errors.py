"""What a database error says to a person, in one line (`database_error`).

A role that lacks a right the spool needs (PostgreSQL's insufficient_privilege, SQLSTATE 42501)
is a misconfiguration, not a bug: the engine raises `SpoolForbidden`, naming the role, the
object and the GRANT that is missing. A database that cannot answer now is `SpoolUnavailable`
(unavailable.py). Any other error of a driver becomes its own first line, without a password,
for the front ends that must not show a traceback (the CLI), so that none of them needs to know
psycopg.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from modempool.errors import PoolError, SpoolFailure
from modempool.masked import one_line
from modempool.spool.unavailable import driver_errors, unavailable

SEE = "(see docs/scale-out.md, 'Roles and rights')"
_DENIED = re.compile(r"permission denied for (\w+) (.+)$")


class StatementNotSent(Exception):
    """The driver refused to send a statement on a connection that is still there (psycopg's
    own checks, no SQLSTATE: more than 65,535 parameters): a bug of that statement, not the
    database away. Only its request fails; nothing waits for the server to come back."""


def not_sent(exc: BaseException, raw: Any) -> StatementNotSent | None:
    """psycopg's `exc` of a statement on the connection `raw` as a StatementNotSent when it is
    a client-side refusal (an OperationalError without SQLSTATE while the connection is still
    open and whole), else None (a connection lost: the database away)."""
    import psycopg

    if (isinstance(exc, psycopg.OperationalError) and not getattr(exc, "sqlstate", None)
            and not raw.closed and not raw.broken):
        return StatementNotSent(f"the database driver refused the statement: {one_line(exc)}")
    return None


class SpoolForbidden(SpoolFailure):
    """The spool's database refused this role a right the spool needs (see the module);
    `role`, `kind` (table, sequence, schema...) and `name` say which, `grant` what to run."""

    code = "spool_forbidden"

    def __init__(self, message: str, *, role: str, kind: str, name: str, grant: str) -> None:
        super().__init__(message)
        self.role, self.kind, self.name, self.grant = role, kind, name, grant


def forbidden(exc: Any, role: str, schema: str, sql: str | None = None) -> SpoolForbidden:
    """psycopg's InsufficientPrivilege `exc`, for `role` on the spool in `schema` (the
    statement `sql` where known: whether a table was to be read or written), as a
    SpoolForbidden naming the GRANT that is missing. Asks the database nothing: the
    transaction it came from is aborted."""
    primary = (getattr(getattr(exc, "diag", None), "message_primary", None)
               or one_line(exc))
    found = _DENIED.match(primary)
    kind, name = (found.group(1), found.group(2).strip('"')) if found else ("", "")
    if kind == "table":
        grant = (f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                 f"TO {role}")
        what = f"may not {_verb(sql)} table {name}"
    elif kind == "sequence":
        grant = f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
        what = f"may not take new ids from sequence {name}"
    elif kind == "schema":
        grant = (f"GRANT USAGE, CREATE ON SCHEMA {name} TO {role}, or start modempool once "
                 "as the schema's owner")
        what = f"may not use or create tables in schema {name}"
    else:
        grant = "run modempool once as the role that owns the spool's tables"
        what = f"may not do what the spool needs ({primary})"
    return SpoolForbidden(f"the role '{role}' {what}: {grant} {SEE}", role=role, kind=kind,
                          name=name, grant=grant)


def _verb(sql: str | None) -> str:
    """What a statement does to a table: read (a plain SELECT), write, or use (unknown)."""
    if sql is None:
        return "use"
    words = sql.lstrip().split(None, 1)
    first = words[0].upper() if words else ""
    if first in ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE") or re.search(
            r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", sql, re.IGNORECASE):
        return "write"
    if first == "WITH" and _WRITES_IN_WITH.search(sql):   # a data-modifying CTE
        return "write"
    return "read" if first in ("SELECT", "WITH", "VALUES") else "use"


_WRITES_IN_WITH = re.compile(r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\S+\s+SET|MERGE\s+INTO)\b",
                             re.IGNORECASE)


def database_error(exc: BaseException) -> PoolError | None:
    """`exc` as a library error with one line to show, if it is a database error (of the
    library or of a driver); None for anything else."""
    if isinstance(exc, PoolError):
        return exc
    if not isinstance(exc, driver_errors()):
        return None
    found = unavailable(exc)
    if found is not None:
        return found
    if isinstance(exc, sqlite3.Error):   # a closed connection's ProgrammingError is a bug
        return PoolError(f"the spool database: {exc}") if isinstance(
            exc, sqlite3.DatabaseError) else None
    return PoolError(f"the spool database refused: {one_line(exc)}")
