"""The daemon's spool calls, off the event loop.

One event loop drives every modem of a daemon. A call to the spool that waits would hold up
all of them, a dozen times per message:
- on a database server (PostgreSQL), a round trip: a fraction of a millisecond nearby,
  several under load or over a network;
- on SQLite, the file's write lock while another process holds it: the HTTP sidecar's
  group commit of many sends, `modempool send` from a shell. SQLite's busy handler waits in
  steps (1, 2, 5, 10, 15 ms...), so a lock held for 2 ms costs a waiter 3, one held for 4 ms
  costs 8; on the loop, every modem waited that long.
So the daemon's calls go through its `SpoolLane`, whose worker threads run them while the
loop carries on with the modems; only the coroutine that needs the answer (a modem at its
prompt waiting for its part marker) waits for it. On PostgreSQL a few threads, each
transaction on its own pooled connection: modems whose answers come together (they often
do) get their markers written side by side, not in a queue behind each other. On SQLite one
thread per lane, in order: the spool has one connection, its transactions take turns anyway.

Order is kept where the rules need it by whoever submits: each modem task awaits its own calls
one by one, and a SIM's next part marker waits for the record of its previous message when
that record is still on its way (`SendingMixin`). The crash guarantees are the same in a
thread: a modem writes its PDU only once the lane's commit of its marker has returned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from modempool.dispatch.shared import is_shared

T = TypeVar("T")

#: Worker threads (so database connections at once) of a daemon's send path on a database
#: server; what the modems receive is stored by INBOUND_THREADS others, never in its way.
#: On SQLite each lane has one.
THREADS = 4
INBOUND_THREADS = 2


class SpoolLane:
    """Runs spool work in worker threads (`threads` > 0), else at once on the loop (a
    component used alone, in tests)."""

    def __init__(self, *, threads: int = 0) -> None:
        self._workers = (concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="spool")
                         if threads else None)
        self._threads = threads
        # each call not yet answered, with when it was submitted (for `oldest_pending`)
        self._pending: dict[asyncio.Future[Any], float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_spool(cls, spool: Any, threads: int = THREADS) -> SpoolLane:
        """`threads` for a database server (PostgreSQL), one for SQLite."""
        return cls(threads=threads if is_shared(spool) else 1)

    @property
    def parallel(self) -> bool:
        """Whether calls may run side by side (else each waits for those before it)."""
        return self._threads > 1

    def submit(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Start `work(*args, **kwargs)` now; its future. Without threads it has already run
        when this returns (an exception is in the future)."""
        loop = self._loop = asyncio.get_running_loop()
        if self._workers is None:
            future: asyncio.Future[T] = loop.create_future()
            try:
                future.set_result(work(*args, **kwargs))
            except Exception as exc:
                future.set_exception(exc)
            return future
        # in the submitter's context: its daemon's limiter of repeated lines (`log_failure`)
        future = loop.run_in_executor(self._workers, functools.partial(
            contextvars.copy_context().run, work, *args, **kwargs))
        self._pending[future] = time.monotonic()
        future.add_done_callback(self._pending.pop)
        return future

    async def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`work(*args, **kwargs)`'s result. A caller cancelled meanwhile does not stop it
        (work started in a thread finishes; `drain` waits for it)."""
        return await asyncio.shield(self.submit(work, *args, **kwargs))

    def on_loop(self, work: Callable[..., T], /, *args: Any) -> T:
        """From work running in the lane: `work(*args)` run on the event loop (whose state is
        the loop's alone), its result. The thread waits; the loop must be free to turn, as it
        is while its coroutine awaits this lane's work, and must not wait for anything the
        thread holds: so never from inside a transaction on SQLite, whose one connection the
        thread would hold while something on the loop (a status read) waited for it."""
        if self._workers is None:
            return work(*args)
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(work(*args))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result()

    def oldest_pending(self) -> float | None:
        """When (monotonic seconds) the oldest call still unanswered was submitted; None if
        every call was answered (`slow_spool.SlowSpoolWatch` reads it)."""
        return next(iter(self._pending.values()), None)

    async def drain(self) -> None:
        """Until everything submitted so far has run (its outcome is its submitter's business)."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True)
