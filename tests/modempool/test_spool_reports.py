"""`spool.reports`, the operator features' read-only questions, on both engines (read
through the engine, not through the operator modules' `spool.db`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from modempool.operator.forwarding import SCHEMA, record_attempt
from modempool.spool import Spool


def test_what_came_in_since_and_forwards_cut_short(spool_target):
    with Spool(spool_target) as spool:
        spool.engine.ensure_schema(SCHEMA)
        before = datetime.now(timezone.utc) - timedelta(seconds=1)
        first = spool.store_inbound("13800138000", "你好", sim="m1")
        second = spool.store_inbound("13900139000", "退订", sim="m1")
        stamp = before.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert spool.reports.received_since(stamp) == [
            ("+8613800138000", "你好"), ("+8613900139000", "退订")]
        record_attempt(spool, first.id, "notify.sh", 1, "failed")
        record_attempt(spool, second.id, "notify.sh", 1, "failed")
        record_attempt(spool, second.id, "notify.sh", 2, "ok")   # its latest attempt went through
        cut_short = spool.reports.received_whose_last("forward_log", "notify.sh", ("failed",))
        assert [(r["id"], r["sender"], r["text"]) for r in cut_short] == [
            (first.id, "+8613800138000", "你好")]


def test_conversations_both_ways(spool_target):
    with Spool(spool_target) as spool:
        spool.enqueue("13800138000", "明天见")
        spool.store_inbound("13800138000", "好的", sim="m1")
        [talk] = spool.reports.conversations()
        assert (talk["number"], talk["unread"], talk["messages"], talk["last_received"]) == (
            "+8613800138000", 1, 2, "好的")
        assert spool.reports.conversations(unread_only=True, limit=1)[0]["number"] == talk["number"]
