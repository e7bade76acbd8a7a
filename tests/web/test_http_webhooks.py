"""Webhooks end to end: a real receiver that verifies every delivery with the `standardwebhooks`
package, stopped and started again to prove retries keep the same webhook-id, and a worker
restart that loses no event."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import httpx

from http_harness import Receiver, ServerThread, both_engines, free_port
from modempool.webhooks import Webhooks


def _outbox(spool) -> list[dict]:
    return [dict(r) for r in spool.rows("SELECT * FROM webhook_outbox ORDER BY id")]


def _until(condition, timeout: float = 30, what: str = ""):
    """Poll the spool file (the worker is another thread with its own connection)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@both_engines
def test_a_dead_receiver_gets_the_event_later_with_the_same_id(api):
    port = free_port()
    with api.config.open_spool() as spool:
        webhook, secret = Webhooks(spool).add(f"http://127.0.0.1:{port}/hook",
                                              ["sms.received", "message.sent"])
        spool.store_inbound("+8613900000001", "在吗", sim="m1", received_at=datetime.now(timezone.utc))
        failed = _until(lambda: [r for r in _outbox(spool) if r["attempts"] >= 2],
                        what="two failed attempts")[0]
        assert failed["state"] == "pending" and "Connect" in failed["last_error"]
        waiting = httpx.get(api.url + "/metrics").text
        assert "modempool_webhook_pending 1.0" in waiting
        assert 'modempool_webhook_deliveries_total{state="delivered"} 0.0' in waiting
        receiver = Receiver(port=port, secret=secret)
        try:
            [(webhook_id, payload)] = receiver.delivered(1)
            assert webhook_id == failed["event_id"]
            assert payload["type"] == "sms.received"
            assert payload["data"]["from"] == "+8613900000001" and payload["data"]["text"] == "在吗"
            row = _until(lambda: [r for r in _outbox(spool) if r["state"] == "delivered"],
                         what="the delivery recorded")[0]
            assert row["attempts"] >= 3 and row["last_status"] == 204
            assert receiver.rejected == 0
            done = httpx.get(api.url + "/metrics").text
            # the pending event delivered: the counter of deliveries rose, none fell
            assert "modempool_webhook_pending 0.0" in done
            assert 'modempool_webhook_deliveries_total{state="delivered"} 1.0' in done
            assert 'modempool_webhook_deliveries_total{state="dead"} 0.0' in done
            assert f"modempool_webhook_failed_attempts_total {row['attempts'] - 1}.0" in done
        finally:
            receiver.stop()


@both_engines
def test_a_worker_restart_loses_no_event(api):
    port = free_port()
    with api.config.open_spool() as spool:
        _, secret = Webhooks(spool).add(f"http://127.0.0.1:{port}/hook", ["message.sent"])
        [message] = spool.enqueue_many([{"to": "13800138000", "text": "hi"}])
    api.server.stop()  # no worker now: the event waits in the outbox
    with api.config.open_spool() as spool:
        spool.claim(message, "m1", "test", 60)
        spool.mark_sent(message)
        [row] = _outbox(spool)
        assert (row["type"], row["state"], row["attempts"]) == ("message.sent", "pending", 0)
        assert json.loads(row["payload"])["data"]["id"] == message
    receiver = Receiver(port=port, secret=secret)
    restarted = ServerThread(api.config).start()
    try:
        [(webhook_id, payload)] = receiver.delivered(1)
        assert webhook_id == row["event_id"] and payload["data"]["state"] == "sent"
    finally:
        restarted.stop()
        receiver.stop()


def test_a_receiver_up_then_down_then_up_gets_every_event_once(api):
    """Up: delivered at once. Down: the next event waits, tried again. Up again: it arrives,
    with the webhook-id it was written with, and the first is not sent again."""
    port = free_port()
    with api.config.open_spool() as spool:
        _, secret = Webhooks(spool).add(f"http://127.0.0.1:{port}/hook", ["sms.received"])
        receiver = Receiver(port=port, secret=secret)
        try:
            spool.store_inbound("+8613900000001", "一", sim="m1", received_at=datetime.now(timezone.utc))
            [(first_id, _)] = receiver.delivered(1)
        finally:
            receiver.stop()
        spool.store_inbound("+8613900000002", "二", sim="m1", received_at=datetime.now(timezone.utc))
        waiting = _until(lambda: [r for r in _outbox(spool) if r["state"] == "pending"
                                  and r["attempts"] >= 1], what="a failed attempt while down")[0]
        again = Receiver(port=port, secret=secret)
        try:
            [(second_id, payload)] = again.delivered(1)
            assert second_id == waiting["event_id"] != first_id
            assert payload["data"]["text"] == "二"
            _until(lambda: all(r["state"] == "delivered" for r in _outbox(spool)),
                   what="both recorded delivered")
            assert len(again.deliveries) == 1 and again.rejected == 0
        finally:
            again.stop()


@both_engines
def test_a_messages_events_arrive_in_order_without_holding_other_messages(api):
    """The receiver refuses the first message's message.sent until another message's event
    has arrived: its message.delivered, written meanwhile, is not even tried before its
    message.sent is accepted, and the other message's event is not held back by it."""
    from modempool.spool.records import SentPart

    port = free_port()
    with api.config.open_spool() as spool:
        _, secret = Webhooks(spool).add(f"http://127.0.0.1:{port}/hook",
                                        ["message.sent", "message.delivered"])
        slow, other = spool.enqueue_many([{"to": "13800138000", "text": "您好"},
                                          {"to": "13800138001", "text": "您好"}])
        def answer(arrival) -> tuple[int, dict]:   # 503: not before the other's event
            payload = arrival.payload
            held = (payload["data"]["id"] == slow and payload["type"] == "message.sent"
                    and not any(p["data"]["id"] == other for _, p in receiver.deliveries))
            return (503 if held else 204), {}

        receiver = Receiver(answer, port=port, secret=secret)
        try:
            assert spool.claim(slow, "m1", "t")
            spool.mark_part_writing(slow, 1, 1, lease_owner="t")
            spool.mark_many_sent([SentPart(slow, 1, None, 7, lease_owner="t")])
            _until(lambda: [r for r in _outbox(spool) if r["attempts"] >= 1],
                   what="message.sent refused once")
            spool.store_delivery_report("m1", 7, "+8613800138000", 0)
            assert spool.get(slow).state.value == "delivered"
            assert spool.claim(other, "m1", "t")
            assert spool.mark_sent(other)
            received = receiver.delivered(3)
        finally:
            receiver.stop()
    events = [(p["data"]["id"], p["type"]) for _, p in received]
    assert events.index((other, "message.sent")) < events.index((slow, "message.sent"))
    assert [e for e in events if e[0] == slow] == [(slow, "message.sent"),
                                                  (slow, "message.delivered")]
    tried = [(p["data"]["id"], p["type"]) for p in receiver.attempts]
    assert tried.index((slow, "message.delivered")) > tried.index((other, "message.sent"))
    assert tried.count((slow, "message.delivered")) == 1
    last_sent_attempt = max(i for i, t in enumerate(tried) if t == (slow, "message.sent"))
    assert last_sent_attempt < tried.index((slow, "message.delivered"))
