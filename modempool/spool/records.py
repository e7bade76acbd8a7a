"""What the spool writes when a modem answers a send: the record of a part it accepted.

The modem's `+CMGS` of a part is recorded with its message reference (`mark_part_sent`); the
last part's record also ends the attempt (SENT, or the verdict of a delivery report that came
first), for many modems' confirmations in one commit (`mark_many_sent`), or with the marker of
the SIM's next part (`mark_sent_then_writing`: the SIM's next PDU waits for that commit). Each
record first takes the report locks of its parts, so that a report handled meanwhile sees it
(`verdicts.py`). What a dispatcher does with a record the database refuses is its own
(`dispatch/sending.py`); the lease, the marker and the other transitions are `claims.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.ambiguity import CLOCK_SLACK
from modempool.spool.audit import INSERT_EVENT, AuditLog
from modempool.spool.claims import FINISH, WRITING, Claims, finish, marker_ctes
from modempool.spool.engine import Engine
from modempool.spool.model import LeaseLost, MessageState, to_text, utcnow
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


#: One SIM's next part marker with that SIM's records still to commit (maybe none): the
#: records, then the marker's message id, part number, part count and lease owner.
Marking = tuple[Sequence[SentPart], int, int, int | None, str | None]


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
    ) -> None:
        """Record that part `seq` was accepted (+CMGS gave `message_reference`); counts it
        for the SIM's per-minute/day/month limits."""
        with self.engine.tx() as conn:
            self._lock_reports(conn, [(message_id, seq, message_reference)])
            self._record_part(conn, message_id, seq, reference, message_reference,
                              now or utcnow(), settle_message=True)

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
                     settle_message: bool) -> str | None:
        """`mark_part_sent` in `conn`'s transaction, its report lock held (`_lock_reports`);
        the part's state now ('sent', or the verdict of a report that came before), None if
        it had been recorded already. Without `settle_message` a report applied here leaves
        the message to the caller, who settles it from its parts next (`mark_last_part_sent`)."""
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
            "RETURNING sim",   # a late confirmation never undoes a report, nor counts twice
            (state, reference, message_reference, now_text,
             *(() if early is None else (early.status, now_text)), message_id, seq),
        ).fetchall()
        if not row:
            exists = conn.execute(
                "SELECT 1 FROM parts WHERE message_id = ? AND seq = ?", (message_id, seq)
            ).fetchone()
            if exists is None:
                raise LeaseLost(
                    f"part {seq} of message {message_id} was never marked as writing"
                )
            return None  # already recorded: do not count twice
        if row[0][0]:
            self.sims.add_sent(conn, row[0][0], 1, moment)
        if early is not None:
            conn.execute("UPDATE delivery_reports SET part_id = ?, message_id = ? WHERE id = ?",
                         (early.part_id, message_id, early.report_id))
            report_applied(conn, self.audit, part_id=early.part_id, message_id=message_id,
                           sim=early.sim, status=early.status, delivered=early.delivered,
                           final=early.final, now=now_text, settle_message=settle_message)
        return state

    def mark_last_part_sent(
        self,
        message_id: int,
        seq: int,
        reference: int | None,
        message_reference: int | None,
        *,
        lease_owner: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """`mark_part_sent` of the last part and `mark_sent`, in one transaction (one commit
        per message instead of two); returns what `mark_sent` returns."""
        return self.mark_many_sent([SentPart(message_id, seq, reference, message_reference,
                                             lease_owner=lease_owner, now=now)])

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

    def mark_sent_then_writing_each(self, markings: Sequence[Marking]
                                    ) -> list[tuple[list[bool], LeaseLost | None]]:
        """`mark_sent_then_writing` of each of `markings` (a SIM's previous records, maybe none,
        and the marker of its next part), all in ONE transaction: what a burst of modems'
        answers costs is one commit, not one each. On PostgreSQL the report locks of all the
        records and every record+marker statement go in one pipeline (one round trip for the
        lot). In their order, each one's records and its marker's LeaseLost (or None). Any
        failure fails them all, nothing written: the caller writes each alone then
        (`mark_sent_then_writing`, where a record the database refuses is handled)."""
        for sends, message_id, *_ in markings:
            if any(send.message_id == message_id for send in sends):
                raise ValueError(f"message {message_id}: a record with its own next marker")
        if not self.engine.writes_in_with:
            with self.engine.tx():
                return [self.mark_sent_then_writing(sends, message_id, seq, total,
                                                    lease_owner=owner)
                        for sends, message_id, seq, total, owner in markings]
        if self._in_one_statement(markings):
            return self._each_in_one_statement(markings)
        with self.engine.tx() as conn, self.audit.together(conn):
            now_text = to_text(utcnow())
            with conn.raw.pipeline():   # sent now, their results read after
                self._lock_reports(conn, [(send.message_id, send.seq, send.message_reference)
                                          for sends, *_ in markings for send in sends])
                statements = [self._marking_statements(conn, marking, now_text)
                              for marking in markings]
            done = []
            for (sends, message_id, _, _, owner), cursors in zip(markings, statements):
                recorded, marked = [], None
                for index, (send, cursor) in enumerate(zip(sends, cursors)):
                    at_once, written = _at_once_read(cursor.fetchone(), index == 0)
                    marked = written if index == 0 else marked   # the first carried it
                    recorded.append(self._settle_sent(conn, send, at_once, now_text))
                if not sends:   # a marker alone
                    marked = cursors[0].fetchone()[0]
                done.append((recorded, None if marked else self.claims.not_marked(conn, message_id, owner)))
            return done

    def _in_one_statement(self, markings: Sequence[Marking]) -> bool:
        """Whether `markings` go in one statement (`_each_in_one_statement`): several, each
        with one record at most, all counted on the same local day. (A lone one costs no
        less so: its statements go in a pipeline, `_marking_statements`.)"""
        days = {self.sims.local_day_month(send.now or utcnow())
                for sends, *_ in markings for send in sends}
        recorded = {send.message_id for sends, *_ in markings for send in sends}
        return (len(markings) > 1 and len(days) <= 1
                and all(len(sends) <= 1 for sends, *_ in markings)
                # a message's row updated twice in one statement keeps one of the two
                and not recorded & {message_id for _, message_id, *_ in markings})

    def _each_in_one_statement(self, markings: Sequence[Marking]
                               ) -> list[tuple[list[bool], LeaseLost | None]]:
        """`mark_sent_then_writing_each` as one statement for all (PostgreSQL, a record at
        most each): the report locks, then every record's common case and every marker in
        data-modifying CTEs over the markings as rows (`_SENT_AND_MARKED`); a record that is
        not the common case takes the long way after it, its marker kept."""
        now = utcnow()
        rows = [{"n": n, "id": sends[0].message_id if sends else None,
                 "seq": sends[0].seq if sends else None,
                 "part_reference": sends[0].reference if sends else None,
                 "reference": sends[0].message_reference if sends else None,
                 "sent_at": to_text(sends[0].now or now) if sends else None,
                 "owner": sends[0].lease_owner if sends else None,
                 "marker_id": message_id, "marker_seq": seq, "marker_total": total,
                 "marker_owner": owner,
                 **dict(zip(("marker_card", "marker_holder", "marker_modem"),
                            self.claims.holds.get(owner or "") or ()))}
                for n, (sends, message_id, seq, total, owner) in enumerate(markings)]
        moment = next((sends[0].now or now for sends, *_ in markings if sends), now)
        counting, values = self.sims.counting("SELECT sim FROM part WHERE sim <> ''", 1, moment)
        now_text = to_text(now)
        with self.engine.tx() as conn, self.audit.together(conn):
            self._lock_reports(conn, [(send.message_id, send.seq, send.message_reference)
                                      for sends, *_ in markings for send in sends])
            answers = conn.execute(_SENT_AND_MARKED.format(
                early=no_early_report(self.engine, "input.reference"), counting=counting,
                event=INSERT_EVENT, writing=WRITING.format(
                    rows="SELECT id, marker_seq, marker_total, attempts, sim, 'writing', "
                         ":now FROM leased")),
                {**values, "rows": json.dumps(rows), "now": now_text, "state": "sent",
                 "slack": CLOCK_SLACK.total_seconds()}).fetchall()
            done = []
            for (sends, message_id, _, _, owner), (recorded, finished, marked) in zip(
                    markings, answers):
                outcomes = [self._settle_sent(conn, sends[0],
                                              bool(finished) if recorded else None, now_text)
                            ] if sends else []
                done.append((outcomes, None if marked else self.claims.not_marked(conn, message_id, owner)))
            return done

    def _marking_statements(self, conn: Any, marking: Marking, now: str) -> list[Any]:
        """`mark_sent_then_writing_each`'s statements of one marking, sent (their cursors, to
        be read): each record's at once (`_sent_at_once`), the marker in the first's; a marker
        alone in its own."""
        sends, message_id, seq, total, owner = marking
        writing = marker_ctes(message_id, seq, total, owner, self.claims.holds.get(owner or ""))
        if not sends:
            return [conn.execute(f"WITH {writing[0]} SELECT EXISTS (SELECT 1 FROM marked)",
                                 writing[1])]
        return [conn.execute(*self._at_once(conn, send, now, writing if index == 0 else None))
                for index, send in enumerate(sends)]

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
        message's verdict from its parts' reports. Whether the lease was still ours."""
        message_id, seq = send.message_id, send.seq
        if at_once is not None:
            part, ok = "sent", at_once
        else:
            part = self._record_part(conn, message_id, seq, send.reference,
                                     send.message_reference, send.now or utcnow(),
                                     settle_message=False)
            ok = finish(conn, message_id, MessageState.SENT, None, now_text,
                        send.lease_owner, extra=", sent_at = :now")
            if ok:
                self.audit.record(conn, "sent", message_id, now=now_text)
        # The message's verdict from its parts' reports. Of a one-part message the part
        # just recorded is all there is to ask (no report yet: nothing to settle).
        if ok and (seq > 1 or part is None):
            deliver_if_complete(conn, message_id, now_text)
            fail_if_undelivered(conn, message_id, now_text)
        elif part == "delivered":
            deliver_if_complete(conn, message_id, now_text)
        elif part == "undelivered":
            fail_if_undelivered(conn, message_id, now_text)
        return ok

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
        self.audit.write_held(conn)   # events in the order they were recorded
        return (
            "WITH part AS (UPDATE parts SET state = 'sent', reference = :part_reference, "
            "message_reference = :reference, sent_at = :sent_at WHERE message_id = :id "
            f"AND seq = :seq AND state NOT IN ('sent', 'delivered', 'undelivered'){early} "
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
             "owner": send.lease_owner})


#: Many SIMs' records (at most one each) and next part markers in one statement, the
#: markings as rows (`input`, in order): each record's common case as `_sent_at_once` (the
#: part sent and counted, the message SENT and its event), each marker as `marker_ctes`
#: (with its modem's card hold, where it has one); for each marking whether its part was recorded, its message finished, its marker written.
_SENT_AND_MARKED = (
    "WITH input AS (SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS input (n int, "
    "id bigint, seq int, part_reference int, reference int, sent_at text, owner text, "
    "marker_id bigint, marker_seq int, marker_total int, marker_owner text, marker_card text, "
    "marker_holder text, marker_modem text)), "
    "part AS (UPDATE parts SET state = 'sent', reference = input.part_reference, "
    "message_reference = input.reference, sent_at = input.sent_at FROM input "
    "WHERE parts.message_id = input.id AND parts.seq = input.seq "
    "AND parts.state NOT IN ('sent', 'delivered', 'undelivered') "
    "AND (input.reference IS NULL OR {early}) RETURNING parts.message_id, parts.sim), "
    "{counting}, "
    "done AS (UPDATE messages SET state = :state, error = NULL, lease_owner = NULL, "
    "lease_until = NULL, updated_at = :now, sent_at = :now FROM input "
    "WHERE messages.id = input.id AND messages.state = 'sending' "
    "AND (input.owner IS NULL OR messages.lease_owner = input.owner) "
    "AND EXISTS (SELECT 1 FROM part WHERE part.message_id = input.id) RETURNING messages.id), "
    "logged AS ({event} SELECT :now, 'sent', id, NULL, NULL FROM done), "
    "leased AS (UPDATE messages SET parts_total = coalesce(input.marker_total, parts_total) "
    "FROM input WHERE messages.id = input.marker_id AND messages.state = 'sending' "
    "AND (input.marker_owner IS NULL OR messages.lease_owner = input.marker_owner) "
    "AND (input.marker_card IS NULL OR EXISTS (SELECT 1 FROM sim_holders "
    "WHERE iccid = input.marker_card AND owner = input.marker_holder "
    "AND modem = input.marker_modem)) "
    "RETURNING messages.id, input.marker_seq, input.marker_total, messages.attempts, "
    "messages.sim), "
    "marked AS ({writing} RETURNING message_id) "
    "SELECT EXISTS (SELECT 1 FROM part WHERE part.message_id = input.id), "
    "EXISTS (SELECT 1 FROM done WHERE done.id = input.id), "
    "EXISTS (SELECT 1 FROM marked WHERE marked.message_id = input.marker_id) "
    "FROM input ORDER BY input.n")


def _at_once_read(row: Sequence[Any], marking: bool) -> tuple[bool | None, bool | None]:
    """What `_sent_at_once`'s statement answered: whether the lease was still ours (None: not
    the common case, nothing recorded) and, with a marker in it (`marking`), whether that was
    written (else None)."""
    recorded, finished, *marked = row
    return (bool(finished) if recorded else None), (marked[0] if marking else None)
