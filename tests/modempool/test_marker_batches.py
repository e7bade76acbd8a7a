"""Part markers asked together are committed together (group commit), each request with its own
outcome; a batch that fails for one request is tried again request by request."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager

import pytest

from modempool.dispatch.marker_batches import AT_MOST, IN_FLIGHT, SIDE_BY_SIDE_AT_MOST, MarkerBatches
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import LeaseLost, Spool
from tests.modempool.spool_driver import claim_next


@pytest.fixture
def spool(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        yield spool


def _claimed(spool: Spool, count: int) -> list[int]:
    spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(count))
    return [claim_next(spool, "m1", "d:1/m1", 60).id for _ in range(count)]


class Counted:
    """The spool's transaction, counted."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.transactions = 0

    @contextmanager
    def __call__(self):
        self.transactions += 1
        with self.spool.batch():
            yield


def _writing(spool: Spool) -> set[int]:
    return {row[0] for row in spool.engine.rows("SELECT message_id FROM parts "
                                                "WHERE state = 'writing'")}


async def test_markers_asked_in_one_turn_are_one_transaction(spool):
    ids = _claimed(spool, 3)
    counted = Counted(spool)
    batches = MarkerBatches(SpoolLane(threads=1), lambda message_id: spool.mark_part_writing(
        message_id, 1, 1, lease_owner="d:1/m1") or message_id, counted)
    futures = [batches.submit(message_id) for message_id in ids]
    assert await asyncio.gather(*futures) == ids
    assert counted.transactions == 1
    assert _writing(spool) == set(ids)


async def test_a_request_that_fails_its_batch_fails_alone(spool):
    ids = _claimed(spool, 3)
    counted = Counted(spool)

    def mark(message_id: int, owner: str) -> int:
        spool.mark_part_writing(message_id, 1, 1, lease_owner=owner)
        return message_id

    batches = MarkerBatches(SpoolLane(threads=1), mark, counted)
    good, stolen, other = (batches.submit(ids[0], "d:1/m1"), batches.submit(ids[1], "x:9/m1"),
                           batches.submit(ids[2], "d:1/m1"))
    assert await good == ids[0] and await other == ids[2]
    with pytest.raises(LeaseLost):
        await stolen
    assert _writing(spool) == {ids[0], ids[2]}   # the batch rolled back, then each alone


async def test_markers_asked_while_batches_are_committed_go_together_in_the_next(spool):
    ids = _claimed(spool, IN_FLIGHT + 3)
    counted = Counted(spool)
    go_on = threading.Event()
    went_on_alone = []   # a hang guard's: the counts below would then mean nothing

    def mark(message_id: int) -> int:
        if not go_on.wait(timeout=30):
            went_on_alone.append(message_id)
        spool.mark_part_writing(message_id, 1, 1, lease_owner="d:1/m1")
        return message_id

    lane = SpoolLane(threads=IN_FLIGHT)
    batches = MarkerBatches(lane, mark, counted)
    first = []
    for message_id in ids[:IN_FLIGHT]:   # each alone: its batch starts at the next turn
        first.append(batches.submit(message_id))
        await asyncio.sleep(0)
    rest = []
    for message_id in ids[IN_FLIGHT:]:   # in turns of their own, yet they wait: one batch
        rest.append(batches.submit(message_id))
        await asyncio.sleep(0)
    go_on.set()
    assert await asyncio.gather(*first, *rest) == ids
    assert not went_on_alone, "the first batches were never told to go on within 30 s"
    assert counted.transactions == IN_FLIGHT + 1
    assert _writing(spool) == set(ids)
    lane.close()


async def test_batches_committed_side_by_side_stay_small_in_one_thread_not(spool):
    """Markers asked while batches are being committed: on a lane whose threads commit side by
    side (a database server's) they go in batches of at most SIDE_BY_SIDE_AT_MOST (a batch's
    modems stay in step round after round, each paying the whole batch's commit); in one
    thread (SQLite), where batches take turns anyway, in one batch up to AT_MOST."""
    waiting = 2 * SIDE_BY_SIDE_AT_MOST + 1
    assert waiting <= AT_MOST
    for threads, sizes in ((IN_FLIGHT, [SIDE_BY_SIDE_AT_MOST, SIDE_BY_SIDE_AT_MOST, 1]),
                           (1, [waiting])):
        ids = _claimed(spool, IN_FLIGHT + waiting)
        go_on = threading.Event()
        batch_sizes: list[int] = []
        in_batch = threading.local()

        @contextmanager
        def counted():
            in_batch.marked = 0
            with spool.batch():
                yield
            batch_sizes.append(in_batch.marked)

        def mark(message_id: int) -> int:
            if not go_on.wait(timeout=30):
                raise AssertionError("the first batches were never told to go on")
            spool.mark_part_writing(message_id, 1, 1, lease_owner="d:1/m1")
            in_batch.marked += 1
            return message_id

        lane = SpoolLane(threads=threads)
        batches = MarkerBatches(lane, mark, counted)
        futures = []
        for message_id in ids:   # each in a turn of its own: the first IN_FLIGHT go alone
            futures.append(batches.submit(message_id))
            await asyncio.sleep(0)
        go_on.set()
        async with asyncio.timeout(30):
            assert await asyncio.gather(*futures) == ids
        # in the order committed: batches side by side may end in any order
        assert sorted(batch_sizes) == sorted([1] * IN_FLIGHT + sizes), batch_sizes
        lane.close()


