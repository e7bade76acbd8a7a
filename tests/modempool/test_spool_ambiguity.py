"""Ambiguous messages settled by the network: a delivery report from that SIM and recipient,
shortly after the write, with the reference the modem would have used; nothing less."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.model import utcnow

TO, OTHER = "+8613800138000", "+8613912345678"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def sent(spool: Spool, sim: str, reference: int, to: str = TO) -> int:
    """A message sent by `sim` whose only part got TP-MR `reference`."""
    message = spool.enqueue(to, f"sent with {reference}")
    spool.claim(message.id, sim, "o", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
    spool.mark_last_part_sent(message.id, 1, None, reference, lease_owner="o")
    return message.id


def lost(spool: Spool, sim: str, to: str = TO) -> int:
    """A message whose PDU was written and whose +CMGS answer never came (a crash)."""
    message = spool.enqueue(to, "was it sent?")
    spool.claim(message.id, sim, "crashed", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="crashed")
    assert spool.recover_leases(owner="crashed").ambiguous == (message.id,)
    return message.id


def test_a_report_for_the_next_reference_settles_the_ambiguous_message(spool):
    sent(spool, "m1", 41)
    ambiguous = lost(spool, "m1")
    match = spool.store_delivery_report("m1", 42, TO, 0, submitted_at=utcnow())
    assert match.message_id == ambiguous and match.message_state == "delivered"
    assert spool.get(ambiguous).state is MessageState.DELIVERED
    [part] = spool.parts(ambiguous)
    assert part["state"] == "delivered" and part["message_reference"] == 42
    assert spool.sent_counts("m1")[1] == 2          # counted against the SIM's day, as sent
    [resolved] = [e for e in spool.events(ambiguous) if e["kind"] == "ambiguity-resolved"]
    assert '"message_reference": 42' in resolved["detail"] and '"sim": "m1"' in resolved["detail"]


def test_a_report_that_is_not_proof_leaves_it_ambiguous(spool):
    sent(spool, "m1", 41)
    ambiguous = lost(spool, "m1")
    now = utcnow()
    for report in (("m2", 42, TO, now),                       # another SIM
                   ("m1", 42, OTHER, now),                    # another recipient
                   ("m1", 50, TO, now),                       # not the modem's next reference
                   ("m1", 42, TO, now + timedelta(hours=1)),  # long after the write
                   ("m1", 42, TO, now - timedelta(hours=1))):  # before it
        sim, reference, to, when = report
        assert spool.store_delivery_report(sim, reference, to, 0, submitted_at=when).part_id is None
    assert spool.get(ambiguous).state is MessageState.AMBIGUOUS


def test_two_candidates_are_told_apart_only_by_the_reference(spool):
    first = lost(spool, "m1")                 # no known previous part: reference unknown
    second = lost(spool, "m1")                # its previous part is `first`: unknown too
    assert spool.store_delivery_report("m1", 7, TO, 0, submitted_at=utcnow()).part_id is None
    assert {spool.get(first).state, spool.get(second).state} == {MessageState.AMBIGUOUS}
    sent(spool, "m2", 200)
    third = lost(spool, "m2")                 # the modem's next: 201, were it written
    sent(spool, "m2", 202)                    # so it was: the next part got 202
    fourth = lost(spool, "m2")                # after a 202: 203, were it written
    match = spool.store_delivery_report("m2", 201, TO, 0, submitted_at=utcnow())
    assert match.message_id == third and spool.get(fourth).state is MessageState.AMBIGUOUS


def test_a_report_a_later_part_may_own_settles_nothing(spool):
    """The part after an ambiguous one of its SIM has no known reference yet: had the
    ambiguous PDU never left, the modem gave that later part the reference the report bears.
    (Seen in the SIGKILL test: a message killed before its write marked delivered by the report
    of the next message of its SIM to the same number, whose record was still on its way.)"""
    sent(spool, "m1", 41)
    never_out = lost(spool, "m1")             # killed between its marker and its write
    in_flight = spool.enqueue(TO, "the next on m1")
    spool.claim(in_flight.id, "m1", "o", 60)
    spool.mark_part_writing(in_flight.id, 1, 1, lease_owner="o")
    # +CMGS gave it 42; its report comes before its record commits.
    assert spool.store_delivery_report("m1", 42, TO, 0, submitted_at=utcnow()).part_id is None
    assert spool.get(never_out).state is MessageState.AMBIGUOUS
    spool.mark_last_part_sent(in_flight.id, 1, None, 42, lease_owner="o")
    assert spool.get(in_flight.id).state is MessageState.DELIVERED   # the report was its own
    assert spool.get(never_out).state is MessageState.AMBIGUOUS
    # The same when the later one is lost too (killed after its write): either may be out.
    sent(spool, "m3", 70)
    first, later = lost(spool, "m3"), lost(spool, "m3")
    assert spool.store_delivery_report("m3", 71, TO, 0, submitted_at=utcnow()).part_id is None
    # ... and when the later part's known reference is the report's.
    sent(spool, "m2", 9)
    skipped = lost(spool, "m2")
    sent(spool, "m2", 10, to=OTHER)           # took 10: `skipped` never left
    assert spool.store_delivery_report("m2", 10, TO, 0, submitted_at=utcnow()).part_id is None
    assert {spool.get(m).state for m in (never_out, first, later, skipped)} == {MessageState.AMBIGUOUS}


def test_a_report_that_came_before_the_ambiguity_settles_it_when_it_arises(spool):
    sent(spool, "m1", 41)
    # The +CMGS answer is lost but the modem is alive: its +CDS comes while we still wait.
    waiting = spool.enqueue(TO, "answer lost")
    spool.claim(waiting.id, "m1", "o", 60)
    spool.mark_part_writing(waiting.id, 1, 1, lease_owner="o")
    early = spool.store_delivery_report("m1", 42, TO, 0, submitted_at=utcnow())
    assert early.part_id is None                                # nothing ambiguous yet
    spool.mark_ambiguous(waiting.id, "m1: no answer after the PDU", lease_owner="o")
    assert spool.get(waiting.id).state is MessageState.DELIVERED
    assert "ambiguity-resolved" in [e["kind"] for e in spool.events(waiting.id)]
    # The same after a crash: recovery finds the report the killed daemon stored.
    crashed = spool.enqueue(TO, "daemon killed")
    spool.claim(crashed.id, "m1", "dead", 60)
    spool.mark_part_writing(crashed.id, 1, 1, lease_owner="dead")
    spool.store_delivery_report("m1", 43, TO, 0, submitted_at=utcnow())
    recovery = spool.recover_leases(owner="dead")
    assert recovery.sent == (crashed.id,) and recovery.ambiguous == ()
    assert spool.get(crashed.id).state is MessageState.DELIVERED


def test_a_report_that_waited_for_the_next_part_settles_once_that_one_is_known(spool):
    """The report came while the SIM's next part was in flight: not proof yet. That part's own
    report (its reference the one after) shows the modem numbered the ambiguous one first."""
    sent(spool, "m1", 41)
    hung = lost(spool, "m1")
    after = spool.enqueue(TO, "after the hang")
    spool.claim(after.id, "m1", "o", 60)
    spool.mark_part_writing(after.id, 1, 1, lease_owner="o")
    assert spool.store_delivery_report("m1", 42, TO, 0, submitted_at=utcnow()).part_id is None
    spool.mark_last_part_sent(after.id, 1, None, 43, lease_owner="o")
    assert spool.get(hung).state is MessageState.AMBIGUOUS
    match = spool.store_delivery_report("m1", 43, TO, 0, submitted_at=utcnow())
    assert match.message_id == after.id and spool.get(after.id).state is MessageState.DELIVERED
    assert spool.get(hung).state is MessageState.DELIVERED
    assert "ambiguity-resolved" in [e["kind"] for e in spool.events(hung)]
