"""The front door `modempool.Pool` itself, without the CLI: rules, fan-out, waiting, results."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from modempool import Pool
from modempool.errors import (Blacklisted, InvalidNumber, NotFound, OptedOut, PoolError,
                              RefusedMany, UnknownSim)
from modempool.operator.contacts import AddressBook
from modempool.operator.optout import OptOutList
from modempool.spool import MessageState, Spool
from modempool.spool.model import StateConflict


@pytest.fixture
def pool(config: Path):
    config.write_text(config.read_text("utf-8") + "\n[optout]\nblock_direct = true\n", "utf-8")
    with Pool.open(config) as pool:
        yield pool


def test_blacklisted_and_opted_out_are_refused_by_pool_and_nothing_is_queued(pool):
    OptOutList(pool.spool.db).add_to_blacklist(["13900139000"], "complained")
    OptOutList(pool.spool.db).add("13800138000", keyword="退订")
    with pytest.raises(Blacklisted) as refused:
        pool.send("139 0013 9000", "通知")
    assert refused.value.number == "+8613900139000" and "blacklist" in refused.value.reason
    with pytest.raises(OptedOut, match=r"\+8613800138000: number has opted out"):
        pool.send(["13700137000", "13800138000"], "通知")
    with pytest.raises(RefusedMany) as both:
        pool.send(["13800138000", "13900139000", "13700137000"], "通知")
    assert [r.number for r in both.value.refusals] == ["+8613800138000", "+8613900139000"]
    assert pool.messages() == []
    # The sender's explicit decision reaches opted-out numbers, never blacklisted ones.
    [sent] = pool.send("13800138000", "航班变更", to_opted_out=True)
    assert sent.to == "+8613800138000" and sent.state is MessageState.QUEUED
    with pytest.raises(Blacklisted):
        pool.send("13900139000", "航班变更", to_opted_out=True)


def test_invalid_number_and_unknown_sim_queue_nothing(pool):
    with pytest.raises(InvalidNumber, match="12345"):
        pool.send(["13800138000", "12345"], "hi")
    with pytest.raises(UnknownSim, match="no modem named m9"):
        pool.send("13800138000", "hi", sims=["m9"])
    assert pool.messages() == []


def test_client_id_fans_out_and_is_idempotent(pool):
    first = pool.send(["13800138000", "13800138001"], "hi", client_id="order-7", priority=3)
    assert [m.client_id for m in first] == ["order-7:1", "order-7:2"]
    assert [m.id for m in pool.send(["13800138000", "13800138001"], "hi", client_id="order-7")] \
        == [m.id for m in first]
    [one] = pool.send("13800138002", "hi", client_id="single")
    assert one.client_id == "single" and len(pool.messages()) == 3


def test_schedule_and_expiry_from_typed_text(pool):
    [message] = pool.send("13800138000", "hi", at="+1h", expires="2099-01-01 09:00")
    assert timedelta(minutes=59) < message.not_before - datetime.now().astimezone() < timedelta(hours=1)
    assert message.expires_at.year == 2099
    assert json.loads(json.dumps(message.to_dict()))["not_before"].endswith("Z")
    for at, expires, why in ((None, "-1h", "is already past"), ("+2h", "+1h", "is not after at")):
        with pytest.raises(PoolError, match=why):   # accepted before, and never sent
            pool.send("13800138000", "hi", at=at, expires=expires)
    assert len(pool.messages()) == 1


def test_cancel_retry_and_listing(pool):
    first, second = pool.send(["13800138000", "13800138001"], "x")
    assert pool.cancel(first.id).state is MessageState.CANCELLED
    with pytest.raises(StateConflict, match="only queued"):
        pool.cancel(first.id)
    with pytest.raises(StateConflict):
        pool.retry(second.id)
    with pytest.raises(NotFound):
        pool.get(999)
    assert [m.id for m in pool.messages(state="queued")] == [second.id]
    assert pool.counts()["cancelled"] == 1


def test_wait_returns_when_final_and_times_out_otherwise(pool):
    [message] = pool.send("13800138000", "x")
    assert pool.wait([message.id], timeout=0).timed_out
    assert pool.spool.claim(message.id, "m1", "test", 60)

    def daemon_fails_it() -> None:   # another process's view of the file: its own connection
        with Spool(pool.spool.path) as other:
            other.mark_failed(message.id, "no credit")

    threading.Timer(0.1, daemon_fails_it).start()
    result = pool.wait([message.id], timeout=30)
    assert not result.timed_out and not result.all_succeeded
    assert result.messages[0].state is MessageState.FAILED and result.pending == ()


def test_inbox_names_senders_and_status_lists_configured_sims(pool):
    AddressBook(pool.spool.db).upsert("13800138000", "张三", groups=["家长"])
    pool.spool.store_inbound("+8613800138000", "收到", sim="m1")
    pool.spool.store_inbound("+8613600136000", "你是谁", sim="m1")
    received = pool.inbox()
    assert [(r.message.sender, r.name, r.groups) for r in received] == [
        ("+8613800138000", "张三", ("家长",)), ("+8613600136000", "", ())]
    assert pool.inbox(since="-1h", sender="13600136000")[0].message.text == "你是谁"
    assert received[0].to_dict()["groups"] == ["家长"]
    assert received[0].to_dict()["sender"] == "+8613800138000"   # the spool's fields, flat
    status = pool.status()
    assert [s.name for s in status.sims] == ["m1"] and status.sims[0].state == "unknown"
    assert status.to_dict()["queue_depth"] == 0 and status.spool.endswith("pool.db")


def test_why_a_queued_message_waits(pool):
    [later] = pool.send("13800138000", "x", at="+2h")
    [now] = pool.send("13800138001", "y")
    assert pool.why_waiting(later) == "scheduled" and pool.why_waiting(now) == ""
    pool.spool.cancel(now.id)
    assert pool.why_waiting(pool.get(now.id)) == ""
