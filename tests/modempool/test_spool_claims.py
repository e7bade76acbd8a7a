"""Leases across processes, crash recovery rules, and per-SIM counters that survive a restart."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta, timezone

import pytest

from modempool.spool import LeaseLost, MessageState, Spool
from modempool.spool.daemons import Here, by_age
from tests.modempool.spool_driver import claim_next

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def path(spool_target):
    """The spool of a test, once per engine."""
    return spool_target


def _claim_all(path: str, owner: str, start, out) -> None:
    """Claim until the queue is empty, in its own Spool (its own connection)."""
    spool = Spool(path, synchronous="normal")
    assert start.wait(timeout=60), "hang guard: never started"
    claimed = []
    while (message := claim_next(spool, owner, owner, 60)) is not None:
        claimed.append(message.id)
        spool.mark_sent(message.id, lease_owner=owner)
    spool.close()
    out.put((owner, claimed))


def test_two_processes_never_claim_the_same_message(path):
    with Spool(path) as spool:
        ids = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(300))
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [context.Process(target=_claim_all, args=(str(path), f"w{i}", start, out))
               for i in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    results = dict(out.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    everything = results["w0"] + results["w1"]
    assert sorted(everything) == ids  # each message claimed exactly once
    with Spool(path) as spool:
        assert spool.counts()["sent"] == 300
        assert {m.sim for m in spool.list()} <= {"w0", "w1"}
        assert all(m.attempts == 1 for m in spool.list())


def test_two_spool_objects_in_threads_share_the_work(path):
    with Spool(path) as spool:
        ids = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(200))
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(owner: str) -> None:
        with Spool(path, synchronous="normal") as mine:
            barrier.wait(timeout=60)   # hang guard: BrokenBarrierError
            while (message := claim_next(mine, "m-" + owner, owner, 60)) is not None:
                claimed[owner].append(message.id)

    threads = [threading.Thread(target=work, args=(o,)) for o in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed["a"] + claimed["b"]) == ids


def _send_parts(spool: Spool, message_id: int, written: int, sent: int, total: int) -> None:
    for seq in range(1, written + 1):
        spool.mark_part_writing(message_id, seq, total)
        if seq <= sent:
            spool.mark_part_sent(message_id, seq, 7, 100 + seq)


def test_recover_leases_applies_the_crash_rules(path):
    with Spool(path) as spool:
        ids = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(4))
        for _ in ids:
            claim_next(spool, "m1", "crashed", 60)
        _send_parts(spool, ids[1], written=1, sent=0, total=1)   # PDU may have left
        _send_parts(spool, ids[2], written=2, sent=1, total=3)   # half a multipart
        _send_parts(spool, ids[3], written=2, sent=2, total=2)   # all out, mark_sent missing
    with Spool(path) as spool:  # the restarted daemon
        assert spool.recover_leases(owner="someone-else").requeued == ()
        recovery = spool.recover_leases(include_live=True)
        assert recovery.requeued == (ids[0],)
        assert recovery.ambiguous == (ids[1], ids[2])
        assert recovery.sent == (ids[3],)
        untouched = spool.get(ids[0])
        assert untouched.state is MessageState.QUEUED and untouched.attempts == 0
        assert spool.get(ids[1]).state is MessageState.AMBIGUOUS
        assert spool.get(ids[3]).state is MessageState.SENT
        assert [p["state"] for p in spool.parts(ids[2])] == ["sent", "ambiguous"]
        # Ambiguous messages are never claimed again on their own.
        assert claim_next(spool, "m1", "new", 60).id == ids[0]
        assert claim_next(spool, "m1", "new", 60) is None


KILLED_DISPATCHER = """
import os, signal, sys
from modempool.spool import Spool
spool = Spool(sys.argv[1])
first = spool.claim(int(sys.argv[2]), "m1", "victim", 60)
second = spool.claim(int(sys.argv[3]), "m1", "victim", 60)
spool.mark_part_writing(second.id, 1, 1, lease_owner="victim")
os.kill(os.getpid(), signal.SIGKILL)  # no close, no commit of anything else
"""


def test_markers_survive_a_killed_process(path):
    import signal
    import subprocess
    import sys

    with Spool(path) as spool:
        first, second = spool.enqueue_many([{"to": "13800138000", "text": "a"},
                                            {"to": "13800138001", "text": "b"}])
    result = subprocess.run([sys.executable, "-c", KILLED_DISPATCHER, str(path), str(first),
                             str(second)], timeout=60)
    assert result.returncode == -signal.SIGKILL
    with Spool(path) as spool:
        recovery = spool.recover_leases(owner="victim")
        assert recovery.requeued == (first,) and recovery.ambiguous == (second,)


def test_only_expired_leases_are_recovered_without_owner(path):
    with Spool(path) as spool:
        first = spool.enqueue("13800138000", "a")
        second = spool.enqueue("13800138001", "b")
        claim_next(spool, "m1", "old", 30, now=T0)
        claim_next(spool, "m2", "alive", 3600, now=T0)
        recovery = spool.recover_leases(now=T0 + timedelta(seconds=60))
        assert recovery.requeued == (first.id,)
        assert spool.get(second.id).state is MessageState.SENDING


def test_a_requeue_then_crash_before_writing_is_requeued_not_ambiguous(path):
    """Parts from an earlier attempt (refused with +CMS ERROR) do not make a new one ambiguous."""
    with Spool(path) as spool:
        message = spool.enqueue("13800138000", "a")
        claim_next(spool, "m1", "o", 60)
        spool.mark_part_writing(message.id, 1, 1)
        spool.requeue(message.id, "+CMS ERROR: 38")
        claim_next(spool, "m2", "o", 60)
        assert spool.recover_leases(owner="o").requeued == (message.id,)
        assert spool.parts(message.id)[0]["state"] == "failed"


def test_a_recovered_lease_cannot_be_written_by_its_old_owner(path):
    with Spool(path) as spool:
        message = spool.enqueue("13800138000", "a")
        claim_next(spool, "m1", "slow", 1, now=T0)
        spool.recover_leases(now=T0 + timedelta(seconds=5))
        with pytest.raises(LeaseLost):
            spool.mark_part_writing(message.id, 1, 1, lease_owner="slow")
        with pytest.raises(LeaseLost):
            spool.renew_lease(message.id, "slow", 60)


def test_mark_part_sent_counts_once_and_counters_survive_reopen(path):
    with Spool(path, tz=timezone.utc) as spool:
        ids = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(3))
        for message_id in ids:
            claim_next(spool, "m1", "o", 60, now=T0)
            spool.mark_part_writing(message_id, 1, 1)
            spool.mark_part_sent(message_id, 1, None, message_id, now=T0)
            spool.mark_part_sent(message_id, 1, None, message_id, now=T0)  # repeated: no double count
            spool.mark_sent(message_id)
        assert spool.sent_counts("m1", now=T0 + timedelta(seconds=1)) == (3, 3, 3)
    with Spool(path, tz=timezone.utc) as spool:
        assert spool.sent_counts("m1", now=T0 + timedelta(seconds=30)) == (3, 3, 3)
        assert spool.sent_counts("m1", now=T0 + timedelta(minutes=2)) == (0, 3, 3)
        assert spool.sent_counts("m1", now=T0 + timedelta(days=1)) == (0, 0, 3)  # next day
        assert spool.sent_counts("m1", now=T0 + timedelta(days=31)) == (0, 0, 0)  # next month
        assert spool.sent_counts("unknown") == (0, 0, 0)
        # A new day starts the daily counter again; the month keeps counting.
        spool.count_sent("m1", 2, now=T0 + timedelta(days=1))
        assert spool.sent_counts("m1", now=T0 + timedelta(days=1)) == (0, 2, 5)
        assert spool.sim("m1")["sent_total"] == 5


def test_a_sims_day_and_month_follow_its_iccid_from_modem_to_modem(path):
    """A SIM card counts by its ICCID: moved from modem a1 (one box) to b7 (another), it keeps
    its day; the card put into a1 instead starts from nothing; a SIM without an ICCID counts
    by its name. Each modem's own counters stay its own."""
    with Spool(path, tz=timezone.utc) as spool:
        spool.upsert_sim("a1", iccid="89860012345678901234")
        spool.upsert_sim("n1")                                  # reported no ICCID
        spool.count_sent("a1", 4, now=T0)
        spool.count_sent("n1", 2, now=T0)
        spool.upsert_sim("b7", iccid="89860012345678901234")   # the card, in another box
        spool.upsert_sim("a1", iccid="89860099999999999999")   # a1 got another card
        later = T0 + timedelta(hours=1)
        assert spool.sent_counts("b7", now=later) == (0, 4, 4)
        assert spool.sent_counts("a1", now=later) == (0, 0, 0)
        assert spool.sent_counts("n1", now=later) == (0, 2, 2)
        spool.count_sent("b7", 1, now=later)
        assert spool.sent_counts("b7", now=later) == (0, 5, 5)
        assert (spool.sim("a1")["sent_today"], spool.sim("b7")["sent_today"]) == (4, 1)
        # A part that may have gone out from a1 (its daemon died writing it) counts for the
        # card in a1, now in c3: not spent a second time.
        spool.upsert_sim("a1", iccid="89860012345678901234")
        message = spool.enqueue("+8613800138000", "maybe out")
        spool.claim(message.id, "a1", "o", 60)
        spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
        spool.upsert_sim("c3", iccid="89860012345678901234")
        assert spool.sent_counts("c3")[1:] == (1, 1)
        # The whole bank in one call (the dashboard's): each SIM its own, nothing of one
        # counted for another. n1 sends one now (its first of this day and month).
        other = spool.enqueue("+8613800138001", "now")
        spool.claim(other.id, "n1", "o", 60)
        spool.mark_part_writing(other.id, 1, 1, lease_owner="o")
        spool.mark_part_sent(other.id, 1, None, 9)
        assert spool.sent_counts_of(["c3", "n1", "unknown", "b7"]) == {
            "c3": (0, 1, 1), "n1": (1, 1, 1), "unknown": (0, 0, 0), "b7": (0, 1, 1)}


