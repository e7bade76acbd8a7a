"""Giving back what a SIM held but never started (its modem gone, the daemon stopping).

The dispatcher holds one `Releases`: a SIM's unstarted messages go back to the queue as if never
claimed, once the sends it did are recorded. While the database is away the SIM stays pending
(and is handed nothing) until a dispatch round (`settle_pending`) finds the database back. One
whose message another transaction holds (`Recovery.held`) is tried again after a wait, 1 s
doubling to 5 s, not every round: nothing the daemon can see tells when that lock ends, and
each try is a recovery; the wait is bounded, so that message never stays SENDING under the
live lease for long after the lock is gone (rev23 M1, L1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from modempool.dispatch.backlog import WAIT_FIRST, WAIT_MAX
from modempool.dispatch.recording import Recording
from modempool.dispatch.sim_slot import SimSlot
from modempool.dispatch.spool_lane import SpoolLane

# The dispatcher's logger: an operator reads one logger for what the dispatch path did.
log = logging.getLogger("modempool.dispatch.dispatcher")


class Releases:
    """The SIMs whose leases are still to be given back, and the giving back."""

    def __init__(self, spool: Any, lane: SpoolLane, recording: Recording,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spool = spool
        self.lane = lane
        self.recording = recording
        self.clock = clock
        self.pending: set[str] = set()   # names of SIMs whose leases are still to be given back
        # a SIM whose give-back met a held message: when to try again, and the wait after that
        self._held_until: dict[str, tuple[float, float]] = {}

    def holds_back(self, slot: SimSlot) -> bool:
        """Whether `slot` has something still to give back (it is handed nothing until then)."""
        return slot.name in self.pending

    async def release_unstarted(self, slot: SimSlot) -> None:
        """Give back the messages handed to `slot` that it never started (shutdown, modem gone),
        once the sends it did are recorded."""
        while not slot.inbox.empty():
            slot.inbox.get_nowait()
        slot.assigned = slot.assigned_parts = 0
        slot.generation += 1  # claims of a round still in the lane are not handed to it
        self.pending.add(slot.name)
        await self.settle(slot)

    async def settle_pending(self, slots: Mapping[str, SimSlot]) -> None:
        """Try again for every SIM whose giving back the database refused so far (one that met
        a held message once its wait is over), each waiting for its own records only: not for
        the other SIMs' (a dispatch round is not held up by a busy bank's records)."""
        now = self.clock()
        for name in list(self.pending):
            if name not in self._held_until or self._held_until[name][0] <= now:
                await self.settle(slots[name], own_records=True)

    async def settle(self, slot: SimSlot, *, own_records: bool = False) -> None:
        """Record what `slot` sent (and, unless `own_records`, what every SIM sent: a SIM's
        first try, often one of a bank's at the stop), then settle its leases: unstarted
        messages back to the queue as if never claimed. With the database away, or a message
        held by another transaction (`Recovery.held`), it stays to do (and the SIM gets
        nothing) until a dispatch round settles it."""
        try:
            await self.recording.record_now(owner=slot.owner if own_records else None)
            # and a record of this SIM the record timer started during that wait (audit23 F2):
            # else the recovery below met it on the same rows. The SIM sends no more, so this
            # ends.
            while (on_way := self.recording.on_way(slot.owner)) is not None:
                await asyncio.wait([on_way])
            if self.recording.holds(slot.owner):
                return  # not recorded yet: its leases wait for it
            recovery = await self.lane.run(self.spool.recover_leases, owner=slot.owner)
        except Exception as exc:
            log.warning("could not give back what %s held (%s); trying again", slot.name, exc)
            return
        if recovery.held:   # held by another transaction: after a wait
            wait = self._held_until.get(slot.name, (0.0, WAIT_FIRST))[1]
            self._held_until[slot.name] = (self.clock() + wait, min(wait * 2, WAIT_MAX))
            return
        self._held_until.pop(slot.name, None)
        self.pending.discard(slot.name)
