"""Schema step 22: each delivery report keeps the SIM card it came back to.

A report comes back to the SIM card (the subscription), wherever the card sits now, not to
the modem that wrote the SMS. Until version 22 a report named only the modem it was heard on,
so the ambiguity rule (`ambiguity.py`) looked for its candidates among that modem name's
ambiguous parts: a part whose card moved to another modem (or box) before its report came
stayed ambiguous for good, and a card swapped between two modems could have its report read
against the other card's part on the same name (audit22 F4). Now the daemon stores, with the
report, the first key of the receiving modem's card hold (`delivery_reports.card`: the ICCID,
or `imsi:<IMSI>` where the modem reads no ICCID; the same key the part markers write into
`parts.card`), and the rule reads the candidates of that card, on any modem, with those of the
receiving modem that were written with no card. A report stored with no card (an older
daemon's, one heard while the modem held no card yet, or a modem serving unchecked) is read by
the modem's name as before.

The step only adds (a column, two partial indexes): a daemon of version 21 still running after
the upgrade stores its reports with no card, and they are read by name, as it reads them.
Every statement may run again (a test that sets a spool's version back).
"""

from __future__ import annotations

from typing import Any

#: The indexes of step 22: the ambiguous parts by card and time of writing (a report's
#: candidates), and the reports that matched no part by card and time (those a part found
#: ambiguous reads). Partial: each holds only the few rows the rule reads.
REPORT_CARD_INDEXES = (
    "CREATE INDEX IF NOT EXISTS parts_ambiguous_by_card ON parts (card, writing_at) "
    "WHERE state = 'ambiguous'",
    "CREATE INDEX IF NOT EXISTS delivery_reports_unmatched_by_card ON delivery_reports "
    "(card, received_at) WHERE part_id IS NULL",
)


def _sqlite_column(conn: Any) -> None:
    """`delivery_reports.card` on SQLite, unless there (its ADD COLUMN has no IF NOT EXISTS)."""
    if "card" not in [row[1] for row in conn.execute("PRAGMA table_info(delivery_reports)")]:
        conn.execute("ALTER TABLE delivery_reports ADD COLUMN card TEXT")


#: SQLite's step 22.
SQLITE_REPORT_CARD_STEP: tuple[Any, ...] = (_sqlite_column, *REPORT_CARD_INDEXES)

#: PostgreSQL's step 22 takes its tables' locks first (`postgres_schema.LOCKS_FIRST`), in the
#: order writers take them (a confirmation, a report, a recovery write the part, then the
#: report): a daemon still running that wrote a part and is about to write a report then
#: finishes before the step begins. Taken in the step's order instead (the column's lock on
#: `delivery_reports`, then the index's on `parts`), the two would wait for each other.
#: `parts` is taken in the mode step 23 needs (`SENT_BY_CARD_LOCKS`), not the index's SHARE:
#: a lock made stronger later in the upgrade would wait for a reader of `parts` that waits for
#: the lock on `delivery_reports` (a report's store), and the two would wait for each other.
POSTGRES_REPORT_CARD_LOCKS = ("LOCK TABLE parts IN ACCESS EXCLUSIVE MODE",
                              "LOCK TABLE delivery_reports IN ACCESS EXCLUSIVE MODE")

#: PostgreSQL's step 22.
POSTGRES_REPORT_CARD_STEP = (
    "ALTER TABLE delivery_reports ADD COLUMN IF NOT EXISTS card TEXT", *REPORT_CARD_INDEXES)

#: Schema step 23, both engines: the sent parts by card, TP-MR and time of writing, for a
#: report's match by the card it came back to, on any modem (`report_match.py`: the card's
#: parts with the report's TP-MR written in its window). It replaces step 20's index by card
#: alone (`write_history.CARD_INDEXES`), which is its first column: what read that one reads
#: this one, and each write of a part keeps as many index entries as before (a marker, its
#: record). Only adds and drops an index: an older daemon still running reads and writes as
#: before (its reports' match by name only). On PostgreSQL the step locks only `parts`, as
#: writers take it first, in the mode the index's drop needs (`SENT_BY_CARD_LOCKS`: taken
#: as SHARE for the new index first, the drop's stronger lock would wait for a reader of
#: `parts` that waits, behind that SHARE, to write it). A version-22 spool is upgraded in place,
#: in the upgrade's transaction.
SENT_BY_CARD_STEP = (
    "CREATE INDEX IF NOT EXISTS parts_by_card_reference ON parts "
    "(card, message_reference, writing_at) WHERE card IS NOT NULL",
    "DROP INDEX IF EXISTS parts_by_card",
)

#: PostgreSQL's locks of step 23, taken before it (`postgres_schema.LOCKS_FIRST`).
SENT_BY_CARD_LOCKS = ("LOCK TABLE parts IN ACCESS EXCLUSIVE MODE",)
