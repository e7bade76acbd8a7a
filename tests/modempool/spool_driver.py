"""A test driver for the spool: lease the next message one SIM may carry, as a dispatcher round
would for that SIM alone. The product's dispatcher (modempool/dispatch/dispatcher.py) does this
with every SIM at once, choosing among them and applying the send-time rules (opt-outs,
blacklist); the spool tests only need "the next one for m1"."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def claim_next(spool: Any, sim: str, lease_owner: str, lease_seconds: float = 300.0,
               now: datetime | None = None) -> Any:
    """Lease the best due message `sim` may carry (its `sims` allow it; it did not ask to avoid
    `sim`), expired ones expired first; None when there is none."""
    spool.expire_due(now)
    with spool.transaction():   # rows another daemon's round holds are skipped (PostgreSQL)
        for message in spool.dispatchable(now, limit=10_000, lock=True):
            if (message.sims and sim not in message.sims) or message.avoid_sim == sim:
                continue
            claimed = spool.claim(message.id, sim, lease_owner, lease_seconds, now=now)
            if claimed is not None:
                return claimed
    return None


def act_as_a_daemon(target: Any, sim: str, rounds: int, errors: list[BaseException], *,
                    enqueue: Any = None) -> None:
    """One writer with its own connection, as a daemon and the API together: each round
    enqueues one message (`enqueue(spool, i, to)`, or a plain enqueue), claims the next for
    `sim`, and fails every third or sends it. What it raises goes into `errors`."""
    from modempool.spool import Spool
    from modempool.spool.records import SentPart

    owner = f"host:{sim}/{sim}"
    try:
        with Spool(target) as spool:
            for i in range(rounds):
                to = f"+861380013{i:04d}"
                if enqueue is None:
                    spool.enqueue(to, f"{sim} {i}")
                else:
                    enqueue(spool, i, to)
                message = claim_next(spool, sim, owner)
                if message is None:
                    continue
                if i % 3 == 0:
                    spool.mark_failed(message.id, "+CMS ERROR: 500", lease_owner=owner)
                    continue
                spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
                spool.mark_many_sent([SentPart(message.id, 1, None, i % 256, lease_owner=owner)])
    except BaseException as exc:   # the test fails on it
        errors.append(exc)


def statements_of(spool: Any, read: Any) -> list[str]:
    """The SQL statements `read()` sends to the spool's database (SQLite: its trace callback;
    PostgreSQL: the engine's reads, wrapped for the time of the call)."""
    statements: list[str] = []
    engine = spool.engine
    if engine.name == "sqlite":
        engine.conn.set_trace_callback(statements.append)
    else:
        rows = engine.rows

        def traced(sql: str, params: Any = ()) -> Any:
            statements.append(sql)
            return rows(sql, params)

        engine.rows = traced
    try:
        read()
    finally:
        if engine.name == "sqlite":
            engine.conn.set_trace_callback(None)
        else:
            del engine.rows
    return statements


def refused_and_left(target: Any, version: int, gone: str,
                     kept: str = "SELECT text FROM messages") -> list[tuple[Any, ...]]:
    """Open `target`, whose upgrade is to fail midway: it is refused, its schema version is
    still `version` and `gone` (what a step made before the failure) does not exist. Returns
    the rows of `kept`, read afterwards (what must be as it was)."""
    import sqlite3

    import pytest

    from modempool.spool import Spool
    from modempool.spool.engine import SpoolUnreachable

    postgresql = str(target).startswith("postgresql://")
    with pytest.raises(SpoolUnreachable,
                       match="cannot prepare" if postgresql else "cannot use the spool"):
        Spool(target)
    if postgresql:
        import psycopg

        with psycopg.connect(str(target)) as conn:
            assert conn.execute("SELECT version FROM modempool_schema").fetchone()[0] == version
            assert conn.execute("SELECT to_regclass(%s)", (gone,)).fetchone()[0] is None
            return [tuple(row) for row in conn.execute(kept).fetchall()]
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?",
                            (gone,)).fetchone()[0] == 0
        return conn.execute(kept).fetchall()
    finally:
        conn.close()


