"""A dispatch round's transaction: what it reads and what it writes in the spool.

The dispatcher (`dispatcher.py`) chooses SIMs on the event loop; these functions run in its
spool lane, inside the round's transaction(s): `read_due` finds the due messages (locked on a
shared spool) and whether the queue is at its end, `write_claims` fails the unsendable, checks
the send-time rules and claims the rest, `give_back_claims` returns claims whose SIM went away.
`Due`, `Plan` and `RoundOutcome` carry a round from one step to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modempool.dispatch.shared import is_shared
from modempool.dispatch.sim_slot import PREFETCH, SimSlot


@dataclass(slots=True)
class Due:
    """What a round's transaction found due: the messages (locked on a shared spool), the SIMs
    that last sent to their recipients (sticky), whether the queue is at its end (QUEUE_END),
    and the SIMs up on the spool when it was asked (None: not this round)."""

    candidates: list[Any]
    recalled: dict[str, str | None]
    queue_end: bool
    sims_up: int | None = None
    held_elsewhere: bool = False   # more due than read: another daemon's round holds them


@dataclass(slots=True)
class Plan:
    """A round's choices, made on the loop: (SIM, message, its parts, the SIM's generation)
    for each message to claim, reserved in the SIM's hands; the messages no SIM can ever send,
    with why."""

    planned: list[tuple[SimSlot, Any, int, int]] = field(default_factory=list)
    unsendable: list[tuple[Any, str]] = field(default_factory=list)


@dataclass(slots=True)
class RoundOutcome:
    """What a round's transaction did with its plan: for each unsendable message whether it
    failed now, for each planned one the claimed message (None: refused, or taken meanwhile)
    and the reason it was cancelled for (None: not cancelled by this round)."""

    plan: Plan
    failed: list[bool] = field(default_factory=list)
    claimed: list[Any] = field(default_factory=list)
    refusals: list[str | None] = field(default_factory=list)
    held_elsewhere: bool = False   # due messages another daemon's round held locked (Due)


def read_due(spool: Any, now: datetime, limit: int, expire: bool, sims: tuple[int, int],
             recalled_sims: Callable[[list[Any]], dict[str, str | None]]) -> Due:
    """In a round's transaction: the expired settled, the due messages (locked on a shared
    spool), for the sticky strategy the SIMs that last sent to their recipients
    (`recalled_sims`), and whether the queue is at its end (QUEUE_END: no more due than SIMs
    up, and too few with those in hand for every SIM to hold as many as it may; `sims`: this
    daemon's, and every daemon's as last read; counted without locks, so that rows another
    daemon's round holds count too, and a round locks no more rows for it). Once a second (with
    `expire`) on a shared spool, every daemon's SIMs up are read again."""
    own, every = sims
    sims_up = None
    if expire:
        spool.expire_due(now)
        if is_shared(spool):
            every = sims_up = spool.sims_up()
    up = max(own, every)
    candidates = list(spool.dispatchable(now, limit=limit, lock=True))
    due, in_hand = len(candidates), None
    if due <= up:
        due, in_hand = spool.due_and_in_hand(now, up + 1, PREFETCH * up)
    # fewer read than the LIMIT allowed, yet more due: the rest are locked by another round
    held = len(candidates) < limit and due > len(candidates)
    # the end: no more due than SIMs up, and not enough for every SIM to hold as many as it may
    # (those in hands counted: once each SIM has one on the air, `up` due are one ahead each)
    queue_end = in_hand is not None and due <= up and due + in_hand < PREFETCH * up
    return Due(candidates, recalled_sims(candidates), queue_end, sims_up, held_elsewhere=held)


def write_claims(spool: Any, plan: Plan,
                 refusals: Callable[[Sequence[Any]], list[str | None]] | None,
                 lease_seconds: float) -> RoundOutcome:
    """In a round's transaction: the plan's unsendable failed, the send-time rules (`refusals`)
    checked (one query for the round) and its messages claimed (one statement)."""
    outcome = RoundOutcome(plan)
    for message, error in plan.unsendable:
        outcome.failed.append(spool.fail_queued(message.id, error))
    messages = [message for _, message, _, _ in plan.planned]
    reasons = refusals(messages) if refusals is not None and messages else (
        [None] * len(messages))
    for message, reason in zip(messages, reasons):
        if reason is not None:
            cancelled = spool.cancel_queued(message.id, reason)
            outcome.refusals.append(reason if cancelled else None)
        else:
            outcome.refusals.append(None)
    claimed = iter(spool.claim_many(
        [(message.id, slot.name, slot.owner)
         for (slot, message, _, _), reason in zip(plan.planned, reasons) if reason is None],
        lease_seconds))
    outcome.claimed = [None if reason is not None else next(claimed) for reason in reasons]
    return outcome


def give_back_claims(spool: Any, claims: list[tuple[int, str]]) -> None:
    """Claims (message id, lease owner) made for a SIM that went away meanwhile: back to the
    queue, untouched (no attempt counted), in one transaction."""
    with spool.batch():
        for message_id, owner in claims:
            spool.requeue(message_id, None, count_attempt=False, lease_owner=owner)
