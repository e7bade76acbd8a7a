"""Giving back what a SIM held but never started (its modem gone, the daemon stopping).

The dispatcher holds one `Releases`: a SIM's unstarted messages go back to the queue as if never
claimed, once the sends it did are recorded. While the database is away the SIM stays pending
(and is handed nothing) until a dispatch round (`settle_pending`) finds the database back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from modempool.dispatch.recording import Recording
from modempool.dispatch.sim_slot import SimSlot
from modempool.dispatch.spool_lane import SpoolLane

# The dispatcher's logger: an operator reads one logger for what the dispatch path did.
log = logging.getLogger("modempool.dispatch.dispatcher")


class Releases:
    """The SIMs whose leases are still to be given back, and the giving back."""

    def __init__(self, spool: Any, lane: SpoolLane, recording: Recording) -> None:
        self.spool = spool
        self.lane = lane
        self.recording = recording
        self.pending: set[str] = set()   # names of SIMs whose leases are still to be given back

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
        """Try again for every SIM whose giving back the database refused so far."""
        for name in list(self.pending):
            await self.settle(slots[name])

    async def settle(self, slot: SimSlot) -> None:
        """Record what `slot` sent, then settle its leases: unstarted messages back to the queue
        as if never claimed. With the database away, or a message's part held by another
        transaction (`Recovery.held`), it stays to do (and the SIM gets nothing) until a
        dispatch round settles it."""
        try:
            await self.recording.record_now()
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
        if recovery.held:   # a part being written by another transaction: the next round
            return
        self.pending.discard(slot.name)