async def test_a_row_locked_past_lock_timeout_fails_its_own_request_not_the_batch(pg_cluster):
    """One marker's row is held by another transaction past lock_timeout (55P03, an error of
    one statement: the server is there). The batch is tried again at once request by request:
    the others are committed now, only the stuck one fails (its modem waits for it alone)."""
    from urllib.parse import quote

    import psycopg

    url = pg_cluster.new_schema()
    with Spool(url + quote(" -clock_timeout=200")) as spool:
        ids = _claimed(spool, 3)
        counted = Counted(spool)
        batches = MarkerBatches(SpoolLane(threads=1), lambda message_id: spool.mark_part_writing(
            message_id, 1, 1, lease_owner="d:1/m1") or message_id, counted)
        with psycopg.connect(url) as other:   # a transaction of its own, held meanwhile
            other.execute("SELECT 1 FROM messages WHERE id = %s FOR UPDATE", (ids[1],))
            futures = [batches.submit(message_id) for message_id in ids]
            async with asyncio.timeout(30):
                outcomes = await asyncio.gather(*futures, return_exceptions=True)
            other.rollback()
        assert outcomes[0] == ids[0] and outcomes[2] == ids[2], outcomes
        assert getattr(outcomes[1], "sqlstate", None) == "55P03", outcomes
        assert _writing(spool) == {ids[0], ids[2]}
        assert counted.transactions == 1   # the batch's; then each alone, in a transaction
        batches.lane.close()


async def test_a_batch_the_lane_cannot_take_fails_its_requests_rather_than_hanging(spool):
    """The lane refuses the batch (closed: its threads are gone): each request's future gets
    the error, so no modem waits forever for its marker."""
    [message_id] = _claimed(spool, 1)
    lane = SpoolLane(threads=1)
    lane.close()
    batches = MarkerBatches(lane, lambda message_id: message_id, Counted(spool))
    with pytest.raises(RuntimeError):
        async with asyncio.timeout(10):
            await batches.submit(message_id)
    assert batches._running == 0   # the next batch is not held back by this one


async def test_each_request_tried_alone_has_its_outcome_at_once_not_after_a_stuck_one(spool):
    """After its batch failed, each request is tried alone: a request committed alone has its
    outcome at once, while a later one is still stuck (its modem does not wait for it)."""
    ids = _claimed(spool, 3)
    stuck_alone, go_on = threading.Event(), threading.Event()
    tries: dict[int, int] = {}

    def mark(message_id: int) -> int:
        tries[message_id] = tries.get(message_id, 0) + 1
        if message_id == ids[1]:
            if tries[message_id] == 1:
                raise LeaseLost(f"message {message_id}: taken over")   # fails the batch
            stuck_alone.set()
            go_on.wait(timeout=60)   # a row locked, alone (until the test lets it go)
        spool.mark_part_writing(message_id, 1, 1, lease_owner="d:1/m1")
        return message_id

    lane = SpoolLane(threads=1)
    batches = MarkerBatches(lane, mark, Counted(spool))
    first, second, third = (batches.submit(message_id) for message_id in ids)
    try:
        async with asyncio.timeout(30):
            assert await first == ids[0]   # while the second is (or is about to be) stuck
            assert await asyncio.to_thread(stuck_alone.wait, 30)
        assert not second.done()
    finally:
        go_on.set()
    async with asyncio.timeout(30):
        assert await asyncio.gather(second, third) == ids[1:]
    lane.close()


@pytest.mark.parametrize("failure", ["outcome unknown", "server away", "statement timeout"])
async def test_a_batch_whose_server_is_away_fails_whole_and_is_not_tried_again(spool, failure):
    """A COMMIT of unknown outcome (never replayed blindly), a server or connection away, a
    statement past statement_timeout (an overloaded server: each alone would take as long):
    the batch fails whole, each request with its error; no request is tried again alone."""
    import psycopg

    from modempool.spool.unavailable import SpoolOutcomeUnknown

    ids = _claimed(spool, 2)
    raised = {"outcome unknown": SpoolOutcomeUnknown(5, "server closed the connection"),
              "server away": psycopg.OperationalError("server closed the connection"),
              "statement timeout": psycopg.errors.QueryCanceled("statement timeout")}[failure]
    tries: list[int] = []

    def mark(message_id: int) -> int:
        tries.append(message_id)
        return message_id

    @contextmanager
    def failing():
        with spool.batch():
            yield
            raise raised   # the batch's last statement (its COMMIT)

    lane = SpoolLane(threads=1)
    batches = MarkerBatches(lane, mark, failing)
    async with asyncio.timeout(30):
        outcomes = await asyncio.gather(*(batches.submit(i) for i in ids),
                                        return_exceptions=True)
    assert outcomes == [raised, raised]
    assert tries == ids   # once each, in the batch; none alone
    lane.close()
