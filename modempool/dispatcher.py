"""The dispatcher: gives queued messages to SIMs and sends each one, part by part, exactly once.

One `Dispatcher.run()` loop looks at the queue whenever a SIM becomes free (or every
`poll_interval`, to see messages enqueued by other processes), asks `strategies.choose_sim` for a
SIM among those that are up, under their limits and allowed for the destination, claims the
message with a lease and hands it to that SIM's task (a SIM holds up to PREFETCH messages: the
one on the air and the next, so a modem never waits for the dispatcher). Each modem task (see
`daemon.py`) calls `send_message`, which applies the sending rule:

- record durably that a part is being written *before* writing its PDU to the modem (at the
  modem's prompt, through the driver's `before_pdu` hook);
- a definite answer (+CMGS or +CMS ERROR) settles the part: sent, or retried / failed over / failed;
  a confirmed message is recorded with the SIM's next part marker (same commit), or with the other
  confirmations of its burst when the SIM has nothing next: never in the path of the next send,
  and never more than one unrecorded message per SIM;
- no answer after the PDU was written makes the message ambiguous: it is never resent on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from modempool import limits as limits_mod
from modempool.limits import Counters, Limits
from modempool.numbers import carrier_of
from modempool.spool_claim import SentPart
from modempool.spool_model import LeaseLost
from modempool.strategies import SimView, Strategy, StrategyState, choose_sim

log = logging.getLogger("modempool.dispatcher")
NO_LIMITS = Limits()


class SimState(str, Enum):
    STARTING = "starting"
    UP = "up"
    QUARANTINED = "quarantined"
    DOWN = "down"
    STOPPED = "stopped"


class ModemTrouble(Exception):
    """The modem must be closed and opened again (it hung, vanished or keeps failing)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 10.0          # seconds before the 2nd attempt; doubles each time
    backoff_max: float = 600.0
    quarantine_after: int = 3      # SIM errors in a row that take a SIM out of rotation
    quarantine_seconds: float = 60.0
    send_timeout: float = 60.0     # silence after a PDU is written before the send is ambiguous
    resend_ambiguous: bool = False  # the user's policy: queue ambiguous messages again

    @classmethod
    def of(cls, config: Any) -> RetryPolicy:
        """The policy from `config.retry` (a RetryConfig or a dict); defaults for what it lacks."""
        retry = getattr(config, "retry", None)
        if retry is None:
            return cls()
        values = {}
        for spec in dataclasses.fields(cls):
            value = retry.get(spec.name) if isinstance(retry, dict) else getattr(retry, spec.name, None)
            if value is not None:
                values[spec.name] = type(spec.default)(value)
        return cls(**values)

    def delay(self, attempts: int) -> float:
        return min(self.backoff_max, self.backoff * 2 ** max(0, attempts - 1))


# Confirmed sends are written to the spool together once no confirmation came for RECORD_QUIET
# seconds, and at the latest RECORD_MAX after the first: a burst of replies from many modems
# costs one commit after it, and none inside it, where each modem's next message waits its turn.
RECORD_QUIET = 0.01
RECORD_MAX = 0.1
RECORDS_PER_COMMIT = 8

# Claims per dispatch round (beyond one per idle SIM): the modems are served between rounds.
CLAIMS_PER_ROUND = 8

# Messages a SIM holds at once: the one it sends and the next, claimed while the first is on
# the air, so that a modem never waits for the dispatcher between two messages.
PREFETCH = 2

# That next message is needed only when the one on the air is answered (seconds away), so its
# claim waits for a moment when no modem is between its answer and its next PDU (PREFETCH_QUIET
# seconds without one), for at most PREFETCH_PATIENCE: claims never stand in a burst of answers.
# A SIM with nothing in hand is served at once.
PREFETCH_QUIET = 0.005
PREFETCH_PATIENCE = 0.25


