"""The webhook outbox on both engines: each event is written by the database in the transaction
of the change it reports (SQLite triggers, PL/pgSQL triggers), with the same payload, and a
row is leased to one delivery worker at a time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from modempool.accounts import Accounts, record_owner
from modempool.operator.optout import OptOutList
from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from modempool.spool.records import SentPart
from modempool.spool.model import to_text, utcnow
from modempool.webhooks import Webhooks


def _outbox(spool) -> list[dict]:
    return [dict(r) for r in spool.rows("SELECT * FROM webhook_outbox ORDER BY id")]


def _sent(spool, message_id: int) -> None:
    assert spool.claim(message_id, "m1", "test", 60)
    assert spool.mark_sent(message_id)


def test_a_message_event_is_committed_with_its_change_and_only_then(spool_target):
    with Spool(spool_target) as spool:
        accounts = Accounts(spool)
        account, _ = accounts.add("shop", "sender")
        hooks = Webhooks(spool)
        everything, _ = hooks.add("http://127.0.0.1:9/all", ["message.sent", "message.failed"])
        own, _ = hooks.add("http://127.0.0.1:9/shop", ["message.sent"], account="shop")
        hooks.add("http://127.0.0.1:9/in", ["sms.received"])
        [mine, other] = spool.enqueue_many([{"to": "13800138000", "text": "您好"},
                                            {"to": "13800138001", "text": "hi"}])
        record_owner(spool, account, [mine], datetime.now(timezone.utc))
        assert spool.claim(mine, "m1", "test", 60)

        with pytest.raises(RuntimeError), spool.transaction():   # the change rolled back...
            spool.mark_sent(mine)
            assert len(_outbox(spool)) == 2      # (seen inside its own transaction)
            raise RuntimeError("crash before commit")
        assert _outbox(spool) == []              # ...and its events with it

        spool.mark_sent(mine)
        _sent(spool, other)
        rows = _outbox(spool)
        assert sorted((r["webhook_id"], json.loads(r["payload"])["data"]["id"]) for r in rows) == \
            sorted([(everything.id, mine), (own.id, mine), (everything.id, other)])
        payload = json.loads(rows[0]["payload"])
        assert list(payload) == ["type", "timestamp", "data"] and payload["type"] == "message.sent"
        assert list(payload["data"]) == ["id", "to", "state", "sim", "parts", "attempts", "error",
                                         "account", "created_at", "sent_at", "delivered_at"]
        assert payload["data"]["to"] == "+8613800138000" and payload["data"]["account"] == "shop"
        assert payload["timestamp"].endswith("Z") and len(payload["timestamp"]) == 24
        assert len({r["event_id"] for r in rows}) == 3 and all(
            r["event_id"].startswith("msg_") and r["state"] == "pending" for r in rows)


def test_inbound_optout_and_kannel_callbacks(spool_target):
    with Spool(spool_target) as spool:
        accounts = Accounts(spool)
        accounts.add("branch", "sender", sims=["m2"])
        hooks = Webhooks(spool)
        branch, _ = hooks.add("http://127.0.0.1:9/branch", ["sms.received"], account="branch")
        optouts, _ = hooks.add("http://127.0.0.1:9/optouts", ["optout.added"])
        now = datetime.now(timezone.utc)
        spool.store_inbound("+8613900000001", "m1 上的", sim="m1", received_at=now)
        spool.store_inbound("+8613900000002", "m2 上的", sim="m2", received_at=now)
        OptOutList(spool.db).add("13900000003", keyword="退订", source="sms")
        [queued] = spool.enqueue_many([{"to": "13800138000", "text": "告警"}])
        with spool.transaction() as conn:
            hooks.add_dlr(conn, [queued], "http://127.0.0.1:9/dlr?s=%d&to=%p", 8 | 1)
        _sent(spool, queued)

        by_hook = {r["webhook_id"]: r for r in _outbox(spool)}
        received = json.loads(by_hook[branch.id]["payload"])
        assert received["data"]["from"] == "+8613900000002" and received["data"]["sim"] == "m2"
        assert received["data"]["complete"] is True and received["data"]["text"] == "m2 上的"
        assert json.loads(by_hook[optouts.id]["payload"])["data"]["number"] == "+8613900000003"
        dlr = by_hook[None]
        assert (dlr["type"], dlr["url"]) == ("kannel.dlr", "http://127.0.0.1:9/dlr?s=8&to=%2B8613800138000")
        assert len(by_hook) == 3   # m1's SMS is not the branch's; no message hook


def test_a_due_event_is_leased_to_one_worker_at_a_time(spool_target):
    with Spool(spool_target) as spool, Spool(spool_target) as other_process:
        Accounts(spool)
        hooks = Webhooks(spool)
        hooks.add("http://127.0.0.1:9/a", ["message.sent"])
        hooks.add("http://127.0.0.1:9/b", ["message.sent"])
        for message_id in spool.enqueue_many([{"to": "13800138000", "text": str(n)} for n in range(3)]):
            _sent(spool, message_id)
        lease = timedelta(seconds=60)
        first = hooks.claim_due(lease, per_endpoint=2, busy=[])
        assert len(first) == 4    # two per endpoint
        second = Webhooks(other_process).claim_due(lease, per_endpoint=2, busy=[])
        assert len(second) == 2 and not {r["id"] for r in first} & {r["id"] for r in second}
        assert hooks.claim_due(lease, per_endpoint=2, busy=[]) == []
        hooks.failed(first[0]["id"], 500, "server error", datetime.now(timezone.utc))
        hooks.delivered(first[1]["id"], 204)
        [again] = hooks.claim_due(lease, per_endpoint=2, busy=[])
        assert again["id"] == first[0]["id"] and again["event_id"] == first[0]["event_id"]
        assert hooks.counts() == {"pending": 5, "delivered": 1, "dead": 0}
        assert hooks.failed_attempts() == 1


def test_a_messages_kannel_callbacks_go_one_at_a_time_in_order(spool_target):
    """dlr-mask 9: "sent" (8) then "delivered" (1). A Kannel receiver keeps the last status, so
    the 1 is not leased while the 8 is on its way, nor while it waits for a retry; another
    message's callbacks are not held back by it."""
    with Spool(spool_target) as spool:
        Accounts(spool)
        hooks = Webhooks(spool)
        first, other = spool.enqueue_many([{"to": "13800138000", "text": "告警"},
                                           {"to": "13800138001", "text": "告警"}])
        with spool.transaction() as conn:
            hooks.add_dlr(conn, [first, other], "http://127.0.0.1:9/dlr?s=%d&to=%p", 8 | 1)
        assert spool.claim(first, "m1", "t")
        spool.mark_part_writing(first, 1, 1, lease_owner="t")
        spool.mark_many_sent([SentPart(first, 1, None, 7, lease_owner="t")])
        assert spool.store_delivery_report("m1", 7, "+8613800138000", 0).part_id is not None
        assert spool.get(first).state.value == "delivered"
        _sent(spool, other)
        assert [r["url"].split("/dlr")[1] for r in _outbox(spool)] == [
            "?s=8&to=%2B8613800138000", "?s=1&to=%2B8613800138000", "?s=8&to=%2B8613800138001"]

        lease = timedelta(seconds=60)
        sent, other_sent = hooks.claim_due(lease, per_endpoint=4, busy=[])
        assert "s=8&to=%2B8613800138000" in sent["url"]
        assert "s=8&to=%2B8613800138001" in other_sent["url"]
        assert hooks.claim_due(lease, per_endpoint=4, busy=[]) == []   # 8 on its way
        hooks.failed(sent["id"], 503, "busy", datetime.now(timezone.utc) + timedelta(hours=1))
        assert hooks.claim_due(lease, per_endpoint=4, busy=[]) == []   # 8 waits for its retry
        with spool.transaction() as conn:
            conn.execute("UPDATE webhook_outbox SET next_at = ? WHERE id = ?",
                         (to_text(utcnow()), sent["id"]))
        [again] = hooks.claim_due(lease, per_endpoint=4, busy=[])
        assert again["id"] == sent["id"]
        hooks.delivered(sent["id"], 200)
        [delivered] = hooks.claim_due(lease, per_endpoint=4, busy=[])
        assert "s=1&to=%2B8613800138000" in delivered["url"]


