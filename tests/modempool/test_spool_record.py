"""Recording confirmed sends together: `mark_many_sent` (one commit for a burst of modems)."""

from __future__ import annotations

from modempool.spool import MessageState, Spool
from modempool.spool.records import SentPart


def test_confirmations_of_several_sims_are_recorded_in_one_call(spool_target) -> None:
    spool = Spool(spool_target)
    ids = spool.enqueue_many({"to": "+8613800138000", "text": f"n{i}"} for i in range(3))
    for message_id, sim in zip(ids, ("a", "b", "c")):
        spool.claim(message_id, sim, f"o/{sim}")
        spool.mark_part_writing(message_id, 1, 1, lease_owner=f"o/{sim}")
    spool.recover_leases(owner="o/c")                # c's lease was taken over meanwhile
    recorded = spool.mark_many_sent([SentPart(ids[0], 1, None, 17, "o/a"),
                                     SentPart(ids[1], 1, None, 18, "o/b"),
                                     SentPart(ids[2], 1, None, 19, "o/c")])
    # c's recovery called it ambiguous; the modem's answer proves it sent (dead23)
    assert recorded == [True, True, True]
    assert [spool.get(i).state for i in ids] == [MessageState.SENT] * 3
    assert [spool.parts(i)[0]["message_reference"] for i in ids] == [17, 18, 19]
    assert spool.sent_counts("a")[1] == spool.sent_counts("b")[1] == 1
    assert spool.sent_counts("c")[1] == 1


def test_events_keep_their_order_when_an_earlier_record_took_the_long_way(spool_target) -> None:
    """The first record of the batch applies a report that came first (its events held to
    the batch's end), the second is recorded in one statement with its event: the first's
    events are still written before it."""
    from datetime import timedelta

    from modempool.spool.model import utcnow

    spool = Spool(spool_target)
    to = "+8613800138000"
    ids = spool.enqueue_many({"to": to, "text": f"n{i}"} for i in range(2))
    for message_id in ids:
        spool.claim(message_id, "a", "o/a")
        spool.mark_part_writing(message_id, 1, 1, lease_owner="o/a")
    network_time = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    assert spool.store_delivery_report("a", 17, to, 0, received_at=network_time).part_id is None
    assert spool.mark_many_sent([SentPart(ids[0], 1, None, 17, "o/a"),
                                 SentPart(ids[1], 1, None, 18, "o/a")]) == [True, True]
    events = spool.rows("SELECT message_id, kind FROM events WHERE kind IN "
                        "('delivery-report', 'sent') ORDER BY id")
    assert [tuple(e) for e in events] == [(ids[0], "delivery-report"), (ids[0], "sent"),
                                          (ids[1], "sent")]
