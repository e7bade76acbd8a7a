"""The forward command (`run_on_receive`) as the last step of a stored SMS's hooks.

The handlers' transaction leaves the SMS's row of `inbound_hooks` at this step (where a
command is configured); the command then runs in the background, and the transaction that
records its final outcome (exit status 0, or its retries used up) passes the step
(`operator/forwarding.py`, `command_step`). Killed or stopped before that commit, the daemon
runs it again from the step at its next start (or the daemon that takes over a dead one's
hooks does): at least once, never twice at the same time in one daemon run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from modempool.dispatch.spool_lane import SpoolLane
from modempool.operator.forwarding import in_background
from modempool.operator.hooks import InboundCommand
from modempool.operator.optout import field_of
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.dispatch.inbound")


class CommandStep:
    """Starts the forward command of an SMS at its step, once per daemon run at a time."""

    def __init__(self, spool: Any, lane: SpoolLane, owner: str, command: InboundCommand | None,
                 step: int, waits: Callable[[Any], None]) -> None:
        self.spool = spool
        self.lane = lane
        self.owner = owner
        self.command = command
        self.step = step            # the index of this step: after the handlers
        self.waits = waits          # the database failed the step: the SMS waits (keep_up)
        self._running: dict[int, asyncio.Task] = {}   # inbound id -> its command

    def running(self, inbound_id: int) -> bool:
        """Whether the command of that SMS runs now (its step is passed when it ends)."""
        return inbound_id in self._running

    async def start(self, inbound: Any) -> bool:
        """The command of `inbound` in the background unless it runs already; where no command
        is configured any more, the step (left by a config that had one) is passed, as is a
        step past this one (left by a run with more handlers: none of this run's is left).
        False when the database failed that."""
        inbound_id = field_of(inbound, "id")
        if inbound_id in self._running:
            return True
        at = field_of(inbound, "hooks_next")
        if at is not None and at > self.step:
            log.warning("the hooks of SMS %s were at step %d, past this daemon's last (%d): "
                        "passed", inbound_id, at, self.step)
            return await self._pass(inbound_id, at)
        if self.command is None:
            return await self._pass(inbound_id)
        self._running[inbound_id] = in_background(self._run(inbound),
                                                  f"run_on_receive-{inbound_id}")
        return True

    def once(self, inbound: Any) -> None:
        """The command of an SMS stored without a mark (no daemon's): at most once, as its
        handlers."""
        if self.command is not None:
            in_background(self.command(self.spool, inbound, lambda: True),
                          f"run_on_receive-{field_of(inbound, 'id')}")

    async def _run(self, inbound: Any) -> None:
        """The command to its final outcome, recorded in the transaction that passes the
        step; not run when the step is not this run's (passed already, or taken over)."""
        inbound_id = field_of(inbound, "id")

        def passed() -> bool:   # in the transaction that records the final outcome
            with self.spool.transaction() as conn:
                return self.spool.inbound_hooks.advance(conn, inbound_id, self.step,
                                                        self.step + 1, self.step + 1, self.owner)
        try:
            if await self.lane.run(self.spool.inbound_hooks.at, inbound_id, self.step,
                                   self.owner):
                await self.command(self.spool, inbound, passed)
        except Exception as exc:
            if database_failed(exc):
                log_failure(log, f"the forward command of SMS {inbound_id} waits for the "
                                 "database", exc)
                self.waits(inbound)
            else:   # a bug: run again, it would fail again
                log_failure(log, f"the forward command of SMS {inbound_id} failed", exc)
                if not await self._pass(inbound_id):
                    self.waits(inbound)   # keep_up passes it (or runs it) later
        finally:
            self._running.pop(inbound_id, None)

    async def _pass(self, inbound_id: int, step: int | None = None) -> bool:
        """Pass the step (or `step`, the SMS's last) without its outcome; False when the
        database failed that (left pending)."""
        step = self.step if step is None else step
        try:
            await self.lane.run(self.spool.inbound_hooks.skip, inbound_id, step, step + 1,
                                step + 1, self.owner)
        except Exception as exc:
            log_failure(log, "the hooks of a stored SMS wait for the database", exc)
            return False
        return True
