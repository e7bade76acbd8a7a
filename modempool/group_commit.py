"""Group commit: the small writes that many callers make at once, in one transaction.

A server that takes single-message sends from many clients would otherwise pay a whole
transaction per request (BEGIN IMMEDIATE, the WAL pages of the message, its indexes, its
owner and its text index, COMMIT) and make them queue for the one write lock. Here one writer
thread takes every operation that arrived while its previous commit ran and runs them all in
one transaction, each under its own savepoint. An operation may come with a check (rules that
need no database: the text, the numbers' syntax), run just before the transaction, so that the
write lock is held for less; a check must not write (other threads share the connection).

- an operation (or its check) that raises (a refused number, a quota passed) is rolled back alone and its
  caller gets the exception; the others are unaffected;
- each caller's answer comes only after the commit that holds its rows (if the commit fails,
  every caller of the batch gets the error; nothing of the batch is stored, except when the
  connection was lost at COMMIT: the server may have committed the whole batch, and every
  caller gets `SpoolOutcomeUnknown`, which says so);
- an operation sees the rows of those before it in the batch, so an idempotency key used twice
  in one batch returns the first one's messages, as it does across transactions;
- the batch's new messages go into the history search's text index together, at its end
  (SQLite's FTS5 writes its index once per savepoint: that was a third of the time the
  batch held the write lock); so an operation must not delete a message or change its text;
- the locks an operation names (`locks`: keys of `engine.lock_key`, an account's quota) are
  taken for the whole batch at its start, in one order (`engine.lock_keys`: by the lock taken): two servers on one
  PostgreSQL whose batches hold several accounts in opposite orders would otherwise wait on
  each other for ever, and PostgreSQL would fail one of them (40P01, deadlock detected);
- an operation (or the whole batch) that PostgreSQL still picks as a deadlock's victim (a
  lock no operation named) is run again in a new transaction: nothing of it was stored, so
  it is stored once. An operation must therefore be one that may run again;
- a batch starts `linger` seconds after its first operation arrived at the earliest (at
  once when it is full, or fills up meanwhile), so that a steady trickle of requests shares
  commits too: at 500 POST/s the sends came one or two per transaction, each writing ~15
  pages to the WAL for its own indexes, counters and text index, and taking the write lock
  (the daemon's too) that often.
  Under a heavy load the first operation has waited longer than that for the previous commit,
  and nothing lingers.

    sends = GroupCommit(spool)
    planned = account_pool.plan_send(numbers, text)
    queued = await sends.run(planned.write, check=planned.check, locks=planned.locks)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
LINGER = 0.005   # seconds a batch's first operation waits for others (see the top)
DEADLOCK = "40P01"   # the SQLSTATE of a transaction PostgreSQL chose as a deadlock's victim
DEADLOCK_RETRIES = 3
Member = tuple[Callable[[], object] | None, Callable[[], Any], Sequence[str]]   # (check, operation, locks)


class GroupCommit:
    """Runs operations (functions that write to `spool` in its transaction) in shared
    transactions, from one writer thread. One per process and spool; used from one event loop."""

    def __init__(self, spool: Any, *, max_batch: int = 256, linger: float = LINGER) -> None:
        self.spool = spool
        self.max_batch = max_batch
        self.linger = linger
        self._pending: list[tuple[Member, asyncio.Future]] = []
        self._arrived: list[float] = []     # loop time each pending operation came
        self._writing = False
        self._full = asyncio.Event()        # set when max_batch operations are pending
        self._writer: ThreadPoolExecutor | None = None
        self.batches = 0       # transactions committed (or tried): the figures of a benchmark
        self.operations = 0
        self.run_again = 0     # operations a deadlock's victims, run again

    async def run(self, operation: Callable[[], T], *,
                  check: Callable[[], object] | None = None, locks: Sequence[str] = ()) -> T:
        """Run `operation` in the next shared transaction (after `check`, outside it; the
        batch holding the `locks` it takes); its result once that committed."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._pending.append(((check, operation, tuple(locks)), done))
        self._arrived.append(loop.time())
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if not self._writing:
            self._writing = True
            loop.create_task(self._write())
        return await done

    async def _write(self) -> None:
        """Commit batches until nothing waits (what arrives meanwhile makes the next batch)."""
        loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        try:
            while self._pending:
                batch: list[tuple[Member, asyncio.Future]] = []
                try:
                    wait = self._arrived[0] + self.linger - loop.time()
                    if wait > 0 and len(self._pending) < self.max_batch:
                        await self._wait_for_company(wait)
                    batch = self._pending[:self.max_batch]
                    del self._pending[:self.max_batch]
                    del self._arrived[:self.max_batch]
                    if len(self._pending) < self.max_batch:
                        self._full.clear()
                    outcomes = await loop.run_in_executor(
                        self._writer, self._commit, [member for member, _ in batch])
                except BaseException as exc:  # the writer itself failed: no caller waits forever
                    waiting, self._pending, self._arrived = batch + self._pending, [], []
                    self._full.clear()
                    for _, done in waiting:
                        if not done.done():
                            done.set_exception(exc)
                    raise
                for (_, done), (ok, value) in zip(batch, outcomes):
                    if done.cancelled():   # its caller went away; its rows are stored all the same
                        continue
                    if ok:
                        done.set_result(value)
                    else:
                        done.set_exception(value)
        finally:
            self._writing = False

    async def _wait_for_company(self, seconds: float) -> None:
        """The batch's first operation waits up to `seconds` for others; less if the batch
        fills up meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._full.wait()

    def _commit(self, members: list[Member]) -> list[tuple[bool, Any]]:
        """In the writer thread: the checks, then one transaction with a savepoint per
        operation whose check passed; a deadlock's victims again, in a new one."""
        self.batches += 1
        self.operations += len(members)
        outcomes: list[tuple[bool, Any] | None] = [None] * len(members)
        ready = []
        for index, (check, _, _) in enumerate(members):
            try:
                if check is not None:
                    check()
            except Exception as exc:  # noqa: BLE001 (handed to its own caller)
                outcomes[index] = (False, exc)
            else:
                ready.append(index)
        for attempt in range(DEADLOCK_RETRIES):
            if not ready:
                break
            self.run_again += len(ready) if attempt else 0
            self._transaction(members, ready, outcomes)
            ready = [index for index in ready if _deadlocked(outcomes[index])]
        return outcomes  # type: ignore[return-value]

    def _transaction(self, members: list[Member], ready: list[int],
                     outcomes: list[tuple[bool, Any] | None]) -> None:
        """The operations `ready` in one transaction, their outcomes written in `outcomes`."""
        try:
            with self.spool.transaction() as conn, self.spool.engine.text_index_together(conn):
                self.spool.engine.lock_keys(conn, {key for index in ready for key in members[index][2]})
                for index in ready:
                    conn.execute("SAVEPOINT group_member")
                    try:
                        value = members[index][1]()
                    except Exception as exc:  # noqa: BLE001 (handed to its own caller)
                        conn.execute("ROLLBACK TO group_member")
                        conn.execute("RELEASE group_member")
                        outcomes[index] = (False, exc)
                    else:
                        conn.execute("RELEASE group_member")
                        outcomes[index] = (True, value)
        except Exception as exc:  # noqa: BLE001 (the batch failed; if its COMMIT lost
            # the connection the engine raised SpoolOutcomeUnknown: it may be stored)
            for index in ready:
                outcomes[index] = (False, exc)

    def close(self) -> None:
        """Stop the writer thread (after what it is writing)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None


def _deadlocked(outcome: tuple[bool, Any] | None) -> bool:
    """Whether an operation failed as (part of) a deadlock's victim, and may run again."""
    return outcome is not None and not outcome[0] and \
        getattr(outcome[1], "sqlstate", None) == DEADLOCK
