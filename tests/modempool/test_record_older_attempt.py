"""A late record of an older attempt never takes over a retried message's part (rev23 M2).

Daemon A, alive though judged dead, has attempt 1 confirmed (TP-MR 77) with its record kept;
B's recovery calls the message ambiguous, the operator retries it, B marks attempt 2 on m2;
then A's record lands. Attempt 2's part stays B's: B's own record writes its TP-MR (88), its
report matches, the send is counted on m2 once; A's record writes only an event saying attempt
1's PDU went out too, and counts that SMS on m1, which sent it, once (fix24). On PostgreSQL,
where two daemons share a spool; each of the three part UPDATEs (the long way, the one
statement, the batch's statement) is taken.
"""

from __future__ import annotations

from datetime import timedelta

from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow
from modempool.spool.records import SentPart
from tests.modempool.test_spool_report_locks import TO, writing

A = "host-a:101:run-a/m1"
B = "host-b:202:run-b/m2"
PARTS = "SELECT state, attempt, sim, message_reference FROM parts WHERE message_id = ?"


def _retried(a: Spool, b: Spool) -> int:
    """A's message, attempt 1 written on m1, recovered ambiguous by B, retried, attempt 2
    marked writing on m2 under B's lease."""
    message_id = writing(a, "m1", A)
    assert b.recover_leases(A, expired_only=True,
                            now=utcnow() + timedelta(minutes=5)).ambiguous == (message_id,)
    b.retry(message_id)
    assert b.claim(message_id, "m2", B, 60) is not None
    b.mark_part_writing(message_id, 1, 1, lease_owner=B)
    return message_id


def _attempt_two_is_bs(b: Spool, message_id: int, m1_today: int = 1) -> None:
    """What must hold once B's record is in, whatever A's late record did (`m1_today`: what
    m1 sent today, attempt 1's SMS among it)."""
    assert [tuple(r) for r in b.rows(PARTS, (message_id,))] == [("sent", 2, "m2", 88)]
    assert b.get(message_id).state is MessageState.SENT
    match = b.store_delivery_report("m2", 88, TO, 0, submitted_at=utcnow())
    assert match is not None and match.message_id == message_id
    assert b.sent_counts("m2")[0] == 1
    assert b.sent_counts("m1")[1] == m1_today   # attempt 1's SMS, on the SIM that sent it
    late = [e for e in b.events(message_id) if e["kind"] == "late-record"]
    assert len(late) == 1 and "attempt 1" in late[0]["detail"] and late[0]["sim"] == "m1"


def test_a_late_record_of_attempt_one_leaves_attempt_twos_part_alone(pg_cluster):
    """Fails on a5031df: attempt 2's part became ('sent', 2, 'm2', 77), B's 88 lost."""
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        message_id = _retried(a, b)
        assert a.mark_last_part_sent(message_id, 1, None, 77, lease_owner=A, attempt=1,
                                     sim="m1") == [False]
        assert [tuple(r) for r in b.rows(PARTS, (message_id,))] == [("writing", 2, "m2", None)]
        assert b.mark_last_part_sent(message_id, 1, None, 88, lease_owner=B, attempt=2) \
            == [True]
        _attempt_two_is_bs(b, message_id)


def test_a_late_record_in_a_batch_with_markers_leaves_attempt_twos_part_alone(pg_cluster):
    """The batch's one statement (`SENT_AND_MARKED`) too. Fails on a5031df."""
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        message_id = _retried(a, b)
        following = a.enqueue(TO, "A's next").id
        assert a.claim(following, "m1", A, 60) is not None
        late = SentPart(message_id, 1, None, 77, lease_owner=A, attempt=1, sim="m1")
        [written] = a.mark_sent_then_writing_each([([late], following, 1, 1, A)])
        if written is None:   # not the batch's case: written alone, as the dispatcher does
            written = a.mark_sent_then_writing([late], following, 1, 1, lease_owner=A)
        assert written == ([False], None)   # A's next marker still written
        assert b.mark_last_part_sent(message_id, 1, None, 88, lease_owner=B, attempt=2) \
            == [True]
        _attempt_two_is_bs(b, message_id, m1_today=2)   # and A's next part, being written


def test_a_late_record_written_again_counts_its_sms_once(pg_cluster):
    """The older attempt's record written again (its first commit's answer lost, as rev21a
    L2): one event, one SMS on m1. Fails on 079b1cb: nothing counted on m1."""
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        message_id = _retried(a, b)
        for _ in range(2):
            assert a.mark_last_part_sent(message_id, 1, None, 77, lease_owner=A, attempt=1,
                                         sim="m1") == [False]
        assert b.mark_last_part_sent(message_id, 1, None, 88, lease_owner=B, attempt=2,
                                     sim="m2") == [True]
        _attempt_two_is_bs(b, message_id)


def test_a_late_record_of_the_attempt_recovery_called_ambiguous_still_makes_it_sent(
        pg_cluster):
    """The same attempt's record after recovery (dead23's `_sent_after_recovery`): still SENT,
    counted once on the SIM that sent it."""
    url = pg_cluster.new_schema()
    with Spool(url) as a, Spool(url) as b:
        message_id = writing(a, "m1", A)
        assert b.recover_leases(A, expired_only=True,
                                now=utcnow() + timedelta(minutes=5)).ambiguous == (message_id,)
        assert a.mark_last_part_sent(message_id, 1, None, 77, lease_owner=A, attempt=1) \
            == [True]
        assert [tuple(r) for r in b.rows(PARTS, (message_id,))] == [("sent", 1, "m1", 77)]
        assert b.get(message_id).state is MessageState.SENT
        assert b.sent_counts("m1")[0] == 1
