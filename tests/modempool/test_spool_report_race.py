"""A delivery report and its part's confirmation written at once by two connections of one
PostgreSQL spool (two daemons, or a daemon's inbound lane and its send lane): whichever
commits second sees the other, so the message ends delivered, not 'sent' for ever.

Each order is made deterministic: the first writer's transaction is held open (after all its
statements, before its commit) until the second has finished or waits for it on the server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from modempool.spool import MessageState, Spool
from tests.modempool.test_spool_early_reports import TO, network_time, writing


@pytest.fixture
def spools(pg_cluster):
    """Two spools on one PostgreSQL schema: two connection pools, as two processes have."""
    url = pg_cluster.new_schema()
    with Spool(url) as first, Spool(url) as second:
        yield first, second


def waits_on_a_lock(spool: Spool) -> bool:
    return spool.rows("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                      "AND datname = current_database()")[0][0] > 0


def held_open(spool: Spool, write: Callable[[], object], wrote: threading.Event,
              commit: threading.Event) -> None:
    """`write` in a transaction kept open until `commit` is set (the spool's calls nest in it)."""
    with spool.transaction():
        write()
        wrote.set()
        assert commit.wait(timeout=30), "hang guard: the commit was never let go"


@pytest.mark.parametrize("first_writer", ["confirmation", "report"])
def test_a_report_and_its_confirmation_at_once_deliver_the_message(spools, first_writer):
    one, two = spools
    message_id = writing(one)
    confirm = lambda: one.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")  # noqa: E731
    report = lambda: two.store_delivery_report("m1", 42, TO, 0, received_at=network_time())  # noqa: E731
    first, second = (confirm, report) if first_writer == "confirmation" else (report, confirm)

    wrote, commit, second_done = threading.Event(), threading.Event(), threading.Event()
    holder = threading.Thread(target=held_open, args=(one if first is confirm else two, first,
                                                       wrote, commit))
    holder.start()
    assert wrote.wait(60), "the first writer never wrote"
    follower = threading.Thread(target=lambda: (second(), second_done.set()))
    follower.start()
    # The second either finishes (it did not wait for the first: the race) or waits on the
    # server for the first's lock; either way the first may commit now.
    guard = time.monotonic() + 120   # a hang guard only
    while not second_done.wait(0.01) and not waits_on_a_lock(one):
        assert follower.is_alive() and time.monotonic() < guard, "the second writer is stuck"
    commit.set()
    holder.join()
    follower.join()

    assert one.get(message_id).state is MessageState.DELIVERED
    [part] = one.parts(message_id)
    assert part["state"] == "delivered"
    assert one.rows("SELECT part_id IS NOT NULL FROM delivery_reports")[0][0]
