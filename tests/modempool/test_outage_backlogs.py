"""What the daemon decided while the database could not take it waits in memory, in order, and
is written once it answers: the operator hooks of an SMS stored just before the database went,
the answer to a request (USSD). One line for the wait, never a traceback; what still waits at
the daemon's stop is named, one line each. The spool is a real SQLite file whose write lock
another connection holds (the `locked_spool` fixture), then lets go."""

from __future__ import annotations

import asyncio
import logging
import threading

from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.requests import RequestDesk
from modempool.dispatch.sim_slot import SimSlot
from tests.modempool.daemon_harness import eventually


def _received(number: int, sender: str) -> dict:
    return {"id": number, "sender": sender, "text": f"text {number}", "sim": "m1"}


def _hooks(called: list[tuple[str, int]]) -> list:
    def reply(spool, message, _config):   # a write: waits for the database
        spool.enqueue(message["sender"], f"re: {message['text']}",
                      client_id=f"reply:{message['id']}")
        called.append(("reply", message["id"]))

    def note(_spool, message, _config):
        called.append(("note", message["id"]))

    return [reply, note]


async def test_hooks_the_database_went_away_under_run_in_order_once_it_answers(locked_spool,
                                                                              caplog):
    spool, other = locked_spool
    called: list[tuple[str, int]] = []
    store = InboundStore(spool, None, handlers=_hooks(called))
    with caplog.at_level(logging.INFO):
        await store.run_hooks(_received(1, "+8613912345678"))  # returns: the hooks wait
        await store.run_hooks(_received(2, "+8613912345679"))  # behind the first
        assert called == [] and len(store.hooks_waiting.waiting) == 2
        assert caplog.text.count("wait for the database") == 1
        assert "Traceback" not in caplog.text
        other.rollback()  # the database answers again
        await eventually(lambda: not store.hooks_waiting.waiting, what="the hooks run")
        await store.close()
    assert called == [("reply", 1), ("note", 1), ("reply", 2), ("note", 2)]
    assert [m.text for m in spool.list()] == ["re: text 1", "re: text 2"]
    assert "did not run" not in caplog.text and "Traceback" not in caplog.text


async def test_hooks_still_waiting_at_the_stop_are_named_one_line_each(locked_spool, caplog):
    spool, _other = locked_spool
    called: list[tuple[str, int]] = []
    store = InboundStore(spool, None, handlers=_hooks(called))
    await store.run_hooks(_received(1, "+8613912345678"))
    await store.run_hooks(_received(2, "+8613912345679"))
    await store.close()  # the database still away
    lost = [r.getMessage() for r in caplog.records if "did not run" in r.getMessage()]
    assert len(lost) == 2 and "inbound SMS 1 from +8613912345678" in lost[0]
    assert "reply, note" in lost[1] and called == []


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
    waits for its turn: B goes behind A, whose retry takes the sender's turn, so the 退订 is
    recorded before the 'hi' is answered (it was the other way round: B ran at once)."""
    from modempool.dispatch.spool_lane import SpoolLane
    from modempool.spool import Spool
    from modempool.spool.unavailable import SpoolUnavailable

    spool = Spool(str(tmp_path / "spool.db"))
    done: list[str] = []
    calls: list[int] = []
    a_running, a_fails, a_retry_goes = (threading.Event() for _ in range(3))

    def optout_then_reply(_spool, message, _config):
        calls.append(message["id"])
        if message["id"] == 1 and calls.count(1) == 1:
            a_running.set()
            assert a_fails.wait(timeout=30), "hang guard: A was never let fail"
            raise SpoolUnavailable("a lock was not granted in time", 1, "lock timeout")
        if message["id"] == 1:
            # A's retry held up (a slow round trip) until B has shown where it went
            assert a_retry_goes.wait(timeout=30), "hang guard: A's retry never let go"
        done.append(message["text"])

    store = InboundStore(spool, None, handlers=[optout_then_reply], lane=SpoolLane(threads=2))
    sender = "+8613912345678"
    a = asyncio.create_task(store.run_hooks({"id": 1, "sender": sender, "text": "退订"}))
    await eventually(a_running.is_set, what="A's hook running")
    b = asyncio.create_task(store.run_hooks({"id": 2, "sender": sender, "text": "hi"}))
    await eventually(lambda: [w for _, w in store._turns.values()] == [2],
                     what="B waiting for the turn")
    a_fails.set()
    await asyncio.gather(a, b)
    # B has either run (the old way) or gone behind A; either way A's retry may go on now
    await eventually(lambda: done or len(store.hooks_waiting.waiting) == 2, what="B placed")
    a_retry_goes.set()
    await eventually(lambda: len(done) == 2, what="both SMS' hooks run")
    await store.close()
    spool.close()
    assert done == ["退订", "hi"] and calls == [1, 1, 2]
