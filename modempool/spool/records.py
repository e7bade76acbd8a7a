"""What the spool writes when a modem answers a send: the record of a part it accepted.

The modem's `+CMGS` of a part is recorded with its message reference (`mark_part_sent`); the
last part's record also ends the attempt (SENT, or the verdict of a delivery report that came
first), for many modems' confirmations in one commit (`mark_many_sent`), or with the marker of
the SIM's next part (`mark_sent_then_writing`: the SIM's next PDU waits for that commit). Each
record first takes the report locks of its parts, so that a report handled meanwhile sees it
(`verdicts.py`). A record that comes after a recovery called its message ambiguous (its
owner judged dead while it lived) makes the message SENT once every part is out
(`_sent_after_recovery`). What a dispatcher does with a record the database refuses is its own
(`dispatch/sending.py`); the lease, the marker and the other transitions are `claims.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.ambiguity import CLOCK_SLACK, settle_before
from modempool.spool.audit import INSERT_EVENT, AuditLog
from modempool.spool.claims import FINISH, Claims, finish
from modempool.spool.engine import Engine
from modempool.spool.model import LeaseLost, MessageState, to_text, utcnow
from modempool.spool.part_markers import marker_ctes
from modempool.spool.record_batches import NOT_AT_ONCE, Marking, Written, write_in_one_trip
from modempool.spool.sims import Sims
from modempool.spool.verdicts import (REPORT_KEY, deliver_if_complete, early_report,
                                      fail_if_undelivered, no_early_report, part_verdict,
                                      report_applied)


@dataclass(frozen=True, slots=True)
class SentPart:
    """The modem's confirmation (``+CMGS``) of the last part of a message, to be recorded."""

    message_id: int
    seq: int
    reference: int | None          # the concatenation reference of the part (None: single)
    message_reference: int | None  # TP-MR the modem answered
    lease_owner: str | None = None
    now: datetime | None = None
    #: the claim's attempt (`Message.attempts`): a record of an older attempt writes no part
    #: of a newer one (rev23 M2). None: any attempt (tools, tests).
    attempt: int | None = None
    #: the SIM (modem name) that sent it: a record of an older attempt is counted on it, not
    #: on the SIM of the attempt that took the part over. None: tools, tests (not counted).
    sim: str | None = None


