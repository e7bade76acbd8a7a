"""The operator hooks of stored SMS, run durably: each sender's in the order they came in.

The hooks of a whole message run in the daemon's inbound lane (off the event loop on a
database server), in one transaction that also passes them in the message's row of
`inbound_hooks` (`spool/inbound_hooks.py`): a hook whose writes committed is never run again;
the forward command then runs as a step of its own (`inbound_command.py`). The database gone
(or its role refused a right a hook needs): the hooks stay pending in the spool and that
sender's later SMS wait behind them there, other senders' go on. `keep_up` runs what waits,
in each sender's order, once the database answers, and takes over what a killed or stopped
run of the daemon left (on a shared database: what a dead daemon left).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from modempool.dispatch.backlog import WAIT_FIRST, WAIT_MAX
from modempool.dispatch.events import first_set
from modempool.dispatch.inbound_command import CommandStep
from modempool.dispatch.spool_lane import SpoolLane
from modempool.operator.hooks import InboundCommand
from modempool.operator.optout import field_of
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.dispatch.inbound")


class HookRunner:
    """Runs the hooks of one daemon run's stored SMS (`InboundStore.hooks`), and what waits."""

    def __init__(self, spool: Any, lane: SpoolLane, config: Any,
                 handlers: list[Callable[..., Any]], owner: str,
                 command: InboundCommand | None,
                 dead: Callable[[list[str]], list[str]]) -> None:
        self.spool = spool
        self.lane = lane
        self.config = config
        self.handlers = handlers
        # The daemon run whose hooks these are, and which other runs' pending hooks it may
        # take: `dead(owners)`.
        self.owner = owner
        self.command_step = CommandStep(spool, lane, owner, command, len(handlers),
                                        self._waits)
        self.dead = dead
        # A sender's turn at the hooks (see run_hooks) and how many of its messages are there.
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        # Senders with SMS whose hooks wait in the spool: their next ones wait behind them.
        self.behind: dict[str, None] = {}   # in the order they fell behind
        self.wake = asyncio.Event()   # something was left for keep_up
        self._step_failed = False     # a forward command's step failed for the database

    async def run_hooks(self, inbound: Any) -> None:
        """Call each operator handler still to run (`hooks_next` on), in the lane (their
        spool calls never hold up the loop) and in one transaction that passes them in the
        spool (`_run_from`);
        what a handler returns, if awaitable, is awaited on the loop (where it may start
        tasks). A failing handler is logged and never stops the pool.

        The lane has several threads, so one sender's messages (two SIMs, a second apart)
        take turns, in the order they were stored: a 退订 is recorded before the next
        message from that sender is answered. A sender whose earlier SMS wait in the spool
        (the database failed their hooks) is behind: this one waits there too, for `keep_up`.
        An earlier SMS of the sender pending in another daemon run (a dead one's, or a live
        one's still at its handlers; not one at its forward command) puts the sender behind
        too, until it is done (`_Behind`).
        A message stored without a mark (no daemon's: a dict, a library's row) runs its hooks
        as before, at most once."""
        sender = _sender_of(inbound)
        async with self._turn(sender):
            if sender in self.behind and field_of(inbound, "hooks_next") is not None:
                self.wake.set()   # pending in the spool, behind the sender's earlier ones
                return
            try:
                ran = await self._run_from(inbound)
            except _Behind:
                log.info("the hooks of SMS %s from %s wait for an earlier SMS of that sender, "
                         "pending in another daemon run", field_of(inbound, "id"), sender)
                self.behind.setdefault(sender)   # keep_up's next turn, every few seconds
                return
            if not ran:
                self.behind.setdefault(sender)
                self.wake.set()

    @contextlib.asynccontextmanager
    async def _turn(self, sender: str) -> AsyncIterator[None]:
        """The sender's turn at the hooks, kept while anyone waits for it."""
        turn, waiting = self._turns.get(sender) or (asyncio.Lock(), 0)
        self._turns[sender] = (turn, waiting + 1)
        try:
            async with turn:
                yield
        finally:
            turn, waiting = self._turns[sender]
            if waiting == 1:
                del self._turns[sender]
            else:
                self._turns[sender] = (turn, waiting - 1)

    @property
    def steps(self) -> int:
        """An SMS's steps: its handlers, then the forward command where there is one."""
        return len(self.handlers) + (self.command_step.command is not None)

    def _waits(self, inbound: Any) -> None:
        """The database failed the forward command's step of `inbound` (in the background):
        its sender waits behind, for `keep_up`'s next pass, which counts as failed (backoff)."""
        self.behind.setdefault(_sender_of(inbound))
        self._step_failed = True
        self.wake.set()

    async def _run_from(self, inbound: Any) -> bool:
        """The hooks of `inbound` from its first still pending; False when the database
        failed one (it stays pending in the spool, with those after it). They run in one
        transaction that passes them all (one commit an SMS); if one fails otherwise than for
        the database (a bug: all rolled back), each again in its own, that one skipped. The
        forward command then starts in the background (`CommandStep`)."""
        first = field_of(inbound, "hooks_next")
        if first is None:
            ran = await self._run_each(inbound, None)
            if ran:
                self.command_step.once(inbound)
            return ran
        if first >= len(self.handlers):
            return await self.command_step.start(inbound)
        try:
            results = await self.lane.run(self._hooks_passed, first, len(self.handlers),
                                          inbound)
        except _Behind:
            raise
        except Exception as exc:
            if database_failed(exc):
                log_failure(log, "the hooks of a stored SMS wait for the database", exc)
                return False
            if not await self._run_each(inbound, first):
                return False
        else:
            for handler, result in zip(self.handlers[first:], results):
                await self._awaited(handler, inbound, result)
        return self.command_step.command is None or await self.command_step.start(inbound)

    async def _run_each(self, inbound: Any, first: int | None) -> bool:
        """The hooks from `first` on, each in its own transaction that passes it (`first`
        None: the message has no mark; no transaction, none passed)."""
        for index in range(first or 0, len(self.handlers)):
            handler = self.handlers[index]
            try:
                if first is None:
                    result = await self.lane.run(handler, self.spool, inbound, self.config)
                else:
                    [result] = await self.lane.run(self._hooks_passed, index, index + 1, inbound)
            except _Behind:
                raise
            except Exception as exc:
                if not database_failed(exc):
                    _failed(handler, inbound, exc)
                    if first is not None and not await self._skip(index, inbound):
                        return False
                    continue
                log_failure(log, "the hooks of a stored SMS wait for the database", exc)
                if first is None:
                    _hooks_lost(inbound, self.handlers[index:], "the database failed; the SMS "
                                "was stored without its hooks marked pending")
                return False
            await self._awaited(handler, inbound, result)
        return True

    def _hooks_passed(self, first: int, end: int, inbound: Any) -> list[Any]:
        """In the lane: the writes of hooks `first` to `end` (not included) and their step in
        the spool, one transaction; what each returned, or nothing when they are not this
        run's to run (done already). `_Behind` while an earlier SMS of the sender waits in
        another run."""
        results: list[Any] = []
        hooks, inbound_id = self.spool.inbound_hooks, field_of(inbound, "id")
        try:
            with self.spool.transaction() as conn:
                if not hooks.advance(conn, inbound_id, first, end, self.steps, self.owner,
                                     sender=_sender_of(inbound), handlers=len(self.handlers)):
                    if hooks.at(inbound_id, first, self.owner, conn):
                        raise _Behind()
                    return [None] * (end - first)
                for handler in self.handlers[first:end]:
                    results.append(handler(self.spool, inbound, self.config))
        except BaseException:
            for result in results:
                if inspect.iscoroutine(result):
                    result.close()   # its writes rolled back: nothing to start
            raise
        return results

    @staticmethod
    async def _awaited(handler: Callable[..., Any], inbound: Any, result: Any) -> None:
        """What a handler returned, awaited on the loop if awaitable (its writes committed)."""
        if not inspect.isawaitable(result):
            return
        try:
            await result
        except Exception as exc:
            _failed(handler, inbound, exc)

    async def _skip(self, index: int, inbound: Any) -> bool:
        """Pass a hook that failed otherwise than for the database; False if that failed
        too (it is tried again with the rest)."""
        try:
            await self.lane.run(self.spool.inbound_hooks.skip, field_of(inbound, "id"), index,
                                index + 1, self.steps, self.owner)
        except Exception as exc:   # the database's, or a bug: tried again with the rest
            log_failure(log, "the hooks of a stored SMS wait for the database", exc)
            return False
        return True

    async def take_over(self) -> int:
        """Make the pending hooks that dead runs left (a killed or stopped daemon's) this
        run's; their senders' next SMS wait behind them. Returns how many senders."""
        senders = await self.lane.run(self.spool.inbound_hooks.take_over, self.owner, self.dead)
        if senders:
            log.warning("took over the pending hooks of SMS from %d sender%s that an earlier "
                        "run of the daemon left", len(senders), "" if len(senders) == 1 else "s")
        for sender in senders:
            self.behind.setdefault(sender)
        return len(senders)

    async def catch_up(self) -> bool:
        """Run the hooks that wait in the spool, each sender's in order; a sender the database
        fails stops there, the others go on. True when the database failed none: a sender
        behind another run's earlier SMS (`_Behind`) stays behind, for the next pass."""
        caught_up = True
        for sender in list(self.behind):
            caught_up = await self._catch_up(sender) and caught_up
        return caught_up

    async def _catch_up(self, sender: str) -> bool:
        """The sender's SMS pending in this run, in order, pass after pass while one moves
        something on; False after a pass that moved nothing (the database failed what the
        forward command's step reads first): keep_up's next pass, after its backoff."""
        async with self._turn(sender):
            before = None
            while True:
                pending = [inbound for inbound in await self.lane.run(
                    self.spool.inbound_hooks.pending, self.owner, sender)
                    if not self.command_step.running(inbound.id)]   # passed when it ends
                if not pending:
                    self.behind.pop(sender, None)
                    return True
                now = [(inbound.id, inbound.hooks_next) for inbound in pending]
                if now == before:
                    return False
                before = now
                for inbound in pending:
                    try:
                        if not await self._run_from(inbound):
                            return False
                    except _Behind:   # not failed: its turn comes at a later pass
                        return True

    async def keep_up(self, stop: asyncio.Event, every: float) -> None:
        """Until `stop`: run what waits in the spool (`catch_up`) whenever a hook leaves
        something there, and take over dead runs' hooks every `every` seconds; after the
        database failed, again after 1 s, then 2, 4, at most every 5 s."""
        delay, failed = WAIT_FIRST, False   # failed: since the last pass that went through
        while not stop.is_set():
            self.wake.clear()
            failing, self._step_failed = self._step_failed, False   # since the last pass
            try:
                await self.take_over()
                caught_up = await self.catch_up() and not failing
            except Exception as exc:   # the database's (one line), or a bug (its traceback)
                log_failure(log, "could not run the hooks that wait in the spool", exc)
                caught_up = False
            if caught_up:
                if failed:
                    log.info("the database answers again: the hooks that waited have run")
                delay, failed = WAIT_FIRST, False
                await first_set(stop, self.wake, timeout=every)
            else:
                log.debug("the hooks that wait in the spool did not all run; next pass in "
                          "%.0f s", delay)
                failed = True
                await first_set(stop, timeout=delay)
                delay = min(delay * 2, WAIT_MAX)

    async def close(self) -> None:
        """The daemon stops: hooks still waiting stay pending in the spool for the next start."""
        if self.behind:
            log.warning("the hooks of SMS from %d sender%s wait in the spool (the database did "
                        "not take them, or an earlier SMS of the sender waits in another daemon "
                        "run): the next start runs them, or the daemon that takes them over",
                        len(self.behind), "" if len(self.behind) == 1 else "s")


class _Behind(Exception):
    """An earlier SMS of the sender is pending in another daemon run: this one's hooks wait."""


def _failed(handler: Callable[..., Any], inbound: Any, exc: Exception) -> None:
    """A handler failed otherwise than for the database away: a library error in one line, a
    bug with its traceback; the next handler runs."""
    name = getattr(handler, "__name__", repr(handler))
    log_failure(log, f"inbound handler {name} failed for SMS {field_of(inbound, 'id')} from "
                     f"{field_of(inbound, 'sender', '')}", exc)


def _hooks_lost(inbound: Any, handlers: list[Callable[..., Any]], why: str) -> None:
    log.error("the hooks of inbound SMS %s from %s did not run (%s): %s",
              field_of(inbound, "id"), field_of(inbound, "sender", ""), why,
              ", ".join(getattr(h, "__name__", repr(h)) for h in handlers))


def _sender_of(inbound: Any) -> str:
    return str(field_of(inbound, "sender", "") or "")
