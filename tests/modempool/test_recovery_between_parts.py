"""A claim cut between two parts of a long SMS (audit24): every part it marked was accepted,
the next never marked (a kill after a record, a stop while the next marker waited for the
database, a give-back after an uncounted requeue). No PDU is in doubt, so recovery queues the
message again for the SIM that sent its parts, to go on from the first part not out; before,
it called it AMBIGUOUS, which no report settles (no part is ambiguous) and which waits for an
operator. A part marked and unanswered still makes it AMBIGUOUS. Both engines, real spools.
"""

from __future__ import annotations

from modempool.spool import MessageState, Spool
from tests.modempool.daemon_harness import eventually
from tests.modempool.spool_driver import claim_next
from tests.modempool.test_dispatch import DONE, LONG as THREE_PARTS, MOBILE, parts_on_air, pool

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


def test_an_uncounted_requeue_after_a_part_went_out_keeps_its_attempt(spool_target):
    """Part 2 refused before its PDU (a timeout: uncounted) after part 1 of the same attempt went
    out: that attempt counts, so the next claim's number is its own (afix24; before, the number
    came again and part 1 looked like the next claim's write). Fails on 079b1cb: 0 attempts."""
    with Spool(spool_target) as spool:
        message_id = _part_one_out(spool)
        spool.mark_part_writing(message_id, 2, 2, lease_owner=OWNER)
        assert spool.requeue(message_id, "m1: timeout", only_sim="m1", count_attempt=False,
                             lease_owner=OWNER)
        assert spool.get(message_id).attempts == 1
        assert spool.claim(message_id, "m1", OWNER, 60).attempts == 2


def test_an_uncounted_requeue_of_a_resumed_claim_gives_its_own_attempt_back(spool_target):
    """Part 1 went out in attempt 1; attempt 2 times out before part 2's PDU: nothing of
    attempt 2 went out, so it is given back (part 1 is attempt 1's)."""
    with Spool(spool_target) as spool:
        message_id = _part_one_out(spool)
        spool.recover_leases(owner=OWNER)
        assert spool.claim(message_id, "m1", OWNER, 60).attempts == 2
        spool.mark_part_writing(message_id, 2, 2, lease_owner=OWNER)
        assert spool.requeue(message_id, "m1: timeout", only_sim="m1", count_attempt=False,
                             lease_owner=OWNER)
        assert spool.get(message_id).attempts == 1


def test_a_message_whose_part_count_is_unknown_stays_ambiguous(spool_target):
    """Parts marked with no total (an older writer): the sending path could not tell the parts
    out from those to go, and would send part 1 again, so no resume: AMBIGUOUS as before."""
    with Spool(spool_target) as spool:
        message = spool.enqueue(TO, LONG)
        claimed = spool.claim(message.id, "m1", OWNER, 60)
        spool.mark_part_writing(message.id, 1, lease_owner=OWNER)
        spool.mark_part_sent(message.id, 1, 9, 10, attempt=claimed.attempts, sim="m1")
        assert spool.get(message.id).parts_total is None
        assert spool.recover_leases(owner=OWNER).ambiguous == (message.id,)


async def test_the_daemon_goes_on_from_part_two_never_sending_part_one_again(tmp_path):
    """A daemon killed after part 1's record (its claim left as it was, on the same spool): the
    next start's recovery queues the message for m1, whose modem sends parts 2 and 3 only, with
    the concatenation reference part 1 had (the phone joins them). Fails on 079b1cb: AMBIGUOUS."""
    with Spool(tmp_path / "spool.db") as spool:
        message = spool.enqueue(MOBILE, THREE_PARTS)
        claimed = spool.claim(message.id, "m1", OWNER, 60)
        spool.mark_part_writing(message.id, 1, 3, lease_owner=OWNER)
        spool.mark_part_sent(message.id, 1, message.id % 256, 10, attempt=claimed.attempts,
                             sim="m1")
    async with pool(tmp_path, modems=2) as (bank, spool, _daemon):
        assert spool.get(message.id).state.value != "ambiguous"
        await eventually(lambda: spool.get(message.id).state.value in DONE)
        assert parts_on_air(bank) == [("m1", 2), ("m1", 3)]
        assert {tuple(e["concat"][:2]) for e in bank.network_log()
                if e["kind"] == "part"} == {(message.id % 256, 3)}
        parts = spool.parts(message.id)
        assert [(p["seq"], p["attempt"], p["message_reference"], p["state"] in DONE)
                for p in parts][0] == (1, 1, 10, True)
        assert len(parts) == 3 and all(p["state"] in DONE for p in parts)
        assert spool.get(message.id).attempts == 2