class Records:
    """The records of the parts modems accepted (`spool.records`); each names the lease owner
    it expects, so that a lease recovered meanwhile is never written to. The marker that may
    go with a record is `claims`' (`mark_part_writing`)."""

    def __init__(self, engine: Engine, sims: Sims, audit: AuditLog, claims: Claims) -> None:
        self.engine = engine
        self.sims = sims
        self.audit = audit
        self.claims = claims

    def mark_part_sent(
        self,
        message_id: int,
        seq: int,
        reference: int | None,
        message_reference: int | None,
        now: datetime | None = None,
        *,
        attempt: int | None = None,
        sim: str | None = None,
    ) -> None:
        """Record that part `seq` was accepted (+CMGS gave `message_reference`) in `attempt`
        (None: whichever) by `sim`; counts it for the SIM's per-minute/day/month limits."""
        with self.engine.tx() as conn:
            self._lock_reports(conn, [(message_id, seq, message_reference)])
            self._record_part(conn, message_id, seq, reference, message_reference,
                              now or utcnow(), settle_message=True, attempt=attempt, sim=sim)

    def _lock_reports(self, conn: Any, parts: Sequence[tuple[int, int, int | None]]) -> None:
        """Before anything is recorded, the report locks (`report_key`: SIM and TP-MR) of
        `parts` (message, seq, TP-MR) about to be, all at once and in one order: a report
        handled meanwhile waits for the records (or they for it) and then sees them, and two
        transactions recording overlapping parts never wait for each other in a cycle."""
        if not self.engine.locks_keys:
            return
        wanted = {f"{message_id}:{seq}": reference for message_id, seq, reference in parts
                  if reference is not None}
        if not wanted:
            return
        among, values = self.engine.among("message_id", sorted({message_id for message_id, _, _
                                                                 in parts}))
        reference = self.engine.json_text_at(
            "?", "CAST(message_id AS text) || ':' || CAST(seq AS text)")
        self.engine.lock_keys_of(
            conn, f"SELECT {REPORT_KEY.format(sim='sim', reference=reference)} FROM parts "
                  f"WHERE {among} AND {reference} IS NOT NULL",
            [json.dumps(wanted), *values, json.dumps(wanted)])

    def _record_part(self, conn: Any, message_id: int, seq: int, reference: int | None,
                     message_reference: int | None, moment: datetime, *,
                     settle_message: bool, attempt: int | None = None,
                     sim: str | None = None) -> str | None:
        """`mark_part_sent` in `conn`'s transaction, its report lock held (`_lock_reports`);
        the part's state now ('sent', or the verdict of a report that came before), None if
        it had been recorded already or is another attempt's now (`_older_attempt`). Without
        `settle_message` a report applied here leaves the message to the caller, who settles
        it from its parts next (`mark_last_part_sent`)."""
        now_text = to_text(moment)
        early = None
        if message_reference is not None:   # a report for it came first, or waits for us
            early = early_report(conn, self.engine, message_id, seq, message_reference)
        # The part recorded sent, or at once with the verdict of the report that came first.
        state = "sent" if early is None else part_verdict(early.delivered, early.final)
        row = conn.execute(
            "UPDATE parts SET state = ?, reference = ?, message_reference = ?, sent_at = ?"
            + ("" if early is None else ", status = ?, status_at = ?")
            + " WHERE message_id = ? AND seq = ? "
            "AND state NOT IN ('sent', 'delivered', 'undelivered') "
            + ("" if attempt is None else "AND attempt = ? ")
            + "RETURNING sim",   # a late confirmation never undoes a report, nor counts twice
            (state, reference, message_reference, now_text,
             *(() if early is None else (early.status, now_text)), message_id, seq,
             *(() if attempt is None else (attempt,))),
        ).fetchall()
        if not row:
            exists = conn.execute(
                "SELECT attempt FROM parts WHERE message_id = ? AND seq = ?", (message_id, seq)
            ).fetchone()
            if exists is None:
                raise LeaseLost(
                    f"part {seq} of message {message_id} was never marked as writing"
                )
            if attempt is not None and exists[0] != attempt:
                self._older_attempt(conn, message_id, seq, attempt, sim, message_reference,
                                    moment)
            return None  # already recorded (do not count twice), or another attempt's
        if row[0][0]:
            self.sims.add_sent(conn, row[0][0], 1, moment)
        if early is not None:
            conn.execute("UPDATE delivery_reports SET part_id = ?, message_id = ? WHERE id = ?",
                         (early.part_id, message_id, early.report_id))
            report_applied(conn, self.audit, part_id=early.part_id, message_id=message_id,
                           sim=early.sim, status=early.status, delivered=early.delivered,
                           final=early.final, now=now_text, settle_message=settle_message)
            # Its reference known only now: a report that waited for it may prove an
            # ambiguous part before it (rare: a report came before its record).
            settle_before(conn, self.audit, row[0][0], early.part_id, now_text,
                          self.sims.add_sent)
        return state

    def _older_attempt(self, conn: Any, message_id: int, seq: int, attempt: int,
                       sim: str | None, message_reference: int | None, moment: datetime
                       ) -> None:
        """A record of `attempt` that came when part `seq` is a newer attempt's (a retry
        claimed and marked it meanwhile: its owner alive though judged dead, rev23 M2): that
        part is left to its own attempt's record and report. The older PDU went out too, from
        `sim`: the operator is told (a `late-record` event) and that SIM's counters count it
        (its quota across boxes), once: a record written again (its commit's answer lost)
        finds its event and adds nothing."""
        detail = (f"attempt {attempt}'s part {seq} was confirmed by {sim or 'its modem'} "
                  f"(reference {message_reference}) after a newer attempt took the part over: "
                  "that PDU went out too; " + ("counted on it, " if sim else "")
                  + "not recorded as the part")
        self.audit.write_held(conn)   # an event held in this transaction is seen too
        if conn.execute("SELECT 1 FROM events WHERE message_id = ? AND kind = 'late-record' "
                        "AND detail = ?", (message_id, detail)).fetchone() is not None:
            return
        now_text = to_text(moment)
        self.audit.record(conn, "late-record", message_id, sim=sim, detail=detail,
                          now=now_text)
        if sim:
            self.sims.add_sent(conn, sim, 1, moment)


    def mark_last_part_sent(
        self,
        message_id: int,
        seq: int,
        reference: int | None,
        message_reference: int | None,
        *,
        lease_owner: str | None = None,
        now: datetime | None = None,
        attempt: int | None = None,
        sim: str | None = None,
    ) -> bool:
        """`mark_part_sent` of the last part and `mark_sent`, in one transaction (one commit
        per message instead of two); returns what `mark_sent` returns."""
        return self.mark_many_sent([SentPart(message_id, seq, reference, message_reference,
                                             lease_owner=lease_owner, now=now,
                                             attempt=attempt, sim=sim)])

    def mark_many_sent(self, sends: Sequence[SentPart]) -> list[bool]:
        """`mark_last_part_sent` for each of `sends`, all in one transaction (one commit for
        the confirmations of many modems); False for a message whose lease was lost."""
        with self.engine.tx() as conn, self.audit.together(conn):
            self._lock_reports(conn, [(send.message_id, send.seq, send.message_reference)
                                      for send in sends])
            return [self._last_part_sent(conn, send)[0] for send in sends]

    def mark_sent_then_writing(self, sends: Sequence[SentPart], message_id: int, seq: int,
                               total: int | None, *, lease_owner: str | None
                               ) -> tuple[list[bool], LeaseLost | None]:
        """`mark_many_sent(sends)` (a SIM's previous message) and `mark_part_writing` of its
        next part, in one transaction: the marker's LeaseLost is returned, the records still
        commit. On PostgreSQL the marker goes in the statement of the first record. The
        marker's message is never one of the records' (ValueError): one statement would update
        its row twice, and PostgreSQL keeps only one of the two."""
        if any(send.message_id == message_id for send in sends):
            raise ValueError(f"message {message_id}: a record with its own next marker")
        with self.engine.tx() as conn, self.audit.together(conn):
            self._lock_reports(conn, [(send.message_id, send.seq, send.message_reference)
                                      for send in sends])
            writing = (marker_ctes(message_id, seq, total, lease_owner,
                                   self.claims.holds.get(lease_owner or ""))
                       if self.engine.writes_in_with else None)
            recorded, lost = [], None
            for send in sends:
                ok, marked = self._last_part_sent(conn, send, writing)
                recorded.append(ok)
                if marked is not None:   # it went with this record
                    writing = None
                    lost = None if marked else self.claims.not_marked(conn, message_id,
                                                                      lease_owner)
            if writing is not None or not self.engine.writes_in_with:
                try:
                    self.claims.mark_part_writing(message_id, seq, total, lease_owner=lease_owner)
                except LeaseLost as exc:
                    lost = exc
        return recorded, lost

    def mark_sent_then_writing_each(self, markings: Sequence[Marking]) -> list[Written]:
        """`mark_sent_then_writing` of each of `markings` (a SIM's previous records, maybe none,
        and the marker of its next part) together: what a burst of modems' answers costs is
        one commit, not one each. In their order, each one's records and its marker's LeaseLost
        (or None); None for a marking not written, which the caller writes alone
        (`mark_sent_then_writing`). On SQLite all in one transaction; on PostgreSQL the common
        cases in one round trip (`record_batches`), the others not written. A failure of the
        batch fails it whole, nothing written: the caller writes each alone then (where a
        record the database refuses is handled)."""
        for sends, message_id, *_ in markings:
            if any(send.message_id == message_id for send in sends):
                raise ValueError(f"message {message_id}: a record with its own next marker")
        if not self.engine.writes_in_with:
            with self.engine.tx():
                return [self.mark_sent_then_writing(sends, message_id, seq, total,
                                                    lease_owner=owner)
                        for sends, message_id, seq, total, owner in markings]
        return write_in_one_trip(self.engine, self.sims, self.claims, self._lock_reports,
                                 markings)

    def _last_part_sent(self, conn: Any, send: SentPart,
                        writing: tuple[str, dict[str, Any]] | None = None
                        ) -> tuple[bool, bool | None]:
        """`mark_last_part_sent` in `conn`'s transaction, its report lock held; with
        `writing` (`marker_ctes`), that marker in its statement where it is one: whether it was
        written then (None: not done)."""
        now_text = to_text(utcnow())
        at_once, marked = (self._sent_at_once(conn, send, now_text, writing)
                           if self.engine.writes_in_with else (None, None))
        return self._settle_sent(conn, send, at_once, now_text), marked

    def _settle_sent(self, conn: Any, send: SentPart, at_once: bool | None, now_text: str
                     ) -> bool:
        """The rest of `_last_part_sent` once its statement at once answered `at_once` (None:
        not the common case, nothing written): the part recorded the long way then, and the
        message's verdict from its parts' reports. Whether the lease was still ours (or the
        record had committed already: `_recorded_already`)."""
        message_id, seq = send.message_id, send.seq
        if at_once is not None:
            part, ok = "sent", at_once
        else:
            part = self._record_part(conn, message_id, seq, send.reference,
                                     send.message_reference, send.now or utcnow(),
                                     settle_message=False, attempt=send.attempt,
                                     sim=send.sim)
            ok = finish(conn, message_id, MessageState.SENT, None, now_text,
                        send.lease_owner, extra=", sent_at = :now")
            if ok:
                self.audit.record(conn, "sent", message_id, now=now_text)
            elif part is not None:   # recorded now, its lease recovered meanwhile
                ok = _sent_after_recovery(conn, self.audit, message_id, now_text)
        # The message's verdict from its parts' reports. Of a one-part message the part
        # just recorded is all there is to ask (no report yet: nothing to settle).
        if ok and (seq > 1 or part is None):
            deliver_if_complete(conn, message_id, now_text)
            fail_if_undelivered(conn, message_id, now_text)
        elif part == "delivered":
            deliver_if_complete(conn, message_id, now_text)
        elif part == "undelivered":
            fail_if_undelivered(conn, message_id, now_text)
        return ok or (part is None and _recorded_already(conn, send))

    def _sent_at_once(self, conn: Any, send: SentPart, now: str,
                      writing: tuple[str, dict[str, Any]] | None = None
                      ) -> tuple[bool | None, bool | None]:
        """`_last_part_sent`'s common case in one statement (PostgreSQL: data-modifying CTEs),
        in the path of the SIM's next marker: the part recorded sent and counted, the message
        SENT and its event, whether its lease was still ours. None, nothing written, when it
        is not that case (a report came first, the part was already recorded or never marked
        writing): `_record_part` then finds out which. With `writing`, that marker's CTEs go
        in the statement too, whichever case it is, and whether it was written is returned."""
        return _at_once_read(conn.execute(*self._at_once(conn, send, now, writing)).fetchone(),
                             writing is not None)

    def _at_once(self, conn: Any, send: SentPart, now: str,
                 writing: tuple[str, dict[str, Any]] | None) -> tuple[str, dict[str, Any]]:
        """`_sent_at_once`'s statement and its parameters (the events held so far written
        first, so that they keep their order)."""
        moment = send.now or utcnow()
        counting, values = self.sims.counting("SELECT sim FROM part WHERE sim <> ''", 1, moment)
        early = "" if send.message_reference is None else " AND " + no_early_report(self.engine)
        owner = "AND lease_owner = :owner " if send.lease_owner is not None else ""
        attempt = "" if send.attempt is None else " AND attempt = :attempt"
        self.audit.write_held(conn)   # events in the order they were recorded
        return (
            "WITH part AS (UPDATE parts SET state = 'sent', reference = :part_reference, "
            "message_reference = :reference, sent_at = :sent_at WHERE message_id = :id "
            f"AND seq = :seq AND state NOT IN ({NOT_AT_ONCE}){attempt}{early} "
            f"RETURNING sim), {counting}, "
            "done AS (" + FINISH.format(extra=", sent_at = :now",
                                         owner=owner + "AND EXISTS (SELECT 1 FROM part)")
            + " RETURNING id), "
            f"logged AS ({INSERT_EVENT} SELECT :now, 'sent', id, NULL, NULL FROM done)"
            + ("" if writing is None else f", {writing[0]}")
            + " SELECT EXISTS (SELECT 1 FROM part), EXISTS (SELECT 1 FROM done)"
            + ("" if writing is None else ", EXISTS (SELECT 1 FROM marked)"),
            {**values, **(writing[1] if writing else {}), "part_reference": send.reference,
             "reference": send.message_reference, "sent_at": to_text(moment),
             "id": send.message_id, "seq": send.seq, "slack": CLOCK_SLACK.total_seconds(),
             "state": MessageState.SENT.value, "error": None, "now": now,
             "owner": send.lease_owner, "attempt": send.attempt})


