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
POSTGRES_REPORT_CARD_LOCKS = ("LOCK TABLE parts IN SHARE MODE",
                              "LOCK TABLE delivery_reports IN ACCESS EXCLUSIVE MODE")

#: PostgreSQL's step 22.
POSTGRES_REPORT_CARD_STEP = (
    "ALTER TABLE delivery_reports ADD COLUMN IF NOT EXISTS card TEXT", *REPORT_CARD_INDEXES)
