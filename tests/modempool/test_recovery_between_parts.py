"""A claim cut between two parts of a long SMS (audit24): every part it marked was accepted,
the next never marked (a kill after a record, a stop while the next marker waited for the
database, a give-back after an uncounted requeue). No PDU is in doubt, so recovery queues the
message again for the SIM that sent its parts, to go on from the first part not out; before,
it called it AMBIGUOUS, which no report settles (no part is ambiguous) and which waits for an
operator. A part marked and unanswered still makes it AMBIGUOUS. Both engines, real spools.
"""

from __future__ import annotations

from modempool.spool import MessageState, Spool
from tests.modempool.spool_driver import claim_next

TO = "+8613800138000"
OWNER = "host-a:1:run-a/m1"
LONG = "长" * 100   # two parts (UCS-2: 67 characters a part with the header)


def _part_one_out(spool: Spool) -> int:
    """A two-part message claimed by m1, part 1 written and recorded sent."""
    message = spool.enqueue(TO, LONG)
    claimed = spool.claim(message.id, "m1", OWNER, 60)
    spool.mark_part_writing(message.id, 1, 2, lease_owner=OWNER)
    spool.mark_part_sent(message.id, 1, 9, 10, attempt=claimed.attempts, sim="m1")
    return message.id


def test_a_claim_cut_between_two_parts_goes_on_from_its_sim(spool_target):
    """Fails on 079b1cb: AMBIGUOUS."""
    with Spool(spool_target) as spool:
        message_id = _part_one_out(spool)
        assert spool.recover_leases(owner=OWNER).requeued == (message_id,)
        queued = spool.get(message_id)
        assert (queued.state, queued.sims, queued.avoid_sim) == (MessageState.QUEUED,
                                                                ("m1",), None)
        assert claim_next(spool, "m2", "host-b:2:run-b/m2") is None   # m1's only
        again = claim_next(spool, "m1", OWNER)
        assert again.attempts == 2 and spool.sent_parts(message_id) == {1}
        spool.mark_part_writing(message_id, 2, 2, lease_owner=OWNER)
        assert spool.mark_last_part_sent(message_id, 2, 9, 11, lease_owner=OWNER,
                                         attempt=again.attempts, sim="m1") == [True]
        assert spool.get(message_id).state is MessageState.SENT
        assert spool.sent_counts("m1")[1] == 2   # each part once


def test_a_reclaim_after_an_uncounted_requeue_given_back_unstarted_is_queued(spool_target):
    """Part 2 refused before its PDU (a timeout: the attempt not counted), the message claimed
    again by m1 with the same attempt number and given back before its next marker: part 1,
    of that number and sent, is not this claim's doubt. Fails on 079b1cb: AMBIGUOUS."""
    with Spool(spool_target) as spool:
        message_id = _part_one_out(spool)
        spool.mark_part_writing(message_id, 2, 2, lease_owner=OWNER)
        assert spool.requeue(message_id, "m1: timeout", only_sim="m1", count_attempt=False,
                             lease_owner=OWNER)
        assert spool.claim(message_id, "m1", OWNER, 60) is not None
        assert spool.recover_leases(owner=OWNER).requeued == (message_id,)
        assert spool.get(message_id).sims == ("m1",)


def test_a_part_marked_and_unanswered_still_makes_it_ambiguous(spool_target):
    with Spool(spool_target) as spool:
        message_id = _part_one_out(spool)
        spool.mark_part_writing(message_id, 2, 2, lease_owner=OWNER)
        assert spool.recover_leases(owner=OWNER).ambiguous == (message_id,)
        assert [p["state"] for p in spool.parts(message_id)] == ["sent", "ambiguous"]
