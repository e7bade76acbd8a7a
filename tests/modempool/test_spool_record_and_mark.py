"""A SIM's previous message recorded with its next part's marker, in one commit
(`mark_sent_then_writing`; on PostgreSQL the marker rides in the record's statement): each
outcome the long way gives, on both engines, alone and in a batch of several SIMs' markings
(`mark_sent_then_writing_each`: one transaction; on PostgreSQL the common cases in one round
trip, the others left to be written alone)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modempool.spool import MessageState, Spool
from modempool.spool.records import SentPart
from modempool.spool.model import LeaseLost, utcnow

TO = "+8613800138000"


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        yield spool


def claimed(spool: Spool, owner: str = "o", sim: str = "m1", text: str = "hello") -> int:
    message = spool.enqueue(TO, text)
    spool.claim(message.id, sim, owner, 60)
    return message.id


def written(spool: Spool, owner: str = "o", sim: str = "m1", text: str = "hello") -> int:
    message_id = claimed(spool, owner, sim, text)
    spool.mark_part_writing(message_id, 1, 1, lease_owner=owner)
    return message_id


def sent_total(spool: Spool, sim: str) -> int:
    return {row["name"]: row["sent_total"] for row in spool.sims()}.get(sim, 0)


def each_or_alone(spool: Spool, markings: list) -> list:
    """`mark_sent_then_writing_each(markings)`, each marking it left unwritten (None: not the
    common case, on PostgreSQL) then written alone, as a dispatcher does."""
    return [done if done is not None else spool.mark_sent_then_writing(
                sends, message_id, seq, total, lease_owner=owner)
            for (sends, message_id, seq, total, owner), done in zip(
                markings, spool.mark_sent_then_writing_each(markings))]


@pytest.fixture(params=["alone", "in a batch"])
def record_and_mark(request, spool):
    """`mark_sent_then_writing`, or the same marking in a batch after another SIM's (whose
    record and marker must commit with it)."""
    if request.param == "alone":
        yield spool.mark_sent_then_writing
        return
    other_previous, other_next = written(spool, "o2", "m2"), claimed(spool, "o2", "m2")

    answered = []

    def in_a_batch(sends, message_id, seq, total, *, lease_owner):
        other, this = each_or_alone(spool,
            [([SentPart(other_previous, 1, None, 7, lease_owner="o2")], other_next, 1, 1,
              "o2"), (sends, message_id, seq, total, lease_owner)])
        answered.append(other)
        return this

    yield in_a_batch
    if answered:   # (not refused whole: then nothing of it is written)
        assert answered == [([True], None)]
        assert spool.get(other_previous).state is MessageState.SENT
        assert [p["state"] for p in spool.parts(other_next)] == ["writing"]
    else:
        assert spool.get(other_previous).state is MessageState.SENDING
        assert spool.parts(other_next) == []


def test_the_record_and_the_next_marker_commit_together(spool, record_and_mark):
    previous, following = written(spool), claimed(spool)
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert spool.get(previous).state is MessageState.SENT
    [part] = spool.parts(previous)
    assert (part["state"], part["message_reference"]) == ("sent", 42)
    assert [p["state"] for p in spool.parts(following)] == ["writing"]
    assert spool.get(following).parts_total == 1
    assert [e["kind"] for e in spool.events(previous)][-1] == "sent"
    assert sent_total(spool, "m1") == 1          # counted once, for its SIM


def test_a_lost_lease_of_the_next_part_is_returned_and_the_record_commits(
        spool, record_and_mark):
    previous, following = written(spool), claimed(spool, owner="someone else")
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert recorded == [True] and isinstance(lost, LeaseLost)
    assert spool.get(previous).state is MessageState.SENT
    assert spool.parts(following) == []                 # nothing written for it


def test_a_record_whose_lease_was_recovered_proves_it_sent_counts_once_and_marks(
        spool, record_and_mark):
    previous = written(spool)
    spool.recover_leases("o", include_live=True)         # the previous one: ambiguous now
    following = claimed(spool, owner="p")
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="p")
    assert recorded == [True] and lost is None           # the modem's answer proves it
    assert spool.get(previous).state is MessageState.SENT
    assert [(p["state"], p["message_reference"]) for p in spool.parts(previous)] == [
        ("sent", 42)]
    assert sent_total(spool, "m1") == 1           # the part went out: it counts
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_report_that_came_first_takes_the_long_way_and_the_marker_is_written(
        spool, record_and_mark):
    previous, following = written(spool), claimed(spool)
    network_time = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    assert spool.store_delivery_report("m1", 42, TO, 0, received_at=network_time).part_id is None
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert spool.get(previous).state is MessageState.DELIVERED
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_part_recorded_already_is_not_counted_twice(spool, record_and_mark):
    previous, following = written(spool), claimed(spool)
    spool.mark_part_sent(previous, 1, None, 42)
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([True], None)
    assert sent_total(spool, "m1") == 1
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_record_of_a_lease_now_someone_elses_leaves_the_message_to_them(
        spool, record_and_mark):
    previous = written(spool)
    with spool.engine.tx() as conn:    # taken over: another owner's lease, still sending
        conn.execute("UPDATE messages SET lease_owner = 'q' WHERE id = ?", (previous,))
    following = claimed(spool)
    recorded, lost = record_and_mark(
        [SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert (recorded, lost) == ([False], None)
    message = spool.get(previous)
    assert (message.state, message.lease_owner) == (MessageState.SENDING, "q")
    assert "sent" not in [e["kind"] for e in spool.events(previous)]
    assert [p["state"] for p in spool.parts(following)] == ["writing"]


def test_a_record_and_a_marker_of_one_message_are_refused(spool, record_and_mark):
    message_id = written(spool)
    with pytest.raises(ValueError, match="its own next marker"):
        record_and_mark([SentPart(message_id, 1, None, 42, lease_owner="o")],
                                     message_id, 2, 2, lease_owner="o")
    assert spool.get(message_id).state is MessageState.SENDING


def test_a_batch_gives_each_marking_its_own_outcome(spool):
    """Four SIMs' markings in one call: a marker alone, a record with its marker, a marker
    whose lease is someone else's (its SIM's record still commits), a record whose report
    came first (the long way: on PostgreSQL left out of the batch, written alone after it)."""
    alone = claimed(spool, "o1", "m1")
    previous2, next2 = written(spool, "o2", "m2"), claimed(spool, "o2", "m2")
    previous3, next3 = written(spool, "o3", "m3"), claimed(spool, "someone else", "m3")
    previous4, next4 = written(spool, "o4", "m4"), claimed(spool, "o4", "m4")
    network_time = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    assert spool.store_delivery_report("m4", 44, TO, 0, received_at=network_time).part_id is None
    outcomes = each_or_alone(spool, [
        ([], alone, 1, 1, "o1"),
        ([SentPart(previous2, 1, None, 42, lease_owner="o2")], next2, 1, 1, "o2"),
        ([SentPart(previous3, 1, None, 43, lease_owner="o3")], next3, 1, 1, "o3"),
        ([SentPart(previous4, 1, None, 44, lease_owner="o4")], next4, 1, 1, "o4")])
    assert [recorded for recorded, _ in outcomes] == [[], [True], [True], [True]]
    assert [lost is None for _, lost in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2][1], LeaseLost)
    assert [spool.get(m).state for m in (previous2, previous3, previous4)] == [
        MessageState.SENT, MessageState.SENT, MessageState.DELIVERED]
    assert [[p["state"] for p in spool.parts(m)] for m in (alone, next2, next3, next4)] == [
        ["writing"], ["writing"], [], ["writing"]]
    assert [sent_total(spool, sim) for sim in ("m1", "m2", "m3", "m4")] == [0, 1, 1, 1]


def test_a_batch_with_a_refused_record_writes_nothing(spool):
    """The database refuses one record (a trigger): the whole batch fails, nothing of it
    written, for its caller to write each alone (where the refused one is handled)."""
    from tests.modempool.test_marker_ahead import refuse_records_of

    fine, fine_next = written(spool, "o1", "m1"), claimed(spool, "o1", "m1")
    refused, refused_next = (written(spool, "o2", "m2", "refused record"),
                             claimed(spool, "o2", "m2"))
    refuse_records_of(spool, "refused record")
    with pytest.raises(Exception, match="refused for the test"):
        spool.mark_sent_then_writing_each([
            ([SentPart(fine, 1, None, 41, lease_owner="o1")], fine_next, 1, 1, "o1"),
            ([SentPart(refused, 1, None, 42, lease_owner="o2")], refused_next, 1, 1, "o2")])
    assert [spool.get(m).state for m in (fine, refused)] == [MessageState.SENDING] * 2
    assert spool.parts(fine_next) == [] and spool.parts(refused_next) == []
    assert [sent_total(spool, sim) for sim in ("m1", "m2")] == [0, 0]


def test_a_record_not_the_common_case_is_left_out_of_the_batch_with_its_marker(spool):
    """On PostgreSQL the batch writes the common cases in one round trip; a record whose
    report came first writes nothing there, nor its SIM's marker (a marker never commits
    before its SIM's previous record): that marking is left (None) to be written alone. On
    SQLite the batch is one transaction that writes each the long way."""
    fine, fine_next = written(spool, "o1", "m1"), claimed(spool, "o1", "m1")
    early, early_next = written(spool, "o2", "m2"), claimed(spool, "o2", "m2")
    network_time = utcnow().replace(microsecond=0) - timedelta(seconds=1)
    assert spool.store_delivery_report("m2", 44, TO, 0, received_at=network_time).part_id is None
    outcomes = spool.mark_sent_then_writing_each([
        ([SentPart(fine, 1, None, 43, lease_owner="o1")], fine_next, 1, 1, "o1"),
        ([SentPart(early, 1, None, 44, lease_owner="o2")], early_next, 1, 1, "o2")])
    assert outcomes[0] == ([True], None)
    assert [p["state"] for p in spool.parts(fine_next)] == ["writing"]
    if spool.engine.writes_in_with:   # PostgreSQL: left out whole
        assert outcomes[1] is None
        assert spool.get(early).state is MessageState.SENDING
        assert spool.parts(early_next) == []
        assert spool.mark_sent_then_writing(
            [SentPart(early, 1, None, 44, lease_owner="o2")], early_next, 1, 1,
            lease_owner="o2") == ([True], None)
    else:
        assert outcomes[1] == ([True], None)
    assert spool.get(early).state is MessageState.DELIVERED
    assert [p["state"] for p in spool.parts(early_next)] == ["writing"]


@pytest.mark.parametrize("together", [False, True], ids=["alone", "in a batch"])
def test_a_record_written_again_after_its_commits_answer_was_lost_is_recorded_already(
        spool, together):
    """rev21a L2: the commit of two SIMs' records and markers was done but its answer lost;
    the dispatcher writes them again. Each record finds its part sent with its own TP-MR and
    its message SENT: "recorded already" (True), not "its lease taken over" (False), and
    nothing is counted or said twice."""
    markings = []
    for owner, sim, reference in (("o", "m1", 42), ("o2", "m2", 7)):
        previous, following = written(spool, owner, sim), claimed(spool, owner, sim)
        markings.append(([SentPart(previous, 1, None, reference, lease_owner=owner)],
                         following, 1, 1, owner))

    def write() -> list:
        if together:
            return each_or_alone(spool, markings)
        return [spool.mark_sent_then_writing(sends, message_id, seq, total, lease_owner=owner)
                for sends, message_id, seq, total, owner in markings]

    assert write() == [([True], None)] * 2
    assert write() == [([True], None)] * 2        # the same again: its answer was lost
    assert sent_total(spool, "m1") == sent_total(spool, "m2") == 1
    for (sent,), *_ in markings:
        assert [e["kind"] for e in spool.events(sent.message_id)].count("sent") == 1


def test_a_record_of_another_tp_mr_than_the_one_recorded_is_not_recorded_already(spool):
    """The part was recorded with another reference (another attempt's): not this record's
    commit, so still "taken over" (False)."""
    previous, following = written(spool), claimed(spool)
    assert spool.mark_sent_then_writing([SentPart(previous, 1, None, 42, lease_owner="o")],
                                        following, 1, 1, lease_owner="o") == ([True], None)
    recorded, _ = spool.mark_sent_then_writing(
        [SentPart(previous, 1, None, 43, lease_owner="o")], following, 1, 1, lease_owner="o")
    assert recorded == [False]
