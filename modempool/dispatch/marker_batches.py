"""Part markers committed together when modems ask for them together (group commit).

At the start of a run every modem of a bank asks for its first part's marker at once, and a
second later every modem answers its first SMS at once and asks for its next part's marker,
which carries the record of its SIM's previous message. Each in a transaction of its own makes
them queue for the spool lane's threads, the interpreter's lock and the processor, with a
BEGIN, the report locks and a COMMIT each.

So markers asked while IN_FLIGHT batches are being committed wait, and go together in the
next batch (at most AT_MOST, or SIDE_BY_SIDE_AT_MOST where the lane's threads commit batches
side by side): one transaction, one COMMIT. The sending rule holds for each
part: its PDU waits for the commit that holds its own marker. A lone marker goes at once (at
the next turn of the loop, with whatever was asked in the same turn). With `write_all` (the
markers with their records, on PostgreSQL: `Records.mark_sent_then_writing_each`) a batch is
one round trip (its BEGIN, report locks, records and markers as rows of one statement, and
COMMIT sent together, `spool/record_batches.py`; a marking that is not the common case is left
out and written alone after it); without it each request's statements run in turn in the
batch's transaction (SQLite: markers alone). Batched that way, markers with records made each
modem wait for all of the batch's statements one after the other (measured in session 17: the
second round's gap doubled); as rows of one statement, a batch of 8 costs the server and the
client about 0.35 ms a marker, against 1.1–2.1 ms for a marker with its record in a
transaction of its own, which also waits for a processor at each of its four round trips.

A batch's members stay in step: committed together, their PDUs go out together, and at a
fixed time per SMS their modems answer together again, so the same modems ask together the next
round, and the next. Each pays the whole batch's commit every round, and a batch's commit grows
with its rows, so on a database server batches stay small (SIDE_BY_SIDE_AT_MOST): a batch of 16
kept 16 of a bank's 32 modems in step for the whole run (2 x 32 at 1 s per SMS, session 23), a
clump waiting 6-15 ms a round more than a modem alone, which finished the run last; batches of
at most 4 run side by side (IN_FLIGHT), and such a clump drifts apart within a few rounds. In
one thread (SQLite) batches take turns whatever their size: there a bigger batch costs no modem
more than its turn, so AT_MOST stays as it was.

A batch that fails for a reason other than the database being away (one record the server
refused, one row's lock not granted within lock_timeout, a deadlock's or a serialization
failure's victim: an error of one statement, the server there) is tried again at once one
request at a time (with `write_all`, a lone request too), so one bad or stuck request never
takes the others' markers with it; each request's modem has its outcome as soon as its own
try is done, not after the stuck one's. A batch whose server or connection is away, whose
COMMIT's outcome is unknown (never replayed blindly) or whose statement ran past
statement_timeout (an overloaded server: each request alone would take its time limit again)
fails whole; its modems wait for the database.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool.unavailable import one_statement, unavailable

#: Batches of markers being committed at once; a request made meanwhile waits for the next.
IN_FLIGHT = 2
#: Markers in one batch at most, in a lane of one thread (SQLite), and in a lane whose threads
#: commit batches side by side (a database server): a batch's modems stay in step round after
#: round, each paying the whole batch's commit (above).
AT_MOST = 16
SIDE_BY_SIDE_AT_MOST = 4


class MarkerBatches:
    """Hands requests (argument tuples for `write_one`) to the lane in batches; `submit`
    returns each request's own future."""

    def __init__(self, lane: SpoolLane, write_one: Callable[..., Any],
                 transaction: Callable[[], Any], *,
                 write_all: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None) -> None:
        self.lane = lane
        self.write_one = write_one
        self.transaction = transaction   # a context manager: one transaction for a batch
        # or the batch written by this, in one transaction (its statements set-based or sent
        # together), raising if any fails; then each is written alone, a lone one too
        self.write_all = write_all
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._running = 0
        self._scheduled = False

    def submit(self, *request: Any) -> asyncio.Future[Any]:
        """`write_one(*request)` in the next batch; its result (or exception) in the future."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        self._flush_soon()
        return future

    def _flush_soon(self) -> None:
        if self._scheduled or self._running >= IN_FLIGHT or not self._waiting:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        at_most = SIDE_BY_SIDE_AT_MOST if self.lane.parallel else AT_MOST
        while self._waiting and self._running < IN_FLIGHT:
            batch, self._waiting = self._waiting[:at_most], self._waiting[at_most:]
            self._running += 1
            try:
                written = self.lane.submit(self.write_batch, [request for request, _ in batch],
                                           _settler([future for _, future in batch]))
            except Exception as exc:   # the lane closed: its modems must not wait forever
                written = asyncio.get_running_loop().create_future()
                written.set_exception(exc)
            written.add_done_callback(functools.partial(self._written, batch))

    def _written(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]],
                 written: asyncio.Future[Any]) -> None:
        self._running -= 1
        failure = written.exception() if not written.cancelled() else asyncio.CancelledError()
        outcomes = [failure] * len(batch) if failure is not None else written.result()
        for (_, future), outcome in zip(batch, outcomes):
            _settle(future, outcome)
        self._flush_soon()

    def write_batch(self, requests: Sequence[tuple[Any, ...]],
                    settle: Callable[[int, Any], None] = lambda index, outcome: None) -> list[Any]:
        """In the lane: every request in one transaction; each request's result, or (after a
        failure of the batch that is not the database being away) each alone, its result or
        its exception, each given to `settle(index, outcome)` as soon as it is known."""
        try:
            if self.write_all is not None:
                return self.write_all(list(requests))
            with self.transaction():
                return [self.write_one(*request) for request in requests]
        except Exception as exc:
            if ((len(requests) == 1 and self.write_all is None)
                    or (unavailable(exc) is not None and not one_statement(exc))):
                raise
        outcomes: list[Any] = []
        for index, request in enumerate(requests):
            try:
                outcomes.append(self.write_one(*request))
            except Exception as exc:
                outcomes.append(exc)
            settle(index, outcomes[-1])
        return outcomes


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settler(futures: list[asyncio.Future[Any]]) -> Callable[[int, Any], None]:
    """`settle(index, outcome)` for work in a lane's thread: the future of request `index`
    given its outcome on the loop."""
    loop = asyncio.get_running_loop()

    def settle(index: int, outcome: Any) -> None:
        loop.call_soon_threadsafe(_settle, futures[index], outcome)

    return settle
