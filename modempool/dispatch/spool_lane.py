"""The daemon's spool calls, off the event loop when the spool is a database server.

One event loop drives every modem of a daemon. A call to the spool that waits on a database
server (a PostgreSQL round trip: a fraction of a millisecond nearby, several under load or
over a network) would hold up all of them, a dozen times per message. So the daemon's calls
go through its `SpoolLane`: on PostgreSQL a few worker threads run them, each transaction on
its own pooled connection, while the loop carries on with the modems; only the coroutine that
needs the answer (a modem at its prompt waiting for its part marker) waits for it. Modems
whose answers come together (they often do) get their markers written side by side, not in a
queue behind each other.

Order is kept where the rules need it by whoever submits: each modem task awaits its own calls
one by one, and a SIM's next part marker waits for the record of its previous message when
that record is still on its way (`SendingMixin`). On SQLite the calls run at once on the loop,
as they always did: a commit there is a local file write, and the embedded path keeps its
behaviour and its crash guarantees.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from modempool.dispatch.shared import is_shared

T = TypeVar("T")

#: Worker threads (so database connections at once) of a daemon's send path on a database
#: server; what the modems receive is stored by INBOUND_THREADS others, never in its way.
THREADS = 4
INBOUND_THREADS = 2


class SpoolLane:
    """Runs spool work in worker threads (`threads` > 0), else at once on the loop."""

    def __init__(self, *, threads: int = 0) -> None:
        self._workers = (concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="spool")
                         if threads else None)
        self._pending: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_spool(cls, spool: Any, threads: int = THREADS) -> SpoolLane:
        """`threads` for a database server (PostgreSQL), none for SQLite."""
        return cls(threads=threads if is_shared(spool) else 0)

    @property
    def threaded(self) -> bool:
        return self._workers is not None

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
        future = loop.run_in_executor(self._workers, functools.partial(work, *args, **kwargs))
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        return future

    async def run(self, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`work(*args, **kwargs)`'s result. A caller cancelled meanwhile does not stop it
        (work started in a thread finishes; `drain` waits for it)."""
        return await asyncio.shield(self.submit(work, *args, **kwargs))

    def on_loop(self, work: Callable[..., T], /, *args: Any) -> T:
        """From work running in the lane: `work(*args)` run on the event loop (whose state is
        the loop's alone), its result. The thread waits; the loop must be free to turn, as it
        is while its coroutine awaits this lane's work."""
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

    async def drain(self) -> None:
        """Until everything submitted so far has run (its outcome is its submitter's business)."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True)
