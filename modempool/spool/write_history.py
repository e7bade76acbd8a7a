"""Every write of a part kept, in the order it was made: the ambiguity rule's evidence.

The ambiguity rule (`ambiguity.py`) reads a SIM's writes in the order the modem took them: the
write before an ambiguous part tells the TP-MR the modem would have given it, the write after
it whether that part may have taken the reference instead. Two things would falsify that
sequence, and this module (schema step 18) removes both:

- A part's row in `parts` is its latest attempt: a new attempt (a retry after a temporary
  error, an operator's or the API's retry of an ambiguous message, `resend_ambiguous`)
  overwrites it. The write it replaces, which may have used a TP-MR, goes to `earlier_writes`,
  by a trigger that fires only then (a part's first write is a plain insert: nothing more per
  message on the common path). Without it, a report of that earlier write could settle
  another ambiguous message that never went out (audit20 H1).
- The order of writes is the parts id sequence, never the wall clock (a clock set back across
  a restart put the next part before the ambiguous one, audit20 M2). A part's first write is
  ordered by its row's id, taken by the marker's insert. A new attempt takes a new place at
  the end: on PostgreSQL `rewritten`, drawn from the same identity sequence (the row keeps its
  id: a new one would have PostgreSQL look up `delivery_reports.part_id` for it, a scan of
  that table); SQLite, which does not check that key, moves the row to the next id (one past
  the largest, which its next insert then passes). A SIM's writes are made one at a time (its
  next marker comes after the previous commit), so their places rise in the order of writing.

`WRITE_ORDER` is a part row's place; an `earlier_writes` row keeps the place it had.
"""

from __future__ import annotations

from typing import Any

#: A `parts` row's place in the order of writes (see the module's docstring).
WRITE_ORDER = "coalesce(parts.rewritten, parts.id)"

#: Schema step 18, both engines: the table of earlier writes, by SIM and place. Each engine's
#: own step adds `parts.rewritten` (a new attempt's place on PostgreSQL; NULL: its id) and the
#: trigger; every statement of the step may run again (a test that sets a spool's version back).
EARLIER_WRITES = """
CREATE TABLE IF NOT EXISTS earlier_writes (
    id                BIGINT PRIMARY KEY,   -- the write's place in the order of writes
    message_id        INTEGER NOT NULL,
    seq               INTEGER NOT NULL,
    attempt           INTEGER NOT NULL,
    sim               TEXT,
    state             TEXT NOT NULL,        -- what that attempt had become: failed, ambiguous, writing
    writing_at        TEXT NOT NULL,
    message_reference INTEGER               -- TP-MR, where +CMGS gave one
);
CREATE INDEX IF NOT EXISTS earlier_writes_by_sim ON earlier_writes (sim, id);
"""


def _keep(old: str) -> str:
    """The statement that keeps the write of the row `old` (the trigger's name for it)."""
    return ("INSERT INTO earlier_writes (id, message_id, seq, attempt, sim, state, writing_at, "
            f"message_reference) VALUES (coalesce({old}.rewritten, {old}.id), {old}.message_id, "
            f"{old}.seq, {old}.attempt, {old}.sim, {old}.state, {old}.writing_at, "
            f"{old}.message_reference)")


def _sqlite_column(conn: Any) -> None:
    """`parts.rewritten` on SQLite, unless there (SQLite's ADD COLUMN has no IF NOT EXISTS)."""
    if "rewritten" not in [row[1] for row in conn.execute("PRAGMA table_info(parts)")]:
        conn.execute("ALTER TABLE parts ADD COLUMN rewritten INTEGER")


#: SQLite's step 18: the earlier write kept, the row moved to the next id.
SQLITE_STEP: tuple[Any, ...] = (
    _sqlite_column,
    "CREATE TRIGGER IF NOT EXISTS parts_rewritten AFTER UPDATE OF writing_at ON parts "
    f"WHEN old.writing_at IS NOT NULL BEGIN {_keep('old')}; "
    "UPDATE parts SET id = (SELECT max(id) FROM parts) + 1 WHERE id = new.id; END",
)

#: PostgreSQL's step 18: the earlier write kept, the new one's place drawn after it.
POSTGRES_STEP = (
    "ALTER TABLE parts ADD COLUMN IF NOT EXISTS rewritten BIGINT",
    "CREATE OR REPLACE FUNCTION parts_rewritten() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN {_keep('OLD')}; "
    "NEW.rewritten := nextval(pg_get_serial_sequence('parts', 'id')); RETURN NEW; END $$",
    "DROP TRIGGER IF EXISTS parts_rewritten ON parts",
    "CREATE TRIGGER parts_rewritten BEFORE UPDATE OF writing_at ON parts FOR EACH ROW "
    "WHEN (OLD.writing_at IS NOT NULL) EXECUTE FUNCTION parts_rewritten()",
)
