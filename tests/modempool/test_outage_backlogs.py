"""What the daemon decided while the database could not take it waits, in order, and is written
once it answers: the operator hooks of an SMS stored just before the database went (pending in
the spool), the answer to a request (USSD: in memory). One line for the wait, never a
traceback; a request's answer still waiting at the daemon's stop is named, one line each. The spool is a real SQLite file whose write lock
another connection holds (the `locked_spool` fixture), then lets go."""

from __future__ import annotations

import asyncio
import logging
import threading

from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.requests import RequestDesk
from modempool.dispatch.sim_slot import SimSlot
from tests.modempool.daemon_harness import eventually


def _hooks(called: list[tuple[str, int]]) -> list:
    def reply(spool, message, _config):   # a write: waits for the database
        spool.enqueue(message.sender, f"re: {message.text}", client_id=f"reply:{message.id}")
        called.append(("reply", message.id))

    def note(_spool, message, _config):
        called.append(("note", message.id))

    return [reply, note]


def _pending(spool) -> list[int]:
    return [row["inbound_id"] for row in spool.inbound_hooks.waiting()]


async def test_hooks_the_database_went_away_under_run_in_order_once_it_answers(locked_spool,
                                                                              caplog):
    spool, other = locked_spool
    called: list[tuple[str, int]] = []
    store = InboundStore(spool, None, handlers=_hooks(called))
    other.rollback()
    first = spool.store_inbound("+8613912345678", "text 1", sim="m1", hooks_by=store.owner)
    second = spool.store_inbound("+8613912345679", "text 2", sim="m1", hooks_by=store.owner)
    other.execute("BEGIN IMMEDIATE")   # the database away before the hooks run
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        await store.run_hooks(first)    # returns: the hooks wait in the spool
        await store.run_hooks(second)
        assert called == [] and _pending(spool) == [first.id, second.id]
        assert "wait for the database" in caplog.text and "Traceback" not in caplog.text
        keeping = asyncio.create_task(store.keep_up(stop, every=60.0))
        caplog.set_level(logging.DEBUG, logger="modempool.dispatch.inbound")
        await eventually(lambda: "did not all run; next pass" in caplog.text,
                         what="a pass the database failed")
        other.rollback()  # the database answers again
        await eventually(lambda: not store.behind, what="the hooks run")
        stop.set()
        await keeping
        await store.close()
    assert called == [("reply", 1), ("note", 1), ("reply", 2), ("note", 2)]
    assert [m.text for m in spool.list()] == ["re: text 1", "re: text 2"]
    assert _pending(spool) == []
    assert "did not run" not in caplog.text and "Traceback" not in caplog.text


async def test_a_requests_answer_the_database_could_not_take_is_written_once_it_answers(
        locked_spool, caplog):
    spool, other = locked_spool
    other.rollback()
    request_id = spool.requests.add("m1", "ussd", "*100#")
    other.execute("BEGIN IMMEDIATE")  # away again before the answer is written
    desk = RequestDesk(spool, "here:1", [SimSlot("m1")])
    await desk._answer(spool.requests.get(request_id))  # the SIM is not up: an error answer
    assert spool.requests.get(request_id)["state"] == "pending"
    assert len(desk.unwritten.waiting) == 1 and "Traceback" not in caplog.text
    other.rollback()
    await eventually(lambda: spool.requests.get(request_id)["state"] == "failed",
                     what="the answer written")
    assert "SIM m1 is starting" in spool.requests.get(request_id)["error"]
    await desk.unwritten.close()
    assert "was not written" not in caplog.text


async def test_a_senders_next_sms_waits_behind_hooks_that_failed_for_a_moment(tmp_path):
    """SMS A's hooks fail for a moment (a lock timeout, say) while B, from the same sender,
    waits for its turn: B goes behind A in the spool, and the resume runs A then B, so the
    退订 is recorded before the 'hi' is answered (it was the other way round once: B ran at
    once)."""
    from modempool.dispatch.spool_lane import SpoolLane
    from modempool.spool import Spool
    from modempool.spool.unavailable import SpoolUnavailable

    spool = Spool(str(tmp_path / "spool.db"))
    done: list[str] = []
    calls: list[int] = []
    a_running, a_fails = threading.Event(), threading.Event()

    def optout_then_reply(_spool, message, _config):
        calls.append(message.id)
        if message.id == 1 and calls.count(1) == 1:
            a_running.set()
            assert a_fails.wait(timeout=30), "hang guard: A was never let fail"
            raise SpoolUnavailable("a lock was not granted in time", 1, "lock timeout")
        done.append(message.text)

    store = InboundStore(spool, None, handlers=[optout_then_reply], lane=SpoolLane(threads=2))
    sender = "+8613912345678"
    first = spool.store_inbound(sender, "退订", sim="m1", hooks_by=store.owner)
    later = spool.store_inbound(sender, "hi", sim="m1", hooks_by=store.owner)
    a = asyncio.create_task(store.run_hooks(first))
    assert await asyncio.to_thread(a_running.wait, 60), "hang guard: A's hook never ran"
    b = asyncio.create_task(store.run_hooks(later))
    await eventually(lambda: [w for _, w in store.hooks._turns.values()] == [2],
                     what="B waiting for the turn")
    a_fails.set()
    await asyncio.gather(a, b)
    assert done == [] and _pending(spool) == [1, 2]   # B behind A, in the spool
    stop = asyncio.Event()
    keeping = asyncio.create_task(store.keep_up(stop, every=60.0))
    await eventually(lambda: len(done) == 2, what="both SMS' hooks run")
    stop.set()
    await keeping
    await store.close()
    spool.close()
    assert done == ["退订", "hi"] and calls == [1, 1, 2]
