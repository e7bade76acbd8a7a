"""The pool's sending part: every rule checked before anything is queued, for every front
end (numbers normalised, SIM names checked, times read as people type them, blacklisted and,
with `[optout] block_direct`, opted-out numbers refused: a `PoolError` that says which number
and why, and nothing stored), and the wait for the messages' outcomes (`WaitResult`). `Pool`
holds it as `pool.sending_desk` and keeps each call under its front-door name (`pool.send(...)`
is `pool.sending_desk.send(...)`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modempool.batch_send import QueuedIds, fan_out, queue_chunks
from modempool.errors import Blacklisted, InvalidNumber, OptedOut, Refused, RefusedMany
from modempool.spool import FINAL_STATES, SUCCESS_STATES, Message
from modempool.when import check_window, parse_when

if TYPE_CHECKING:
    from modempool.pool import Pool

__all__ = ["PoolSending", "WaitResult"]


@dataclass(frozen=True, slots=True)
class WaitResult:
    """What `Pool.wait` saw last: each message, and whether the wait ran out of time first."""

    messages: tuple[Message, ...]
    timed_out: bool = False

    @property
    def pending(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.state not in FINAL_STATES)

    @property
    def all_succeeded(self) -> bool:
        """Every message went out (sent or delivered)."""
        return all(m.state in SUCCESS_STATES for m in self.messages)

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages], "timed_out": self.timed_out,
                "all_succeeded": self.all_succeeded}


class PoolSending:
    """Queue messages to numbers, each checked by the pool's rules first; wait for them."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def send(self, to: str | Sequence[str], text: str, *, client_id: str | None = None,
             at: datetime | str | None = None, expires: datetime | str | None = None,
             priority: int = 0, sims: Iterable[str] = (),
             to_opted_out: bool = False) -> list[Message]:
        """Queue `text` to one number or several; returns the queued messages in order.

        `client_id` is an idempotency key: the same key again returns the first message and
        sends nothing new; with several numbers each gets `client_id:1`, `client_id:2`, ...
        `at` / `expires` take a datetime or what a person types (`18:30`, `+10m`,
        `2026-12-01 09:00`, read in `[pool] timezone`). `sims` binds the messages to those SIMs.
        Refused (blacklist, opt-out), an invalid number, an unknown SIM: a PoolError, and
        nothing is queued. `to_opted_out` sends to opted-out numbers anyway; never to
        blacklisted ones.
        """
        return self.pool.spool.get_many(self.queue(
            to, text, client_id=client_id, at=at, expires=expires, priority=priority, sims=sims,
            to_opted_out=to_opted_out))

    def queue(self, to: str | Sequence[str], text: str, *, client_id: str | None = None,
              at: datetime | str | None = None, expires: datetime | str | None = None,
              priority: int = 0, sims: Iterable[str] = (),
              to_opted_out: bool = False) -> list[int]:
        """`send`, returning only the ids (a 100,000-recipient batch does not read its
        messages back)."""
        numbers = [to] if isinstance(to, str) else list(to)
        if not numbers:
            raise InvalidNumber("no recipient: give at least one number", code="no_recipient")
        return self.queue_many(
            [{"to": number, "client_id": fan_out(client_id, index, len(numbers) > 1)}
             for index, number in enumerate(numbers)],
            text, at=at, expires=expires, priority=priority, sims=sims, to_opted_out=to_opted_out)

    def send_many(self, messages: Iterable[dict[str, Any]], text: str | None = None, *,
                  at: datetime | str | None = None, expires: datetime | str | None = None,
                  priority: int = 0, sims: Iterable[str] = (),
                  to_opted_out: bool = False) -> list[Message]:
        """Queue many messages in one transaction (see `queue_many`); returns them."""
        return self.pool.spool.get_many(self.queue_many(
            messages, text, at=at, expires=expires, priority=priority, sims=sims,
            to_opted_out=to_opted_out))

    def queue_many(self, messages: Iterable[dict[str, Any]], text: str | None = None, *,
                   at: datetime | str | None = None, expires: datetime | str | None = None,
                   priority: int = 0, sims: Iterable[str] = (),
                   to_opted_out: bool = False) -> list[int]:
        """Queue many messages in one transaction and return their ids: each a dict with `to`
        and optionally `text`, `client_id`, `priority`, `at`, `expires`, `sims` (the keyword
        arguments are the defaults). All are checked first; one refusal queues none."""
        tz = self.pool.config.tz
        rows = []
        for item in messages:
            bound = list(item.get("sims") or sims)
            self.pool.config.check_sims(bound)
            not_before = parse_when(item.get("at", at), tz)
            expires_at = parse_when(item.get("expires", expires), tz)
            check_window(not_before, expires_at)
            rows.append({
                "to": item["to"], "text": item.get("text", text),
                "client_id": item.get("client_id"),
                "priority": item.get("priority", priority),
                "not_before": not_before,
                "expires_at": expires_at,
                "sims": bound or None,
            })
        e164s = self._allowed_recipients([row["to"] for row in rows], to_opted_out=to_opted_out)
        for row, e164 in zip(rows, e164s):
            row["to"] = e164
        return self.pool.spool.enqueue_many(rows, normalised=True)

    def queue_chunks(self, chunks: Iterable[Sequence[str]], text: str, *,
                     client_id: str | None = None, at: datetime | str | None = None,
                     expires: datetime | str | None = None, priority: int = 0,
                     sims: Iterable[str] = (), to_opted_out: bool = False,
                     on_write: Callable[[Any, list[int]], None] | None = None) -> QueuedIds:
        """`queue` for a batch too big to hold as Python objects (100,000 numbers): the numbers
        come in chunks (`chunks`, each a sequence of numbers, read one at a time), each
        normalised, checked and written before the next is read, all in one transaction. The
        rules, keys and refusals are `queue`'s, but that a refusal names only the first bad
        number, by its row (`RowError`, from 1): nothing is queued. Returns the ids packed
        (`QueuedIds`); `on_write(conn, ids)`, in the transaction, is given each chunk's
        messages that are new (not found again by their `client_id`)."""
        return queue_chunks(self.pool, chunks, text, client_id=client_id, at=at, expires=expires,
                            priority=priority, sims=sims, to_opted_out=to_opted_out,
                            on_write=on_write)

    def check_recipients(self, numbers: Iterable[str], *, to_opted_out: bool = False) -> None:
        """Raise `Refused` (one number) or `RefusedMany` if any of `numbers` may not get a
        direct message; InvalidNumber for one that is no phone number."""
        self._allowed_recipients(numbers, to_opted_out=to_opted_out)

    def refusals(self, e164s: Sequence[str], *, to_opted_out: bool = False) -> list[Refused]:
        """Why each of these E.164 numbers may not get a direct message (blacklisted, or
        opted out with `[optout] block_direct`), each number once, in the order given."""
        block_opted_out = self.pool.config.optout.block_direct and not to_opted_out
        blacklisted, opted_out = self.pool.optouts.listed(e164s)
        refusals: list[Refused] = []
        for e164 in dict.fromkeys(e164s):
            if e164 in blacklisted:
                refusals.append(Blacklisted(e164, "number is on the blacklist"))
            elif block_opted_out and e164 in opted_out:
                refusals.append(OptedOut(e164, "number has opted out and [optout] block_direct is set"))
        return refusals

    def _allowed_recipients(self, numbers: Iterable[str], *, to_opted_out: bool = False) -> list[str]:
        """`check_recipients`, returning the numbers in E.164."""
        from modempool.spool.numbers import normalise_all

        e164s = normalise_all(numbers, self.pool.config.region)
        refusals = self.refusals(e164s, to_opted_out=to_opted_out)
        if len(refusals) == 1:
            raise refusals[0]
        if refusals:
            raise RefusedMany(refusals)
        return e164s

    def wait(self, ids: Iterable[int], timeout: float | None = None) -> WaitResult:
        """Until every message is final (sent, delivered, failed, expired, cancelled or
        ambiguous), or `timeout` seconds have passed (then `timed_out` is set)."""
        ids = list(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            messages = tuple(self.pool.spool.get(i) for i in ids)
            if all(m.final for m in messages):
                return WaitResult(messages)
            if deadline is not None and time.monotonic() >= deadline:
                return WaitResult(messages, timed_out=True)
            pause = delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            time.sleep(pause)   # the daemon is another process: the spool file is all we share
            delay = min(delay * 1.5, 1.0)
