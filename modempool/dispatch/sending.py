"""Sending one message, part by part, exactly once: the sending rule and what a failure means.

`Dispatcher.send_message` (this mixin; each modem task, `modem_task.py`, calls it) applies the rule:

- record durably that a part is being written *before* writing its PDU to the modem: its
  marker is committed while the modem is asked for its prompt, and the PDU waits at the prompt
  (the driver's `before_pdu` hook) until it is; a refusal before the prompt settles the marker
  (the part failed, never left writing);
- a definite answer (+CMGS or +CMS ERROR) settles the part: sent, or retried / failed over / failed;
  a confirmed message is recorded with the SIM's next part marker (same commit), or with the other
  confirmations of its burst when the SIM has nothing next: never in the path of the next send,
  and never more than one message per SIM without a committed outcome (`recording.py`);
- no answer after the PDU was written makes the message ambiguous: it is never resent on its own;
- a message refused after some of its parts went out goes on later from its first unsent part,
  through the same SIM (the phone joins parts from one sender only); it is never sent whole again;
- the database away (`SpoolUnavailable`), or refusing the role a right until the GRANT is run
  (`SpoolForbidden`): a marker that could not be committed means its PDU was not written
  (cancelled at the prompt), so the modem keeps its message and waits, the port open, trying the
  marker (and the SIM's previous record with it) again until the database takes it, then sends
  the part; what it must write about a part or message already decided (a part sent, a
  refusal) is written again likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from modempool.dispatch import limits as limits_mod
from modempool.dispatch.backlog import WAIT_FIRST, WAIT_MAX
from modempool.masked import one_line
from modempool.spool.model import CardLost, LeaseLost
from modempool.spool.records import SentPart
from modempool.spool.unavailable import database_failed, log_failure, unavailable

if TYPE_CHECKING:
    from modempool.dispatch.sim_slot import SimSlot

log = logging.getLogger("modempool.dispatch.dispatcher")


class ModemTrouble(Exception):
    """The modem must be closed and opened again (it hung, vanished or keeps failing)."""


class MarkerNotWritten(Exception):
    """A part's marker could not be committed (the database cannot answer now, or refuses the
    role a right until the GRANT is run: `database_failed`): the prompt was cancelled, its PDU
    not written."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


#: A write that waits for the database says so again this often (seconds), with how long: a
#: lasting "not now" (a standby that stays read-only, a statement always past its time
#: limit) is otherwise one warning and then silence while the modem waits for ever.
WARN_AGAIN_EVERY = 60.0


