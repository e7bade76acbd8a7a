"""The daemon's inbound path: operator hooks run once per complete SMS, a failing hook never stops
the pool, and parts whose siblings never come are stored as incomplete messages."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import pdu
from at_commands.events import InboundSms, StatusReport
from at_commands.inbound import decode
from modempool.dispatch.inbound import REPORT_WAITS_AT_MOST, InboundStore
from modempool.spool import Spool
from tests.modempool.daemon_harness import eventually
from tests.modempool.test_dispatch import MOBILE, UNICOM, pool, state

pytestmark = pytest.mark.timeout(60)


async def test_hooks_run_for_each_complete_message_and_a_failing_hook_is_contained(tmp_path):
    seen = []

    def broken(spool, message, config):
        raise RuntimeError("a buggy operator hook")

    async def record(spool, message, config):
        seen.append((message.sender, message.text, message.sim))

    async with pool(tmp_path, modems=2, handlers=[broken, record]) as (bank, spool, _daemon):
        long_reply = "分段的回复，" * 30
        await bank.inject("m1", MOBILE, "短回复")
        await bank.inject("m2", UNICOM, long_reply, out_of_order=True)
        await eventually(lambda: len(seen) == 2, what="both hook calls")
        after = spool.enqueue(MOBILE, "the pool still sends")
        await eventually(lambda: state(spool, after) in ("sent", "delivered"))
    assert sorted(seen) == sorted([(MOBILE, "短回复", "m1"), (UNICOM, long_reply, "m2")])
    assert len(spool.inbound()) == 2


async def test_parts_whose_siblings_never_come_are_flushed_as_incomplete(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    seen = []
    store = InboundStore(spool, None, handlers=[lambda s, m, c: seen.append(m)])
    parts = pdu.encode_deliver(MOBILE, "这条消息的第二段丢了。" * 12)
    assert len(parts) >= 2
    first = InboundSms("m1", parts[0], pdu.decode_pdu(parts[0]))
    assert store.store_sms("m1", first) is None                  # waiting for its siblings
    assert await store.flush_incomplete(timedelta(hours=1)) == 0  # not given up on yet
    assert await store.flush_incomplete(timedelta(0)) == 1
    [message] = seen
    assert (message.complete, message.parts, message.sender) == (False, len(parts), MOBILE)
    assert message.text.startswith("这条消息的第二段丢了。")
    assert spool.pending_inbound_parts() == []


async def test_one_senders_messages_take_turns_at_the_hooks_in_a_threaded_lane(tmp_path):
    """On a database server the hooks run on several lane threads; a sender's second message
    waits for its first (a 退订 is recorded before the next one is answered), while other
    senders' messages go by."""
    import asyncio
    import threading

    from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane

    started, released = threading.Event(), threading.Event()
    done: list[str] = []

    def hook(spool, message, config):
        if message.text == "退订":
            started.set()
            assert released.wait(timeout=60), "hang guard: the hook was never released"
        done.append(message.text)

    spool = Spool(tmp_path / "spool.db")
    lane = SpoolLane(threads=INBOUND_THREADS)
    store = InboundStore(spool, None, handlers=[hook], lane=lane)
    optout = spool.store_inbound(MOBILE, "退订", sim="m1")
    follow_up = spool.store_inbound(MOBILE, "营业时间", sim="m2")
    other = spool.store_inbound(UNICOM, "营业时间", sim="m1")
    # Tasks start in the order they were made: the first takes the sender's turn, the second
    # asks for it; by the time the first's hook runs on a lane thread, both have.
    first = asyncio.create_task(store.run_hooks(optout))
    second = asyncio.create_task(store.run_hooks(follow_up))
    assert await asyncio.to_thread(started.wait, 30)
    try:
        await store.run_hooks(other)   # on the lane's other thread, after what came before it
        assert done == ["营业时间"] and not second.done()
    finally:
        released.set()
    await asyncio.gather(first, second)
    assert done == ["营业时间", "退订", "营业时间"]
    lane.close()
    spool.close()


async def test_a_report_waits_for_a_quiet_moment_to_be_stored(tmp_path):
    """A report heard while modems wait for their part markers is stored at the dispatcher's
    next quiet moment (as claims ahead are), waiting REPORT_WAITS_AT_MOST at most: the modems
    have the processors (and the server) to themselves meanwhile."""
    quiet, asked = asyncio.Event(), []

    async def quiet_moment(patience: float) -> None:
        asked.append(patience)
        await quiet.wait()

    with Spool(tmp_path / "spool.db") as spool:
        store = InboundStore(spool, None, handlers=[])
        store.quiet_moment = quiet_moment
        report = pdu.encode_status_report(7, MOBILE, status=0)
        taking = asyncio.create_task(store.take("m1", StatusReport("m1", report, decode(report))))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not taking.done() and asked == [REPORT_WAITS_AT_MOST]
        assert spool.rows("SELECT count(*) FROM delivery_reports")[0][0] == 0
        quiet.set()
        assert await asyncio.wait_for(taking, 30)
        assert spool.rows("SELECT message_reference FROM delivery_reports")[0][0] == 7