def test_day_boundary_follows_local_time_zone(path):
    shanghai = timezone(timedelta(hours=8))
    with Spool(path, tz=shanghai) as spool:
        # 15:59 UTC is 23:59 in Shanghai; 16:01 UTC is the next day there.
        spool.count_sent("m1", 1, now=datetime(2026, 3, 1, 15, 59, tzinfo=timezone.utc))
        assert spool.sent_counts("m1", now=datetime(2026, 3, 1, 16, 1, tzinfo=timezone.utc))[1] == 0
        assert spool.sent_counts("m1", now=datetime(2026, 3, 1, 15, 59, 30, tzinfo=timezone.utc))[1] == 1


def test_upsert_sim_keeps_counters_and_rejects_unknown_columns(path):
    with Spool(path) as spool:
        spool.count_sent("m1", 4)
        row = spool.upsert_sim("m1", port="/dev/ttyUSB0", operator="China Mobile", signal=-71,
                               state="up", quarantined_until=T0)
        assert row["sent_today"] == 4 and row["operator"] == "China Mobile"
        assert row["quarantined_until"] == "2026-03-01T12:00:00.000Z"
        spool.record_sim_error("m1", "+CMS ERROR: 500")
        assert spool.sim("m1")["errors"] == 1
        with pytest.raises(Exception, match="unknown sims column"):
            spool.upsert_sim("m1", colour="red")
        spool.record_event("note", sim="m1", detail={"why": "test"})
        assert spool.events()[-1]["kind"] == "note"


