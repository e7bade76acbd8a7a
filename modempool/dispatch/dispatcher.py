"""The dispatcher: gives queued messages to SIMs (which SIM takes which message, and when).

One `Dispatcher.run()` loop looks at the queue whenever a SIM becomes free (or every
`poll_interval`, to see messages enqueued by other processes), asks `strategies.choose_sim` for a
SIM among those that may carry the message now (`eligibility.py`; the round's plan, on the loop:
`round_plan.py`), claims the message with a lease in the round's transaction (`claim_round.py`)
and hands it to that SIM's task (a SIM holds up to PREFETCH messages: the one on the air and the
next, so a modem never waits for the dispatcher; at the queue's end only one, QUEUE_END). What a
SIM never started goes back to the queue through `releases.py`. Each modem task (see
`modem_task.py`) then calls `send_message` (`sending.py`: the sending rule, retries and
failover).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from modempool.config import Config
from modempool.dispatch import limits as limits_mod
from modempool.dispatch.claim_round import (Due, Plan, RoundOutcome, give_back_claims,
                                            read_due, write_claims)
from modempool.dispatch.events import first_set
from modempool.dispatch.round_plan import PlanningMixin
from modempool.dispatch.sending import SendingMixin
from modempool.dispatch.shared import is_shared
from modempool.dispatch.sim_slot import SimSlot
from modempool.dispatch.recording import Recording
from modempool.dispatch.releases import Releases
from modempool.dispatch.spool_lane import SpoolLane
from modempool.dispatch.strategies import Strategy, StrategyState
from modempool.spool.unavailable import log_failure

log = logging.getLogger("modempool.dispatch.dispatcher")


# Claims per dispatch round (beyond one per idle SIM): a round is a few statements whatever
# its size (`_claims`), and the loop is held only while it chooses the SIMs.
CLAIMS_PER_ROUND = 32

# The next message is needed only when the one on the air is answered (seconds away), so its
# claim waits for a moment when no modem is between its answer and its next PDU (none waits
# for its part marker's commit, and none began a part in the last PREFETCH_QUIET seconds), for
# at most PREFETCH_PATIENCE: claims never stand in a burst of answers, where their round would
# take a lane's thread and the loop's time from the modems' markers. A SIM with nothing in
# hand is served at once.
PREFETCH_QUIET = 0.005
PREFETCH_PATIENCE = 0.5

# A SIM with nothing in hand whose round found the due messages held by another daemon's round
# (locked until that round commits) asks again after HELD_ELSEWHERE_AGAIN seconds, not after
# the poll interval: at the queue's end that round takes only what its own free SIMs need.
HELD_ELSEWHERE_AGAIN = 0.02

# QUEUE_END: at the queue's end, a second message in a SIM's hands is one that another SIM,
# free sooner (of this daemon or of another on the shared queue), will not send: that SIM idles
# while this one sends it a whole SMS later. So a SIM takes its next message ahead only while
# every SIM up may still hold as many as it may (PREFETCH): more messages due than SIMs up, or
# the due and those SIMs hold (claimed, every daemon's, lease running) at least PREFETCH a SIM
# (SIMs up: this daemon's, and on a shared spool every daemon's, as its `sims` table says, read
# once a second); past that, the last ones go to SIMs with nothing in hand, first free first
# served (measured: 2 x 32 modems at 1 s, modems with 31 messages beside modems with 29 made a
# run 1.1 s longer, 3 points of its fraction of the ideal). The held count lets the last round
# (as many due as SIMs, each SIM with one on the air) be taken ahead like every other: without
# it each SIM claimed its last message after its answer, the worst gaps of a run.


class Dispatcher(PlanningMixin, SendingMixin):
    """Chooses a SIM for each queued message and claims it; sends on behalf of modem tasks."""

    def __init__(self, spool: Any, config: Config, *, owner: str, slots: list[SimSlot],
                 clock: Callable[[], datetime] | None = None,
                 poll_interval: float = 0.2,
                 refusals: Callable[[Sequence[Any]], list[str | None]] | None = None,
                 lane: SpoolLane | None = None) -> None:
        self.spool = spool
        # Every spool call of the dispatch path, in order (off the loop on a database server).
        self.lane = lane or SpoolLane()
        # What the sends write around each PDU: part markers, records of confirmed messages.
        self.recording = Recording(spool, self.lane)
        # SIMs whose unstarted messages are still to go back to the queue (modem gone, stop).
        self.releases = Releases(spool, self.lane, self.recording)
        self.config = config
        self.owner = owner
        self.slots = {slot.name: slot for slot in slots}
        for slot in slots:
            slot.owner = f"{owner}/{slot.name}"
        # Local windows (quotas, quiet hours) in the configured time zone, else the system's.
        tz = config.tz or timezone.utc
        self.clock = clock or (lambda: datetime.now(tz))
        self.poll_interval = poll_interval
        # Rules checked again as messages are claimed (opt-outs, blacklist): a reason cancels one.
        self.refusals = refusals
        self.lease_seconds = config.lease_seconds
        self.strategy = Strategy.parse(config.strategy)
        self.policy = config.retry
        self.state = StrategyState(recall=self._recall)
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.shared = False  # other daemons, with other SIMs, send from the same queue
        self._parts_needed: dict[int, int] = {}
        self._plan_made: Plan | None = None  # the current round's, until it is handed over
        self._recalled: dict[str, str | None] = {}  # the round's recipients' last SIMs (sticky)
        self._last_expiry = 0.0
        self._busy_until = 0.0
        self._unmarked = 0  # parts waiting for their marker's commit (their PDU not yet out)
        self._all_marked = asyncio.Event()
        self._all_marked.set()
        self._sim_free = asyncio.Event()   # a SIM was left with nothing in hand (`done`)
        self._sims_up = 0   # every daemon's SIMs up on a shared spool (QUEUE_END)
        self._held_elsewhere = False   # the last round found due messages another round held

    # -- the assignment loop ----------------------------------------------------------------
    async def run(self) -> None:
        """Assign messages to free SIMs until `stop()`."""
        while not self.stopping.is_set():
            self.wake.clear()
            self._sim_free.clear()
            if not any(s.in_rotation and s.assigned == 0 for s in self.slots.values()):
                # claims ahead wait for a quiet moment, a SIM left with nothing does not
                await self.quiet_moment(PREFETCH_PATIENCE, unless=self._sim_free)
            try:
                handed = await self.dispatch_once(at_most=CLAIMS_PER_ROUND)
            except Exception as exc:  # a locked database or a bad row must not stop the pool
                log_failure(log, "dispatch round failed", exc)  # the database away: one line
                handed = 0
            if handed >= CLAIMS_PER_ROUND:  # maybe more to hand: after the modems had their turn
                await asyncio.sleep(0)
                continue
            wait = self.poll_interval
            if self._held_elsewhere and any(s.in_rotation and s.assigned == 0
                                            for s in self.slots.values()):
                wait = HELD_ELSEWHERE_AGAIN
            try:
                async with asyncio.timeout(wait):
                    await self.wake.wait()
            except TimeoutError:
                pass

    def busy_now(self) -> None:
        """A modem is between an answer and its next PDU: claims for later can wait."""
        self._busy_until = asyncio.get_running_loop().time() + PREFETCH_QUIET

    def marking(self, marker: asyncio.Future[Any]) -> None:
        """A part waits for `marker` (its commit) before its PDU goes out: claims for later
        wait for it too."""
        self._unmarked += 1
        self._all_marked.clear()

        def marked(_: asyncio.Future[Any]) -> None:
            self._unmarked -= 1
            if not self._unmarked:
                self._all_marked.set()
            self.busy_now()   # and a moment more, for its PDU to go out

        marker.add_done_callback(marked)

    async def quiet_moment(self, patience: float, *, unless: asyncio.Event | None = None) -> None:
        """Until no modem is between an answer and its next PDU (or `patience` seconds, or
        the dispatcher stops: a stopping daemon is not held up by it; or `unless` is set)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + patience
        cut_short = (self.stopping,) + ((unless,) if unless is not None else ())
        while (now := loop.time()) < give_up and not any(e.is_set() for e in cut_short):
            if not self._all_marked.is_set():   # a part waits for its marker's commit
                await first_set(self._all_marked, *cut_short, timeout=give_up - now)
            elif now < self._busy_until:   # a PDU about to go out
                await first_set(*cut_short, timeout=min(self._busy_until, give_up) - now)
            else:
                return

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def dispatch_once(self, *, at_most: int | None = None) -> int:
        """One round: hand as many due messages as free SIMs take, up to `at_most` (or one for
        each SIM with none in hand, if more); returns how many.

        The spool lane reads the due messages (on a shared spool locking them, skipping those
        another daemon is claiming), has the SIMs chosen for them on the loop (where the SIMs'
        state lives), checks each against the send-time rules (opt-outs, blacklist) and claims
        it: in one transaction on a shared spool, in two on SQLite (`_claim_round_apart`)."""
        now = self.clock()
        loop_time = asyncio.get_running_loop().time()
        expire = loop_time - self._last_expiry >= 1.0
        if expire:
            self._last_expiry = loop_time
        await self.releases.settle_pending(self.slots)
        room = self._room(at_most)
        if not room or self.stopping.is_set():
            if expire:
                await self.lane.run(self.spool.expire_due, now)
            return 0
        self._plan_made = None
        sims = (len(self._usable()), self._sims_up)   # this daemon's, every daemon's (last read)
        try:
            if is_shared(self.spool):
                outcome = await self.lane.run(self._claim_round, now, 2 * room + 16, expire,
                                              at_most, sims)
            else:
                outcome = await self._claim_round_apart(now, 2 * room + 16, expire, at_most,
                                                        sims)
        except BaseException:
            if self._plan_made is not None:  # rolled back (or never known): nothing handed
                for slot, _, parts, generation in self._plan_made.planned:
                    if slot.generation == generation:
                        self._unreserve(slot, parts)
            raise
        self._held_elsewhere = outcome.held_elsewhere
        handed = await self._hand_over(outcome)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("dispatch round: %d of %d planned handed over in %.1f ms", handed,
                      len(outcome.plan.planned),
                      1000 * (asyncio.get_running_loop().time() - loop_time))
        return handed

    def _claim_round(self, now: datetime, limit: int, expire: bool,
                     at_most: int | None, sims: tuple[int, int]) -> RoundOutcome:
        """In the lane, one transaction (a shared spool): the due messages, locked so that no
        other daemon takes them meanwhile, the loop's choice of SIMs for them, the unsendable
        failed, the send-time rules checked and the claims (so that the rules and the claims
        see the same lists)."""
        with self.spool.batch():
            due = read_due(self.spool, now, limit, expire, sims, self._recalled_sims)
            plan = self.lane.on_loop(self._plan, due, now, at_most) if due.candidates else Plan()
            return replace(self._claims(plan), held_elsewhere=due.held_elsewhere)

    async def _claim_round_apart(self, now: datetime, limit: int, expire: bool,
                                 at_most: int | None, sims: tuple[int, int]) -> RoundOutcome:
        """The same round on SQLite, in two transactions with the choice of SIMs on the loop
        between them. The spool has one connection there: a transaction that waited for the
        loop would hold it while something on the loop (a status read, a test's check) waited
        for it, and neither would ever go on. Nothing is lost by the split: one daemon claims
        from an SQLite spool, each claim is conditional (a message cancelled or changed
        meanwhile is not claimed, and its SIM's place is given back), and the send-time rules
        are checked in the claims' transaction."""
        due = await self.lane.run(self._due_apart, now, limit, expire, sims)
        plan = self._plan(due, now, at_most) if due.candidates else Plan()
        return await self.lane.run(self._claims_apart, plan)

    def _due_apart(self, now: datetime, limit: int, expire: bool, sims: tuple[int, int]) -> Due:
        with self.spool.batch():
            return read_due(self.spool, now, limit, expire, sims, self._recalled_sims)

    def _claims_apart(self, plan: Plan) -> RoundOutcome:
        with self.spool.batch():
            return self._claims(plan)

    def _claims(self, plan: Plan) -> RoundOutcome:
        """In a round's transaction: the plan written (`claim_round.write_claims`)."""
        return write_claims(self.spool, plan, self.refusals, self.lease_seconds)

    async def _hand_over(self, outcome: RoundOutcome) -> int:
        """Give the round's claimed messages to their SIMs; returns how many."""
        for (message, error), failed in zip(outcome.plan.unsendable, outcome.failed):
            if failed:
                log.warning("message %s failed: %s", message.id, error)
        handed, back = 0, []
        for (slot, message, parts, generation), claimed, refusal in zip(
                outcome.plan.planned, outcome.claimed, outcome.refusals):
            if refusal is not None:
                log.info("message %s to %s cancelled: %s", message.id, message.to, refusal)
            if slot.generation != generation:  # the SIM gave back what it held meanwhile
                if claimed is not None:
                    back.append((claimed.id, slot.owner))
                continue
            if claimed is None or not slot.in_rotation:
                self._unreserve(slot, parts)
                if claimed is not None:
                    back.append((claimed.id, slot.owner))
                continue
            slot.inbox.put_nowait(claimed)  # handed over only once the claims are committed
            handed += 1
        if back:  # claimed for a SIM that went away meanwhile: back to the queue, untouched
            await self.lane.run(give_back_claims, self.spool, back)
        return handed

    def _recalled_sims(self, candidates: list[Any]) -> dict[str, str | None]:
        """In the lane, for the sticky strategy: the SIM that last sent to each recipient of
        `candidates` whom this daemon has not served yet (the plan, on the loop, asks no
        database)."""
        if self.strategy is not Strategy.STICKY:
            return {}
        recipients = {message.to for message in candidates} - self.state.sticky.keys()
        return self.spool.last_sims_for(sorted(recipients))   # one query, whatever the round

    def _recall(self, to: str) -> str | None:
        """The SIM that last sent to `to`, as the round's lane read it (`_recalled_sims`)."""
        return self._recalled.get(to)

    def count_proven(self, sim: str) -> None:
        """A delivery report proved that an ambiguous SMS of `sim` went out: it counts."""
        slot = self.slots.get(sim)
        if slot is not None:
            slot.counters = limits_mod.count(slot.counters, self.clock())

    async def release_unstarted(self, slot: SimSlot) -> None:
        """Give back the messages handed to `slot` that it never started (`Releases`)."""
        await self.releases.release_unstarted(slot)

    def done(self, slot: SimSlot, message: Any) -> None:
        slot.assigned = max(0, slot.assigned - 1)
        slot.assigned_parts = max(0, slot.assigned_parts - self.parts_needed(message))
        if slot.assigned == 0:
            self.wake.set()
            self._sim_free.set()
