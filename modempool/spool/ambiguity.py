"""Ambiguous messages settled by the network's evidence: a delivery report nobody expected.

A message is ambiguous when its PDU may have left without the modem's answer (a crash or a hung
modem between the write and ``+CMGS``): its part has no message reference, so its delivery
report matches nothing. Such a report still names the SIM it came back to and the recipient,
and carries the time the service centre took the message (SCTS). A SIM's writes are read in
the order it made them, every attempt of a part included (`write_history.py`: a resent part
keeps the write it overwrote; the order is not the wall clock's). When exactly one ambiguous
part of that SIM and recipient was written shortly before that time (an overwritten write of
unknown outcome to that recipient then counts as one too: the report may be its), and (where
the SIM's previous write is known) its reference is the one the modem would have used next
(TS 23.040 9.2.3.6: the MS increments TP-MR for each SUBMIT), and no later write of that SIM
may have taken that reference instead (the SIM's next write, if any, has a known reference that
is not the report's: a part whose PDU never left leaves its reference to the next one written),
the report proves that part went out. The part becomes sent with the report's reference, the
message sent (then delivered by the report itself) once all its parts are out, and the evidence
goes to the message's events. Anything less certain stays ambiguous: so does a message after a
part refused by a definite error (its unknown reference may have been taken), though a refusal
before the prompt took none. All SQL of this rule is here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from modempool.spool.audit import AuditLog
from modempool.spool.model import from_text, to_text
from modempool.spool.write_history import WRITE_ORDER

#: How long after the write the service centre's stamp may come (a slow network, a modem that
#: hung after sending), and how far before it (host and service centre clocks differ a little;
#: the stamp has whole seconds).
WINDOW_AFTER = timedelta(seconds=120)
CLOCK_SLACK = timedelta(seconds=10)

#: The writes of a SIM to a recipient in a window whose report may be the one that came: its
#: ambiguous parts (part id, message, written at, place), and the writes of a part that a new
#: attempt overwrote while their outcome was unknown (part id NULL: a report proves nothing
#: more about them, but may be theirs).
_CANDIDATES = (
    f"SELECT parts.id, parts.message_id, parts.writing_at, {WRITE_ORDER} AS place FROM parts "
    "JOIN messages ON messages.id = parts.message_id "
    "WHERE parts.sim = ? AND parts.state = 'ambiguous' AND messages.state = 'ambiguous' "
    "AND messages.to_number = ? AND parts.writing_at >= ? AND parts.writing_at <= ? "
    "UNION ALL SELECT NULL, earlier.message_id, earlier.writing_at, earlier.id "
    "FROM earlier_writes AS earlier JOIN messages ON messages.id = earlier.message_id "
    "WHERE earlier.sim = ? AND earlier.state IN ('ambiguous', 'writing') "
    "AND messages.to_number = ? AND earlier.writing_at >= ? AND earlier.writing_at <= ? "
    "ORDER BY place")
#: A SIM's writes, in the order it made them: each part's latest (`parts`) and those a new
#: attempt overwrote (`earlier_writes`), by their place (`write_history.py`).
_WRITES_ON_SIM = (
    f"SELECT {WRITE_ORDER} AS place, message_reference FROM parts WHERE sim = ? "
    "UNION ALL SELECT id, message_reference FROM earlier_writes WHERE sim = ?")
_PREVIOUS_ON_SIM = (f"SELECT message_reference FROM ({_WRITES_ON_SIM}) AS writes "
                    "WHERE place < ? ORDER BY place DESC LIMIT 1")
_NEXT_ON_SIM = (f"SELECT message_reference FROM ({_WRITES_ON_SIM}) AS writes "
                "WHERE place > ? ORDER BY place LIMIT 1")
_SETTLE_PART = (
    "UPDATE parts SET state = 'sent', message_reference = ?, sent_at = writing_at "
    "WHERE id = ? AND state = 'ambiguous'")
_SETTLE_MESSAGE = (
    "UPDATE messages SET state = 'sent', sent_at = ?, error = NULL, updated_at = ? "
    "WHERE id = ? AND state = 'ambiguous' AND (SELECT count(*) FROM parts "
    "  WHERE parts.message_id = messages.id AND parts.state IN ('sent', 'delivered', "
    "  'undelivered')) = coalesce(parts_total, 1)")


_WRITTEN = (
    "SELECT parts.sim, parts.writing_at, messages.to_number FROM parts "
    "JOIN messages ON messages.id = parts.message_id "
    "WHERE parts.message_id = ? AND parts.state = 'ambiguous' ORDER BY parts.seq DESC LIMIT 1")
_UNMATCHED_REPORTS = (
    "SELECT id, message_reference, status, delivered, final, received_at FROM delivery_reports "
    "WHERE part_id IS NULL AND sim = ? AND recipient = ? AND received_at >= ? "
    "AND received_at <= ? ORDER BY id")
_EARLIER_AMBIGUOUS = (
    "SELECT DISTINCT parts.message_id FROM parts "
    "JOIN messages ON messages.id = parts.message_id "
    "WHERE parts.sim = ? AND parts.state = 'ambiguous' AND messages.state = 'ambiguous' "
    f"AND {WRITE_ORDER} < ? AND parts.writing_at >= ? ORDER BY parts.message_id")
_LINK_REPORT = "UPDATE delivery_reports SET part_id = ?, message_id = ? WHERE id = ?"


def _expected_reference(conn: Any, sim: str, place: int) -> int | None:
    """The TP-MR the modem would have given the write at `place`: one more than the SIM's
    previous write's, when that one is known."""
    row = conn.execute(_PREVIOUS_ON_SIM, (sim, sim, place)).fetchone()
    if row is None or row[0] is None:
        return None
    return (int(row[0]) + 1) % 256


