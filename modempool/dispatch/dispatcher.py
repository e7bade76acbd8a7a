"""The dispatcher: gives queued messages to SIMs (which SIM takes which message, and when).

One `Dispatcher.run()` loop looks at the queue whenever a SIM becomes free (or every
`poll_interval`, to see messages enqueued by other processes), asks `strategies.choose_sim` for a
SIM among those that are up, under their limits and allowed for the destination, claims the
message with a lease and hands it to that SIM's task (a SIM holds up to PREFETCH messages: the
one on the air and the next, so a modem never waits for the dispatcher). Each modem task (see
`daemon.py`) then calls `send_message` (`sending.py`: the sending rule, retries and failover).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from modempool.config import Config
from modempool.dispatch import limits as limits_mod
from modempool.dispatch.sending import SendingMixin
from modempool.dispatch.sim_slot import PREFETCH, SimSlot
from modempool.spool.claims import SentPart
from modempool.dispatch.strategies import SimView, Strategy, StrategyState, choose_sim

log = logging.getLogger("modempool.dispatch.dispatcher")


# Claims per dispatch round (beyond one per idle SIM): the modems are served between rounds.
CLAIMS_PER_ROUND = 8

# The next message is needed only when the one on the air is answered (seconds away), so its
# claim waits for a moment when no modem is between its answer and its next PDU (PREFETCH_QUIET
# seconds without one), for at most PREFETCH_PATIENCE: claims never stand in a burst of answers.
# A SIM with nothing in hand is served at once.
PREFETCH_QUIET = 0.005
PREFETCH_PATIENCE = 0.25


def is_quiet(config: Config, now: datetime) -> bool:
    """Whether `now` falls in the configured quiet period (messages flagged quiet_hours wait)."""
    return config.is_quiet(now)


class Dispatcher(SendingMixin):
    """Chooses a SIM for each queued message and claims it; sends on behalf of modem tasks."""

    def __init__(self, spool: Any, config: Config, *, owner: str, slots: list[SimSlot],
                 clock: Callable[[], datetime] | None = None,
                 poll_interval: float = 0.2,
                 refusal: Callable[[Any], str | None] | None = None) -> None:
        self.spool = spool
        self.config = config
        self.owner = owner
        self.slots = {slot.name: slot for slot in slots}
        for slot in slots:
            slot.owner = f"{owner}/{slot.name}"
        # Local windows (quotas, quiet hours) in the configured time zone, else the system's.
        tz = config.tz or timezone.utc
        self.clock = clock or (lambda: datetime.now(tz))
        self.poll_interval = poll_interval
        # Rules checked again as a message is claimed (opt-outs, blacklist): a reason cancels it.
        self.refusal = refusal
        self.lease_seconds = config.lease_seconds
        self.strategy = Strategy.parse(config.strategy)
        self.policy = config.retry
        self.state = StrategyState(recall=self._recall)
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.shared = False  # other daemons, with other SIMs, send from the same queue
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
            if not any(s.in_rotation and s.assigned == 0 for s in self.slots.values()):
                await self.quiet_moment(PREFETCH_PATIENCE)
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

    async def quiet_moment(self, patience: float) -> None:
        """Until no modem is between an answer and its next PDU (or `patience` seconds)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + patience
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
        free = [s for s in self.slots.values() if s.in_rotation and not s.busy]
        room = sum(PREFETCH - s.assigned for s in free)
        if at_most is not None:  # but a SIM with nothing in hand is never kept waiting
            room = min(room, max(at_most, sum(s.assigned == 0 for s in free)))
        if not free or self.stopping.is_set():
            return 0
        up = [s for s in self.slots.values() if s.in_rotation]
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
                    parts = self.parts_or_fail(message)
                    if parts is None or self._refused(message):
                        continue
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
        would keep it queued forever without a word. Not on a spool shared with daemons on
        other hosts (`shared`): their SIMs may carry it."""
        if self.shared or any((not message.sims or s.name in message.sims) and s.accepts(message.to)
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

    def _refused(self, message: Any) -> bool:
        """Whether a send-time rule refuses `message` now; if so it is cancelled with the reason
        (in this round's transaction, so the check and the claim see the same lists)."""
        reason = self.refusal(message) if self.refusal is not None else None
        if reason is None:
            return False
        if self.spool.cancel_queued(message.id, reason):
            log.info("message %s to %s cancelled: %s", message.id, message.to, reason)
        return True

    def parts_or_fail(self, message: Any) -> int | None:
        """The parts `message` needs; None, and the message failed with the codec's reason, if
        it cannot be sent at all (text queued before enqueue checked it, or by another tool):
        one such message fails alone and never stops the messages behind it."""
        from pdu import PduError

        try:
            return self.parts_needed(message)
        except (PduError, ValueError) as exc:
            error = f"cannot be sent: {exc}"
            if self.spool.fail_queued(message.id, error):
                log.warning("message %s failed: %s", message.id, error)
            return None

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

    def count_proven(self, sim: str) -> None:
        """A delivery report proved that an ambiguous SMS of `sim` went out: it counts."""
        slot = self.slots.get(sim)
        if slot is not None:
            slot.counters = limits_mod.count(slot.counters, self.clock())

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