@dataclass(slots=True)
class SimSlot:
    """The dispatcher's live view of one SIM (one modem port)."""

    name: str
    limits: Limits = field(default_factory=Limits)
    allow: tuple[str, ...] = ()     # destination prefixes ("+86138"); () = any
    carriers: tuple[str, ...] = ()  # destination carriers ("China Mobile"); () = any
    priority: int = 0
    state: SimState = SimState.STARTING
    operator: str = ""
    counters: Counters = field(default_factory=Counters)
    errors_in_row: int = 0
    owner: str = ""                 # lease owner of the messages this SIM holds
    assigned: int = 0               # messages handed to it and not finished
    assigned_parts: int = 0         # their SMS, counted against the limits in advance
    inbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=PREFETCH))

    @property
    def busy(self) -> bool:
        return self.assigned >= PREFETCH

    def view(self, now: datetime) -> SimView:
        today = limits_mod.current(self.counters, now).sent_today
        return SimView(self.name, self.operator, self.busy, today, self.priority, self.assigned)

    def room(self, now: datetime) -> int | None:
        """SMS the SIM's limits still allow after those it holds (None: unlimited)."""
        if self.limits == NO_LIMITS:
            return None
        room = limits_mod.headroom(self.limits, self.counters, now)
        return None if room is None else room - self.assigned_parts

    def accepts(self, to: str) -> bool:
        """Whether this SIM may send to `to` (allowed prefixes and carriers from the config)."""
        if self.allow and not any(to.startswith(prefix) for prefix in self.allow):
            return False
        if self.carriers:
            carrier = carrier_of(to).lower()
            return any(carrier == wanted.strip().lower() for wanted in self.carriers)
        return True


def is_quiet(config: Any, now: datetime) -> bool:
    """Whether `now` falls in the configured quiet period (messages flagged quiet_hours wait)."""
    check = getattr(config, "is_quiet", None)
    return bool(check(now)) if check is not None else False


