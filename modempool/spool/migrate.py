"""Copy an SQLite spool into PostgreSQL (`modempool spool migrate --to postgresql://...`).

Every row of every table is copied by its key, so a second run copies nothing and a run
stopped midway is finished by the next: the spool's own tables, and those of the modules that
keep theirs in the spool (accounts and keys, webhooks and their outbox, Kannel dlr-urls, console
passwords and sessions, contacts, campaigns, opt-outs, auto-replies, recurring jobs,
forwarding), which are made on the target first. The copy is one transaction on the target,
tables after the ones they refer to; the webhook triggers write no event for the copied rows
(their events, delivered or not, are in the copied outbox). Each source row is then looked for
in the target by its primary key and compared column by column (as the target's types read
them): a row the target holds with other content, or could not take (its key or another
unique value taken by a different row), is a conflict, reported by table and key, never
skipped in silence. The target's id sequences are moved past the copied ids so that new rows
do not collide with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modempool.errors import PoolError
from modempool.masked import masked
from modempool.spool.file_lock import SpoolFileLock
from modempool.spool.store import Spool

#: Copied first, in this order (parts refer to messages, reports to parts).
SPOOL_TABLES = ("messages", "parts", "inbound", "inbound_hooks", "inbound_parts",
                "delivery_reports", "sims", "events", "daemons")
#: Not copied: each engine keeps its own (SQLite's full-text index and kept counts included:
#: the target's triggers count the copied messages; `_reached_before` adds what they miss).
ENGINE_TABLES = frozenset({"modempool_schema", "sqlite_sequence", "sqlite_stat1",
                           "message_state_counts", "sim_outcome_counts", "send_latency",
                           "message_counts", "send_latency_counts", "message_count_totals",
                           "send_latency_totals", "sim_outcome_totals",
                           "sim_outcome_changes", "account_state_counts",
                           "campaign_state_counts", "account_state_changes",
                           "account_state_totals", "campaign_state_changes",
                           "campaign_state_totals"})
ENGINE_PREFIXES = ("messages_fts", "inbound_fts")
#: The table names copied: they are written into the statements, so a source file's other
#: table names (quoted, with spaces or quotes) are reported as skipped, never run. Columns of
#: any name are copied, quoted (`_columns`).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Parameters in one statement (PostgreSQL takes at most 65,535).
MAX_PARAMETERS = 60_000


#: Keys of conflicting rows named per table (all are counted).
KEYS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    source: int     # rows in the SQLite spool
    copied: int     # rows this run added to the target
    target: int     # rows in the target afterwards
    conflicts: int = 0   # source rows the target holds otherwise (or could not take)
    keys: tuple[str, ...] = ()   # the first KEYS_SHOWN of them, as `id=13`

    @property
    def agrees(self) -> bool:
        """Every row of the source is in the target as it is in the source."""
        return self.conflicts == 0


@dataclass(frozen=True, slots=True)
class Migration:
    source: str
    target: str
    tables: tuple[TableCopy, ...] = field(default_factory=tuple)
    skipped: tuple[str, ...] = ()   # source tables the target has no place for

    @property
    def agrees(self) -> bool:
        return all(t.agrees for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "agrees": self.agrees,
                "skipped": list(self.skipped),
                "tables": [{"table": t.table, "source": t.source, "copied": t.copied,
                            "target": t.target, "conflicts": t.conflicts,
                            "conflicting_keys": list(t.keys)} for t in self.tables]}


def migrate(source: str | Path, target: str, *, batch: int = 5000) -> Migration:
    """Copy the SQLite spool `source` into the PostgreSQL spool at `target` (created or upgraded
    as needed) and verify that every source row is in the target as it is in the source.
    Raises PoolError for a source that is not an SQLite spool file, one a daemon is running
    on (it holds the spool's lock, which the copy holds meanwhile), or a target that is not
    PostgreSQL."""
    if not str(target).startswith(("postgresql://", "postgres://")):
        raise PoolError(f"--to must be a postgresql:// URL, not {masked(str(target))!r}")
    if not Path(source).is_file():
        raise PoolError(f"no spool file at {source}")
    lock = SpoolFileLock(source)   # the daemon's: none may start, or be running, meanwhile
    lock.take(f"a modempool daemon is running on {source}: stop it first (what it sends "
              "meanwhile would not be in the copy, and would be sent again from it); "
              "nothing was copied")
    try:
        return _migrate(source, target, batch)
    finally:
        lock.release(remove=True)


def _migrate(source: str | Path, target: str, batch: int) -> Migration:
    with Spool(source) as old, Spool(target) as new:
        make_module_tables(new)
        _make_other_tables(old, new)
        source_tables = _copied(old.table_names())
        target_tables = _copied(new.table_names())
        copies = []
        with new.engine.tx() as conn:
            ordered = _referred_first(conn, [t for t in SPOOL_TABLES if t in source_tables] + sorted(
                source_tables & target_tables - set(SPOOL_TABLES)))
            columns = _columns(old, conn, ordered)   # PoolError: a column with no place
            conn.execute("SET LOCAL modempool.copying = 'on'")   # the webhook triggers keep quiet
            for table in ordered:
                copies.append(_copy_table(old, conn, table, columns[table], batch))
                if table == "messages" and copies[-1].copied == copies[-1].source > 0:
                    new.engine.counts.add_reached(conn, _reached_before(old))
            for table in ordered:
                _advance_sequence(new, conn, table)
        odd = {t for t in old.table_names() if not NAME.fullmatch(t)}
        return Migration(old.where, new.where, tuple(copies),
                         tuple(sorted(source_tables - target_tables | odd)))


def _reached_before(old: Spool) -> dict[tuple[str, str], int]:
    """The outcomes each SIM reached in the source that its messages' states do not show now
    (sent, then delivered: counted as both). The target's triggers count the copied messages
    as they are; these make its counters (`modempool_sim_messages_total`) the source's. Added
    by the run that copies the source's messages (all of them), so a rerun adds nothing."""
    now = old.engine.sim_outcomes()
    return {key: n - now.get(key, 0) for key, n in old.engine.sim_outcomes_reached().items()
            if n > now.get(key, 0)}


def make_module_tables(spool: Spool) -> None:
    """The tables of every module that keeps its own in the spool (and the webhook triggers)."""
    from modempool.operator import (autoreply, campaigns, contacts, forwarding, optout, recurring,
                                    templates)
    from modempool.sessions import SCHEMA as SESSIONS
    from modempool.webhooks.store import install

    install(spool)   # accounts, message owners, opt-outs, webhooks, outbox, Kannel dlr-urls
    for schema in (SESSIONS, contacts.SCHEMA, campaigns.SCHEMA, templates.SCHEMA, optout.SCHEMA,
                   autoreply.SCHEMA, recurring.SCHEMA, forwarding.SCHEMA,
                   forwarding.TARGETS_SCHEMA):
        spool.engine.ensure_schema(schema)


def _make_other_tables(old: Spool, new: Spool) -> None:
    """Any other table of the source (a module newer than this list) made on the target from
    its SQLite definition, as the modules' own schemas are; one the target refuses is left out
    (and reported as not copied)."""
    missing = sorted(_copied(old.table_names()) - set(new.table_names()))
    while missing:
        refused = []
        for table in missing:
            script = ";\n".join(r[0] for r in old.rows(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('table', 'index') "
                "AND sql IS NOT NULL ORDER BY type = 'index'", (table,)))
            try:
                new.engine.ensure_schema(script)
            except Exception:   # psycopg's error: a definition PostgreSQL does not take
                refused.append(table)
        if len(refused) == len(missing):   # no progress (a table made later may be referred to)
            return
        missing = refused


def _copied(tables: list[str]) -> set[str]:
    return {t for t in tables if t not in ENGINE_TABLES and not t.startswith(ENGINE_PREFIXES)
            and NAME.fullmatch(t)}


def _referred_first(conn: Any, tables: list[str]) -> list[str]:
    """`tables` in their order, except that a table comes after those its foreign keys refer
    to (group members after groups and contacts)."""
    refers: dict[str, set[str]] = {t: set() for t in tables}
    for table, referred in conn.execute(
            "SELECT CAST(conrelid AS regclass)::text, CAST(confrelid AS regclass)::text "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND connamespace = CAST(current_schema() AS regnamespace)").fetchall():
        if table in refers and referred in refers and referred != table:
            refers[table].add(referred)
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = next(t for t in tables if t not in ordered and refers[t] <= set(ordered))
        ordered.append(ready)
    return ordered


def _columns(old: Spool, conn: Any, tables: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each table's columns as (source name, target name), any name (they are quoted): the
    target's own spelling where PostgreSQL folded an unquoted name to lower case. A source
    column the target table lacks would be lost: a PoolError names every such column, before
    anything is copied."""
    found: dict[str, list[tuple[str, str]]] = {}
    lost: list[str] = []
    for table in tables:
        target = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?", (table,)).fetchall()]
        folded = {name.casefold(): name for name in target}
        found[table] = []
        for column in (r["name"] for r in old.rows(f"PRAGMA table_info({table})")):
            name = column if column in target else folded.get(column.casefold())
            if name is None:
                lost.append(f"{table}.{column}")
            else:
                found[table].append((column, name))
    if lost:
        raise PoolError(f"the target has no column for {', '.join(lost)} (nothing was copied): "
                        "add the column to the target's table, or drop it from the source")
    return found


def _quoted(name: str) -> str:
    """A name as an SQL identifier both engines read as written (a source file's own names
    go into the statements)."""
    return '"' + name.replace('"', '""') + '"'


def _copy_table(old: Spool, conn: Any, table: str, columns: list[tuple[str, str]],
                batch: int) -> TableCopy:
    """Each page of the source's rows goes into a scratch table of the target's column types,
    from there into the table (rows whose key or unique value is taken are left), and is then
    compared with what the table holds under the same primary key."""
    reads = ", ".join(_quoted(source) for source, _ in columns)
    targets = [_quoted(target) for _, target in columns]
    names = ", ".join(targets)
    key = _primary_key(conn, table)   # none: the whole row is its key
    conn.execute(f"CREATE TEMPORARY TABLE modempool_copy ON COMMIT DROP AS "
                 f"SELECT {names} FROM {table} WITH NO DATA")
    row_marks = f"({', '.join('?' for _ in columns)})"
    per_statement = max(1, MAX_PARAMETERS // max(len(columns), 1))
    copied, total, offset, conflicts, keys = 0, 0, 0, 0, []
    while True:  # by rowid pages: a large spool never sits in memory whole
        rows = old.rows(f"SELECT rowid AS _rowid, {reads} FROM {table} WHERE rowid > ? "
                        f"ORDER BY rowid LIMIT ?", (offset, batch))
        if not rows:
            break
        offset = rows[-1][0]
        total += len(rows)
        # one statement for many rows: one round trip, and the kept counts' statement
        # trigger fires once for them (not once a row)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            conn.execute(f"INSERT INTO modempool_copy ({names}) VALUES "
                         f"{', '.join([row_marks] * len(chunk))}",
                         [value for row in chunk for value in row[1:]])
        copied += conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM "
                               "modempool_copy ON CONFLICT DO NOTHING").rowcount
        found = _conflicts(conn, table, targets, key)
        conflicts += len(found)
        keys.extend(found[:KEYS_SHOWN - len(keys)])
        conn.execute("TRUNCATE modempool_copy")
    conn.execute("DROP TABLE modempool_copy")
    target = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return TableCopy(table, total, max(copied, 0), target, conflicts, tuple(keys))


def _conflicts(conn: Any, table: str, columns: list[str], key: list[str]) -> list[str]:
    """The keys (`id=13`) of the scratch rows that the table does not hold as they are: no
    row under their key, or one whose content differs (compared as text: every type has one,
    and json has no equality). A table without a primary key: rows not found whole."""
    ours = "ROW(" + ", ".join(f"CAST(s.{c} AS text)" for c in columns) + ")"
    theirs = "ROW(" + ", ".join(f"CAST(t.{c} AS text)" for c in columns) + ")"
    joined = (" AND ".join(f"t.{k} = s.{k}" for k in key) if key
              else f"{theirs} IS NOT DISTINCT FROM {ours}")
    named = key or columns[:1]
    shown = " || ', ' || ".join(f"'{k.strip(chr(34))}=' || coalesce(CAST(s.{k} AS text), 'NULL')"
                                for k in named)
    return [row[0] for row in conn.execute(
        f"SELECT {shown} FROM modempool_copy AS s LEFT JOIN {table} AS t ON {joined} "
        f"WHERE t.ctid IS NULL OR {theirs} IS DISTINCT FROM {ours} "
        f"ORDER BY {', '.join(f's.{k}' for k in named)}").fetchall()]


def _primary_key(conn: Any, table: str) -> list[str]:
    """The target table's primary key columns, quoted, in order; [] when it has none."""
    return [_quoted(row[0]) for row in conn.execute(
        "SELECT a.attname FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary "
        "ORDER BY array_position(CAST(i.indkey AS int2[]), a.attnum)", (table,)).fetchall()]


def _advance_sequence(new: Spool, conn: Any, table: str) -> None:
    has_id = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? AND column_name = 'id'", (table,)).fetchone()
    if has_id is None:
        return
    sequence = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()[0]
    if sequence is None:
        return
    conn.execute(f"SELECT setval(?, greatest((SELECT coalesce(max(id), 0) FROM {table}), 1), "
                 f"(SELECT count(*) > 0 FROM {table}))", (sequence,))