#: Schema step 17 undone (when each daemon's process started), for a spool put back into a shape
#: of version 16 or older: the undos of earlier steps below begin with it.
UNDO_PROCESS_START = ("ALTER TABLE daemons DROP COLUMN process_start",)

#: Schema steps 17, 15 and 14 undone (the inbound hooks' marks, in their table since 15), for a
#: spool put back into a shape of version 13 or older.
UNDO_INBOUND_HOOKS = (*UNDO_PROCESS_START, "DROP TABLE inbound_hooks")

#: Schema steps 17 and 15 undone: the marks back in `inbound`'s columns, as version 14 kept them.
AS_VERSION_14 = (
    *UNDO_PROCESS_START,
    "ALTER TABLE inbound ADD COLUMN hooks_next INTEGER",
    "ALTER TABLE inbound ADD COLUMN hooks_owner TEXT",
    "CREATE INDEX inbound_hooks_pending ON inbound (hooks_owner, sender, id) "
    "WHERE hooks_next IS NOT NULL",
    "UPDATE inbound SET hooks_next = (SELECT next_hook FROM inbound_hooks h "
    "WHERE h.inbound_id = inbound.id), hooks_owner = (SELECT owner FROM inbound_hooks h "
    "WHERE h.inbound_id = inbound.id)",
    "DROP TABLE inbound_hooks",
)


def before_process_start(conn) -> None:
    """Undo schema step 17 (the version is set by the caller)."""
    for statement in UNDO_PROCESS_START:
        conn.execute(statement)


def without_inbound_hooks(conn) -> None:
    """Undo schema steps 17, 15 and 14 (the version is set by the caller)."""
    for statement in UNDO_INBOUND_HOOKS:
        conn.execute(statement)


def as_version_14(conn) -> None:
    """Undo schema steps 17 and 15, pending marks kept (the version is set by the caller)."""
    for statement in AS_VERSION_14:
        conn.execute(statement)


def as_version_22(conn: Any) -> None:
    """Undo schema step 23 (the sent parts by card and TP-MR: step 20's index by card back;
    every IMSI read beside an ICCID); the version is set by the caller."""
    conn.execute("DROP TABLE card_imsis")
    conn.execute("DROP INDEX parts_by_card_reference")
    conn.execute("CREATE INDEX parts_by_card ON parts (card) WHERE card IS NOT NULL")


def as_version_21(conn: Any) -> None:
    """Undo schema steps 23 and 22 (each report's card: the column and the two indexes by
    card); the version is set by the caller."""
    as_version_22(conn)
    conn.execute("DROP INDEX parts_ambiguous_by_card")
    conn.execute("DROP INDEX delivery_reports_unmatched_by_card")
    conn.execute("ALTER TABLE delivery_reports DROP COLUMN card")


def as_version_19(conn: Any, sqlite: bool) -> None:
    """Undo schema steps 23, 22 and 20 (each write's card: the columns, their indexes, and the
    trigger back to step 18's, which names no card); the version is set by the caller."""
    from modempool.spool.write_history import POSTGRES_STEP, SQLITE_STEP

    as_version_21(conn)
    for index in ("parts_by_card", "earlier_writes_by_card"):
        conn.execute(f"DROP INDEX {index}")
    if sqlite:
        conn.execute("DROP TRIGGER parts_rewritten")
    conn.execute("ALTER TABLE parts DROP COLUMN card")
    conn.execute("ALTER TABLE earlier_writes DROP COLUMN card")
    conn.execute(SQLITE_STEP[1] if sqlite else POSTGRES_STEP[1])


def set_schema_version(spool: Any, conn: Any, version: int) -> None:
    """Record `version` as the spool's schema version, in `conn`'s transaction (after the
    caller undid the later steps)."""
    if spool.engine.name == "sqlite":
        conn.execute(f"PRAGMA user_version = {int(version)}")
    else:
        conn.execute("UPDATE modempool_schema SET version = ?", (version,))


def schema_version(spool: Any) -> int:
    """The spool's schema version, as it recorded it."""
    return spool.rows("PRAGMA user_version" if spool.engine.name == "sqlite"
                      else "SELECT version FROM modempool_schema")[0][0]
