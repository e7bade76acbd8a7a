"""`spool.history` (the history search's reads) and `spool.inbound.last_stamps`, on both
engines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from modempool.spool import Spool
from modempool.spool.history import HistoryFilter


def _made_at(spool: Spool, message_id: int, moment: datetime) -> None:
    with spool.transaction() as conn:
        conn.execute("UPDATE messages SET created_at = ? WHERE id = ?",
                     (moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), message_id))


def test_first_id_made_after_a_moment(spool_target):
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with Spool(spool_target) as spool:
        assert spool.history.first_id_made_after(start) == 1   # empty: the next id
        ids = [spool.enqueue("13800138000", f"第 {n} 条").id for n in range(7)]
        for n, message_id in enumerate(ids):
            _made_at(spool, message_id, start + timedelta(days=n))
        assert spool.history.first_id_made_after(start) == ids[0]
        assert spool.history.first_id_made_after(start + timedelta(days=3, hours=1)) == ids[4]
        assert spool.history.first_id_made_after(start + timedelta(days=30)) == ids[-1] + 1


def test_sent_and_received_by_number_text_time_and_sim(spool_target):
    with Spool(spool_target) as spool:
        first = spool.enqueue("13800138000", "本周五开家长会")
        spool.enqueue("13900139000", "家长会改期")
        spool.store_inbound("13800138000", "收到，家长会见", sim="m1")
        spool.store_inbound("13800138000", "好的", sim="m2")
        history = spool.history
        by_number = HistoryFilter(numbers=("+8613800138000",))
        [sent] = history.sent(by_number)
        assert (sent.direction, sent.id, sent.number, sent.text, sent.state, sent.name) == (
            "out", first.id, "+8613800138000", "本周五开家长会", "queued", "")
        assert sent.to_dict()["time"] == sent.time and list(sent.to_dict()) == [
            "direction", "id", "time", "number", "text", "state", "sim", "campaign_id", "error",
            "name"]   # the keys, in the order of `modempool history search --json` before
        assert [e.text for e in history.sent(HistoryFilter(text="家长会"))] == [
            "家长会改期", "本周五开家长会"]   # newest first
        assert [e.text for e in history.sent(HistoryFilter(text="家长会", limit=1))] == [
            "家长会改期"]
        assert [e.text for e in history.received(HistoryFilter(inbound_sims=("m2",)))] == ["好的"]
        assert history.received(HistoryFilter(inbound_sims=())) == []
        assert history.sent(HistoryFilter(numbers=())) == []
        later = datetime.now(timezone.utc) + timedelta(minutes=1)
        assert history.received(HistoryFilter(since=later)) == []
        assert len(history.received(HistoryFilter(until=later, text="家长会"))) == 1
        assert history.sent(HistoryFilter(state="failed")) == []


def test_last_stamps_of_what_came_in(spool_target):
    with Spool(spool_target) as spool:
        assert spool.inbound.last_stamps() is None
        sent_by_network = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
        spool.store_inbound("13800138000", "hi", sim="m1", received_at=sent_by_network)
        received, stored = spool.inbound.last_stamps()
        assert datetime.fromisoformat(received) == sent_by_network
        assert datetime.fromisoformat(stored) > sent_by_network