def _sent_after_recovery(conn: Any, audit: AuditLog, message_id: int, now: str) -> bool:
    """A record that came after a recovery called its message AMBIGUOUS (its owner alive
    though judged dead, or its record written again after the stop's recovery: dead23): the
    message SENT if every part of it is now out, the rule by which recovery itself calls a
    message sent. The modem's answer is the proof a report would be; without it the part
    recorded 'sent' under an AMBIGUOUS message would stay so (no later report settles that).
    Whether it was."""
    proven = conn.execute(
        "UPDATE messages SET state = ?, error = NULL, sent_at = ?, updated_at = ? "
        "WHERE id = ? AND state = ? AND parts_total = (SELECT count(*) FROM parts "
        "WHERE message_id = ? AND state IN ('sent', 'delivered', 'undelivered')) "
        "AND parts_total = (SELECT count(*) FROM parts WHERE message_id = ?)",
        (MessageState.SENT.value, now, now, message_id, MessageState.AMBIGUOUS.value,
         message_id, message_id)).rowcount == 1
    if proven:
        audit.record(conn, "sent", message_id, detail="the modem's answer, recorded after "
                     "recovery had called it ambiguous", now=now)
    return proven


def _recorded_already(conn: Any, send: SentPart) -> bool:
    """Whether `send` finds itself recorded: its part sent with its TP-MR and its message
    SENT. A record written again after its commit's answer was lost (rev21a L2) is then
    "recorded already" (True), not "its lease taken over" (False); nothing is written."""
    return send.message_reference is not None and conn.execute(
        "SELECT 1 FROM parts JOIN messages ON messages.id = parts.message_id "
        "WHERE parts.message_id = ? AND parts.seq = ? AND parts.state = 'sent' "
        "AND parts.message_reference = ? AND messages.state = ?"
        + ("" if send.attempt is None else " AND parts.attempt = ?"),
        (send.message_id, send.seq, send.message_reference, MessageState.SENT.value,
         *(() if send.attempt is None else (send.attempt,)))
    ).fetchone() is not None


def _at_once_read(row: Sequence[Any], marking: bool) -> tuple[bool | None, bool | None]:
    """What `_sent_at_once`'s statement answered: whether the lease was still ours (None: not
    the common case, nothing recorded) and, with a marker in it (`marking`), whether that was
    written (else None)."""
    recorded, finished, *marked = row
    return (bool(finished) if recorded else None), (marked[0] if marking else None)