def _sent_then_delivered(spool, message_id: int, reference: int) -> None:
    assert spool.claim(message_id, "m1", "t")
    spool.mark_part_writing(message_id, 1, 1, lease_owner="t")
    spool.mark_many_sent([SentPart(message_id, 1, None, reference, lease_owner="t")])
    number = spool.get(message_id).to
    assert spool.store_delivery_report("m1", reference, number, 0).part_id is not None
    assert spool.get(message_id).state.value == "delivered"


def test_a_messages_webhook_events_go_to_each_endpoint_in_order(spool_target):
    """message.delivered waits while message.sent of the same message to the same endpoint is
    on its way or waits for a retry, and goes once that one is delivered or given up; another
    endpoint, and another message's events, are not held back by it."""
    with Spool(spool_target) as spool:
        Accounts(spool)
        hooks = Webhooks(spool)
        events = ["message.sent", "message.delivered"]
        slow, _ = hooks.add("http://127.0.0.1:9/slow", events)
        fine, _ = hooks.add("http://127.0.0.1:9/fine", events)
        first, other = spool.enqueue_many([{"to": "13800138000", "text": "您好"},
                                           {"to": "13800138001", "text": "您好"}])
        _sent_then_delivered(spool, first, 7)
        _sent(spool, other)

        def claim() -> dict[tuple[str, int], str]:
            return {(r["webhook_id"], json.loads(r["payload"])["data"]["id"]): r
                    for r in hooks.claim_due(timedelta(seconds=60), per_endpoint=4, busy=[])}

        leased = claim()
        assert {key: row["type"] for key, row in leased.items()} == {
            (slow.id, first): "message.sent", (slow.id, other): "message.sent",
            (fine.id, first): "message.sent", (fine.id, other): "message.sent"}
        assert claim() == {}                          # each message's delivered waits
        hooks.failed(leased[slow.id, first]["id"], 503, "busy",
                     datetime.now(timezone.utc) + timedelta(hours=1))
        for key in ((slow.id, other), (fine.id, first), (fine.id, other)):
            hooks.delivered(leased[key]["id"], 204)
        # the fine endpoint goes on; the slow one holds only the first message's delivered
        assert {key: row["type"] for key, row in claim().items()} == {
            (fine.id, first): "message.delivered"}
        assert claim() == {}
        hooks.failed(leased[slow.id, first]["id"], 503, "busy", None)   # given up
        [(key, row)] = claim().items()
        assert (key, row["type"]) == ((slow.id, first), "message.delivered")


