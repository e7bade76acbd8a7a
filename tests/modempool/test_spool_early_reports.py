"""A delivery report handled before its part's +CMGS answer is recorded (a loaded machine, the
confirmations written in a batch): it is applied when the part is recorded, not left
unmatched with the message `sent` for ever."""

from __future__ import annotations

import pytest

from datetime import timedelta

from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow

TO = "+8613800138000"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def writing(spool: Spool, parts: int = 1) -> int:
    """A message of `parts` parts whose first part is being written by SIM m1."""
    message = spool.enqueue(TO, "长" * 67 * parts)
    spool.claim(message.id, "m1", "o", 60)
    spool.mark_part_writing(message.id, 1, parts, lease_owner="o")
    return message.id


def network_time():
    """A report's time of delivery: the service centre's clock, in whole seconds (so it may
    be a little before the write, as seen by our clock)."""
    return utcnow().replace(microsecond=0) - timedelta(seconds=1)


def test_a_report_before_the_confirmation_delivers_the_message(spool):
    message_id = writing(spool)
    early = spool.store_delivery_report("m1", 42, TO, 0, received_at=network_time())
    assert early.part_id is None                          # nothing sent to match yet
    spool.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")
    assert spool.get(message_id).state is MessageState.DELIVERED
    [part] = spool.parts(message_id)
    assert part["state"] == "delivered"
    assert spool.rows("SELECT part_id, message_id FROM delivery_reports")[0][1] == message_id


def test_each_part_of_a_long_message_takes_its_own_early_report(spool):
    message_id = writing(spool, parts=2)
    spool.store_delivery_report("m1", 7, TO, 0, received_at=network_time())
    spool.mark_part_sent(message_id, 1, 9, 7)
    spool.mark_part_writing(message_id, 2, 2, lease_owner="o")
    spool.store_delivery_report("m1", 8, TO, 0, received_at=network_time())
    assert spool.get(message_id).state is MessageState.SENDING
    spool.mark_last_part_sent(message_id, 2, 9, 8, lease_owner="o")
    assert spool.get(message_id).state is MessageState.DELIVERED


def test_an_older_report_with_the_same_reference_is_not_taken(spool):
    spool.store_delivery_report("m1", 42, TO, 0,   # a minute before the write
                                received_at=utcnow() - timedelta(minutes=1))
    message_id = writing(spool)
    spool.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")
    assert spool.get(message_id).state is MessageState.SENT


def test_an_early_final_failure_fails_the_message(spool):
    message_id = writing(spool)
    spool.store_delivery_report("m1", 42, TO, 0x41, received_at=network_time())   # permanent
    spool.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")
    message = spool.get(message_id)
    assert message.state is MessageState.FAILED and "not delivered (status 0x41)" in message.error


def test_the_report_and_the_confirmation_leave_their_events_in_order(spool):
    message_id = writing(spool)
    spool.store_delivery_report("m1", 42, TO, 0, received_at=network_time())
    spool.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")
    kinds = [event["kind"] for event in spool.audit(message_id)]
    assert kinds[-2:] == ["delivery-report", "sent"]
    assert spool.audit(message_id)[-2]["sim"] == "m1"


def test_a_batch_that_fails_halfway_keeps_the_events_of_what_it_recorded(spool):
    """`mark_many_sent` writes its events together at its end; a record refused halfway
    (never marked writing) leaves those before it with their events, as one at a time."""
    from modempool.spool.records import SentPart
    from modempool.spool.model import LeaseLost

    first = writing(spool)
    never = spool.enqueue(TO, "never written").id
    with spool.batch():
        with pytest.raises(LeaseLost):
            spool.mark_many_sent([SentPart(first, 1, None, 5, lease_owner="o"),
                                  SentPart(never, 1, None, 6, lease_owner="o")])
    assert spool.get(first).state is MessageState.SENT
    assert [event["kind"] for event in spool.audit(first)][-1] == "sent"


def test_a_report_matched_to_a_part_sent_leaves_its_event(spool):
    """(Not early: the common case, one statement on PostgreSQL.)"""
    message_id = writing(spool)
    spool.mark_last_part_sent(message_id, 1, None, 42, lease_owner="o")
    match = spool.store_delivery_report("m1", 42, TO, 0)
    assert match.part_id is not None and match.message_state == "delivered"
    [event] = [e for e in spool.audit(message_id) if e["kind"] == "delivery-report"]
    assert event["sim"] == "m1"
    assert spool.get(message_id).state is MessageState.DELIVERED
