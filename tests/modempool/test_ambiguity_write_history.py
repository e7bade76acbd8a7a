"""The ambiguity rule reads every write a SIM made, in the order it made them (schema step 18):
a new attempt of a part keeps the write it overwrites (`earlier_writes`), and the order is the
parts id sequence, not the wall clock (audit20 H1, M2; M2 as a host makes it:
test_ambiguity_proof.py). Both engines."""

from __future__ import annotations

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.migrate import migrate
from modempool.spool.model import utcnow

TO = "+8613800138000"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def sent(spool: Spool, sim: str, reference: int, text: str = "sent") -> int:
    """A message sent by `sim` whose only part got TP-MR `reference`."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, "o", 60)
    spool.mark_part_writing(message.id, 1, 1, lease_owner="o")
    spool.mark_last_part_sent(message.id, 1, None, reference, lease_owner="o")
    return message.id


def lost(spool: Spool, sim: str, text: str = "was it sent?", parts: int = 1) -> int:
    """A message killed after the marker of its first part (its PDU may have left)."""
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, "crashed", 60)
    spool.mark_part_writing(message.id, 1, parts, lease_owner="crashed")
    assert spool.recover_leases(owner="crashed").ambiguous == (message.id,)
    return message.id


def resent(spool: Spool, message_id: int, sim: str, *references: int) -> None:
    """The operator's retry of `message_id`, its parts sent with `references`."""
    spool.retry(message_id)
    spool.claim(message_id, sim, "o2", 60)
    for seq, reference in enumerate(references, start=1):
        spool.mark_part_writing(message_id, seq, len(references), lease_owner="o2")
        if seq < len(references):
            spool.mark_part_sent(message_id, seq, 5, reference)
        else:
            spool.mark_last_part_sent(message_id, seq, None, reference, lease_owner="o2")


def killed_again(spool: Spool, message_id: int, sim: str) -> None:
    """A retry of `message_id` killed after its marker: ambiguous again."""
    spool.retry(message_id)
    spool.claim(message_id, sim, "crashed", 60)
    spool.mark_part_writing(message_id, 1, 1, lease_owner="crashed")
    assert spool.recover_leases(owner="crashed").ambiguous == (message_id,)


def report(spool: Spool, reference: int, sim: str = "m1"):
    return spool.store_delivery_report(sim, reference, TO, 0, submitted_at=utcnow())


def earlier_writes(spool: Spool) -> list[tuple]:
    return [tuple(r) for r in spool.rows(
        "SELECT message_id, seq, state, message_reference FROM earlier_writes ORDER BY id")]


def test_a_resend_keeps_the_write_it_overwrites_and_the_report_of_that_write_proves_nothing(
        spool):
    """audit20 H1: Q never left, P's first attempt took 10; P resent with 11. P's first report
    (10) must not settle Q (it did on the old code: Q 'delivered', P out twice)."""
    sent(spool, "m1", 9)
    q = lost(spool, "m1", "Q")
    p = lost(spool, "m1", "P")
    resent(spool, p, "m1", 11)
    assert report(spool, 10).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    assert "ambiguity-resolved" not in [e["kind"] for e in spool.events(q)]
    assert earlier_writes(spool) == [(p, 1, "ambiguous", None)]


def test_a_resent_part_of_a_multipart_message_keeps_its_first_write(spool):
    """M's first part was killed after its marker, then M was resent whole (11, 12): the
    report 10 may be M's first write's, so Q (between 9 and M) stays ambiguous."""
    sent(spool, "m1", 9)
    q = lost(spool, "m1", "Q")
    m = lost(spool, "m1", "M" * 200, parts=2)
    resent(spool, m, "m1", 11, 12)
    assert [p["message_reference"] for p in spool.parts(m)] == [11, 12]
    report(spool, 10)
    assert spool.get(q).state is MessageState.AMBIGUOUS
    assert earlier_writes(spool) == [(m, 1, "ambiguous", None)]


def test_two_retries_in_a_row_keep_both_earlier_writes_in_order(spool):
    sent(spool, "m1", 9)
    q = lost(spool, "m1", "Q")
    p = lost(spool, "m1", "P")
    killed_again(spool, p, "m1")
    resent(spool, p, "m1", 12)
    for reference in (10, 11):   # either may be one of P's two earlier writes'
        assert report(spool, reference).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    assert earlier_writes(spool) == [(p, 1, "ambiguous", None), (p, 1, "ambiguous", None)]
    places = [r[0] for r in spool.rows("SELECT id FROM earlier_writes ORDER BY id")]
    [now] = spool.rows("SELECT coalesce(rewritten, id) FROM parts WHERE message_id = ?", (p,))
    assert places[0] < places[1] < now[0]   # the latest attempt last