class Dispatcher:
    """Chooses a SIM for each queued message and claims it; sends on behalf of modem tasks."""

    def __init__(self, spool: Any, config: Any, *, owner: str, slots: list[SimSlot],
                 clock: Callable[[], datetime] | None = None,
                 poll_interval: float = 0.2) -> None:
        self.spool = spool
        self.config = config
        self.owner = owner
        self.slots = {slot.name: slot for slot in slots}
        for slot in slots:
            slot.owner = f"{owner}/{slot.name}"
        # Local windows (quotas, quiet hours) in the configured time zone, else the system's.
        tz = getattr(config, "tz", None) or timezone.utc
        self.clock = clock or (lambda: datetime.now(tz))
        self.poll_interval = poll_interval
        self.lease_seconds = float(getattr(config, "lease_seconds", 300.0))
        self.strategy = Strategy.parse(getattr(config, "strategy", None))
        self.policy = RetryPolicy.of(config)
        self.state = StrategyState(recall=self._recall)
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self._parts_needed: dict[int, int] = {}
        self._unrecorded: list[tuple[SentPart, logging.Logger, str, int]] = []
        self._record_timer: asyncio.Handle | None = None
        self._record_at = self._record_deadline = 0.0
        self._last_expiry = 0.0
        self._busy_until = 0.0

    # -- the assignment loop ----------------------------------------------------------------
    async def run(self) -> None:
        """Assign messages to free SIMs until `stop()`."""
        while not self.stopping.is_set():
            self.wake.clear()
            if not any(s.state is SimState.UP and s.assigned == 0 for s in self.slots.values()):
                await self._quiet_moment()
            try:
                handed = self.dispatch_once(at_most=CLAIMS_PER_ROUND)
            except Exception:  # a locked database or a bad row must not stop the pool
                log.exception("dispatch round failed")
                handed = 0
            if handed >= CLAIMS_PER_ROUND:  # maybe more to hand: after the modems had their turn
                await asyncio.sleep(0)
                continue
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self.wake.wait()
            except TimeoutError:
                pass

    def busy_now(self) -> None:
        """A modem is between an answer and its next PDU: claims for later can wait."""
        self._busy_until = asyncio.get_running_loop().time() + PREFETCH_QUIET

    async def _quiet_moment(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PREFETCH_PATIENCE
        while (now := loop.time()) < min(self._busy_until, give_up) and not self.stopping.is_set():
            await asyncio.sleep(min(self._busy_until, give_up) - now)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def dispatch_once(self, *, at_most: int | None = None) -> int:
        """One round: hand as many due messages as free SIMs take, up to `at_most` (or one for
        each SIM with none in hand, if more); returns how many."""
        now = self.clock()
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_expiry >= 1.0:
            self._last_expiry = loop_time
            self.spool.expire_due(now)
        free = [s for s in self.slots.values() if s.state is SimState.UP and not s.busy]
        room = sum(PREFETCH - s.assigned for s in free)
        if at_most is not None:  # but a SIM with nothing in hand is never kept waiting
            room = min(room, max(at_most, sum(s.assigned == 0 for s in free)))
        if not free or self.stopping.is_set():
            return 0
        up = [s for s in self.slots.values() if s.state is SimState.UP]
        # What each SIM looks like this round (its view and its room under the limits).
        views = {s.name: s.view(now) for s in up}
        rooms = {s.name: s.room(now) for s in up}
        quiet = is_quiet(self.config, now)
        handed: list[tuple[SimSlot, Any, int]] = []
        try:
            with self.spool.batch():  # the round's claims in one commit
                for message in self.spool.dispatchable(now, limit=2 * room + 16):
                    if message.quiet_hours and quiet:
                        continue
                    parts = self.parts_needed(message)
                    slot = self._choose(message, parts, up, views, rooms)
                    if slot is None:
                        self._fail_if_unroutable(message)
                        continue
                    claimed = self.spool.claim(message.id, slot.name, slot.owner,
                                               self.lease_seconds)
                    if claimed is None:
                        continue
                    slot.assigned += 1
                    slot.assigned_parts += parts
                    handed.append((slot, claimed, parts))
                    views[slot.name] = slot.view(now)
                    rooms[slot.name] = slot.room(now)
                    if len(handed) == room:
                        break
        except BaseException:
            for slot, _, parts in handed:  # rolled back: never claimed
                slot.assigned -= 1
                slot.assigned_parts -= parts
            raise
        for slot, claimed, _ in handed:  # handed over only once the claims are committed
            slot.inbox.put_nowait(claimed)
        return len(handed)

    def _choose(self, message: Any, parts: int, up: list[SimSlot], views: dict[str, SimView],
                rooms: dict[str, int | None]) -> SimSlot | None:
        """Ask the strategy among the SIMs that may carry `message` now."""
        usable = [s for s in up
                  if (not message.sims or s.name in message.sims)
                  and limits_mod.fits(s.limits, rooms[s.name], parts) and s.accepts(message.to)]
        # Failover: keep away from the SIM that failed last, unless it is the only one left.
        others = [s for s in usable if s.name != message.avoid_sim]
        if others:
            usable = others
        chosen = choose_sim(self.strategy, message, [views[s.name] for s in usable], self.state)
        return self.slots[chosen.name] if chosen is not None else None

    def _fail_if_unroutable(self, message: Any) -> None:
        """Fail a message that no configured SIM may ever carry, whatever their state: waiting
        would keep it queued forever without a word."""
        if any((not message.sims or s.name in message.sims) and s.accepts(message.to)
               for s in self.slots.values()):
            return
        named = [n for n in message.sims or () if n in self.slots]
        if message.sims and not named:
            error = (f"no configured SIM is named {', '.join(message.sims)} "
                     f"(configured: {', '.join(self.slots)})")
        else:
            error = (f"{message.to} is not an allowed destination of "
                     f"{'SIM ' + ', '.join(named) if named else 'any SIM'} (allowed prefixes/carriers)")
        if self.spool.fail_queued(message.id, error):
            log.warning("message %s failed: %s", message.id, error)

    def parts_needed(self, message: Any) -> int:
        if message.id not in self._parts_needed:
            from pdu import parts_needed

            if len(self._parts_needed) > 100_000:
                self._parts_needed.clear()
            self._parts_needed[message.id] = parts_needed(message.text).parts
        return self._parts_needed[message.id]

    def _recall(self, to: str) -> str | None:
        recall = getattr(self.spool, "last_sim_for", None)
        return recall(to) if recall is not None else None

    def release_unstarted(self, slot: SimSlot) -> None:
        """Give back a message handed to `slot` that it never started (shutdown, modem gone)."""
        self.record_now()
        while not slot.inbox.empty():
            slot.inbox.get_nowait()
        slot.assigned = slot.assigned_parts = 0
        # Leases of this SIM: unstarted ones go back to the queue as if never claimed.
        self.spool.recover_leases(owner=slot.owner)

    def done(self, slot: SimSlot, message: Any) -> None:
        slot.assigned = max(0, slot.assigned - 1)
        slot.assigned_parts = max(0, slot.assigned_parts - self.parts_needed(message))
        if slot.assigned == 0:
            self.wake.set()

    # -- sending one message ----------------------------------------------------------------
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
            self.spool.mark_failed(message.id, f"cannot encode: {exc}", lease_owner=slot.owner)
            return
        def writing(part: Any) -> None:
            """The driver calls this at the prompt, the moment before the PDU goes out. The SIM's
            previous message is recorded in the same commit: a crash leaves at most one message
            per SIM without its outcome (ambiguous)."""
            lost = None
            with self.spool.batch():
                self.record_now(owner=slot.owner)
                try:
                    self.spool.mark_part_writing(message.id, part.seq, part.total,
                                                 lease_owner=slot.owner)
                except LeaseLost as exc:  # nothing written for it; the record still commits
                    lost = exc
            if lost is not None:
                raise lost

        # A message partly sent by an earlier attempt goes on from its first unsent part (from the
        # same SIM: its requeue bound it there), with the same parts and concatenation reference.
        already = self.spool.sent_parts(message.id) if message.parts_total else set()
        if len(already) == len(parts):
            self.spool.mark_sent(message.id, lease_owner=slot.owner)
            return
        for part in parts:
            if part.seq in already:
                continue
            partly = bool(already) or part.seq > 1
            self.busy_now()
            try:
                refs = await modem.send([part], more_to_follow=part.seq < part.total,
                                        before_pdu=writing)
            except LeaseLost as exc:  # recovered by someone else meanwhile: not ours to send
                mlog.warning("message %s not sent: %s", message.id, exc)
                return
            except SendAmbiguous as exc:
                self._ambiguous(slot, message, f"{slot.name}: {exc}")
                raise ModemTrouble(str(exc)) from exc
            except AtError as exc:
                if exc.error_class is ErrorClass.AMBIGUOUS:
                    self._ambiguous(slot, message, f"{slot.name}: {exc}")
                    raise ModemTrouble(str(exc)) from exc
                if isinstance(exc, (AtTimeout, ModemDisconnected)):
                    # Silent or gone before the PDU: nothing left, and the modem (not the
                    # message) failed. Back to the queue uncounted; the modem is reopened.
                    self.spool.requeue(message.id, f"{slot.name}: {exc}", avoid_sim=slot.name,
                                       only_sim=slot.name if partly else None,
                                       count_attempt=False, lease_owner=slot.owner)
                    raise ModemTrouble(str(exc)) from exc
                # A definite answer (+CMS/+CME ERROR, or refused before the prompt).
                self._failed_part(slot, message, part, len(parts), exc, mlog,
                                  sent=len(already) + sum(p.seq < part.seq and p.seq not in already
                                                          for p in parts))
                return
            except (OSError, ConnectionError) as exc:
                self._ambiguous(slot, message, f"{slot.name}: port failed during send: {exc}")
                raise ModemTrouble(str(exc)) from exc
            self.busy_now()
            reference = refs[0] if refs else None
            now = self.clock()
            slot.counters = limits_mod.count(slot.counters, now)
            if part.seq < part.total:
                self.spool.mark_part_sent(message.id, part.seq, part.reference, reference,
                                          now=now)
                mlog.debug("message %s part %s/%s sent, reference %s", message.id, part.seq,
                           part.total, reference)
        slot.errors_in_row = 0
        self._record_soon(SentPart(message.id, part.seq, part.reference, reference,
                                   lease_owner=slot.owner, now=now), mlog, message.to, len(parts))

    def _record_soon(self, sent: SentPart, mlog: logging.Logger, to: str, parts: int) -> None:
        """Settle a confirmed send in the spool with the others of its burst (within RECORD_MAX).
        A crash before that leaves the message ambiguous, never sent twice."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._unrecorded:
            self._record_deadline = now + RECORD_MAX
        self._unrecorded.append((sent, mlog, to, parts))
        self._record_at = min(now + RECORD_QUIET, self._record_deadline)
        if self._record_timer is None:
            self._record_timer = loop.call_at(self._record_at, self._record_when_quiet)

    def _record_when_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        self._record_timer = None
        if loop.time() < self._record_at:  # more came meanwhile: wait for the burst to end
            self._record_timer = loop.call_at(self._record_at, self._record_when_quiet)
            return
        self.record_now(at_most=RECORDS_PER_COMMIT)
        if self._unrecorded:  # the rest once the modems had their turn
            self._record_timer = loop.call_soon(self._record_when_quiet)

    def record_now(self, *, at_most: int | None = None, owner: str | None = None) -> None:
        """Write the confirmed sends not yet recorded: the first `at_most`, or those of lease
        `owner` (one SIM), or all of them (before leases are released)."""
        if owner is not None:
            pending = [entry for entry in self._unrecorded if entry[0].lease_owner == owner]
            if not pending:
                return
            self._unrecorded = [entry for entry in self._unrecorded if entry not in pending]
        else:
            pending = self._unrecorded[:at_most]
            del self._unrecorded[:len(pending)]
        if not self._unrecorded and self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None
        if not pending:
            return
        try:
            recorded = self.spool.mark_many_sent([sent for sent, *_ in pending])
        except Exception:  # the leases stay: recovery will call them sent or ambiguous
            log.exception("could not record %d sent messages", len(pending))
            return
        for ok, (sent, mlog, to, parts) in zip(recorded, pending):
            mlog.info("message %s to %s sent (%d part%s), reference %s%s", sent.message_id, to,
                      parts, "" if parts == 1 else "s", sent.message_reference,
                      "" if ok else " (its lease had been taken over)")

    def _ambiguous(self, slot: SimSlot, message: Any, why: str) -> None:
        log.warning("message %s is ambiguous: %s", message.id, why)
        self.spool.mark_ambiguous(message.id, why, lease_owner=slot.owner)
        if self.policy.resend_ambiguous:  # the user chose at-least-once over at-most-once
            log.warning("message %s queued again (resend_ambiguous policy)", message.id)
            self.spool.retry(message.id)

    def _failed_part(self, slot: SimSlot, message: Any, part: Any, total: int, exc: Any,
                     mlog: Any, *, sent: int) -> None:
        """A definite refusal of `part` (`sent` of the `total` parts are already out)."""
        from at_commands import ErrorClass

        error = f"{slot.name}: {exc}"
        if sent:
            error = f"partly sent ({sent}/{total} parts), then {error}"
        if exc.error_class is ErrorClass.PERMANENT:
            mlog.info("message %s failed: %s", message.id, exc)
            self.spool.mark_failed(message.id, error, lease_owner=slot.owner)
            return
        self.spool.record_sim_error(slot.name, str(exc))
        if exc.error_class is ErrorClass.SIM_OR_MODEM:
            slot.errors_in_row += 1
        attempts = message.attempts
        if attempts >= self.policy.max_attempts:
            self.spool.mark_failed(message.id, f"{error} (after {attempts} attempts)",
                                   lease_owner=slot.owner)
            return
        if sent:
            # The parts out came from this SIM's number: the phone joins the rest only if they
            # come from it too. Sending all again would repeat them; so the rest waits for it.
            delay = self.policy.delay(attempts) * random.uniform(0.8, 1.2)
            mlog.info("message %s: %s; the other parts from %s in %.0f s", message.id, exc,
                      slot.name, delay)
            self.spool.requeue(message.id, error, self.clock() + timedelta(seconds=delay),
                               only_sim=slot.name, lease_owner=slot.owner)
            return
        others = [s for s in self.slots.values()
                  if s.name != slot.name and s.state is SimState.UP and s.accepts(message.to)
                  and (not message.sims or s.name in message.sims)]
        # Another SIM can take it at once; the same SIM only after a backoff.
        delay = 0.0 if others else self.policy.delay(attempts) * random.uniform(0.8, 1.2)
        mlog.info("message %s: %s; retrying %s", message.id, exc,
                  "on another SIM" if others else f"in {delay:.0f} s")
        self.spool.requeue(message.id, error, self.clock() + timedelta(seconds=delay),
                           avoid_sim=slot.name, lease_owner=slot.owner)

