"""`spool.scoped` (what one API account sees) and `spool.sims.parts_per_minute`, on both
engines: the reads `AccountPool` asks instead of writing its own SQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from modempool.accounts import Accounts, record_owner
from modempool.operator.campaigns import Campaigns
from modempool.spool import Spool, utcnow


@pytest.fixture
def spool(spool_target):
    with Spool(spool_target) as spool:
        Accounts(spool)   # its tables: message_accounts holds who queued what
        yield spool


def owned_by(spool, account, *numbers_and_texts):
    ids = [spool.enqueue(number, text).id for number, text in numbers_and_texts]
    record_owner(spool, Accounts(spool).add(account, "sender")[0], ids, utcnow())
    return ids


def test_messages_of_an_owner_by_cursor_both_ways(spool):
    shop = owned_by(spool, "shop", *[("13800138000", f"第{n}条") for n in range(5)])
    other = owned_by(spool, "other", ("13900139000", "别人的"))
    scoped = spool.scoped
    found, more = scoped.messages(owner="shop", limit=2)
    assert [m.id for m in found] == shop[:2] and more
    found, more = scoped.messages(owner="shop", after=shop[3], limit=2)
    assert [m.id for m in found] == shop[4:] and not more
    found, more = scoped.messages(owner="shop", before=shop[4], newest_first=True, limit=3)
    assert [m.id for m in found] == [shop[3], shop[2], shop[1]] and more
    found, _ = scoped.messages(limit=10)   # no owner: every message
    assert [m.id for m in found] == shop + other
    assert scoped.messages(owner="shop", to="+8613900139000")[0] == []
    assert [m.id for m in scoped.messages(to="+8613900139000")[0]] == other
    spool.cancel(shop[0])
    assert [m.id for m in scoped.messages(owner="shop", state="cancelled")[0]] == [shop[0]]
    assert scoped.has_message(shop[0], "shop") and not scoped.has_message(shop[0], "other")
    assert scoped.has_message(other[0]) and not scoped.has_message(other[0] + 1)
    counts = scoped.counts("shop")
    assert (counts["queued"], counts["cancelled"], counts["sent"]) == (4, 1, 0)


def test_a_campaigns_messages_become_an_owners_once_as_they_are_queued(spool):
    campaigns = Campaigns(spool)
    campaign = campaigns.create("c", "周末愉快", numbers=["13700137000", "13700137001"],
                                kind="notice")
    Accounts(spool).add("branch", "sender")
    owned: list[list[int]] = []

    def own(ids: list[int]) -> None:
        owned.append(ids)
        spool.scoped.own("branch", ids, utcnow())
        spool.scoped.own("branch", ids, utcnow())   # again: nothing changes

    campaigns.start(campaign.id, on_write=own)
    campaigns.start(campaign.id, on_write=own)       # nothing new: nothing to own
    assert [len(ids) for ids in owned] == [2]
    assert spool.scoped.counts("branch")["queued"] == 2


def test_owning_one_message_or_several_records_the_same(spool):
    """One id takes a shorter statement than a list (the single-message POST's): the same
    rows and counts either way; an id that is no message is not recorded; an owned message
    keeps its first owner."""
    one, *several = [spool.enqueue(f"1380013800{n}", "hi").id for n in range(4)]
    now = utcnow()
    spool.scoped.own("shop", [one], now)
    spool.scoped.own("shop", several, now)
    spool.scoped.own("other", [one], now)          # owned already: stays the shop's
    spool.scoped.own("other", [several[-1] + 1000], now)   # no such message
    owners = {row["message_id"]: row["account"] for row in spool.rows(
        "SELECT message_id, account FROM message_accounts")}
    assert owners == {i: "shop" for i in (one, *several)}
    assert spool.scoped.counts("shop")["queued"] == 4
    assert spool.scoped.counts("other")["queued"] == 0
    spool.cancel(one)
    assert (spool.scoped.counts("shop")["queued"], spool.scoped.counts("shop")["cancelled"]) == (3, 1)


def test_received_sms_on_some_sims_and_conversations(spool):
    at = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
    spool.store_inbound("13800138000", "m1 的第一条", sim="m1", received_at=at)
    spool.store_inbound("13800138000", "m2 的", sim="m2", received_at=at + timedelta(minutes=1))
    spool.store_inbound("13900139000", "另一位", sim="m1", received_at=at + timedelta(minutes=2))
    scoped = spool.scoped
    found, more = scoped.inbound(sims=("m1",), limit=1)
    assert [m.text for m in found] == ["m1 的第一条"] and more
    found, more = scoped.inbound(sims=("m1",), after=found[0].id)
    assert [m.text for m in found] == ["另一位"] and not more
    assert len(scoped.inbound()[0]) == 3 and scoped.inbound(sims=())[0] == []
    assert [m.text for m in scoped.inbound(since=at + timedelta(seconds=30))[0]] == [
        "m2 的", "另一位"]
    on_m1 = scoped.conversations(sims=("m1",))
    assert [(c.number, c.count, c.unread, c.last_text) for c in on_m1] == [
        ("+8613900139000", 1, 1, "另一位"), ("+8613800138000", 1, 1, "m1 的第一条")]
    everywhere = {c.number: c for c in scoped.conversations()}
    assert everywhere["+8613800138000"].last_text == "m2 的"   # the newest, on any SIM
    assert everywhere["+8613800138000"].to_dict() == {
        "number": "+8613800138000", "name": "", "last_at": everywhere["+8613800138000"].last_at,
        "unread": 2, "count": 2, "last_text": "m2 的"}
    spool.mark_read([m.id for m in scoped.from_sender("+8613800138000")])
    assert {c.number: c.unread for c in scoped.conversations()}["+8613800138000"] == 0
    assert [m.text for m in scoped.from_sender("+8613800138000", sims=("m2",))] == ["m2 的"]
    assert [m.text for m in scoped.from_sender("+8613800138000", limit=1)] == ["m2 的"]


def test_parts_sent_per_minute_by_sim(spool):
    start = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
    for n, (sim, seconds) in enumerate((("m1", 5), ("m1", 50), ("m2", 70), ("m3", 80))):
        message = spool.enqueue("13800138000", f"第{n}条")
        assert spool.claim(message.id, sim, "t")
        spool.mark_part_writing(message.id, 1, 1)
        spool.mark_part_sent(message.id, 1, None, n, now=start + timedelta(seconds=seconds))
    per_minute = spool.sims.parts_per_minute(["m1", "m2"], start)
    assert per_minute == {start: 2, start + timedelta(minutes=1): 1}
    assert spool.sims.parts_per_minute(["m1"], start + timedelta(minutes=1)) == {}
    assert spool.sims.parts_per_minute([], start) == {}


def test_recipients_and_states_of_many_ids(spool):
    ids = [spool.enqueue(f"1380013800{n}", "hi").id for n in range(3)]
    spool.cancel(ids[1])
    assert spool.messages.recipients_and_states(ids) == {
        ids[0]: ("+8613800138000", "queued"), ids[1]: ("+8613800138001", "cancelled"),
        ids[2]: ("+8613800138002", "queued")}
