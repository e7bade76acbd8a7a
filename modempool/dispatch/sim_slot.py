"""One SIM (one modem port) as the dispatcher sees it: its state, limits, destinations and what
it holds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from modempool.dispatch import limits as limits_mod
from modempool.dispatch.limits import Counters, Limits
from modempool.numbers import carrier_of
from modempool.dispatch.strategies import SimView

NO_LIMITS = Limits()

# Messages a SIM holds at once: the one it sends and the next, claimed while the first is on
# the air, so that a modem never waits for the dispatcher between two messages (not at the
# queue's end: dispatcher.QUEUE_END).
PREFETCH = 2


class SimState(str, Enum):
    STARTING = "starting"
    UP = "up"
    QUARANTINED = "quarantined"
    LOCKED = "locked"               # the SIM refused its PIN or wants its PUK: a person must act
    DOWN = "down"
    STANDBY = "standby"             # its card not its own (yet): see cards.py
    STOPPED = "stopped"


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
    errors_in_row: int = 0          # failed sends in a row, of any class (quarantine, strategies)
    last_failure: str = ""          # what its last failed send said
    next_send_at: float = 0.0       # loop time before which the per-minute pace holds it back
    owner: str = ""                 # lease owner of the messages this SIM holds
    assigned: int = 0               # messages handed to it and not finished
    assigned_parts: int = 0         # their SMS, counted against the limits in advance
    inbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=PREFETCH))
    no_credit: bool = False         # its balance says it cannot pay: out of rotation until topped up
    generation: int = 0             # counts the times it gave back what it held

    @property
    def in_rotation(self) -> bool:
        """Up, and with credit: the dispatcher may hand it messages."""
        return self.state is SimState.UP and not self.no_credit

    @property
    def busy(self) -> bool:
        return self.assigned >= PREFETCH

    def view(self, now: datetime) -> SimView:
        today = limits_mod.current(self.counters, now).sent_today
        return SimView(self.name, self.operator, self.busy, today, self.priority, self.assigned,
                       self.errors_in_row)

    def pace_wait(self, loop_now: float) -> float:
        """Seconds before this SIM may start its next message (per-minute pacing)."""
        return max(0.0, self.next_send_at - loop_now)

    def paced(self, loop_now: float, parts: int) -> None:
        """A message of `parts` SMS starts now: hold the next one back by its share of a minute."""
        gap = limits_mod.spacing(self.limits, parts)
        if gap:
            self.next_send_at = max(loop_now, self.next_send_at) + gap

    def room(self, now: datetime) -> int | None:
        """SMS the SIM's limits still allow after those it holds (None: unlimited)."""
        if self.limits == NO_LIMITS:
            return None
        room = limits_mod.headroom(self.limits, self.counters, now)
        return None if room is None else room - self.assigned_parts

    def may_send(self, now: datetime, parts: int = 1) -> bool:
        """Whether its limits leave room for `parts` more SMS now, after those it holds."""
        return limits_mod.fits(self.limits, self.room(now), parts)

    def sent_outside_queue(self, now: datetime, loop_now: float, parts: int = 1) -> None:
        """`parts` SMS the daemon sent itself (a balance query): counted against the limits
        and the per-minute pace like a queued message's."""
        self.counters = limits_mod.count(self.counters, now, parts)
        self.paced(loop_now, parts)

    def accepts(self, to: str) -> bool:
        """Whether this SIM may send to `to` (allowed prefixes and carriers from the config)."""
        if self.allow and not any(to.startswith(prefix) for prefix in self.allow):
            return False
        if self.carriers:
            carrier = carrier_of(to).lower()
            return any(carrier == wanted.strip().lower() for wanted in self.carriers)
        return True