@pytest.mark.parametrize("second_attempt, outcome", [
    ((), "queued"),                                           # nothing written this time
    ((("writing", 2),), "ambiguous"),                         # part 2 may be out
    ((("sent", 2), ("sent", 3)), "sent"),                     # the rest went out
    ((("sent", 2), ("writing", 3)), "ambiguous"),
])
def test_recovery_of_a_resumed_message_counts_the_parts_of_its_earlier_attempt(
        path, second_attempt, outcome):
    with Spool(path) as spool:
        message = spool.enqueue("+8613800138000", "three parts")
        spool.claim(message.id, "m1", "o", 60)
        spool.mark_part_writing(message.id, 1, 3, lease_owner="o")
        spool.mark_part_sent(message.id, 1, 7, 41)
        spool.requeue(message.id, "m1: +CMS ERROR: 21", only_sim="m1", lease_owner="o")
        assert spool.get(message.id).sims == ("m1",) and spool.sent_parts(message.id) == {1}
        spool.claim(message.id, "m1", "o", 60)
        for state, seq in second_attempt:
            spool.mark_part_writing(message.id, seq, 3, lease_owner="o")
            if state == "sent":
                spool.mark_part_sent(message.id, seq, 7, 41 + seq)
        recovery = spool.recover_leases(owner="o")
        assert spool.get(message.id).state.value == outcome
        assert {"queued": recovery.requeued, "ambiguous": recovery.ambiguous,
                "sent": recovery.sent}[outcome] == (message.id,)
        if outcome == "queued":
            assert spool.get(message.id).attempts == 1       # the empty attempt does not count


