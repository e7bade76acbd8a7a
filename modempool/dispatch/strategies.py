"""Where a SIM is chosen for a message: one small function per dispatch strategy.

The dispatcher calls ``choose_sim(strategy, message, sims, state)`` with the SIMs that *may* carry
the message (up, not quarantined, under their limits, allowed for this destination). Each candidate
says whether it is busy (already holds as many messages as it takes at once) and how many it holds.
A strategy returns a SIM that is not busy, or ``None`` when the message should wait (no free
candidate, or the SIM it belongs to is busy for now).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from modempool.numbers import carrier_of


class Strategy(str, Enum):
    LEAST_LOADED = "least-loaded"
    ROUND_ROBIN = "round-robin"
    CARRIER_AFFINITY = "carrier-affinity"
    STICKY = "sticky"

    @classmethod
    def parse(cls, name: str | Strategy | None) -> Strategy:
        """The strategy called `name` (underscores or dashes); least-loaded when None."""
        if name is None or name == "":
            return cls.LEAST_LOADED
        if isinstance(name, Strategy):
            return name
        try:
            return cls(str(name).strip().lower().replace("_", "-"))
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown dispatch strategy {name!r} (known: {known})") from None


@dataclass(frozen=True, slots=True)
class SimView:
    """What a strategy may know about one candidate SIM."""

    name: str
    operator: str = ""
    busy: bool = False
    load: int = 0          # SMS sent in the current day: the balance survives restarts
    priority: int = 0      # configured preference: higher is chosen first among equals
    queued: int = 0        # messages already handed to it and not finished
    failures: int = 0      # its last sends failed, this many in a row (of any kind)


@dataclass(slots=True)
class StrategyState:
    """What strategies remember between calls (owned by the dispatcher)."""

    last_round_robin: str | None = None
    sticky: dict[str, str] = field(default_factory=dict)
    # Looks up the SIM a recipient was last served by (from the spool), for sticky after a restart.
    recall: Callable[[str], str | None] | None = None


def _idle(sims: Sequence[SimView]) -> list[SimView]:
    return [sim for sim in sims if not sim.busy]


def _working(sims: Sequence[SimView]) -> list[SimView]:
    """The idle SIMs whose last send did not fail, or all idle ones when every one failed."""
    idle = _idle(sims)
    return [sim for sim in idle if not sim.failures] or idle


def least_loaded(message: Any, sims: Sequence[SimView], state: StrategyState) -> SimView | None:
    """The idle SIM with least in hand and least sent today (configured priority first); one
    whose sends keep failing only when no other is free (its count never rises: it would
    otherwise look least loaded of all)."""
    idle = _idle(sims)
    if not idle:
        return None
    return min(idle, key=lambda sim: (-sim.priority, sim.failures, sim.queued, sim.load, sim.name))


def round_robin(message: Any, sims: Sequence[SimView], state: StrategyState) -> SimView | None:
    """The next idle SIM after the one chosen last time, in name order (failing SIMs skipped
    while another is free)."""
    idle = sorted(_working(sims), key=lambda sim: sim.name)
    if not idle:
        return None
    after = [sim for sim in idle if state.last_round_robin is None or sim.name > state.last_round_robin]
    chosen = (after or idle)[0]
    state.last_round_robin = chosen.name
    return chosen


def carrier_affinity(message: Any, sims: Sequence[SimView], state: StrategyState) -> SimView | None:
    """A SIM of the recipient's carrier where one can take it; otherwise the least loaded.

    If SIMs of the right carrier exist but are all busy, the message waits for one of them.
    """
    carrier = carrier_of(message.to)
    same = [sim for sim in sims if carrier and sim.operator and _same_carrier(sim.operator, carrier)]
    if same:
        return least_loaded(message, same, state)
    return least_loaded(message, sims, state)


def sticky(message: Any, sims: Sequence[SimView], state: StrategyState) -> SimView | None:
    """The SIM this recipient was served by before, so replies thread; a new one if it is gone."""
    name = state.sticky.get(message.to)
    if name is None and state.recall is not None:
        name = state.recall(message.to)
    by_name = {sim.name: sim for sim in sims}
    if name in by_name:
        return None if by_name[name].busy else by_name[name]
    chosen = least_loaded(message, sims, state)
    if chosen is not None:
        state.sticky[message.to] = chosen.name
    return chosen


def _same_carrier(operator: str, carrier: str) -> bool:
    # SIM operator names vary ("CHINA MOBILE", "China Mobile", "CMCC"); compare loosely.
    aliases = {"cmcc": "china mobile", "chn-cmcc": "china mobile", "chn-unicom": "china unicom",
               "cucc": "china unicom", "chn-ct": "china telecom", "ctcc": "china telecom"}
    op = operator.strip().lower()
    op = aliases.get(op, op)
    return op == carrier.strip().lower() or carrier.strip().lower() in op


STRATEGIES: dict[Strategy, Callable[[Any, Sequence[SimView], StrategyState], SimView | None]] = {
    Strategy.LEAST_LOADED: least_loaded,
    Strategy.ROUND_ROBIN: round_robin,
    Strategy.CARRIER_AFFINITY: carrier_affinity,
    Strategy.STICKY: sticky,
}


def choose_sim(strategy: Strategy | str, message: Any, sims: Sequence[SimView],
               state: StrategyState) -> SimView | None:
    """The SIM `message` should go out on now, or None to leave it queued for a while."""
    if not sims:
        return None
    return STRATEGIES[Strategy.parse(strategy)](message, sims, state)
