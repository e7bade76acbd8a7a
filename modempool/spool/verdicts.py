"""A delivery report's verdict, on its part and on its message.

A report makes its part delivered, undelivered (a final failure) or leaves it sent (the network
tries on); the message becomes DELIVERED once every part is, FAILED ("not delivered") on a final
failure. A report that came before its part's confirmation was recorded is found and applied as
the part is recorded (`early_report`, from `claims`); one that came after, as it is stored
(`inbound`); one that proves an ambiguous message went out, by `ambiguity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modempool.spool.ambiguity import CLOCK_SLACK
from modempool.spool.audit import AuditLog
from modempool.spool.engine import Engine


def deliver_if_complete(conn: Any, message_id: int, now: str) -> None:
    """SENT → DELIVERED when every part has a delivered report, whichever attempt sent it
    (a message resumed from part 2 has part 1 from its first attempt). A part written
    again keeps one row (`parts` is unique by message and seq), so its latest fate counts.
    Nothing is read back: in a pipeline (`engine.one_trip`) it goes with the COMMIT."""
    conn.execute(
        "UPDATE messages SET state = 'delivered', delivered_at = ?, updated_at = ? "
        "WHERE id = ? AND state = 'sent' AND NOT EXISTS ("
        "  SELECT 1 FROM parts WHERE parts.message_id = messages.id "
        "  AND parts.state != 'delivered') "
        "AND (SELECT count(*) FROM parts WHERE parts.message_id = messages.id) "
        "  = coalesce(parts_total, 1)",
        (now, now, message_id),
    )


#: `report_key` in SQL, of the SQL expressions {sim} and {reference} (text).
REPORT_KEY = "'report:' || coalesce({sim}, '') || ':' || {reference}"


def report_key(sim: str | None, message_reference: int) -> str:
    """The `engine.lock_key` that a report and its part's confirmation both hold while they
    look for each other: what a report is matched on that both know before they write, the
    SIM it came back to and the TP-MR (not the recipient, which a report may lack). Reports
    and confirmations of other SIMs never wait for each other."""
    return f"report:{sim or ''}:{message_reference}"


# A report stored before its part's +CMGS answer was recorded (the modem's +CDS handled
# first, the confirmation still on its way to the spool): it came back to the same SIM, for
# the same recipient and reference, with the network's time of delivery at most CLOCK_SLACK
# before the part was written (whole seconds, another clock; TP-MR repeats only after 256
# messages of the SIM). One statement: it runs for every part sent.
_REPORTS_BEFORE = ("JOIN delivery_reports r ON r.part_id IS NULL AND r.sim = parts.sim "
                   "AND r.message_reference = {reference} AND r.recipient = messages.to_number "
                   "AND {written_after} <= {slack}")
_EARLY_REPORT = (
    "SELECT r.id, parts.id, parts.sim, r.status, r.delivered, r.final "
    "FROM parts JOIN messages ON messages.id = parts.message_id " + _REPORTS_BEFORE +
    " WHERE parts.message_id = ? AND parts.seq = ? ORDER BY r.id LIMIT 1")


@dataclass(frozen=True, slots=True)
class EarlyReport:
    """A stored report that came before its part's confirmation (`early_report`)."""

    report_id: int
    part_id: int
    sim: str | None
    status: int
    delivered: bool
    final: bool


def early_report(conn: Any, engine: Engine, message_id: int, seq: int,
                 message_reference: int) -> EarlyReport | None:
    """The report stored before part `seq`'s confirmation with `message_reference` came (to
    be applied as it is recorded), if one did."""
    sql = _EARLY_REPORT.format(
        reference="?", slack="?",
        written_after=engine.seconds_between("parts.writing_at", "r.received_at"))
    row = conn.execute(sql, (message_reference, CLOCK_SLACK.total_seconds(), message_id,
                             seq)).fetchone()
    if row is None:
        return None
    report_id, part_id, sim, status, delivered, final = row
    return EarlyReport(report_id, part_id, sim, status, bool(delivered), bool(final))


def no_early_report(engine: Engine, reference: str = ":reference") -> str:
    """SQL true when no report came before the confirmation (TP-MR `:reference`) of the part
    that `parts` names in its statement, as `early_report` finds them (its parameters
    `:reference` and `:slack`): the common case recorded without asking first."""
    return ("NOT EXISTS (SELECT 1 FROM messages " + _REPORTS_BEFORE.format(
        reference=reference, slack=":slack",
        written_after=engine.seconds_between("parts.writing_at", "r.received_at"))
        + " WHERE messages.id = parts.message_id)")


def fail_if_undelivered(conn: Any, message_id: int, now: str) -> None:
    """SENT → FAILED when a part already has a final failure report (it came before the
    message was all sent)."""
    row = conn.execute("SELECT status FROM parts WHERE message_id = ? AND state = 'undelivered' "
                       "ORDER BY seq LIMIT 1", (message_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE messages SET state = 'failed', error = ?, updated_at = ? "
                     "WHERE id = ? AND state = 'sent'",
                     (f"not delivered (status 0x{int(row[0] or 0):02X})", now, message_id))


def part_verdict(delivered: bool, final: bool) -> str:
    """A part's state after its report: delivered, undelivered (a final failure), or still
    sent (the network tries on)."""
    return "delivered" if delivered else ("undelivered" if final else "sent")


#: A report's verdict written to its part (`part_verdict`, status, time, part id).
PART_VERDICT = "UPDATE parts SET state = ?, status = ?, status_at = ? WHERE id = ?"


def apply_report(conn: Any, audit: AuditLog, *, part_id: int, message_id: int, sim: str | None,
                 status: int, delivered: bool, final: bool, now: str) -> None:
    """A delivery report's verdict on its part, and on the message: DELIVERED once every part
    is, FAILED ("not delivered") on a final failure of a SENT message."""
    conn.execute(PART_VERDICT, (part_verdict(delivered, final), status, now, part_id))
    report_applied(conn, audit, part_id=part_id, message_id=message_id, sim=sim, status=status,
                   delivered=delivered, final=final, now=now)


def report_applied(conn: Any, audit: AuditLog, *, part_id: int, message_id: int,
                   sim: str | None, status: int, delivered: bool, final: bool, now: str,
                   settle_message: bool = True) -> None:
    """After a report's verdict was written to its part: the message settled by it, and the
    event. Without `settle_message` the message is left to the caller (a confirmation
    recorded in the same transaction, whose message is not SENT yet: `mark_last_part_sent`)."""
    if settle_message:
        message_after_report(conn, message_id, status=status, delivered=delivered, final=final,
                             now=now)
    audit.record(conn, *report_event(part_id=part_id, message_id=message_id, sim=sim,
                                     status=status, delivered=delivered), now)


def message_after_report(conn: Any, message_id: int, *, status: int, delivered: bool,
                         final: bool, now: str) -> None:
    """The message after a report's verdict was written to its part: DELIVERED once every
    part is, FAILED ("not delivered") on a final failure of a SENT message."""
    if delivered:
        deliver_if_complete(conn, message_id, now)
    elif final:
        conn.execute(
            "UPDATE messages SET state = 'failed', error = ?, updated_at = ? "
            "WHERE id = ? AND state = 'sent'",
            (f"not delivered (status 0x{status:02X})", now, message_id),
        )


def report_event(*, part_id: int, message_id: int, sim: str | None, status: int,
                 delivered: bool) -> tuple[Any, ...]:
    """The event of a report applied to its part: `audit.record`'s arguments after `conn`."""
    return ("delivery-report", message_id, sim,
            {"status": status, "delivered": delivered, "part_id": part_id})