def test_a_requeue_that_does_not_count_gives_the_attempt_back(path):
    with Spool(path) as spool:
        message = spool.enqueue("+8613800138000", "hello")
        spool.claim(message.id, "m1", "o", 60)
        assert spool.requeue(message.id, "m1: gone before the prompt", avoid_sim="m1",
                             count_attempt=False, lease_owner="o")
        again = spool.get(message.id)
        assert again.state is MessageState.QUEUED and again.attempts == 0 and again.sims is None


def test_retrying_a_partly_sent_message_binds_it_to_the_sim_that_sent_its_parts(path):
    with Spool(path) as spool:
        message = spool.enqueue("+8613800138000", "three parts", sims=["m1", "m2"])
        spool.claim(message.id, "m2", "o", 60)
        spool.mark_part_writing(message.id, 1, 3, lease_owner="o")
        spool.mark_part_sent(message.id, 1, 7, 41)
        spool.mark_part_writing(message.id, 2, 3, lease_owner="o")
        spool.mark_ambiguous(message.id, "m2: silent after part 2", lease_owner="o")
        retried = spool.retry(message.id)
        assert retried.state is MessageState.QUEUED and retried.sims == ("m2",)
        assert spool.sent_parts(message.id) == {1}        # part 2 (in doubt) goes again
        plain = spool.enqueue("+8613800138000", "one part", sims=["m1", "m2"])
        spool.claim(plain.id, "m1", "o", 60)
        spool.mark_failed(plain.id, "m1: refused", lease_owner="o")
        assert spool.retry(plain.id).sims == ("m1", "m2")  # nothing out: its choice stays


def test_several_daemons_recover_only_the_run_out_leases_of_dead_ones(path):
    """A live daemon's leases are never taken, even run out; a dead one's are, once run out."""
    with Spool(path) as spool:
        ids = spool.enqueue_many({"to": f"1380013800{i}", "text": str(i)} for i in range(4))
        owners = ["live-host:1/m1", "dead-host:2/m1", "dead-host:2/m2", "here:99/m3"]
        for owner, lease in zip(owners, (30, 30, 600, 30)):
            claim_next(spool, owner.rsplit("/", 1)[1], owner, lease, now=T0)
        spool.beat("live-host:1", host="live-host", pid=1, started_at=T0,
                   now=T0 + timedelta(seconds=100))
        spool.beat("dead-host:2", host="dead-host", pid=2, started_at=T0, now=T0)
        spool.beat("here:99", host="here", pid=99, started_at=T0, now=T0 + timedelta(seconds=100))
        later = T0 + timedelta(seconds=101)
        recovery = spool.recover_dead_owners(here=Here("here", "0a0b0c0d"),
                                             alive=lambda pid: pid != 99,
                                             silent=by_age(later, 30), now=later)
        # dead-host's heartbeat is stale and its first lease ran out; its second has not; the
        # process 99 on this host is gone (its heartbeat is recent, but no process answers).
        assert sorted(recovery.requeued) == [ids[1], ids[3]]
        assert spool.get(ids[0]).state is MessageState.SENDING  # alive: never taken
        assert spool.get(ids[2]).state is MessageState.SENDING  # dead, but not run out yet


