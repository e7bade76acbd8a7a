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


def _keep(old: str, card: bool = True) -> str:
    """The statement that keeps the write of the row `old` (the trigger's name for it); with
    `card`, the card that made it (step 20's column: step 18's own trigger has none)."""
    return ("INSERT INTO earlier_writes (id, message_id, seq, attempt, sim, state, writing_at, "
            f"message_reference{', card' if card else ''}) VALUES (coalesce({old}.rewritten, "
            f"{old}.id), {old}.message_id, {old}.seq, {old}.attempt, {old}.sim, {old}.state, "
            f"{old}.writing_at, {old}.message_reference{f', {old}.card' if card else ''})")


def _sqlite_column(conn: Any) -> None:
    """`parts.rewritten` on SQLite, unless there (SQLite's ADD COLUMN has no IF NOT EXISTS)."""
    if "rewritten" not in [row[1] for row in conn.execute("PRAGMA table_info(parts)")]:
        conn.execute("ALTER TABLE parts ADD COLUMN rewritten INTEGER")


def _sqlite_trigger(card: bool) -> str:
    """SQLite's trigger: the earlier write kept, the row moved to the next id."""
    return ("CREATE TRIGGER IF NOT EXISTS parts_rewritten AFTER UPDATE OF writing_at ON parts "
            f"WHEN old.writing_at IS NOT NULL BEGIN {_keep('old', card)}; "
            "UPDATE parts SET id = (SELECT max(id) FROM parts) + 1 WHERE id = new.id; END")


def _postgres_function(card: bool) -> str:
    """PostgreSQL's trigger function: the earlier write kept, the new one's place drawn after
    it."""
    return ("CREATE OR REPLACE FUNCTION parts_rewritten() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN {_keep('OLD', card)}; "
            "NEW.rewritten := nextval(pg_get_serial_sequence('parts', 'id')); RETURN NEW; END $$")


#: SQLite's step 18.
SQLITE_STEP: tuple[Any, ...] = (_sqlite_column, _sqlite_trigger(card=False))

#: PostgreSQL's step 18.
POSTGRES_STEP = (
    "ALTER TABLE parts ADD COLUMN IF NOT EXISTS rewritten BIGINT",
    _postgres_function(card=False),
    "DROP TRIGGER IF EXISTS parts_rewritten ON parts",
    "CREATE TRIGGER parts_rewritten BEFORE UPDATE OF writing_at ON parts FOR EACH ROW "
    "WHEN (OLD.writing_at IS NOT NULL) EXECUTE FUNCTION parts_rewritten()",
)

#: Step 20, both engines: the card each write was made by (`parts.card`, written by the marker
#: from the modem's card hold; `earlier_writes.card`, kept by the trigger), so that the rule
#: reads a card's writes, wherever it sat (a card moves between modems: its TP-MR and its
#: reports follow it, not the modem's name). NULL: a write of a modem that held no card. The
#: indexes hold only writes with a card.
CARD_INDEXES = (
    "CREATE INDEX IF NOT EXISTS parts_by_card ON parts (card) WHERE card IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS earlier_writes_by_card ON earlier_writes (card, id) "
    "WHERE card IS NOT NULL",
)


def _sqlite_card_columns(conn: Any) -> None:
    """Step 20's columns on SQLite, unless there."""
    for table in ("parts", "earlier_writes"):
        if "card" not in [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN card TEXT")


#: SQLite's step 20.
SQLITE_CARD_STEP: tuple[Any, ...] = (
    _sqlite_card_columns, "DROP TRIGGER IF EXISTS parts_rewritten", _sqlite_trigger(card=True),
    *CARD_INDEXES)

#: PostgreSQL's step 20.
POSTGRES_CARD_STEP = (
    "ALTER TABLE parts ADD COLUMN IF NOT EXISTS card TEXT",
    "ALTER TABLE earlier_writes ADD COLUMN IF NOT EXISTS card TEXT",
    _postgres_function(card=True), *CARD_INDEXES)
