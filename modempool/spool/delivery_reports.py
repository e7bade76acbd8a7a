"""Delivery reports: each stored, matched to the part it reports on, and applied.

A report is matched to its part by its modem's name, message reference and recipient, and by
the card it came back to (`report_match.py`: the card's part on any modem, written in the
report's window; never a part another card wrote). The message
becomes DELIVERED when every part is (parts of a resumed message come from several attempts),
FAILED ("not delivered") on a final failure. A report that matches no
sent part may settle an ambiguous message (`ambiguity.py`); one that matches nothing is kept
with no part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modempool.spool.ambiguity import settle_before, settle_by_report
from modempool.spool.audit import INSERT_EVENT, AuditLog
from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow
from modempool.spool.numbers import sender_number
from modempool.spool.report_match import match_sent_part
from modempool.spool.sims import Sims
from modempool.spool.verdicts import (PART_VERDICT, apply_report, message_after_report,
                                      part_verdict, report_event, report_key)


#: A message's state, read after a report's verdict.
_STATE = "SELECT state FROM messages WHERE id = ?"


@dataclass(frozen=True, slots=True)
class ReportMatch:
    """Where a stored delivery report went: its row, and the part/message it matched."""

    report_id: int
    part_id: int | None
    message_id: int | None
    message_state: str | None
    proven: bool = False   # it settled an ambiguous part: that SMS now counts as sent


def delivery_outcome(status: int) -> tuple[bool, bool]:
    """(delivered, final) for a TP-Status value (TS 23.040 9.2.3.15)."""
    if status < 0x20:
        return True, True       # short message transaction completed
    if status < 0x40:
        return False, False     # temporary error, the SC is still trying
    return False, True          # permanent error, or temporary error the SC gave up on


class DeliveryReports:
    """Delivery reports as they come back from the modems (`spool.delivery_reports`;
    `spool.store_delivery_report` is its `store`)."""

    def __init__(self, engine: Engine, audit: AuditLog, region: str,
                 sims: Sims | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.region = region
        self.sims = sims  # counts a part that a report proves was sent (`ambiguity`)

    def store(
        self,
        sim: str | None,
        message_reference: int,
        recipient: str | None,
        status: int,
        *,
        delivered: bool | None = None,
        final: bool | None = None,
        received_at: datetime | None = None,
        submitted_at: datetime | None = None,
        card: str | None = None,
    ) -> ReportMatch:
        """Store a status report and apply it to the part (`report_match.match_sent_part`:
        by this SIM's name or by `card`, message reference and recipient) and message it
        belongs to.

        A delivered report on every part makes the message DELIVERED; a final failure makes a
        SENT message FAILED ("not delivered"). A report that matches no sent part may settle
        an ambiguous message (`ambiguity.settle_by_report`; `submitted_at` is the report's
        service centre time stamp, else `received_at` stands for it). `card`: the first key of
        the card hold of the modem it was heard on (`report_cards.py`), None where it held
        none. Unmatched reports are kept with no part.
        """
        ok, done = delivery_outcome(status)
        delivered = ok if delivered is None else delivered
        final = done if final is None else final
        recipient_e164 = sender_number(recipient, self.region) if recipient else None
        now = to_text(received_at or utcnow())
        # On a server one pipeline: the lock and the match a round trip, the writes, their
        # reads and the COMMIT another (each statement a trip of its own made eight).
        with self.engine.one_trip() as conn:
            # Taken by the part's confirmation too: on PostgreSQL the two transactions could
            # otherwise miss each other (neither sees the other's uncommitted row), leaving the
            # report unmatched and the message 'sent' for ever. (A report without its SIM,
            # which the daemon never stores, matches a part of any SIM and takes turns with
            # none of their confirmations.)
            self.engine.lock_key(conn, report_key(sim, message_reference))
            network_time = submitted_at or received_at or utcnow()
            sent = match_sent_part(conn, sim=sim, card=card, message_reference=message_reference,
                                   recipient=recipient_e164, network_time=network_time)
            match: tuple[int, int] | None = None
            proven = False
            if sent is None:
                match = settle_by_report(
                    conn, self.audit, sim=sim, recipient=recipient_e164,
                    message_reference=message_reference, network_time=network_time, now=now,
                    count_sent=self.sims.add_sent if self.sims is not None else None, card=card)
                proven = match is not None
            else:
                match = (sent.part_id, sent.message_id)
                if sim is not None:   # a report some ambiguous part before it waited for
                    settle_before(conn, self.audit, sent.sim, sent.part_id, now,
                                  self.sims.add_sent if self.sims is not None else None)
            part_id, message_id = (match[0], match[1]) if match else (None, None)
            report = ("INSERT INTO delivery_reports (sim, card, message_reference, recipient, "
                      "status, delivered, final, received_at, part_id, message_id) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                      [sim, card, message_reference, recipient_e164 or recipient, status,
                       int(delivered), int(final), now, part_id, message_id])
            stored = settled = None
            state = None
            if part_id is not None and self.engine.writes_in_with:
                # The report, its part's verdict and the event in one statement; the message
                # after it next (it reads the part's verdict), then its state: their rows read
                # once the block is left, so they go in one round trip with the COMMIT.
                event = self.audit.row(*report_event(part_id=part_id, message_id=message_id,
                                                     sim=sim, status=status,
                                                     delivered=delivered), now)
                stored = conn.execute(
                    f"WITH verdict AS ({PART_VERDICT}), logged AS ({INSERT_EVENT} "
                    f"VALUES (?, ?, ?, ?, ?)) {report[0]}",
                    [part_verdict(delivered, final), status, now, part_id, *event,
                     *report[1]])
                message_after_report(conn, message_id, status=status, delivered=delivered,
                                     final=final, now=now)
                settled = conn.execute(_STATE, (message_id,))
            else:   # no part, or SQLite (which reads a statement's rows before its COMMIT)
                report_id = conn.execute(*report).fetchone()[0]
                if part_id is not None:
                    apply_report(conn, self.audit, part_id=part_id, message_id=message_id,
                                 sim=sim, status=status, delivered=delivered, final=final,
                                 now=now)
                    state = conn.execute(_STATE, (message_id,)).fetchone()[0]
        if stored is not None and settled is not None:
            report_id, state = stored.fetchone()[0], settled.fetchone()[0]
        return ReportMatch(report_id, part_id, message_id, state, proven)