def test_a_new_attempt_takes_its_place_after_the_writes_made_meanwhile(spool):
    """P's first attempt was refused (requeued), Q was killed, then P's second attempt is
    written: it comes after Q, and while its reference is unknown Q's report proves nothing;
    once P's is known (11), the stored report (10) settles Q."""
    sent(spool, "m1", 9)
    p = spool.enqueue(TO, "P")
    spool.claim(p.id, "m1", "o", 60)
    spool.mark_part_writing(p.id, 1, 1, lease_owner="o")
    spool.requeue(p.id, "+CMS ERROR: 500", lease_owner="o")
    q = lost(spool, "m1", "Q")
    spool.claim(p.id, "m1", "o", 60)
    spool.mark_part_writing(p.id, 1, 1, lease_owner="o")   # in flight, reference unknown
    assert report(spool, 10).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
    # P's earlier write came before Q: its unknown reference leaves Q's expected one unknown,
    # and P's latest (11) after Q proves 10 was Q's.
    spool.mark_last_part_sent(p.id, 1, None, 11, lease_owner="o")
    report(spool, 11)
    assert spool.get(q).state is MessageState.DELIVERED


def test_the_reference_wraps_from_255_to_0_across_a_resend(spool):
    sent(spool, "m1", 255)
    q = lost(spool, "m1", "Q")
    p = lost(spool, "m1", "P")
    resent(spool, p, "m1", 1)
    report(spool, 0)              # P's first write's, perhaps: Q stays ambiguous
    assert spool.get(q).state is MessageState.AMBIGUOUS
    sent(spool, "m2", 255)
    r = lost(spool, "m2", "R")
    sent(spool, "m2", 1)          # the next part got 1: R took 0
    report(spool, 0, sim="m2")
    assert spool.get(r).state is MessageState.DELIVERED


def test_a_first_write_adds_nothing_to_the_history(spool):
    """The common path: each part written once, no earlier write kept, no new place drawn."""
    for reference in range(5):
        sent(spool, "m1", reference)
    lost(spool, "m1")
    assert earlier_writes(spool) == []
    assert spool.rows("SELECT count(*) FROM parts WHERE rewritten IS NOT NULL")[0][0] == 0


def test_a_version_17_spool_is_upgraded_and_keeps_the_writes_a_retry_overwrites(spool_target):
    """Schema step 18 on a version 17 spool (both engines): the column, the table, the
    trigger; a part written before the upgrade and retried after it keeps its first write."""
    from modempool.spool.schema import SCHEMA_VERSION

    sqlite = not str(spool_target).startswith("postgresql")
    with Spool(spool_target) as spool:
        with spool.engine.tx() as conn:
            conn.execute("DROP TRIGGER parts_rewritten" + ("" if sqlite else " ON parts"))
            if not sqlite:
                conn.execute("DROP FUNCTION parts_rewritten()")
            conn.execute("DROP TABLE earlier_writes")
            conn.execute("ALTER TABLE parts DROP COLUMN rewritten")
            conn.execute("PRAGMA user_version = 17" if sqlite
                         else "UPDATE modempool_schema SET version = 17")
        sent(spool, "m1", 9)
        q = lost(spool, "m1", "Q")
        p = lost(spool, "m1", "P")
    with Spool(spool_target) as spool:
        version = spool.rows("PRAGMA user_version" if sqlite
                             else "SELECT version FROM modempool_schema")[0][0]
        assert version == SCHEMA_VERSION >= 18
        resent(spool, p, "m1", 11)
        assert earlier_writes(spool) == [(p, 1, "ambiguous", None)]
        report(spool, 10)
        assert spool.get(q).state is MessageState.AMBIGUOUS


def test_migrate_copies_the_earlier_writes_and_the_rule_reads_them_there(tmp_path, pg_cluster):
    source, url = tmp_path / "spool.db", pg_cluster.new_schema()
    with Spool(source) as spool:
        sent(spool, "m1", 9)
        q = lost(spool, "m1", "Q")
        p = lost(spool, "m1", "P")
        resent(spool, p, "m1", 11)
        kept = earlier_writes(spool)
    result = migrate(source, url)
    assert result.agrees
    assert {t.table: t.copied for t in result.tables}["earlier_writes"] == 1
    with Spool(url) as spool:
        assert earlier_writes(spool) == kept
        report(spool, 10)
        assert spool.get(q).state is MessageState.AMBIGUOUS
        later = lost(spool, "m1", "after the move")   # new places come after the copied ones
        [(place,)] = spool.rows("SELECT coalesce(rewritten, id) FROM parts WHERE message_id = ?",
                                (later,))
        assert place > max(r[0] for r in spool.rows("SELECT id FROM earlier_writes"))


def test_an_earlier_write_before_the_ambiguous_part_may_own_the_report(spool):
    """P (killed, to the same recipient) came before Q, then T got 11 and P was resent (12).
    Exactly one of P's first write and Q took 10: the report 10 tells neither (the old code
    settled Q by it, the resent P's row having moved past T)."""
    sent(spool, "m1", 9)
    p = lost(spool, "m1", "P")
    q = lost(spool, "m1", "Q")
    sent(spool, "m1", 11, "T")
    resent(spool, p, "m1", 12)
    assert report(spool, 10).part_id is None
    assert spool.get(q).state is MessageState.AMBIGUOUS