def back_to_version_12(spool) -> None:
    """The outbox as a version 12 spool may hold it: without subjects."""
    with spool.transaction() as conn:
        conn.execute("DROP INDEX webhook_outbox_subject")
        conn.execute("ALTER TABLE webhook_outbox DROP COLUMN subject")
        without_later_steps(conn)
        if spool.engine.name == "sqlite":
            conn.execute("PRAGMA user_version = 12")
        else:
            conn.execute("UPDATE modempool_schema SET version = 12")


def without_later_steps(conn) -> None:
    """Undo the steps after 13 (14: the inbound hooks' mark), as a version 12 spool is."""
    from tests.modempool.spool_driver import without_inbound_hooks

    without_inbound_hooks(conn)


def schema_version(spool) -> int:
    if spool.engine.name == "sqlite":
        return spool.rows("PRAGMA user_version")[0][0]
    return spool.rows("SELECT version FROM modempool_schema")[0][0]


def test_a_version_12_outbox_gets_its_subjects_in_the_upgrade(spool_target):
    """A version 12 spool whose outbox has no subject column gets it, its pending message
    events their subject and the index in schema step 13, when the spool is opened (not
    when the webhooks are); later events carry theirs."""
    with Spool(spool_target) as spool:
        Accounts(spool)
        hooks = Webhooks(spool)
        hooks.add("http://127.0.0.1:9/h", ["message.sent", "message.delivered"])
        first = spool.enqueue("13800138000", "您好").id
        _sent(spool, first)
        back_to_version_12(spool)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 13
        [row] = _outbox(spool)   # read before the webhooks are opened
        assert row["subject"] == f"message:{first}"
        assert "webhook_outbox_subject" in index_names(spool)
        hooks = Webhooks(spool)
        later = spool.enqueue("13800138001", "hi").id
        _sent(spool, later)
        assert [r["subject"] for r in _outbox(spool)] == [f"message:{first}", f"message:{later}"]


