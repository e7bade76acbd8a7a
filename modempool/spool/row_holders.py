"""Who holds a row another transaction has locked (PostgreSQL): the session a recovery that
skipped the row names when it has been held for minutes, so an operator can end it (a client
gone while idle in its transaction holds its locks until the server notices)."""

from __future__ import annotations

from typing import Any

from modempool.spool.unavailable import unavailable

#: The sessions whose transaction is the row's locker: its `xmax` is the locker's transaction
#: id, or a MultiXact whose members are the lockers (several sessions, or a lock and a key
#: share). Read only when the line is due, never on the path of a send.
_HOLDERS = """
SELECT pid, state, xact_start, application_name, client_addr
FROM pg_stat_activity
WHERE backend_xid IN ({lockers}) AND pid <> pg_backend_pid()
ORDER BY xact_start
"""


def row_holders(conn: Any, table: str, row_id: int) -> str:
    """In `conn`'s transaction: the sessions holding row `row_id` of `table`, in one line
    ("pid 123 (idle in transaction, its transaction open since ..., application ..., client
    ...)"), or why none was named (the lock let go meanwhile, a holder inside a savepoint, or
    another role's session, whose details this role may not read)."""
    xmax = f"(SELECT xmax FROM {table} WHERE id = ?)"
    conn.execute("SAVEPOINT row_holders")
    try:
        found = conn.execute(_HOLDERS.format(lockers=xmax), (row_id,)).fetchall()
        if not found:   # not one locker's id: the members of the row's MultiXact
            found = conn.execute(_HOLDERS.format(
                lockers=f"SELECT (pg_get_multixact_members({xmax}::text::xid)).xid"),
                (row_id,)).fetchall()
    except Exception as exc:
        if unavailable(exc) is not None:   # the database away: the recovery's failure
            raise
        found = []   # not a MultiXact, or no right to read it: none named
        conn.execute("ROLLBACK TO row_holders")
    conn.execute("RELEASE row_holders")
    if not found:
        return ("a session not named (its lock let go since, taken in a savepoint, or another "
                "role's)")
    return ", ".join(_shown(*row) for row in found)


def _shown(pid: int, state: str | None, since: Any, application: str | None,
           client: Any) -> str:
    """One holding session, as `row_holders` names it."""
    said = [state or "state unknown"]
    if since is not None:
        said.append(f"its transaction open since {since:%Y-%m-%d %H:%M:%S %z}")
    if application:
        said.append(f"application {application!r}")
    if client is not None:
        said.append(f"client {client}")
    return f"pid {pid} ({', '.join(said)})"
