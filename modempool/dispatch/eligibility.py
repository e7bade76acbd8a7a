"""Which SIMs may carry a message: now (for the strategy to choose among), and ever.

The dispatcher's plan (`dispatcher.py`) asks `may_carry_now` for the candidates it hands to
`strategies.choose_sim`, and `unroutable` when none was chosen: a message that no configured
SIM may ever carry fails at once with the reason, instead of waiting in the queue forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modempool.dispatch import limits as limits_mod
from modempool.dispatch.sim_slot import SimSlot


def allowed(slot: SimSlot, message: Any) -> bool:
    """Whether `message` may go out on `slot` at all: named by it (or naming none), and its
    destination among the SIM's allowed prefixes and carriers."""
    return (not message.sims or slot.name in message.sims) and slot.accepts(message.to)


def may_carry_now(message: Any, parts: int, up: Iterable[SimSlot],
                  rooms: Mapping[str, int | None]) -> list[SimSlot]:
    """The SIMs of `up` that may carry `message` (of `parts` parts) now: allowed, and under
    their limits (`rooms`, by name). Failover: not the SIM that failed it last, unless that is
    the only one left."""
    usable = [s for s in up
              if allowed(s, message) and limits_mod.fits(s.limits, rooms[s.name], parts)]
    others = [s for s in usable if s.name != message.avoid_sim]
    return others or usable


def unroutable(message: Any, slots: Mapping[str, SimSlot], *, shared: bool) -> str | None:
    """Why none of the configured `slots` may ever carry `message`, whatever their state (it
    then fails: waiting would keep it queued forever without a word); None if one may. Never
    on a spool `shared` with daemons on other hosts: their SIMs may carry it."""
    if shared or any(allowed(s, message) for s in slots.values()):
        return None
    named = [n for n in message.sims or () if n in slots]
    if message.sims and not named:
        return (f"no configured SIM is named {', '.join(message.sims)} "
                f"(configured: {', '.join(slots)})")
    return (f"{message.to} is not an allowed destination of "
            f"{'SIM ' + ', '.join(named) if named else 'any SIM'} (allowed prefixes/carriers)")
