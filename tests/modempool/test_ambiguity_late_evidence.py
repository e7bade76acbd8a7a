"""An ambiguous part whose report came while the SIM's next write was in flight is settled once
that write's outcome is known, whichever order the facts come in: its report before its record,
or the write refused (audit21 M2). Both engines: a real SQLite file, a real PostgreSQL schema."""

from __future__ import annotations

import pytest

from modempool.spool import MessageState, Spool
from tests.modempool.test_ambiguity_proof import TO, lost, report, sent, spool  # noqa: F401


def in_flight(spool: Spool, sim: str, text: str) -> int:
    """A message whose part is marked writing on `sim`: its outcome not known yet."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, "o", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
    return message.id


@pytest.mark.parametrize("report_before_record", [False, True],
                         ids=["record-then-report", "report-then-record"])
def test_a_waiting_report_settles_when_the_next_write_is_recorded(spool, report_before_record):
    """9 sent; A ambiguous; B in flight when A's report 10 comes (not provable yet: B may have
    taken 10). B then takes 11, its report before or after its record: every fact is in, and
    A is delivered either way (the old code left A ambiguous when B's report came first)."""
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    b = in_flight(spool, "m1", "B")
    assert report(spool, 10).part_id is None
    if report_before_record:
        assert report(spool, 11).part_id is None
        spool.mark_last_part_sent(b, 1, None, 11, lease_owner="o")
    else:
        spool.mark_last_part_sent(b, 1, None, 11, lease_owner="o")
        assert report(spool, 11).part_id is not None
    assert spool.get(b).state is MessageState.DELIVERED
    assert spool.get(a).state is MessageState.DELIVERED
    assert "ambiguity-resolved" in [e["kind"] for e in spool.events(a)]


@pytest.mark.parametrize("refusal", ["requeue", "mark_failed"])
def test_a_waiting_report_settles_when_the_next_write_is_refused(spool, refusal):
    """9 sent; A ambiguous; B in flight when A's report 10 comes. B is refused (+CMS ERROR:
    its write failed, it owns no report): 10 is A's (the old code left A ambiguous)."""
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    b = in_flight(spool, "m1", "B")
    assert report(spool, 10).part_id is None
    if refusal == "requeue":
        assert spool.requeue(b, "+CMS ERROR: 500", lease_owner="o")
    else:
        assert spool.mark_failed(b, "+CMS ERROR: 500", lease_owner="o")
    assert spool.get(a).state is MessageState.DELIVERED


def test_the_refusal_before_the_report_settles_too(spool):
    """Control: the same facts, B refused before A's report comes."""
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    b = in_flight(spool, "m1", "B")
    assert spool.requeue(b, "+CMS ERROR: 500", lease_owner="o")
    assert report(spool, 10).message_id == a
    assert spool.get(a).state is MessageState.DELIVERED


def test_a_waiting_report_the_next_write_took_settles_nothing(spool):
    """B's report came before its record, and it is 10 itself: A's never came, A stays
    ambiguous (the late re-reading proves nothing the facts do not)."""
    sent(spool, "m1", 9)
    a = lost(spool, "m1", "A")
    b = in_flight(spool, "m1", "B")
    assert report(spool, 10).part_id is None
    spool.mark_last_part_sent(b, 1, None, 10, lease_owner="o")
    assert spool.get(b).state is MessageState.DELIVERED
    assert spool.get(a).state is MessageState.AMBIGUOUS