class SendingMixin:
    """Sending (mixed into `Dispatcher`); what it writes around each PDU is its `recording`
    part's (`recording.py`)."""

    async def send_message(self, slot: SimSlot, modem: Any, message: Any) -> None:
        """Send `message` through `modem`, part by part, and record the outcome in the spool.

        Raises ModemTrouble when the modem must be reopened (after the spool has been updated).
        """
        from at_commands import AtError, AtTimeout, ErrorClass, ModemDisconnected, SendAmbiguous
        from pdu import encode_submit

        mlog = logging.getLogger(f"modempool.modem.{slot.name}")
        try:
            parts = encode_submit(message.to, message.text, status_report=True,
                                  reference=message.id % 256)
        except Exception as exc:  # text the codec cannot carry: no SIM will do better
            await self._answered(self.spool.mark_failed, message.id, f"cannot encode: {exc}",
                                 lease_owner=slot.owner)
            return

        # A message partly sent by an earlier attempt goes on from its first unsent part (from the
        # same SIM: its requeue bound it there), with the same parts and concatenation reference.
        already = (await self._answered(self.spool.sent_parts, message.id)
                   if message.parts_total else set())
        if len(already) == len(parts):
            await self._answered(self.spool.mark_sent, message.id, lease_owner=slot.owner)
            return
        if already and await self._resume_refused(slot, message, mlog):
            return
        for part in parts:
            if part.seq in already:
                continue
            # Parts go out in order: those before this one are out (earlier or just now).
            sent_before = part.seq - 1
            self.busy_now()
            marking = self.recording.mark_ahead(slot.owner, message.id, part)
            self.marking(marking)
            try:
                refs = await self._write_marked(slot, modem, message.id, part, marking, mlog)
            except CardLost as exc:   # its card taken over: back to the queue, the modem stops
                await self._answered(self.spool.requeue, message.id, f"{slot.name}: {exc}",
                                     avoid_sim=slot.name,
                                     only_sim=slot.name if sent_before else None,
                                     count_attempt=False, lease_owner=slot.owner)
                if sent_before:   # the rest waits for this SIM: say which (the standby note)
                    raise CardLost(f"{exc}; message {message.id} ({sent_before} of {len(parts)} "
                                   "parts out) waits for this SIM to finish it") from exc
                raise
            except LeaseLost as exc:  # recovered by someone else meanwhile: not ours to send
                mlog.warning("message %s not sent: %s", message.id, exc)
                return
            except SendAmbiguous as exc:
                await self._ambiguous(slot, message, f"{slot.name}: {exc}")
                raise ModemTrouble(str(exc)) from exc
            except AtError as exc:
                if exc.error_class is ErrorClass.AMBIGUOUS:
                    await self._ambiguous(slot, message, f"{slot.name}: {exc}")
                    raise ModemTrouble(str(exc)) from exc
                if isinstance(exc, (AtTimeout, ModemDisconnected)):
                    # Silent or gone before the PDU: nothing left, and the modem (not the
                    # message) failed. Back to the queue uncounted; the modem is reopened.
                    await self._answered(self.spool.requeue, message.id, f"{slot.name}: {exc}",
                                         avoid_sim=slot.name,
                                         only_sim=slot.name if sent_before else None,
                                         count_attempt=False, lease_owner=slot.owner)
                    raise ModemTrouble(str(exc)) from exc
                # A definite answer (+CMS/+CME ERROR, or refused before the prompt).
                await self._failed_part(slot, message, len(parts), exc, mlog, sent=sent_before)
                return
            except (OSError, ConnectionError) as exc:
                await self._ambiguous(slot, message,
                                      f"{slot.name}: port failed during send: {exc}")
                raise ModemTrouble(str(exc)) from exc
            self.busy_now()
            reference = refs[0] if refs else None
            now = self.clock()
            slot.counters = limits_mod.count(slot.counters, now)
            if part.seq < part.total:
                await self._answered(self.spool.mark_part_sent, message.id, part.seq,
                                     part.reference, reference, now=now,
                                     attempt=message.attempts, sim=slot.name)
                mlog.debug("message %s part %s/%s sent, reference %s", message.id, part.seq,
                           part.total, reference)
        slot.errors_in_row = 0
        self.recording.record_soon(SentPart(message.id, part.seq, part.reference, reference,
                                   lease_owner=slot.owner, now=now, attempt=message.attempts,
                                   sim=slot.name), mlog, message.to, len(parts))

    async def _resume_refused(self, slot: SimSlot, message: Any, mlog: logging.Logger) -> bool:
        """Whether the rest of `message` (parts of it out) must not go from `slot`: the card that
        sent those parts is no longer in its modem (rev24 F2). Then it is AMBIGUOUS (the
        operator decides; never queued again by the `resend_ambiguous` policy, which would
        bring it back here)."""
        why = await self._answered(self.spool.resume_refusal, message.id, slot.owner, slot.name)
        if why is None:
            return False
        mlog.warning("message %s is ambiguous: %s", message.id, why)
        await self._answered(self.spool.mark_ambiguous, message.id, f"{slot.name}: {why}",
                             lease_owner=slot.owner)
        return True

    async def _write_marked(self, slot: SimSlot, modem: Any, message_id: int, part: Any,
                            marking: asyncio.Future[Any], mlog: logging.Logger) -> list[int]:
        """Write `part` once `marking` is committed; while the database cannot commit it, the
        part waits (its PDU unwritten) and its marker is tried again until it is."""
        while True:
            try:
                return await _write_part(modem, part, marking)
            except MarkerNotWritten as exc:
                log_failure(mlog, f"message {message_id} part {part.seq}/{part.total} "
                            f"{waits(exc.cause)}; its PDU was not written", exc.cause)
                marking = await self._marked_when_back(slot, message_id, part)
                if marking.result()[1] is None:   # else its LeaseLost: another daemon's now
                    mlog.info("the database answers again: message %s part %s/%s goes out",
                              message_id, part.seq, part.total)

    async def _marked_when_back(self, slot: SimSlot, message_id: int,
                                part: Any) -> asyncio.Future[Any]:
        """The committed marker of `part` (or its LeaseLost), tried again with backoff."""
        delay = WAIT_FIRST
        waiting = StillWaiting(log, f"message {message_id} part {part.seq}")
        while True:
            await self._pause(delay, f"message {message_id} part {part.seq} not sent")
            marking = self.recording.mark_ahead(slot.owner, message_id, part)
            await asyncio.wait([marking])
            failure = marking.exception()
            if failure is None:
                return marking
            if not database_failed(failure):
                raise failure
            waiting.again(failure)
            delay = min(delay * 2, WAIT_MAX)

    async def _answered(self, work: Any, /, *args: Any, **kwargs: Any) -> Any:
        """`lane.run(work, ...)`, tried again with backoff while the database cannot answer or
        refuses the role a right until the GRANT is run (what it writes was decided by the
        modem: it must not be lost)."""
        name = getattr(work, "__name__", "a write")
        try:
            return await self.lane.run(work, *args, **kwargs)
        except Exception as exc:
            if not database_failed(exc):
                raise
            log_failure(log, f"{name} {waits(exc)}", exc)
        delay = WAIT_FIRST
        waiting = StillWaiting(log, name)
        while True:
            await self._pause(delay, f"{name} not done")
            try:
                result = await self.lane.run(work, *args, **kwargs)
            except Exception as exc:
                if not database_failed(exc):
                    raise
                delay = min(delay * 2, WAIT_MAX)
                log.debug("%s failed again (%s); next try in %.0f s", name, one_line(exc), delay)
                waiting.again(exc)
                continue
            log.info("the database answers again: %s done", name)
            return result

    async def _pause(self, seconds: float, undone: str) -> None:
        """Wait `seconds` while the database is away; when the daemon stops meanwhile, the
        modem gives up (its lease left for recovery to settle)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        if self.stopping.is_set():
            raise ModemTrouble(f"stopping before the database took it: {undone}; recovery "
                               "settles it")

    async def _ambiguous(self, slot: SimSlot, message: Any, why: str) -> None:
        log.warning("message %s is ambiguous: %s", message.id, why)
        if not await self._answered(self.spool.mark_ambiguous, message.id, why,
                                    lease_owner=slot.owner):
            log.info("message %s: its lease was taken over; its new owner decides", message.id)
            return
        now = await self._answered(self.spool.get, message.id)
        if now is not None and now.state.value in ("sent", "delivered"):  # its report came first
            log.info("message %s: its delivery report, already in, shows it went out", message.id)
            self.count_proven(slot.name)
            return
        if self.policy.resend_ambiguous:  # the user chose at-least-once over at-most-once
            log.warning("message %s queued again (resend_ambiguous policy)", message.id)
            await self._answered(self.spool.retry, message.id)

    async def _failed_part(self, slot: SimSlot, message: Any, total: int, exc: Any, mlog: Any, *,
                     sent: int) -> None:
        """A definite refusal of a part (`sent` of the `total` parts are already out)."""
        from at_commands import ErrorClass

        error = f"{slot.name}: {exc}"
        if sent:
            error = f"partly sent ({sent}/{total} parts), then {error}"
        # Any failure counts toward quarantine: cheap modems answer most trouble with the
        # catch-all +CMS ERROR: 500, which alone would never take a broken SIM out.
        slot.errors_in_row += 1
        slot.last_failure = str(exc)
        if exc.error_class is ErrorClass.PERMANENT:
            mlog.info("message %s failed: %s", message.id, exc)
            await self._answered(self.spool.mark_failed, message.id, error, lease_owner=slot.owner)
            return
        await self._answered(self.spool.record_sim_error, slot.name, str(exc))
        attempts = message.attempts
        if attempts >= self.policy.max_attempts:
            await self._answered(self.spool.mark_failed, message.id,
                                 f"{error} (after {attempts} attempts)", lease_owner=slot.owner)
            return
        # Another SIM can take it at once; the same SIM only after a backoff. Parts already out
        # came from this SIM's number, and the phone joins the rest only if they come from it
        # too: such a message waits for this SIM (sending all again would repeat those parts).
        others = [] if sent else [
            s for s in self.slots.values()
            if s.name != slot.name and s.in_rotation and s.accepts(message.to)
            and (not message.sims or s.name in message.sims)]
        delay = 0.0 if others else self.policy.delay(attempts) * random.uniform(0.8, 1.2)
        mlog.info("message %s: %s; retrying %s", message.id, exc,
                  "on another SIM" if others else f"from {slot.name} in {delay:.0f} s")
        await self._answered(self.spool.requeue, message.id, error,
                             self.clock() + timedelta(seconds=delay),
                             avoid_sim=None if sent else slot.name,
                             only_sim=slot.name if sent else None, lease_owner=slot.owner)


async def _write_part(modem: Any, part: Any, marking: asyncio.Future[Any]) -> list[int]:
    """Send `part` through `modem`; its PDU goes out once `marking` (its marker) is committed.
    Whatever the modem answers, the marker's transaction is over when this returns or raises:
    a refusal before the prompt is then settled after it (its part marked failed, not left
    writing)."""
    async def writing(_: Any) -> None:
        try:
            _, lost = await asyncio.shield(marking)
        except Exception as exc:
            if not database_failed(exc):
                raise
            raise MarkerNotWritten(exc) from exc
        if lost is not None:
            raise lost

    try:
        return await modem.send([part], more_to_follow=part.seq < part.total, before_pdu=writing)
    finally:
        if not marking.done():
            await asyncio.wait([marking])


def waits(exc: BaseException) -> str:
    """What a write that failed so does: waits for the database (away) or is refused by it
    (up, but refusing: a right missing, an outcome a trigger or constraint refuses)."""
    return "waits for the database" if unavailable(exc) is not None else (
        "is refused by the database")


class StillWaiting:
    """A write waiting for the database: its warning repeated every WARN_AGAIN_EVERY seconds
    with how long it has waited, so that a "not now" that lasts is not silent after the first
    line. (Not tested by a test: it would need a wait of that length or a timing threshold.)"""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.since = time.monotonic()
        self.next = self.since + WARN_AGAIN_EVERY

    def again(self, exc: BaseException) -> None:
        """After another failed try: the warning again, when it is due (a right missing: its
        ERROR line naming the GRANT, once a minute)."""
        found = unavailable(exc)
        if found is None:
            log_failure(self.log, f"{self.what} {waits(exc)}", exc)
            return
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + WARN_AGAIN_EVERY
        self.log.warning("%s still waits for the database, for %.0f s now: %s [%s]", self.what,
                         now - self.since, found, found.reason)
