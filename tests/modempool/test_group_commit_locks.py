"""Group commits of two servers on one PostgreSQL (two `Pool`s, each its own connections, as
two processes have) whose batches hold several quota-limited accounts: they never deadlock,
and a batch PostgreSQL still picks as a deadlock's victim is written again, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modempool import Pool
from modempool.accounts import Accounts
from modempool.group_commit import GroupCommit

ACCOUNTS = ("a", "b", "c1", "c2")


@pytest.fixture
def target(config, pg_cluster) -> tuple[Path, str]:
    """The one-modem config and a fresh PostgreSQL spool with four quota-limited senders."""
    path, url = config, pg_cluster.new_schema()
    with Pool.open(path, spool_path=url) as pool:
        for name in ACCOUNTS:
            Accounts(pool.spool).add(name, "sender", per_day=100)
    return path, url


def advisory_waiters(pool: Pool) -> int:
    """How many connections of this cluster wait for an advisory lock (the quota's)."""
    return pool.spool.rows(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND wait_event = 'advisory' AND datname = current_database()")[0][0]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll the server's view until `condition` holds (the writers block there)."""
    guard = time.monotonic() + 120   # a hang guard only
    while not condition():
        assert time.monotonic() < guard, what
        time.sleep(0.01)


def send(sends: GroupCommit, pool: Pool, account: str, number: str):
    planned = pool.for_account(Accounts(pool.spool).get(account)).plan_send([number], "验证码 1234")
    return sends.run(planned.write, check=planned.check, locks=planned.locks)


def owners(pool: Pool) -> dict[str, int]:
    return dict(pool.spool.rows(
        "SELECT account, count(*) FROM message_accounts GROUP BY account ORDER BY account"))


async def test_two_servers_batches_of_accounts_in_opposite_orders_both_commit(target):
    """Server one's batch sends as a, c1, b; server two's as b, c2, a. A third connection
    holds c1's and c2's quota locks until both batches wait, so that (taking the locks as
    the sends come) one would hold a and the other b, each then wanting the other's."""
    path, url = target
    with Pool.open(path, spool_path=url) as one, Pool.open(path, spool_path=url) as two, \
            Pool.open(path, spool_path=url) as holder:
        first, second = GroupCommit(one.spool, max_batch=3), GroupCommit(two.spool, max_batch=3)
        with holder.spool.transaction() as conn:
            for key in ("quota:c1", "quota:c2"):
                holder.spool.engine.lock_key(conn, key)
            batches = asyncio.gather(
                send(first, one, "a", "13800000001"), send(first, one, "c1", "13800000002"),
                send(first, one, "b", "13800000003"),
                send(second, two, "b", "13800000004"), send(second, two, "c2", "13800000005"),
                send(second, two, "a", "13800000006"), return_exceptions=True)
            await asyncio.to_thread(wait_until, lambda: advisory_waiters(holder) == 2,
                                    "the two batches never both waited")
        outcomes = await batches
        assert all(isinstance(o, list) and len(o) == 1 for o in outcomes), outcomes
        assert owners(holder) == {"a": 2, "b": 2, "c1": 1, "c2": 1}
        assert sorted(m.to for m in holder.messages()) == [f"+86138000000{i:02d}" for i in range(1, 7)]
        assert (first.batches, second.batches) == (1, 1)
        first.close()
        second.close()


async def test_a_batch_picked_as_a_deadlocks_victim_is_written_again_once(target):
    """Another transaction holds the quota lock the batch takes second and then asks for the
    first, which the batch holds while it waits for the second: PostgreSQL breaks the cycle
    by failing the batch (the other connection checks for a deadlock only after a minute).
    The batch runs again after the other commits, and each send is stored once."""
    path, url = target
    with Pool.open(path, spool_path=url) as server, Pool.open(path, spool_path=url) as other:
        sends = GroupCommit(server.spool, max_batch=2)
        # the batch locks in the order of the lock numbers (engine.lock_keys)
        taken_first, taken_second = (row[0] for row in other.spool.rows(
            "SELECT key FROM unnest(CAST(? AS text[])) AS key ORDER BY hashtext(key)",
            (["quota:a", "quota:b"],)))
        with other.spool.transaction() as conn:
            conn.execute("SET LOCAL deadlock_timeout = '60s'")   # the batch is the victim
            other.spool.engine.lock_key(conn, taken_second)
            batch = asyncio.gather(send(sends, server, "a", "13800000001"),
                                   send(sends, server, "b", "13800000002"), return_exceptions=True)
            await asyncio.to_thread(wait_until, lambda: advisory_waiters(other) == 1,
                                    "the batch never waited for its second lock")
            await asyncio.to_thread(other.spool.engine.lock_key, conn, taken_first)
        outcomes = await batch
        assert all(isinstance(o, list) and len(o) == 1 for o in outcomes), outcomes
        assert owners(other) == {"a": 1, "b": 1}
        assert sends.run_again == 2   # the whole batch, once
        assert sorted(m.to for m in other.messages()) == ["+8613800000001", "+8613800000002"]
        sends.close()


async def test_a_send_picked_as_a_deadlocks_victim_inside_its_batch_is_written_once(target):
    """Two servers get the same two idempotent sends (a client retrying at both) in opposite
    orders: each batch inserts its first key, then waits for the other's uncommitted insert of
    its second. PostgreSQL fails one of those inserts; that send is run again after its batch
    committed, finds the other's row and answers the same message: nothing lost, nothing
    twice."""
    import threading

    path, url = target
    sends_a = ("a", "k-a", "13800000001")
    sends_b = ("b", "k-b", "13800000002")
    with Pool.open(path, spool_path=url) as one, Pool.open(path, spool_path=url) as two:
        wrote = [threading.Event(), threading.Event()]

        def member(pool: Pool, account: str, key: str, number: str, batch: int | None = None):
            plan = pool.for_account(Accounts(pool.spool).get(account)).plan_send(
                [number], "验证码 1234", client_id=key)

            def write_then_meet():   # the batch's first send; then the other batch's first
                done = plan.write()
                wrote[batch].set()
                assert wrote[1 - batch].wait(60), "the other batch never wrote its first send"
                return done
            return (plan.write if batch is None else write_then_meet), plan.check

        servers = [GroupCommit(one.spool, max_batch=2), GroupCommit(two.spool, max_batch=2)]
        members = [member(one, *sends_a, batch=0), member(one, *sends_b),
                   member(two, *sends_b, batch=1), member(two, *sends_a)]
        outcomes = await asyncio.gather(
            *(servers[index // 2].run(write, check=check)
              for index, (write, check) in enumerate(members)), return_exceptions=True)
        assert all(isinstance(o, list) and len(o) == 1 for o in outcomes), outcomes
        assert sum(sends.run_again for sends in servers) == 1     # the deadlock's victim
        answered = {(o[0].to, o[0].id) for o in outcomes}          # the same message twice
        assert sorted(answered) == sorted((m.to, m.id) for m in one.messages())
        assert len(answered) == 2 and owners(one) == {"a": 1, "b": 1}
        for sends in servers:
            sends.close()
