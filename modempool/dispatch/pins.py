"""The driver's memory of refused PINs (`at_commands.PinMemory`), kept in the spool."""

from __future__ import annotations

from typing import Any

from modempool.dispatch.spool_lane import SpoolLane


class SpoolPinMemory:
    """`at_commands.PinMemory` for configured SIM `sim`, over the spool's `refused_pins`, its
    calls in the daemon's `lane` (off the event loop on a database server, spool_lane.py)."""

    def __init__(self, spool: Any, sim: str, lane: SpoolLane | None = None) -> None:
        self.spool = spool
        self.sim = sim
        self.lane = lane or SpoolLane()

    async def pin_refused(self, sim_key: str, pin: str) -> str | None:
        row = await self.lane.run(self.spool.refused_pin, sim_key, pin)
        if row is None:
            return None
        left = row.get("attempts_left")
        return (f"{row.get('reason') or 'refused'} at {row.get('refused_at')}"
                + (f", {left} attempt(s) left" if left is not None else ""))

    async def pin_was_refused(self, sim_key: str, pin: str, reason: str,
                              attempts_left: int | None) -> None:
        await self.lane.run(self.spool.record_refused_pin, sim_key, pin, sim=self.sim,
                            reason=reason, attempts_left=attempts_left)

    async def pin_accepted(self, sim_key: str) -> None:
        await self.lane.run(self.spool.forget_refused_pin, sim_key)
