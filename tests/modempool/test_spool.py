"""The spool's message side: enqueue, idempotency, states chosen by the user, claim order."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modempool.errors import InvalidNumber, InvalidRow, NotFound, PoolError, RowError
from modempool.numbers import normalise
from modempool.spool import Message, MessageState, Spool, StateConflict
from modempool.spool.numbers import _quick_e164
from tests.modempool.spool_driver import claim_next

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def spool(spool_target):
    """A spool on each engine (SQLite file, PostgreSQL schema)."""
    with Spool(spool_target) as spool:
        yield spool


@pytest.fixture
def sqlite_spool(tmp_path):
    """A spool as an SQLite file, for what is about SQLite itself."""
    with Spool(tmp_path / "spool.db") as spool:
        yield spool


def test_enqueue_normalises_the_number_and_stores_a_readable_row(sqlite_spool, tmp_path):
    spool = sqlite_spool
    message = spool.enqueue("138 0013 8000", "你好")
    assert isinstance(message, Message)
    assert message.to == "+8613800138000"
    assert message.state is MessageState.QUEUED
    assert message.attempts == 0 and message.sim is None
    # An ordinary SQLite file anyone can read, in WAL mode.
    with sqlite3.connect(tmp_path / "spool.db") as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = other.execute("SELECT to_number, text, state FROM messages").fetchone()
    assert row == ("+8613800138000", "你好", "queued")


def test_region_is_used_for_national_numbers(tmp_path):
    with Spool(tmp_path / "s.db", region="GB") as spool:
        assert spool.enqueue("07400 123456", "hi").to == "+447400123456"
        assert spool.enqueue("13800138000", "hi", region="CN").to == "+8613800138000"


@pytest.mark.parametrize("bad", ["", "123", "not a number", "+86 123"])
def test_invalid_numbers_are_rejected_and_nothing_is_queued(spool, bad):
    with pytest.raises(InvalidNumber):
        spool.enqueue(bad, "hi")
    assert spool.list() == []


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=4, max_size=16),
    plus=st.booleans(),
    region=st.sampled_from(["CN", "US", "GB", "RU", "IT", "DE", "HK", "IN"]),
)
def test_bulk_shortcut_agrees_with_numbers_normalise(digits, plus, region):
    number = ("+" if plus else "") + digits
    quick = _quick_e164(number, region)
    try:
        slow = normalise(number, region)
    except InvalidNumber:
        slow = None
    assert quick is None or quick == slow


def test_bulk_shortcut_agrees_on_every_regions_example_numbers():
    import random

    import phonenumbers

    rng = random.Random(2026)
    answered = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            national = "".join(ch for ch in phonenumbers.format_number(
                example, phonenumbers.PhoneNumberFormat.NATIONAL) if ch.isdigit())
            tails = [e164[-3:], f"{rng.randrange(1000):03d}", f"{rng.randrange(1000):03d}"]
            for tail in tails:  # the example, and neighbours of it that may or may not be valid
                for number in (e164[:-3] + tail, national[:-3] + tail, e164[1:-3] + tail):
                    for parsing_region in (region, "CN"):
                        quick = _quick_e164(number, parsing_region)
                        if quick is None:
                            continue
                        answered += 1
                        try:
                            slow = normalise(number, parsing_region)
                        except InvalidNumber:
                            slow = None
                        assert quick == slow, (number, parsing_region)
    assert answered > 500  # the shortcut does answer most plain numbers


def test_bulk_shortcut_answers_common_forms():
    assert _quick_e164("13800138000", "CN") == "+8613800138000"
    assert _quick_e164("+8613800138000", "CN") == "+8613800138000"
    assert _quick_e164("013800138000", "CN") is None  # national prefix: the full parser decides


def test_empty_text_is_rejected(spool):
    with pytest.raises(PoolError, match="empty"):
        spool.enqueue("13800138000", "")


def test_client_id_makes_enqueue_idempotent(spool):
    first = spool.enqueue("13800138000", "one", client_id="order-17")
    again = spool.enqueue("13900139000", "two", client_id="order-17")
    assert again.id == first.id and again.text == "one"
    assert len(spool.list()) == 1
    assert spool.get_by_client_id("order-17").id == first.id


def test_enqueue_many_is_all_or_nothing_and_keeps_order(spool):
    spool.enqueue("13800138000", "existing", client_id="dup")
    ids = spool.enqueue_many([
        {"to": "13800138001", "text": "a"},
        {"to": "13800138002", "text": "b", "client_id": "dup"},
        {"to": "13800138003", "text": "c", "client_id": "new"},
        {"to": "13800138004", "text": "d", "client_id": "new"},
    ])
    assert len(ids) == 4
    existing = spool.get_by_client_id("dup").id
    assert ids[1] == existing and ids[2] == ids[3] and len(set(ids)) == 3
    assert [spool.get(i).text for i in ids] == ["a", "existing", "c", "c"]
    with pytest.raises(InvalidNumber, match="row 2"):
        spool.enqueue_many([{"to": "13800138005", "text": "x"}, {"to": "42", "text": "y"}])
    assert len(spool.list()) == 3


def test_a_bad_row_of_a_batch_keeps_its_code_and_params_and_names_the_row(spool):
    with pytest.raises(InvalidRow) as bad_number:
        spool.enqueue_many([{"to": "13800138005", "text": "x"}, {"to": "42", "text": "y"}])
    error = bad_number.value
    assert isinstance(error, InvalidNumber) and error.row == 2 and error.code == "number_invalid"
    assert error.params["row"] == 2 and str(error).startswith("row 2: ")
    with pytest.raises(RowError) as blank:   # not a number's problem: a RowError all the same
        spool.enqueue_many([{"to": "13800138005", "text": "x"}, {"to": "13800138006", "text": " "}])
    error = blank.value
    assert not isinstance(error, InvalidNumber) and error.code == "text_empty"
    assert (error.row, error.params["row"]) == (2, 2) and isinstance(error.problem, PoolError)
    assert len(spool.list()) == 0


def test_get_unknown_id_raises_not_found(spool):
    with pytest.raises(NotFound):
        spool.get(404)


def test_list_filters_and_counts(spool):
    for i in range(5):
        spool.enqueue(f"1380013800{i}", f"m{i}", campaign_id=7 if i % 2 else None)
    spool.cancel(1)
    assert [m.id for m in spool.list(state="queued")] == [2, 3, 4, 5]
    assert [m.id for m in spool.list(campaign_id=7)] == [2, 4]
    assert [m.id for m in spool.list(limit=2)] == [4, 5]
    counts = spool.counts()
    assert counts["queued"] == 4 and counts["cancelled"] == 1 and counts["sent"] == 0
    assert spool.queue_depth() == 4


def test_to_dict_has_the_queue_json_keys(spool):
    data = spool.enqueue("13800138000", "hi", sims=["m1"]).to_dict()
    assert {"id", "to", "text", "state", "sim", "attempts"} <= set(data)
    assert data["state"] == "queued" and data["sims"] == ["m1"]
    assert isinstance(data["created_at"], str) and data["created_at"].endswith("Z")


def test_cancel_only_queued_messages(spool):
    message = spool.enqueue("13800138000", "hi")
    assert spool.cancel(message.id).state is MessageState.CANCELLED
    with pytest.raises(StateConflict):
        spool.cancel(message.id)
    other = spool.enqueue("13800138001", "hi")
    claim_next(spool, "m1", "owner", 60)
    with pytest.raises(StateConflict, match="sending"):
        spool.cancel(other.id)
    assert [e["kind"] for e in spool.events(message.id)] == ["cancelled"]


def test_retry_moves_failed_ambiguous_expired_back_to_queued(spool):
    ids = spool.enqueue_many([{"to": f"1380013800{i}", "text": str(i)} for i in range(3)])
    spool.mark_failed(claim_next(spool, "m1", "o", 60).id, "boom")
    spool.mark_ambiguous(claim_next(spool, "m1", "o", 60).id, "silent modem")
    with spool.transaction() as conn:
        conn.execute("UPDATE messages SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?",
                     [ids[2]])
    assert spool.expire_due() == [ids[2]]
    for message_id in ids:
        again = spool.retry(message_id)
        assert again.state is MessageState.QUEUED and again.error is None
    assert spool.get(ids[0]).attempts == 1  # attempts are kept
    assert spool.get(ids[2]).expires_at is None  # or it would expire again at once
    with pytest.raises(StateConflict):
        spool.retry(ids[0])  # queued: nothing to retry


def test_claim_order_is_priority_then_fifo(spool):
    low = spool.enqueue("13800138000", "low")
    high = spool.enqueue("13800138001", "high", priority=5)
    low2 = spool.enqueue("13800138002", "low2")
    order = [claim_next(spool, "m1", "o", 60, now=T0 + timedelta(days=999)).id for _ in range(3)]
    assert order == [high.id, low.id, low2.id]
    assert claim_next(spool, "m1", "o", 60) is None
    claimed = spool.get(high.id)
    assert claimed.state is MessageState.SENDING and claimed.sim == "m1" and claimed.attempts == 1
    assert claimed.lease_owner == "o"


def test_not_before_holds_a_message_until_due(spool):
    message = spool.enqueue("13800138000", "later", not_before=T0 + timedelta(hours=1))
    assert claim_next(spool, "m1", "o", 60, now=T0) is None
    assert claim_next(spool, "m1", "o", 60, now=T0 + timedelta(hours=1)).id == message.id


def test_expired_messages_become_expired_instead_of_being_claimed(spool):
    message = spool.enqueue("13800138000", "too late", expires_at=T0)
    fresh = spool.enqueue("13800138001", "fine", expires_at=T0 + timedelta(days=1))
    assert claim_next(spool, "m1", "o", 60, now=T0 + timedelta(seconds=1)).id == fresh.id
    expired = spool.get(message.id)
    assert expired.state is MessageState.EXPIRED and "expired" in expired.error


def test_hold_and_release_a_campaign(spool):
    spool.enqueue("13800138000", "campaign", campaign_id=3)
    other = spool.enqueue("13800138001", "plain")
    assert spool.hold(3) == 1
    assert claim_next(spool, "m1", "o", 60).id == other.id
    assert claim_next(spool, "m1", "o", 60) is None
    assert spool.release(3) == 1
    assert claim_next(spool, "m1", "o", 60).campaign_id == 3


def test_held_at_enqueue(spool):
    spool.enqueue("13800138000", "draft", campaign_id=9, held=True)
    assert claim_next(spool, "m1", "o", 60) is None
    spool.release(9)
    assert claim_next(spool, "m1", "o", 60) is not None


def test_a_message_bound_to_sims_goes_only_through_them(spool):
    only_m2 = spool.enqueue("13800138000", "m2 only", sims=["m2"])
    anywhere = spool.enqueue("13000130000", "any")
    assert claim_next(spool, "m1", "o", 60).id == anywhere.id
    assert claim_next(spool, "m1", "o", 60) is None
    assert claim_next(spool, "m2", "o", 60).id == only_m2.id


def test_requeue_with_avoid_sim_fails_over(spool):
    message = spool.enqueue("13800138000", "hi")
    claim_next(spool, "m1", "o", 60)
    assert spool.requeue(message.id, "+CMS ERROR: 38", avoid_sim="m1", lease_owner="o")
    assert spool.get(message.id).error == "+CMS ERROR: 38"
    assert claim_next(spool, "m1", "o", 60) is None
    assert spool.claim(message.id, "m1", "o", 60).id == message.id  # the only SIM left
    spool.requeue(message.id, "again", avoid_sim="m1")
    assert claim_next(spool, "m2", "o", 60).attempts == 3


def test_transitions_need_the_lease(spool):
    message = spool.enqueue("13800138000", "hi")
    claim_next(spool, "m1", "alice", 60)
    assert not spool.mark_sent(message.id, lease_owner="bob")
    assert spool.get(message.id).state is MessageState.SENDING
    assert spool.mark_sent(message.id, lease_owner="alice")
    assert not spool.mark_failed(message.id, "late")  # no longer sending
    assert spool.get(message.id).state is MessageState.SENT


def test_claim_plan_uses_the_claim_index(sqlite_spool):
    spool = sqlite_spool
    plan = " ".join(
        row[3] for row in spool.db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE state = 'queued' AND held = 0 "
            "AND (not_before IS NULL OR not_before <= 'x') ORDER BY priority DESC, id LIMIT 1"))
    assert "messages_claim" in plan and "TEMP B-TREE" not in plan


def test_other_modules_can_add_tables(sqlite_spool):
    spool = sqlite_spool
    spool.db.ensure_schema("CREATE TABLE IF NOT EXISTS contacts (name TEXT, number TEXT)")
    spool.db.execute("INSERT INTO contacts (name, number) VALUES (?, ?)",
                     ["张三", "+8613800138000"])
    assert spool.db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 1
    assert {"messages", "parts", "inbound", "inbound_parts", "delivery_reports", "sims",
            "events"} <= set(spool.db.table_names())
