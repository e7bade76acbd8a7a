"""A card taken over from a daemon judged dead while it lives: the taker's counts, read after
its take, include the part whose marker the old holder was committing meanwhile (PostgreSQL:
the marker share-locks the hold's row, so the take waits for that commit). Before, a take that
committed while a marker was under way let the taker read the card's day one part short, and
the card sent quota + 1.

Two Stores on one schema of the suite's cluster, as two daemons on two boxes: A marks a part
in a transaction it keeps open (a marker whose commit is slow); B takes the card meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from modempool.spool import Spool
from modempool.spool.model import CardLost
from tests.modempool.test_spool_report_locks import lock_waiters

pytestmark = pytest.mark.timeout(120)

CARD = "89860012345678906666"
A, B = "box-a:101:0000aaaa-r1", "box-b:202:0000bbbb-r2"
OWNER_A = f"{A}/a1"


def _waiting_on_a_lock(spool: Spool, done: threading.Event, timeout: float = 60.0) -> bool:
    """Whether a session of the spool's database waits for a lock (here: the other Store's,
    on the hold's row), polled until one does or `done` is set (a thread that did not wait):
    the server tells no more than that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock_waiters(spool):
            return True
        if done.is_set():
            return False
        time.sleep(0.02)
    raise AssertionError(f"neither waited nor done within {timeout:g} s")


def test_a_takers_counts_include_the_part_whose_marker_was_under_way(pg_cluster):
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        a.upsert_sim("a1", iccid=CARD)
        b.upsert_sim("b1", iccid=CARD)
        assert a.card_holders.take(CARD, A, "a1", lambda owner: False) is None
        a.claims.require_hold(OWNER_A, (CARD, A, "a1"))
        message = a.enqueue("+8613800138000", "the last part of the card's day")
        assert a.claim(message.id, "a1", OWNER_A, 60)
        counted: list[int] = []
        taken = threading.Event()

        def b_takes_the_card() -> None:   # A judged dead: its hold taken over
            try:
                assert b.card_holders.take(CARD, B, "b1", lambda owner: True) is None
                counted.append(b.sent_counts("b1")[1])   # the card's day, as B's modem reads it
            finally:
                taken.set()

        with a.transaction():   # the marker statement done, its commit not yet
            a.mark_part_writing(message.id, 1, 1, lease_owner=OWNER_A)
            taker = threading.Thread(target=b_takes_the_card)
            taker.start()
            waited = _waiting_on_a_lock(b, taken)
        taker.join(60)
        assert counted == [1]   # A's part on the card's day (the old code read 0: B sends one more)
        assert waited   # the take waited for the marker's commit (the old code's did not)
        assert [p["state"] for p in a.parts(message.id)] == ["writing"]


@pytest.mark.parametrize("how", ["alone", "in a batch"])
def test_a_marker_that_comes_while_the_card_is_taken_waits_and_finds_it_gone(pg_cluster, how):
    """A's marker (alone, or in a batch's one statement with another SIM's) comes while B's
    take is not committed yet: it waits for the take, then finds the hold gone (CardLost);
    the other SIM's marker in the batch is written."""
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        a.upsert_sim("a1", iccid=CARD)
        assert a.card_holders.take(CARD, A, "a1", lambda owner: False) is None
        a.claims.require_hold(OWNER_A, (CARD, A, "a1"))
        message = a.enqueue("+8613800138000", "after the take")
        assert a.claim(message.id, "a1", OWNER_A, 60)
        other = a.enqueue("+8613800138000", "another SIM's")
        assert a.claim(other.id, "a2", f"{A}/a2", 60)
        outcome: list[BaseException | None] = []
        marked = threading.Event()

        def a_marks() -> None:
            try:
                if how == "alone":
                    a.mark_part_writing(message.id, 1, 1, lease_owner=OWNER_A)
                    outcome.append(None)
                else:
                    (_, lost), (_, other_lost) = a.mark_sent_then_writing_each(
                        [([], message.id, 1, 1, OWNER_A), ([], other.id, 1, 1, f"{A}/a2")])
                    assert other_lost is None
                    outcome.append(lost)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                marked.set()

        with b.transaction() as conn:   # B's take, not committed yet
            conn.execute("UPDATE sim_holders SET owner = ?, modem = 'b1' WHERE iccid = ?",
                         (B, CARD))
            marker = threading.Thread(target=a_marks)
            marker.start()
            waited = _waiting_on_a_lock(a, marked)
        marker.join(60)
        assert len(outcome) == 1 and isinstance(outcome[0], CardLost), outcome
        assert a.parts(message.id) == []
        assert waited   # the old code's marker did not wait: written on the hold it then lost
