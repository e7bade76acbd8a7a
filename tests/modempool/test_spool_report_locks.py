"""Two batches of confirmations recorded at once on one PostgreSQL spool (two daemons' record
paths, or one daemon's two lanes) whose message references overlap in opposite orders: each
batch takes its report locks (`report_key`: SIM and TP-MR) all at once, in one order, before
it writes anything, so neither waits for the other in a cycle (PostgreSQL 40P01, a stalled
batch written again a second later).

The interleaving is made deterministic by a third connection holding the part row of each
batch's second message: a batch that took its locks as its sends came would stop there holding
the first two references, then want the other batch's."""

from __future__ import annotations

import threading

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.records import SentPart
from tests.modempool.test_group_commit_locks import wait_until

TO = "+8613800138000"


@pytest.fixture
def spools(pg_cluster):
    """Three spools on one PostgreSQL schema: three connection pools, as three processes have."""
    url = pg_cluster.new_schema()
    with Spool(url) as one, Spool(url) as two, Spool(url) as holder:
        yield one, two, holder


def writing(spool: Spool, sim: str, owner: str) -> int:
    """A one-part message whose part is being written by `sim` under lease `owner`."""
    message = spool.enqueue(TO, "验证码 1234")
    spool.claim(message.id, sim, owner, 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
    return message.id


def lock_waiters(spool: Spool) -> int:
    """How many connections of this database wait for a lock (a row's or an advisory one)."""
    return spool.rows("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                      "AND datname = current_database()")[0][0]


def record(spool: Spool, sends: list[SentPart], outcome: dict[str, object], name: str) -> None:
    try:
        outcome[name] = spool.mark_many_sent(sends)
    except Exception as exc:   # what the test reports: the deadlock's victim
        outcome[name] = exc


@pytest.mark.parametrize("second_sim", ["m2", "m1"], ids=["two daemons", "one SIM"])
def test_batches_with_references_in_opposite_orders_both_commit(spools, second_sim):
    one, two, holder = spools
    first = [writing(one, "m1", "a") for _ in range(3)]
    second = [writing(two, second_sim, "b") for _ in range(3)]
    batches = {
        "first": (one, [SentPart(m, 1, None, mr, lease_owner="a")
                        for m, mr in zip(first, (5, 6, 7))]),
        "second": (two, [SentPart(m, 1, None, mr, lease_owner="b")
                         for m, mr in zip(second, (7, 8, 5))]),
    }
    outcome: dict[str, object] = {}
    with holder.transaction() as conn:
        for message_id in (first[1], second[1]):
            conn.execute("SELECT 1 FROM parts WHERE message_id = ? FOR UPDATE", (message_id,))
        threads = [threading.Thread(target=record, args=(spool, sends, outcome, name))
                   for name, (spool, sends) in batches.items()]
        for thread in threads:
            thread.start()
        # asked outside the holder's transaction: inside it PostgreSQL lists only the sessions
        # there were at its first look at pg_stat_activity (a connection opened later: never)
        wait_until(lambda: lock_waiters(one) == 2, "the two batches never both waited")
    for thread in threads:
        thread.join()

    assert outcome == {"first": [True] * 3, "second": [True] * 3}
    assert {one.get(m).state for m in first + second} == {MessageState.SENT}
    assert sorted(row[0] for row in holder.rows("SELECT message_reference FROM parts")) == [
        5, 5, 6, 7, 7, 8]
