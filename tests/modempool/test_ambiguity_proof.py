"""The ambiguity rule's proof reads the SIM's writes by place between the known references
around a candidate, never the wall clock (review rev20a M1, M2, L1). Both engines."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

import modempool.spool.part_markers as part_markers
from modempool.spool import MessageState, Spool
from modempool.spool.model import from_text, utcnow

TO, OTHER = "+8613800138000", "+8613912345678"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def sent(spool: Spool, sim: str, reference: int, text: str = "sent", to: str = TO) -> int:
    """A message sent by `sim` whose only part got TP-MR `reference`."""
    message = spool.enqueue(to, text)
    spool.claim(message.id, sim, "o", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
    spool.mark_last_part_sent(message.id, 1, None, reference, lease_owner="o")
    return message.id


def lost(spool: Spool, sim: str, text: str = "was it sent?", to: str = TO) -> int:
    """A message killed after its marker (its PDU may have left): ambiguous."""
    message = spool.enqueue(to, text)
    spool.claim(message.id, sim, "crashed", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="crashed")
    assert spool.recover_leases(owner="crashed").ambiguous == (message.id,)
    return message.id


def killed_again(spool: Spool, message_id: int, sim: str) -> None:
    """A retry of `message_id` killed after its marker: ambiguous again."""
    spool.retry(message_id)
    spool.claim(message_id, sim, "crashed", 60)
    spool.mark_part_writing(message_id, 1, 1, lease_owner="crashed")
    assert spool.recover_leases(owner="crashed").ambiguous == (message_id,)


def refused(spool: Spool, sim: str, text: str = "refused") -> int:
    """A message whose part the modem refused (+CMS ERROR): requeued, its write 'failed'."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, "o", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
    assert spool.requeue(message.id, "+CMS ERROR: 500", lease_owner="o")
    return message.id


def report(spool: Spool, reference: int, sim: str = "m1"):
    return spool.store_delivery_report(sim, reference, TO, 0, submitted_at=utcnow())


@pytest.fixture
def clock_behind(monkeypatch, spool):
    """Markers written while the box's clock is an hour behind (the marker's own clock: no
    UPDATE of writing_at, which would go through the write-history trigger). On leaving, it
    checks that a marker written under it is an hour behind: if the marker's time is ever made
    elsewhere (d049191 moved it out of claims.py, and the patch silently moved nothing), the
    test fails here instead of passing without its premise."""
    real = part_markers.utcnow

    class Behind:
        def __enter__(self) -> None:
            monkeypatch.setattr(part_markers, "utcnow", lambda: real() - timedelta(hours=1))

        def __exit__(self, kind: type | None, *exc: object) -> None:
            monkeypatch.setattr(part_markers, "utcnow", real)
            if kind is None:
                markers = [as_time(row[0]) for row in
                           spool.rows("SELECT writing_at FROM parts WHERE writing_at IS NOT NULL")]
                assert any(at < real() - timedelta(minutes=30) for at in markers), (
                    "no marker written an hour behind: clock_behind patched the wrong clock")

    return Behind()


def as_time(value: str | datetime) -> datetime:
    """A stored time as a datetime (SQLite keeps text, PostgreSQL a timestamp)."""
    return from_text(value) if isinstance(value, str) else value


def test_one_message_ambiguous_twice_on_one_sim_is_settled_by_its_report(spool):
    """M's only writes since 9 are its own two attempts: whichever took 10, M went out (it
    stayed ambiguous for good on the old code: its own earlier write was a rival)."""
    sent(spool, "m1", 9)
    m = lost(spool, "m1", "M")
    killed_again(spool, m, "m1")
    assert report(spool, 10).message_id == m
    assert spool.get(m).state is MessageState.DELIVERED
    # With its second attempt's report (11, the first having taken 10) just the same.
    sent(spool, "m2", 9)
    n = lost(spool, "m2", "N")
    killed_again(spool, n, "m2")
    assert report(spool, 11, sim="m2").message_id == n
    # Its part keeps no reference (10 may be either attempt's): the next proofs of the SIM
    # do not read 10 as its latest write's. Q after M, then Y with 12: the report 11 may be
    # M's latest write's (had its first taken 10), so it does not settle Q.
    assert [part["message_reference"] for part in spool.parts(m)] == [None]
    q = lost(spool, "m1", "Q")
    sent(spool, "m1", 12, "Y")
    assert report(spool, 11).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    # But not with one a third write may own: 12 is past N's two writes.
    sent(spool, "m3", 9)
    k = lost(spool, "m3", "K")
    killed_again(spool, k, "m3")
    assert report(spool, 12, sim="m3").part_id is None
    assert spool.get(k).state is MessageState.AMBIGUOUS


