"""What a Prometheus scrape asks the spool (`spool.metrics`): per-SIM outcomes and the
enqueue-to-sent histogram, right on either engine, and on SQLite kept by triggers so that a
scrape reads no message rows however many were sent."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from modempool.spool import Spool
from modempool.spool.records import SentPart
from modempool.spool.model import to_text, utcnow


def send_some(spool: Spool) -> None:
    """Two messages sent on m1 (queued 3 s and 100 s before), one failed on m2, one queued."""
    quick, slow, failing, _ = (spool.enqueue(f"1380013800{i}", "hi") for i in range(4))
    with spool.transaction() as conn:   # when they were queued, so the latencies are known
        for message, seconds in ((quick, 3), (slow, 100)):
            conn.execute("UPDATE messages SET created_at = ? WHERE id = ?",
                         (to_text(utcnow() - timedelta(seconds=seconds)), message.id))
    for message in (quick, slow):
        assert spool.claim(message.id, "m1", "t")
        assert spool.mark_sent(message.id, lease_owner="t")
    assert spool.claim(failing.id, "m2", "t")
    spool.mark_failed(failing.id, "+CMS ERROR: 500", lease_owner="t")


def test_outcomes_and_latency_of_what_was_sent(spool_target):
    with Spool(spool_target) as spool:
        send_some(spool)
        assert spool.metrics.sim_outcomes() == {("m1", "sent"): 2, ("m2", "failed"): 1}
        latency = spool.metrics.send_latency()
        taken = sorted((m.sent_at - m.created_at).total_seconds() for m in spool.list()
                       if m.sent_at is not None)   # what each message's row says
        assert len(taken) == 2 and latency.bounds[:3] == (1.0, 5.0, 10.0)
        assert latency.cumulative == [sum(t <= b for t in taken) for b in latency.bounds] + [2]
        assert latency.cumulative[2] < latency.cumulative[-1]   # not all in one bucket
        assert abs(latency.seconds - sum(taken)) < 0.01


def test_a_scrape_on_sqlite_reads_no_message_rows(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        send_some(spool)
        statements: list[str] = []
        spool.engine.conn.set_trace_callback(statements.append)
        try:
            outcomes, latency = spool.metrics.sim_outcomes(), spool.metrics.send_latency()
        finally:
            spool.engine.conn.set_trace_callback(None)
        assert statements and not [s for s in statements if "messages" in s]
        assert sum(outcomes.values()) == 3 and latency.cumulative[-1] == 2


def test_an_existing_spool_gets_its_kept_metrics_when_opened(tmp_path):
    path = tmp_path / "old.db"
    with Spool(path) as spool:
        send_some(spool)
        before = spool.metrics.sim_outcomes(), spool.metrics.send_latency()
    with sqlite3.connect(path) as conn:   # as made before these were kept
        for table in ("send_latency", "sim_outcome_counts"):
            conn.execute(f"DROP TABLE {table}")
        for trigger in ("send_latency_observe", "sim_outcome_counts_update",
                        "sim_outcome_counts_insert", "sim_outcome_counts_delete"):
            conn.execute(f"DROP TRIGGER {trigger}")
    with Spool(path) as spool:
        assert (spool.metrics.sim_outcomes(), spool.metrics.send_latency()) == before


def test_outcome_counters_only_rise_when_a_sent_message_is_delivered(spool_target):
    """`modempool_sim_messages_total` is a Prometheus counter: sent -> delivered adds a
    delivered and leaves the sent count as it was (what each message is now is a gauge)."""
    with Spool(spool_target) as spool:
        message = spool.enqueue("13800138000", "hi")
        assert spool.claim(message.id, "m1", "t")
        spool.mark_part_writing(message.id, 1, 1, lease_owner="t")
        spool.mark_many_sent([SentPart(message.id, 1, None, 7, lease_owner="t")])
        assert spool.metrics.sim_outcomes_reached() == {("m1", "sent"): 1}
        assert spool.store_delivery_report("m1", 7, message.to, 0).part_id is not None
        assert spool.get(message.id).state.value == "delivered"
        assert spool.metrics.sim_outcomes_reached() == {("m1", "sent"): 1, ("m1", "delivered"): 1}
        assert spool.metrics.sim_outcomes() == {("m1", "delivered"): 1}
        with spool.transaction() as conn:   # a message deleted takes nothing back either
            conn.execute("DELETE FROM events")
            conn.execute("DELETE FROM delivery_reports")
            conn.execute("DELETE FROM parts")
            conn.execute("DELETE FROM messages")
        assert spool.metrics.sim_outcomes_reached() == {("m1", "sent"): 1, ("m1", "delivered"): 1}
        assert spool.metrics.sim_outcomes() == {}
