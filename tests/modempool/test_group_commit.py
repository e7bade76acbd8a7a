"""Group commit (modempool/group_commit.py): sends that arrive together share one transaction,
each under its own savepoint; a caller is answered only once its rows are committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from functools import partial
from pathlib import Path

import pytest

from modempool import Pool
from modempool.errors import InvalidNumber
from modempool.group_commit import GroupCommit
from modempool.numbers import normalise


@pytest.fixture
def pool(config: Path):
    with Pool.open(config) as pool:
        yield pool


def _committed(pool: Pool, message_id: int) -> bool:
    """Whether another connection (another process would do the same) sees the message."""
    with sqlite3.connect(pool.spool.path) as other:
        return other.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None


async def test_sends_that_arrive_together_share_a_commit_and_a_refusal_stays_alone(pool):
    sends = GroupCommit(pool.spool)

    async def send(number: str) -> list[int]:
        ids = await sends.run(partial(pool.queue, number, "验证码 123456"))
        assert all(_committed(pool, i) for i in ids)   # answered only after the commit
        return ids

    numbers = [f"1380013{i:04d}" for i in range(20)]
    outcomes = await asyncio.gather(*(send(n) for n in numbers[:10]), send("12345"),
                                    *(send(n) for n in numbers[10:]), return_exceptions=True)
    refused = outcomes.pop(10)
    assert isinstance(refused, InvalidNumber) and "12345" in str(refused)
    assert all(isinstance(ids, list) and len(ids) == 1 for ids in outcomes), outcomes
    assert [m.to for m in pool.messages()] == [f"+86{n}" for n in numbers]
    assert sends.operations == 21 and sends.batches < 21   # shared transactions
    sends.close()


async def test_the_same_idempotency_key_twice_in_one_batch_queues_once(pool):
    sends = GroupCommit(pool.spool)
    first, again = await asyncio.gather(
        *(sends.run(partial(pool.queue, "13800138000", "您好", client_id="order-42"))
          for _ in range(2)))
    assert first == again and len(pool.messages()) == 1 and sends.batches == 1
    sends.close()


async def test_a_failed_commit_fails_every_caller_of_the_batch_and_stores_nothing(pool):
    sends = GroupCommit(pool.spool)
    pool.spool.db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    pool.spool.db.execute("CREATE TABLE checked (n INTEGER REFERENCES parent (id) "
                          "DEFERRABLE INITIALLY DEFERRED)")
    pool.spool.engine.conn.execute("PRAGMA foreign_keys = ON")

    def violates_at_commit() -> None:   # a deferred foreign key: refused only by COMMIT
        pool.spool.engine.conn.execute("INSERT INTO checked (n) VALUES (1)")

    outcomes = await asyncio.gather(sends.run(partial(pool.queue, "13800138000", "您好")),
                                    sends.run(violates_at_commit), return_exceptions=True)
    assert all(isinstance(o, sqlite3.DatabaseError) for o in outcomes), outcomes
    assert pool.messages() == [] and not pool.spool.engine.conn.in_transaction
    assert await sends.run(partial(pool.queue, "13800138001", "您好")) == [1]   # it goes on
    sends.close()


async def test_checks_run_before_the_transaction_and_a_refused_check_writes_nothing(pool):
    sends = GroupCommit(pool.spool)
    outside: list[bool] = []

    def check(number: str):
        def run() -> None:
            outside.append(not pool.spool.engine.conn.in_transaction)  # the write lock is not held
            normalise(number)
        return run

    outcomes = await asyncio.gather(*(
        sends.run(partial(pool.queue, number, "您好"), check=check(number))
        for number in ("13800138000", "not a number", "13800138001")), return_exceptions=True)
    assert isinstance(outcomes[1], InvalidNumber) and outcomes[0] == [1] and outcomes[2] == [2]
    assert outside == [True, True, True] and len(pool.messages()) == 2
    sends.close()


async def test_a_writer_that_cannot_run_fails_every_waiting_caller(pool):
    """The writer thread itself gone (a server shutting down): the batch and whatever queued
    behind it get the error at once instead of waiting for a request that may never come."""
    from concurrent.futures import ThreadPoolExecutor

    sends = GroupCommit(pool.spool, max_batch=1)
    gone = ThreadPoolExecutor(max_workers=1)
    gone.shutdown()
    sends._writer = gone
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(sends.run(partial(pool.queue, f"1380013{i:04d}", "x")) for i in range(3)),
        return_exceptions=True), timeout=30)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert pool.spool.counts()["queued"] == 0


class Watched(GroupCommit):
    """A group commit that says when its writer starts waiting for company."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lingering = asyncio.Event()

    async def _wait_for_company(self, seconds: float) -> None:
        self.lingering.set()
        await super()._wait_for_company(seconds)


async def test_a_send_that_comes_alone_waits_for_company_and_shares_its_commit(pool):
    """At a steady trickle each send would get a transaction of its own (the WAL pages of
    every index, the write lock that often): the first of a batch lingers for others."""
    lingering = Watched(pool.spool, linger=3600.0, max_batch=2)
    first = asyncio.create_task(lingering.run(partial(pool.queue, "13800138000", "一")))
    await lingering.lingering.wait()   # the writer waits with the first alone
    async with asyncio.timeout(60):    # the second fills the batch: no hour's wait
        assert await asyncio.gather(first, lingering.run(
            partial(pool.queue, "13800138001", "二"))) == [[1], [2]]
    assert lingering.batches == 1   # both in one commit
    lingering.close()

    eager = Watched(pool.spool, linger=0.0)
    taken = threading.Event()   # the writer thread has the first's batch
    first = asyncio.create_task(eager.run(partial(pool.queue, "13800138002", "三"),
                                          check=taken.set))
    assert await asyncio.to_thread(taken.wait, 60)
    assert await asyncio.gather(first, eager.run(partial(pool.queue, "13800138003", "四"))) \
        == [[3], [4]]
    assert eager.batches == 2 and not eager.lingering.is_set()
    eager.close()


async def test_a_full_batch_does_not_linger(pool):
    sends = Watched(pool.spool, max_batch=2, linger=3600.0)
    async with asyncio.timeout(60):   # a batch that lingered would wait an hour
        assert await asyncio.gather(*(sends.run(partial(pool.queue, f"1380013800{i}", "x"))
                                      for i in range(2))) == [[1], [2]]
    assert sends.batches == 1 and not sends.lingering.is_set()
    sends.close()


async def test_a_batch_indexes_its_messages_text_together_and_not_a_refused_ones(pool):
    """The text index is written once at the batch's end: a send rolled back meanwhile is
    not in it, even when the next send of the batch took its id."""
    sends = GroupCommit(pool.spool)

    def refused_after_writing() -> None:
        pool.queue("13800138001", "ghost 幽灵短信")
        raise InvalidNumber("refused after writing")

    outcomes = await asyncio.gather(
        sends.run(partial(pool.queue, "13800138000", "验证码 111111 第一条")),
        sends.run(refused_after_writing),
        sends.run(partial(pool.queue, "13800138002", "取件码 222222 第二条")),
        return_exceptions=True)
    assert outcomes[0] == [1] and isinstance(outcomes[1], InvalidNumber) and outcomes[2] == [2]
    assert sends.batches == 1
    engine = pool.spool.engine
    assert engine.newest_matching("messages", "111111", 10) == [1]
    assert engine.newest_matching("messages", "222222", 10) == [2]   # id 2 was the ghost's
    assert engine.newest_matching("messages", "幽灵短信", 10) == []
    engine.conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    sends.close()
