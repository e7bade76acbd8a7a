"""What a modem's sends write to the spool around the PDU: each part's marker before it, each
confirmed message's record after it (the sending rule is `sending.py`'s).

A confirmed message is recorded with its SIM's next part marker (one commit, while the modem
is asked for its prompt; on a database server with the markers other modems ask for meanwhile,
`MarkerBatches`), or with the other confirmations of its burst when the SIM has
nothing next (`record_soon`): never in the path of the next send, and never more than one
message per SIM without a committed outcome, since the SIM's next marker waits for its
previous record. A record the database refuses (not for being away) is tried alone and,
refused still, called ambiguous; one that may be neither (`OutcomeRefused`) is kept alone (the
others of its batch are written), like one the database cannot take now or refuses for a right
the role lacks: tried again after 1 s, then 2, 4, at most every 5 s, and with the SIM's next
marker, which waits for it (its PDU unwritten). A bug met on the way is no refusal: its
traceback once, not kept (the message is left to recovery: ambiguous). How records are written
and what becomes of each the database refuses is `record_writes.py`'s; when, and with which
marker, is this module's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from modempool.dispatch.backlog import WAIT_FIRST, WAIT_MAX
from modempool.dispatch.marker_batches import MarkerBatches
from modempool.dispatch.record_writes import (Outcome, OutcomeRefused, Unrecorded, is_bug,
                                              keep_refused, one_by_one, together, write_records)
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool.model import LeaseLost
from modempool.spool.records import SentPart
from modempool.spool.unavailable import log_repeated

log = logging.getLogger("modempool.dispatch.dispatcher")

# Confirmed sends are written to the spool together once no confirmation came for RECORD_QUIET
# seconds, and at the latest RECORD_MAX after the first: a burst of replies from many modems
# costs one commit after it, and none inside it, where each modem's next message waits its turn.
RECORD_QUIET = 0.01
RECORD_MAX = 0.1
RECORDS_PER_COMMIT = 8


class Recording:
    """The markers and records of a dispatcher's sends (`Dispatcher.recording`): what is on
    its way to the spool, per SIM (its lease owner), and what waits to be written again."""

    def __init__(self, spool: Any, lane: SpoolLane) -> None:
        self.spool = spool
        self.lane = lane
        # Part markers asked together, committed together (group commit): on a database
        # server with the SIMs' previous records (`mark_sent_then_writing_each`).
        self.markers = MarkerBatches(lane, self._record_and_mark, spool.batch,
                                     write_all=self._records_and_markers if lane.parallel
                                     else None)
        self._unrecorded: list[Unrecorded] = []
        self._recording: dict[str, asyncio.Future[Any]] = {}  # lease owner: its record on its way
        self._record_timer: asyncio.Handle | None = None
        self._record_at = self._record_deadline = 0.0
        self._record_wait = WAIT_FIRST   # before records that failed are tried again
        self.closed = False

    def holds(self, owner: str) -> bool:
        """Whether a confirmed send of lease `owner` (one SIM) is not recorded yet."""
        return any(entry[0].lease_owner == owner for entry in self._unrecorded)

    def on_way(self, owner: str) -> asyncio.Future[Any] | None:
        """The record (or marker with records) of lease `owner` on its way, if one is."""
        future = self._recording.get(owner)
        return future if future is not None and not future.done() else None

    def mark_ahead(self, owner: str, message_id: int, part: Any) -> asyncio.Future[Any]:
        """Start committing the marker of `part`, with the SIM's previous confirmation (one
        commit), while the modem is asked for its prompt; the PDU waits for it at the prompt.
        A record of the SIM still on its way is committed first: a crash leaves at most one
        message per SIM without its outcome (ambiguous)."""
        before = self._recording.get(owner)
        if before is not None and not before.done():
            marking: asyncio.Future[Any] = asyncio.ensure_future(
                self._mark_after(before, owner, message_id, part))
            self._recording[owner] = marking
            return marking
        return self._mark_now(owner, message_id, part)

    async def _mark_after(self, before: asyncio.Future[Any], owner: str, message_id: int,
                          part: Any) -> tuple[list[bool] | None, LeaseLost | None]:
        await asyncio.wait([before])
        return await asyncio.shield(self._mark_now(owner, message_id, part))

    def _mark_now(self, owner: str, message_id: int, part: Any) -> asyncio.Future[Any]:
        pending = self._take_unrecorded(owner=owner)
        if pending and not self.lane.parallel:   # SQLite: a transaction of its own
            marking = self.lane.submit(self._record_and_mark, pending, message_id, part.seq,
                                       part.total, owner)
        else:   # with those other modems ask for meanwhile (group commit)
            marking = self.markers.submit(pending, message_id, part.seq, part.total, owner)

        def settle(done: asyncio.Future[Any]) -> None:
            failed = done.cancelled() or done.exception() is not None
            self._settled(pending, None if failed else done.result()[0])

        marking.add_done_callback(settle)
        if pending:  # the SIM's next marker, and the release of its leases, wait for it
            self._recording[owner] = marking
        return marking

    def record_soon(self, sent: SentPart, mlog: logging.Logger, to: str, parts: int) -> None:
        """Settle a confirmed send in the spool with the others of its burst (within RECORD_MAX).
        A crash before that leaves the message ambiguous, never sent twice."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # With the spool's calls in threads side by side, a record costs the loop nothing: it
        # starts at the next turn of the loop (with the others of this turn), unless the SIM's
        # next message takes it first into the marker it commits while asking for the prompt
        # (one commit). In one thread (SQLite) it would queue before the markers.
        quiet, longest = (0.0, 0.0) if self.lane.parallel else (RECORD_QUIET, RECORD_MAX)
        if not self._unrecorded:
            self._record_deadline = now + longest
        self._unrecorded.append((sent, mlog, to, parts))
        self._record_at = min(now + quiet, self._record_deadline)
        if self._record_timer is None:
            self._record_timer = loop.call_at(self._record_at, self._record_when_quiet)

    def _record_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        self._record_timer = None
        if self.closed:   # the dispatcher stopped meanwhile: its lane takes nothing now
            return
        if loop.time() < self._record_at:  # more came meanwhile: wait for the burst to end
            self._record_timer = loop.call_at(self._record_at, self._record_when_quiet)
            return
        pending = self._take_unrecorded(at_most=RECORDS_PER_COMMIT)
        if pending:
            # SIM by SIM: two such commits at once update the SIMs' counters in the same order.
            pending.sort(key=lambda entry: (entry[0].lease_owner or "", entry[0].message_id))
            self._submit_records(pending)   # the SIM's next marker waits for it (`_recorded`)
        if self._unrecorded:  # the rest once the modems had their turn
            self._record_timer = loop.call_soon(self._record_when_quiet)

    async def record_now(self, *, owner: str | None = None) -> None:
        """Write the confirmed sends not yet recorded: those of lease `owner` (one SIM), or all
        of them (before leases are released). The write counts as each carried SIM's record on
        its way, so that SIM's own release waits for it (`_recorded`) before it settles its
        leases: else the settling met the record on the same rows and one of the two was
        aborted as a deadlock (dead22; a confirmed message ended ambiguous)."""
        await self._recorded(owner)
        pending = self._take_unrecorded(owner=owner)
        if pending:   # another SIM's release waits for it too (`_recorded`)
            await asyncio.wait([self._submit_records(pending)])

    async def _recorded(self, owner: str | None) -> None:
        """Until the records on their way for lease `owner` (None: all) are committed."""
        if owner is None:
            waiting = set(self._recording.values())
        else:
            waiting = {self._recording[owner]} if owner in self._recording else set()
        waiting = {future for future in waiting if not future.done()}
        if waiting:
            await asyncio.wait(waiting)

    def _take_unrecorded(self, *, at_most: int | None = None,
                         owner: str | None = None) -> list[Unrecorded]:
        """Take out the confirmed sends to record now: the first `at_most`, or those of lease
        `owner` (one SIM), or all of them."""
        if owner is not None:
            pending = [entry for entry in self._unrecorded if entry[0].lease_owner == owner]
            if pending:
                self._unrecorded = [entry for entry in self._unrecorded if entry not in pending]
        else:
            pending = self._unrecorded[:at_most]
            del self._unrecorded[:len(pending)]
        if not self._unrecorded and self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None
        return pending

    def _submit_records(self, pending: list[Unrecorded]) -> asyncio.Future[Any]:
        """Start writing `pending` in the lane, as the record on its way of each SIM it
        carries (`_recorded`); what it wrote is logged and what it could not is kept
        (`_settled`) when it ends."""
        writing = self.lane.submit(self._write_records, pending)
        writing.add_done_callback(lambda done: self._settled(pending, done.result()))
        for sent, *_ in pending:
            self._recording[sent.lease_owner or ""] = writing
        return writing

    def _write_records(self, pending: list[Unrecorded]) -> list[Outcome] | None:
        """In the lane: `pending` recorded in one transaction (`record_writes.write_records`);
        None if the database failed (they are kept and tried again)."""
        return write_records(self.spool, pending)

    def _record_and_mark(self, pending: list[Unrecorded], message_id: int, seq: int,
                         total: int | None, owner: str
                         ) -> tuple[list[Outcome] | None, LeaseLost | None]:
        """In the lane, one commit: the SIM's previous confirmation and the marker of the part
        about to be written. A lost lease is returned: nothing written for it, the record
        still commits.

        The rule: a SIM's next part is marked (so written) only once each of its earlier
        messages has a committed outcome, so that a crash leaves at most one message per SIM
        without one. A record the database refuses (not for being away) refuses the marker
        with it: the records are then written one by one (`_one_by_one`: one refused alone
        is called ambiguous), and the marker goes alone after them. What cannot be written at
        all (the database away, a right missing, a message that may be neither recorded nor
        called ambiguous: `OutcomeRefused`) is raised: no marker, the part not written."""
        recorded: list[Outcome] = []   # none to record: a marker alone (`markers`)
        if pending:
            written = together(
                lambda sents: self.spool.mark_sent_then_writing(
                    sents, message_id, seq, total, lease_owner=owner),
                pending, "with the next marker")
            if written is not None:
                return written
            recorded = one_by_one(self.spool, pending)
            failed = [outcome for outcome in recorded if isinstance(outcome, BaseException)]
            if failed:   # the SIM's own outcome not written: no marker, its part waits
                keep_refused(pending, recorded)
                bugs = [outcome for outcome in failed if is_bug(outcome)]
                # a bug goes up to its modem's task, which logs it and takes the modem down
                # (its leases then recovered: that message ambiguous), as other bugs do
                raise bugs[0] if bugs else failed[0]
        try:
            self.spool.mark_part_writing(message_id, seq, total, lease_owner=owner)
        except LeaseLost as exc:
            return recorded, exc
        return recorded, None

    def _records_and_markers(self, requests: list[tuple[Any, ...]]) -> list[Any]:
        """In the lane: `_record_and_mark` of each of `requests` (markers other modems asked
        for meanwhile, each with its SIM's previous records, maybe none), the common cases
        together (`mark_sent_then_writing_each`), then each it left alone, its outcome or its
        exception; raises if the batch fails (each is then written alone, by
        `_record_and_mark`, where a refused record is handled)."""
        written = self.spool.mark_sent_then_writing_each(
            [([sent for sent, *_ in pending], message_id, seq, total, owner)
             for pending, message_id, seq, total, owner in requests])
        outcomes: list[Any] = []
        for request, done in zip(requests, written):
            if done is not None:
                outcomes.append((list(done[0]), done[1]))
                continue
            try:   # not the common case: the long way, alone
                outcomes.append(self._record_and_mark(*request))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _settled(self, pending: list[Unrecorded], recorded: list[Outcome] | None) -> None:
        """Log what was recorded; what could not be (the database away, a right missing: all
        of `pending`; an outcome refused: that entry alone) is kept, to be written again with
        the SIM's next marker, or after 1 s, then 2, 4, at most every 5 s while it keeps
        failing (a SIM's lease is given back only after it). One that met a bug is dropped."""
        kept = pending
        if recorded is not None:
            for (sent, *_), outcome in zip(pending, recorded):
                if isinstance(outcome, OutcomeRefused):   # one line a minute for each
                    log_repeated(log, logging.ERROR, f"message {sent.message_id}: its outcome is "
                                 "refused by the database", str(outcome))
            kept = list(pending)
            keep_refused(kept, recorded)
            if not kept:
                self._record_wait = WAIT_FIRST
        if kept:
            self._unrecorded[:0] = [entry for entry in kept if entry not in self._unrecorded]
            if self._record_timer is None and not self.closed:
                self._record_at = 0.0
                self._record_timer = asyncio.get_running_loop().call_later(
                    self._record_wait, self._record_when_quiet)
                self._record_wait = min(self._record_wait * 2, WAIT_MAX)

    def close(self) -> None:
        """The dispatcher stops: no timer is armed again (its lane is closing); what is still
        kept stays for `record_now` and, failing that, recovery."""
        self.closed = True
        if self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None


