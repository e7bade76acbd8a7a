"""Work the daemon has decided on but cannot write while the database is away, done in order
once it answers: a received SMS or report shown without a storage index (`held_inbound.py`),
a USSD request's answer (`requests.py`). (The operator hooks of a stored SMS wait in the spool
instead: `hook_runner.py`.)

A `Backlog` keeps its items in memory, in the order they came, and one task works through them.
An item comes here because its work has just failed, so the task first waits 1 s before it
tries again; an item whose work fails again because the database cannot answer now, or refuses
the role a right until an operator runs the GRANT (`database_failed`), is tried again after
2 s, then 4, at most every 5 s; one that fails otherwise (a bug) is logged with its
traceback and dropped. At the daemon's stop the backoff is cut short and what waits is tried
once more (`CLOSE_WITHIN` seconds in all); what is still waiting then, or what comes past the
backlog's limit, goes to its `dropped` callback, which logs it in one line for a person to
reconcile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modempool.masked import one_line
from modempool.spool.unavailable import database_failed

WAIT_FIRST = 1.0
WAIT_MAX = 5.0
#: At the daemon's stop: how long the last attempt to do what waits may take in all.
CLOSE_WITHIN = 5.0


class Backlog:
    """Items waiting for the database, each worked by `work(item)` in order (see the module)."""

    def __init__(self, name: str, work: Callable[[Any], Awaitable[Any]],
                 dropped: Callable[[Any, str], None], log: logging.Logger, *, limit: int,
                 done_line: str) -> None:
        self.name = name
        self.work = work
        self.dropped = dropped
        self.log = log
        self.limit = limit
        self.done_line = done_line   # "%d held SMS and reports stored"
        self.waiting: collections.deque[Any] = collections.deque()
        self.closing = asyncio.Event()   # the daemon stops: no more backoff
        self._task: asyncio.Task[None] | None = None

    def add(self, item: Any) -> None:
        """Keep `item` to work once the earlier ones are done (dropped past the limit)."""
        if len(self.waiting) >= self.limit:
            self.dropped(item, f"more than {self.limit} waiting")
            return
        self.waiting.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work_all(), name=self.name)

    async def _work_all(self) -> None:
        delay = WAIT_FIRST
        done = 0
        await self._pause(delay)   # what was added has just failed: give the database a moment
        delay = min(delay * 2, WAIT_MAX)
        while self.waiting:
            last_try = self.closing.is_set()   # this attempt began after the stop was asked
            try:
                await self.work(self.waiting[0])
            except Exception as exc:
                if not database_failed(exc):  # a bug, not the database's: never done
                    self.log.error("%s: %r failed", self.name, self.waiting[0], exc_info=exc)
                    self.dropped(self.waiting.popleft(), "it failed")
                    continue
                if last_try:   # still away at the stop: close() drops the rest, in order
                    break
                self.log.debug("%s: the database failed again (%s); next try in %.0f s",
                               self.name, one_line(exc), delay)
                await self._pause(delay)
                delay = min(delay * 2, WAIT_MAX)
                continue
            self.waiting.popleft()
            done += 1
            delay = WAIT_FIRST
        if done:
            self.log.info("the database answers again: " + self.done_line, done)

    async def _pause(self, delay: float) -> None:
        """A backoff that the stop cuts short (no synchronisation: nothing to await)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.closing.wait()

    async def close(self) -> None:
        """The daemon stops: what waits is tried once more, within CLOSE_WITHIN seconds in
        all (the database may answer again by now); what still cannot be done is dropped, one
        line each (also when the stop itself is cancelled)."""
        self.closing.set()
        try:
            if self.waiting and (self._task is None or self._task.done()):
                self._task = asyncio.create_task(self._work_all(), name=self.name)
            if self._task is not None and not self._task.done():
                await asyncio.wait({self._task}, timeout=CLOSE_WITHIN)
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()   # past the bound: what it was doing counts as dropped
            while self.waiting:
                self.dropped(self.waiting.popleft(), "the daemon stopped before the database "
                             "answered")