def test_a_version_12_spool_without_webhooks_is_upgraded_without_an_outbox(spool_target):
    with Spool(spool_target) as spool:
        spool.enqueue("13800138000", "您好")
        with spool.transaction() as conn:
            without_later_steps(conn)
            conn.execute("PRAGMA user_version = 12" if spool.engine.name == "sqlite"
                         else "UPDATE modempool_schema SET version = 12")
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION
        assert "webhook_outbox" not in spool.table_names()
        Webhooks(spool)   # made now, with its subjects
        assert "webhook_outbox_subject" in index_names(spool)


def index_names(spool) -> set[str]:
    if spool.engine.name == "sqlite":
        return {r[0] for r in spool.rows("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return {r[0] for r in spool.rows("SELECT indexname FROM pg_indexes "
                                     "WHERE schemaname = current_schema()")}


def test_the_default_retry_schedule_spans_a_day_with_the_same_webhook_id(spool_target):
    """A receiver down for good: the event is tried again, with backoff capped at an hour, for
    at least 24 hours after it was written, every attempt with the same webhook-id."""
    from modempool.spool.model import from_text
    from modempool.webhooks.delivery import RetrySchedule

    schedule = RetrySchedule()
    with Spool(spool_target) as spool:
        Accounts(spool)
        hooks = Webhooks(spool)
        hooks.add("http://127.0.0.1:9/down", ["sms.received"])
        spool.store_inbound("+8613900000001", "在吗", sim="m1", received_at=utcnow())
        [row] = _outbox(spool)
        created = from_text(row["created_at"])
        now, attempts, ids, waits = created, 0, set(), []
        while True:
            [due] = hooks.claim_due(timedelta(seconds=60), per_endpoint=1, busy=[], now=now)
            ids.add(due["event_id"])
            attempts += 1
            next_at = schedule.next_attempt(attempts, created, now)
            hooks.failed(due["id"], None, "ConnectError", next_at)
            if next_at is None:
                break
            waits.append((next_at - now).total_seconds())
            assert hooks.claim_due(timedelta(seconds=60), per_endpoint=1, busy=[],
                                   now=now + timedelta(seconds=2)) == []   # not before its time
            now = next_at
        [last] = _outbox(spool)
    assert ids == {row["event_id"]}   # the webhook-id of every attempt
    assert now - created >= timedelta(hours=24)
    assert waits[0] <= 5 * 1.1 and 3600 * 0.9 <= max(waits) <= 3600 * 1.1   # backoff, capped
    assert (last["state"], last["attempts"]) == ("dead", attempts)


def test_old_delivered_and_given_up_deliveries_are_pruned_and_still_counted(spool_target):
    """`[webhooks] keep_days`: delivered and dead rows older than that go; pending ones stay
    whatever their age; the counts behind modempool_webhook_deliveries_total never fall."""
    with Spool(spool_target) as spool:
        Accounts(spool)
        hooks = Webhooks(spool)
        hooks.add("http://127.0.0.1:9/a", ["sms.received"])
        for n in range(4):
            spool.store_inbound(f"+861390000000{n}", "在吗", sim="m1", received_at=utcnow())
        delivered, dead, pending, recent = (r["id"] for r in _outbox(spool))
        hooks.failed(delivered, 500, "HTTP 500", utcnow())
        hooks.delivered(delivered, 204)
        hooks.failed(dead, None, "ConnectError", None)
        hooks.delivered(recent, 204)
        with spool.transaction() as conn:
            conn.execute("UPDATE webhook_outbox SET created_at = ? WHERE id <> ?",
                         (to_text(utcnow() - timedelta(days=40)), recent))
        before = hooks.counts(), hooks.failed_attempts()
        assert before == ({"pending": 1, "delivered": 2, "dead": 1}, 2)
        assert hooks.prune(timedelta(days=30)) == 2
        assert sorted(r["id"] for r in _outbox(spool)) == [pending, recent]
        assert (hooks.counts(), hooks.failed_attempts()) == before
        assert hooks.prune(timedelta(days=30)) == 0
        assert (hooks.counts(), hooks.failed_attempts()) == before
