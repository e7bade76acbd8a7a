"""Recording confirmed sends together: `mark_many_sent` (one commit for a burst of modems)."""

from __future__ import annotations

from modempool.spool import MessageState, Spool
from modempool.spool.claims import SentPart


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
    assert recorded == [True, True, False]
    assert [spool.get(i).state for i in ids] == [MessageState.SENT, MessageState.SENT,
                                                 MessageState.AMBIGUOUS]
    assert [spool.parts(i)[0]["message_reference"] for i in ids[:2]] == [17, 18]
    assert spool.sent_counts("a")[1] == spool.sent_counts("b")[1] == 1