def test_a_write_made_while_the_clock_was_behind_still_counts(spool, clock_behind):
    """E (to the same recipient) is written an hour 'before' by the clock, then killed; Q is
    written and killed; X got 11. Exactly one of E and Q took 10: the report settles neither
    (the old code settled Q: E was outside the window it read by the clock)."""
    sent(spool, "m1", 9)
    with clock_behind:
        e = lost(spool, "m1", "E")
    q = lost(spool, "m1", "Q")
    sent(spool, "m1", 11, "X")
    assert report(spool, 10).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    assert spool.get(e).state is MessageState.AMBIGUOUS


def test_a_next_part_first_written_while_the_clock_is_behind_still_comes_next(spool,
                                                                             clock_behind):
    """audit20 M2 as a host makes it: N's marker is written an hour behind, after Q; its
    report (10, before its record) must not settle Q."""
    sent(spool, "m1", 9)
    q = lost(spool, "m1", "Q")
    n = spool.enqueue(TO, "N")
    spool.claim(n.id, "m1", "o", 60)
    with clock_behind:
        spool.mark_part_writing(n.id, 1, 1, lease_owner="o")
    assert report(spool, 10).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    assert spool.rows("SELECT count(*) FROM earlier_writes")[0][0] == 0   # no trigger involved


def test_a_report_past_the_next_known_reference_is_a_later_writes(spool):
    """8, then U (to another number) and C killed, then 9: neither U nor C took a reference,
    so a report 10 is a later write's (W, in flight). The old code settled C by it (its
    previous reference unknown, the next one not the report's)."""
    sent(spool, "m1", 8)
    lost(spool, "m1", "U", to=OTHER)
    c = lost(spool, "m1", "C")
    sent(spool, "m1", 9, "N", to=OTHER)
    w = spool.enqueue(TO, "W")
    spool.claim(w.id, "m1", "o", 60)
    spool.mark_part_writing(w.id, 1, 1, lease_owner="o")
    assert report(spool, 10).part_id is None
    assert spool.get(c).state is MessageState.AMBIGUOUS
    # A write to another number between the known ones cannot own the report: 8, U, C, 11.
    sent(spool, "m2", 8)
    lost(spool, "m2", "U", to=OTHER)
    d = lost(spool, "m2", "D")
    sent(spool, "m2", 11, "N", to=OTHER)
    assert report(spool, 10, sim="m2").message_id == d


def test_a_refused_write_after_the_ambiguous_one_owns_no_report(spool):
    """Q killed, then P refused (+CMS ERROR) and resent with 11: the refusal owns no report,
    so the report 10 is Q's (it stayed ambiguous for good on the old code)."""
    sent(spool, "m1", 9)
    q = lost(spool, "m1", "Q")
    p = refused(spool, "m1", "P")
    spool.claim(p, "m1", "o", 60)
    spool.mark_part_writing(p, 1, 1, lease_owner="o")
    spool.mark_last_part_sent(p, 1, None, 11, lease_owner="o")
    assert report(spool, 10).message_id == q
    assert spool.get(q).state is MessageState.DELIVERED
    # The refusal may have used a reference all the same: the next write's own (10) is not Q's.
    sent(spool, "m2", 9)
    r = lost(spool, "m2", "R")
    refused(spool, "m2")
    sent(spool, "m2", 10, "Y", to=OTHER)
    assert report(spool, 10, sim="m2").part_id is None
    assert spool.get(r).state is MessageState.AMBIGUOUS
