"""A SIM's previous message recorded with its next part's marker, in one commit
(`mark_sent_then_writing`; on PostgreSQL the marker rides in the record's statement): each
outcome the long way gives, on both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.records import SentPart
from modempool.spool.model import LeaseLost, utcnow

TO = "+8613800138000"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def claimed(spool: Spool, owner: str = "o") -> int:
    message = spool.enqueue(TO, "hello")
    spool.claim(message.id, "m1", owner, 60)
    return message.id


def written(spool: Spool) -> int:
    message_id = claimed(spool)
    spool.mark_part_writing(message_id, 1, 1, lease_owner="o")
    return message_id


def test_the_record_and_the_next_marker_commit_together(spool):
    previous, following = written(spool), claimed(spool)
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert spool.get(previous).state is MessageState.SENT
    [part] = spool.parts(previous)
    assert (part["state"], part["message_reference"]) == ("sent", 42)
    assert [p["state"] for p in spool.parts(following)] == ["writing"]
    assert spool.get(following).parts_total == 1
    assert [e["kind"] for e in spool.events(previous)][-1] == "sent"
    assert spool.sims()[0]["sent_total"] == 1          # counted once, for its SIM


def test_a_lost_lease_of_the_next_part_is_returned_and_the_record_commits(spool):
    previous, following = written(spool), claimed(spool, owner="someone else")
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert recorded == [True] and isinstance(lost, LeaseLost)
    assert spool.get(previous).state is MessageState.SENT
    assert spool.parts(following) == []                 # nothing written for it


def test_a_record_whose_lease_was_taken_over_still_counts_the_part_and_marks(spool):
    previous = written(spool)
    spool.recover_leases("o", include_live=True)         # the previous one: ambiguous now
    following = claimed(spool, owner="p")
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="p")
    assert recorded == [False] and lost is None
    assert spool.get(previous).state is MessageState.AMBIGUOUS
    assert spool.sims()[0]["sent_total"] == 1           # the part went out: it counts
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_report_that_came_first_takes_the_long_way_and_the_marker_is_written(spool):
    previous, following = written(spool), claimed(spool)
    network_time = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    assert spool.store_delivery_report("m1", 42, TO, 0, received_at=network_time).part_id is None
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert spool.get(previous).state is MessageState.DELIVERED
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_part_recorded_already_is_not_counted_twice(spool):
    previous, following = written(spool), claimed(spool)
    spool.mark_part_sent(previous, 1, None, 42)
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert spool.sims()[0]["sent_total"] == 1
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_record_of_a_lease_now_someone_elses_leaves_the_message_to_them(spool):
    previous = written(spool)
    with spool.engine.tx() as conn:    # taken over: another owner's lease, still sending
        conn.execute("UPDATE messages SET lease_owner = 'q' WHERE id = ?", (previous,))
    following = claimed(spool)
    recorded, lost = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([False], None)
    message = spool.get(previous)
    assert (message.state, message.lease_owner) == (MessageState.SENDING, "q")
    assert "sent" not in [e["kind"] for e in spool.events(previous)]
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_record_and_a_marker_of_one_message_are_refused(spool):
    message_id = written(spool)
    with pytest.raises(ValueError, match="its own next marker"):
        spool.mark_sent_then_writing([SentPart(message_id, 1, None, 42, lease_owner="o")],
                                     message_id, 2, 2, lease_owner="o")
    assert spool.get(message_id).state is MessageState.SENDING