def test_a_part_that_may_have_gone_out_counts_against_todays_quota(path):
    """After a crash, a part marked writing (or ambiguous) may be on the network: the next daemon
    counts it, so that restarts never spend a SIM's quota twice."""
    with Spool(path, tz=timezone.utc) as spool:
        first, second = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"}
                                           for i in range(2))
        claim_next(spool, "m1", "dead:1/m1", 60)
        spool.mark_part_writing(first, 1, 1, lease_owner="dead:1/m1")  # then SIGKILL
        assert spool.sent_counts("m1")[1:] == (1, 1)
        spool.recover_leases(owner="dead:1/m1")                         # ambiguous now
        assert spool.get(first).state is MessageState.AMBIGUOUS
        assert spool.sent_counts("m1")[1:] == (1, 1)
        claim_next(spool, "m1", "next:2/m1", 60)
        spool.mark_part_writing(second, 1, 1, lease_owner="next:2/m1")
        spool.mark_last_part_sent(second, 1, None, 9, lease_owner="next:2/m1")
        assert spool.sent_counts("m1")[1:] == (2, 2)                   # each part once


def test_the_sims_that_last_sent_to_a_rounds_recipients_in_one_call(path):
    """The sticky strategy recalls, for a whole dispatch round, the SIM that last sent to each
    recipient: sent or delivered messages count, the newest wins, others are left out."""
    a, b, c = "+8613800138000", "+8613900139000", "+8613700137000"
    with Spool(path) as spool:
        for to, sim in ((a, "m1"), (a, "m2"), (b, "m3")):
            message = spool.enqueue(to, "hello", sims=[sim])
            assert claim_next(spool, sim, f"{sim}:1").id == message.id
            spool.mark_sent(message.id, lease_owner=f"{sim}:1")
        spool.enqueue(c, "still queued", sims=["m1"])
        assert spool.last_sims_for([a, b, c, "+8613600136000"]) == {a: "m2", b: "m3"}
        assert spool.last_sims_for([]) == {}


def test_a_rounds_claims_in_one_statement_each_to_its_sim(path):
    """`claim_many` leases each message to its own SIM and owner, in the order asked; a
    message no longer queued (cancelled, held, or claimed already) comes back as None and is
    left as it was."""
    with Spool(path) as spool:
        first, cancelled, held, taken, last = spool.enqueue_many(
            {"to": "+8613800138000", "text": f"n{i}"} for i in range(5))
        spool.cancel(cancelled)
        spool.enqueue("+8613800138000", "held one", client_id="h")
        with spool.engine.tx() as conn:
            conn.execute("UPDATE messages SET held = 1 WHERE id = ?", (held,))
        assert spool.claim(taken, "m9", "other:1/m9", 60) is not None
        claimed = spool.claim_many([(last, "m2", "d:1/m2"), (cancelled, "m1", "d:1/m1"),
                                    (held, "m1", "d:1/m1"), (taken, "m3", "d:1/m3"),
                                    (first, "m1", "d:1/m1")], 60)
        assert [m.id if m else None for m in claimed] == [last, None, None, None, first]
        assert [(m.sim, m.lease_owner, m.attempts, m.state) for m in (claimed[0], claimed[4])] == [
            ("m2", "d:1/m2", 1, MessageState.SENDING), ("m1", "d:1/m1", 1, MessageState.SENDING)]
        assert spool.get(taken).lease_owner == "other:1/m9"
        assert spool.get(cancelled).state is MessageState.CANCELLED
        assert spool.get(held).state is MessageState.QUEUED
        assert spool.claim_many([], 60) == []


def test_a_message_asked_twice_in_one_round_goes_to_its_first_claim_only(path):
    """`claim_many` is `claim` one after another: a message asked twice (a caller's slip) is
    leased to its first SIM and owner, the second ask gets None; never one message handed to
    two SIMs (each would send it)."""
    with Spool(path) as spool:
        one, two = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(2))
        claimed = spool.claim_many([(one, "m1", "d:1/m1"), (two, "m2", "d:1/m2"),
                                    (one, "m3", "d:1/m3")], 60)
        assert [m.id if m else None for m in claimed] == [one, two, None]
        assert (claimed[0].sim, claimed[0].lease_owner) == ("m1", "d:1/m1")
        assert (spool.get(one).sim, spool.get(one).lease_owner) == ("m1", "d:1/m1")
