"""A dispatch round's plan, made on the loop: which SIM takes each due message (as many as the
free SIMs take now), and which messages no SIM can ever send. Mixed into `Dispatcher`
(`dispatcher.py`), whose round reads the due messages in its lane (`claim_round.read_due`) and
writes the plan's claims there; the plan itself asks no database.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from modempool.config import Config
from modempool.dispatch.claim_round import Due, Plan
from modempool.dispatch.eligibility import may_carry_now, unroutable
from modempool.dispatch.releases import Releases
from modempool.dispatch.sim_slot import PREFETCH, SimSlot
from modempool.dispatch.strategies import SimView, Strategy, StrategyState, choose_sim


def is_quiet(config: Config, now: datetime) -> bool:
    """Whether `now` falls in the configured quiet period (messages flagged quiet_hours wait)."""
    return config.is_quiet(now)


class PlanningMixin:
    """The round's plan (mixed into `Dispatcher`, whose attributes these are)."""

    slots: dict[str, SimSlot]
    releases: Releases
    config: Config
    strategy: Strategy
    state: StrategyState
    shared: bool
    _parts_needed: dict[int, int]
    _plan_made: Plan | None
    _recalled: dict[str, str | None]
    _sims_up: int

    def _usable(self) -> list[SimSlot]:
        """SIMs that may be handed messages: in rotation, with nothing of theirs to give back."""
        return [s for s in self.slots.values()
                if s.in_rotation and not self.releases.holds_back(s)]

    def _room(self, at_most: int | None) -> int:
        """Messages the free SIMs take now (at most `at_most`, but one for each SIM with none)."""
        free = [s for s in self._usable() if not s.busy]
        room = sum(PREFETCH - s.assigned for s in free)
        if at_most is not None:  # but a SIM with nothing in hand is never kept waiting
            room = min(room, max(at_most, sum(s.assigned == 0 for s in free)))
        return room

    def _plan(self, due: Due, now: datetime, at_most: int | None) -> Plan:
        """On the loop: choose a SIM for each due message (as many as the free SIMs take now),
        reserving its place in the SIM's hands; and the messages that no SIM can ever send,
        with the reason."""
        self._recalled = due.recalled
        if due.sims_up is not None:
            self._sims_up = due.sims_up
        candidates, queue_end = due.candidates, due.queue_end
        room = self._room(at_most)
        up = self._usable()
        # At the queue's end (QUEUE_END above) a SIM with a message in hand takes no other: it
        # looks busy to the strategy (a sticky recipient's message waits for its SIM).

        def view(slot: SimSlot) -> SimView:
            seen = slot.view(now)
            return replace(seen, busy=True) if queue_end and slot.assigned else seen

        # What each SIM looks like this round (its view and its room under the limits).
        views = {s.name: view(s) for s in up}
        rooms = {s.name: s.room(now) for s in up}
        quiet = is_quiet(self.config, now)
        plan = self._plan_made = Plan()
        for message in candidates:
            if len(plan.planned) >= room or self.stopping.is_set():
                break
            if message.quiet_hours and quiet:
                continue
            parts = self.parts_or_reason(message)
            if isinstance(parts, str):
                plan.unsendable.append((message, parts))
                continue
            slot = self._choose(message, parts, up, views, rooms)
            if slot is None:
                error = unroutable(message, self.slots, shared=self.shared)
                if error is not None:
                    plan.unsendable.append((message, error))
                continue
            slot.assigned += 1
            slot.assigned_parts += parts
            plan.planned.append((slot, message, parts, slot.generation))
            views[slot.name] = view(slot)
            rooms[slot.name] = slot.room(now)
        return plan

    @staticmethod
    def _unreserve(slot: SimSlot, parts: int) -> None:
        slot.assigned -= 1
        slot.assigned_parts -= parts

    def _choose(self, message: Any, parts: int, up: list[SimSlot], views: dict[str, SimView],
                rooms: dict[str, int | None]) -> SimSlot | None:
        """Ask the strategy among the SIMs that may carry `message` now (`eligibility`)."""
        usable = may_carry_now(message, parts, up, rooms)
        chosen = choose_sim(self.strategy, message, [views[s.name] for s in usable], self.state)
        return self.slots[chosen.name] if chosen is not None else None

    def parts_or_reason(self, message: Any) -> int | str:
        """The parts `message` needs; or, if it cannot be sent at all (text queued before
        enqueue checked it, or by another tool), the codec's reason, for which it fails alone
        and never stops the messages behind it."""
        from pdu import PduError

        try:
            return self.parts_needed(message)
        except (PduError, ValueError) as exc:
            return f"cannot be sent: {exc}"

    def parts_needed(self, message: Any) -> int:
        if message.id not in self._parts_needed:
            from pdu import parts_needed

            if len(self._parts_needed) > 100_000:
                self._parts_needed.clear()
            self._parts_needed[message.id] = parts_needed(message.text).parts
        return self._parts_needed[message.id]