def _taken_by_next(conn: Any, sim: str, place: int, message_reference: int) -> bool:
    """Whether the SIM's next write (after the one at `place`) may be the one that got
    `message_reference`: its own reference is unknown (in flight, ambiguous, failed, or an
    attempt a later one overwrote) or is that one. Had the write at `place` never left, the
    modem gave its reference to that one."""
    row = conn.execute(_NEXT_ON_SIM, (sim, sim, place)).fetchone()
    return row is not None and (row[0] is None or int(row[0]) == message_reference)


def settle_by_report(conn: Any, audit: AuditLog, *, sim: str | None, recipient: str | None,
                     message_reference: int, network_time: datetime, now: str,
                     count_sent: Callable[[Any, str, int, datetime], None] | None = None,
                     ) -> tuple[int, int] | None:
    """The (part id, message id) an unmatched report proves was sent, settled in `conn`'s
    transaction; None when the evidence is not conclusive. `count_sent(conn, sim, n, when)`
    counts the proven part against the SIM's day and month, as a confirmed send is."""
    if sim is None or not recipient:
        return None
    window = (sim, recipient, to_text(network_time - WINDOW_AFTER),
              to_text(network_time + CLOCK_SLACK))
    candidates = conn.execute(_CANDIDATES, window + window).fetchall()
    if not candidates:
        return None
    expected = {row[3]: _expected_reference(conn, sim, row[3]) for row in candidates}
    if len(candidates) > 1:  # several in the window: only the reference can tell them apart
        candidates = [row for row in candidates if expected[row[3]] == message_reference]
    if len(candidates) != 1 or candidates[0][0] is None:
        return None  # not told apart, or perhaps the report of an attempt resent since
    part_id, message_id, written_at, place = candidates[0]
    if expected[place] not in (None, message_reference):
        return None  # the modem would have numbered it otherwise: another message's report
    if _taken_by_next(conn, sim, place, message_reference):
        return None  # perhaps the report of a later part, should this one never have left
    if conn.execute(_SETTLE_PART, (message_reference, part_id)).rowcount == 1 and count_sent:
        count_sent(conn, sim, 1, from_text(written_at))
    settled = conn.execute(_SETTLE_MESSAGE, (written_at, now, message_id)).rowcount == 1
    audit.record(conn, "ambiguity-resolved" if settled else "ambiguity-evidence", message_id,
                 sim, {"evidence": "delivery report", "sim": sim, "recipient": recipient,
                       "message_reference": message_reference,
                       "expected_reference": expected[place],
                       "network_time": to_text(network_time), "written_at": written_at,
                       "part_id": part_id}, now)
    return part_id, message_id


def settle_by_stored_reports(conn: Any, audit: AuditLog, message_id: int, now: str,
                             count_sent: Callable[[Any, str, int, datetime], None] | None = None,
                             ) -> bool:
    """A message just found ambiguous whose report came first (the modem's ``+CMGS`` answer
    was lost but its ``+CDS`` was not; or a killed daemon stored the report before recovery
    ran): the unmatched reports already stored may settle it, by the same rule. True when it
    was settled; a report that proves another ambiguous message settles that one."""
    from modempool.spool.verdicts import apply_report

    row = conn.execute(_WRITTEN, (message_id,)).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return False
    sim, written_at, to = row[0], row[1], row[2]
    written = from_text(written_at)
    assert written is not None
    reports = conn.execute(_UNMATCHED_REPORTS, (
        sim, to, to_text(written - CLOCK_SLACK), to_text(written + WINDOW_AFTER))).fetchall()
    for report_id, reference, status, delivered, final, received_at in reports:
        found = settle_by_report(conn, audit, sim=sim, recipient=to,
                                 message_reference=reference, network_time=from_text(received_at),
                                 now=now, count_sent=count_sent)
        if found is None:
            continue
        conn.execute(_LINK_REPORT, (found[0], found[1], report_id))
        apply_report(conn, audit, part_id=found[0], message_id=found[1], sim=sim, status=status,
                     delivered=bool(delivered), final=bool(final), now=now)
        if found[1] == message_id:
            return True
    return False


def settle_before(conn: Any, audit: AuditLog, sim: str | None, part_id: int, now: str,
                  count_sent: Callable[[Any, str, int, datetime], None] | None = None) -> None:
    """Part `part_id` of `sim` just got its report, so its reference is known: the ambiguous
    parts written shortly before it whose stored report waited for that (`_taken_by_next`)
    may be settled now, by the same rule."""
    if sim is None:
        return
    row = conn.execute(f"SELECT writing_at, {WRITE_ORDER} FROM parts WHERE id = ?",
                       (part_id,)).fetchone()
    if row is None or row[0] is None:
        return
    written = from_text(row[0])
    assert written is not None
    for (message_id,) in conn.execute(_EARLIER_AMBIGUOUS, (
            sim, row[1], to_text(written - WINDOW_AFTER))).fetchall():
        settle_by_stored_reports(conn, audit, message_id, now, count_sent)
