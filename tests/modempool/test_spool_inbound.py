"""Inbound storage and reassembly across restarts; delivery reports matched to parts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from modempool.spool import MessageState, Spool
from tests.modempool.spool_driver import claim_next

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def path(spool_target):
    """The spool of a test, once per engine."""
    return spool_target


def test_single_inbound_is_stored_with_normalised_sender(path):
    with Spool(path) as spool:
        stored = spool.store_inbound("13800138000", "收到", sim="m1", received_at=T0)
        spool.store_inbound("10086", "余额", sim="m2", received_at=T0 + timedelta(minutes=1))
        assert stored.sender == "+8613800138000" and stored.complete
        rows = spool.inbound()
        assert [r["text"] for r in rows] == ["收到", "余额"]
        assert rows[1]["sender"] == "10086"  # a short code stays as it is
        assert [r["text"] for r in spool.inbound(sender="+86 138 0013 8000")] == ["收到"]
        assert [r["text"] for r in spool.inbound(since=T0 + timedelta(seconds=30))] == ["余额"]
        assert [r["text"] for r in spool.inbound(limit=1)] == ["余额"]
        spool.mark_read([stored.id])
        assert [r["id"] for r in spool.inbound(unread=True)] == [rows[1]["id"]]


def test_multipart_inbound_reassembles_out_of_order_across_restart(path):
    with Spool(path) as spool:
        assert spool.store_inbound_part("m1", "13800138000", 42, 3, 3, "C", received_at=T0) is None
        assert spool.store_inbound_part("m1", "13800138000", 42, 3, 1, "A", received_at=T0) is None
        assert spool.store_inbound_part("m1", "13800138000", 42, 3, 1, "A", received_at=T0) is None
    with Spool(path) as spool:  # restart between parts
        assert len(spool.pending_inbound_parts()) == 2
        complete = spool.store_inbound_part("m1", "+8613800138000", 42, 3, 2, "B", received_at=T0)
        assert complete is not None and complete.text == "ABC" and complete.parts == 3
        assert spool.pending_inbound_parts() == []
        assert spool.inbound()[0]["text"] == "ABC"


def test_parts_of_different_messages_do_not_mix(path):
    with Spool(path) as spool:
        spool.store_inbound_part("m1", "13800138000", 1, 2, 1, "x1")
        spool.store_inbound_part("m1", "13900139000", 1, 2, 1, "y1")
        spool.store_inbound_part("m2", "13800138000", 1, 2, 2, "z2")
        assert spool.inbound() == []
        assert spool.store_inbound_part("m1", "13800138000", 1, 2, 2, "x2").text == "x1x2"


def test_stale_parts_are_flushed_as_incomplete(path):
    with Spool(path) as spool:
        spool.store_inbound_part("m1", "13800138000", 5, 3, 1, "first ")
        spool.store_inbound_part("m1", "13800138000", 5, 3, 3, " last")
        assert spool.flush_inbound_parts(timedelta(hours=1)) == []
        flushed = spool.flush_inbound_parts(timedelta(hours=1), now=datetime.now(timezone.utc) + timedelta(hours=2))
        assert len(flushed) == 1 and not flushed[0].complete
        assert flushed[0].text == "first … last"
        assert spool.pending_inbound_parts() == []


def _sent(spool: Spool, to: str, sim: str, references: list[int]) -> int:
    message = spool.enqueue(to, "x" * 10)
    claimed = claim_next(spool, sim, "o", 60)
    assert claimed.id == message.id
    for seq, reference in enumerate(references, start=1):
        spool.mark_part_writing(message.id, seq, len(references))
        spool.mark_part_sent(message.id, seq, 9, reference)
    spool.mark_sent(message.id)
    return message.id


def test_delivery_reports_deliver_a_message_when_all_parts_are_delivered(path):
    with Spool(path) as spool:
        message_id = _sent(spool, "13800138000", "m1", [17, 18])
        first = spool.store_delivery_report("m1", 17, "13800138000", 0)
        assert first.message_id == message_id and first.message_state == "sent"
        second = spool.store_delivery_report("m1", 18, "+8613800138000", 0)
        assert second.message_state == "delivered"
        message = spool.get(message_id)
        assert message.state is MessageState.DELIVERED and message.delivered_at is not None
        assert [p["state"] for p in spool.parts(message_id)] == ["delivered", "delivered"]
        assert spool.rows("SELECT count(*) FROM delivery_reports")[0][0] == 2


def test_a_resumed_message_is_delivered_when_the_parts_of_both_attempts_are(path):
    with Spool(path) as spool:
        message = spool.enqueue("+8613800138000", "two parts")
        spool.claim(message.id, "m1", "o", 60)
        spool.mark_part_writing(message.id, 1, 2, lease_owner="o")
        spool.mark_part_sent(message.id, 1, 7, 41)
        spool.requeue(message.id, "m1: +CMS ERROR: 21", only_sim="m1", lease_owner="o")
        spool.claim(message.id, "m1", "o", 60)               # resumed from part 2
        spool.mark_part_writing(message.id, 2, 2, lease_owner="o")
        spool.mark_last_part_sent(message.id, 2, 7, 42, lease_owner="o")
        assert spool.store_delivery_report("m1", 41, "+8613800138000", 0).message_state == "sent"
        last = spool.store_delivery_report("m1", 42, "+8613800138000", 0)
        assert last.message_state == "delivered"
        assert spool.get(message.id).state is MessageState.DELIVERED


def test_reports_match_by_sim_reference_and_recipient(path):
    with Spool(path) as spool:
        on_m1 = _sent(spool, "13800138000", "m1", [5])
        on_m2 = _sent(spool, "13900139000", "m2", [5])  # same reference, other SIM
        match = spool.store_delivery_report("m2", 5, "13900139000", 0)
        assert match.message_id == on_m2
        assert spool.get(on_m1).state is MessageState.SENT
        unknown = spool.store_delivery_report("m1", 5, "13700137000", 0)  # wrong recipient
        assert unknown.part_id is None and unknown.message_id is None
        assert spool.get(on_m1).state is MessageState.SENT
        assert spool.rows("SELECT count(*) FROM delivery_reports")[0][0] == 2  # kept even when unmatched


def test_reused_reference_matches_the_latest_part(path):
    with Spool(path) as spool:
        old = _sent(spool, "13800138000", "m1", [9])
        new = _sent(spool, "13800138000", "m1", [9])  # the TP-MR wrapped around
        assert spool.store_delivery_report("m1", 9, "13800138000", 0).message_id == new
        assert spool.get(old).state is MessageState.SENT


def test_a_final_failure_report_fails_the_message_and_a_pending_one_does_not(path):
    with Spool(path) as spool:
        message_id = _sent(spool, "13800138000", "m1", [3])
        pending = spool.store_delivery_report("m1", 3, "13800138000", 0x20)  # SC still trying
        assert pending.message_state == "sent"
        failed = spool.store_delivery_report("m1", 3, "13800138000", 0x41)
        assert failed.message_state == "failed"
        assert "0x41" in spool.get(message_id).error


def test_a_message_handed_over_again_after_a_crash_is_stored_once(path):
    # The daemon stored it, then died before deleting it from the modem: on restart the modem
    # hands over the same SMS (same service centre time stamp) again.
    with Spool(path) as spool:
        first = spool.store_inbound("13800138000", "到了吗？", sim="m1", received_at=T0)
    with Spool(path) as spool:
        assert first is not None
        assert spool.store_inbound("13800138000", "到了吗？", sim="m1", received_at=T0) is None
        # A different message with the same text a second later is a new message.
        assert spool.store_inbound("13800138000", "到了吗？", sim="m1",
                                   received_at=T0 + timedelta(seconds=1)) is not None
        assert [r["text"] for r in spool.inbound()] == ["到了吗？", "到了吗？"]


def test_a_part_handed_over_again_after_its_message_completed_is_ignored(path):
    with Spool(path) as spool:
        assert spool.store_inbound_part("m1", "13800138000", 7, 2, 1, "A", received_at=T0) is None
        done = spool.store_inbound_part("m1", "13800138000", 7, 2, 2, "B", received_at=T0)
        assert done is not None and done.text == "AB"
    with Spool(path) as spool:
        assert spool.store_inbound_part("m1", "13800138000", 7, 2, 2, "B", received_at=T0) is None
        assert spool.pending_inbound_parts() == []
        assert spool.flush_inbound_parts(timedelta(0), now=T0 + timedelta(days=1)) == []
        # The same reference used again later by the sender is a new message.
        later = T0 + timedelta(hours=3)
        spool.store_inbound_part("m1", "13800138000", 7, 2, 1, "C", received_at=later)
        again = spool.store_inbound_part("m1", "13800138000", 7, 2, 2, "D", received_at=later)
        assert again is not None and again.text == "CD"
        assert [r["text"] for r in spool.inbound()] == ["AB", "CD"]


def test_a_received_nul_is_stored_as_a_replacement_character_on_both_engines(path):
    """Anyone can text the SIM UCS-2 that decodes to U+0000, which PostgreSQL's text cannot
    hold: refused by the spool, the SMS stayed on the modem and filled the SIM. Both engines
    store it with U+FFFD instead, single and in parts."""
    from pdu import decode_pdu, encode_deliver

    [single] = encode_deliver("13800138000", "验证\x00码", alphabet="ucs2", timestamp=T0)
    decoded = decode_pdu(single)
    assert decoded.text == "验证\x00码"
    parts = [decode_pdu(p) for p in encode_deliver("13800138000", "长\x00" * 40,
                                                   alphabet="ucs2", reference=7, timestamp=T0)]
    with Spool(path) as spool:
        stored = spool.store_inbound(decoded.sender, decoded.text, sim="m1",
                                     received_at=decoded.timestamp)
        assert stored.text == "验证\ufffd码"
        assert spool.store_inbound(decoded.sender, decoded.text, sim="m1",
                                   received_at=decoded.timestamp) is None  # handed over again
        assert spool.store_inbound_part("m1", parts[0].sender, 7, 2, 1, parts[0].text,
                                        received_at=T0) is None
        joined = spool.store_inbound_part("m1", parts[1].sender, 7, 2, 2, parts[1].text,
                                          received_at=T0)
        assert joined.text == "长\ufffd" * 40
        assert [r["text"] for r in spool.inbound()] == ["验证\ufffd码", "长\ufffd" * 40]


def test_an_sms_on_a_card_moved_to_another_box_is_stored_once(path):
    """Dedupe by the card (ICCID), not by the [[modem]] name: the card went from box A's a1 to
    box B's b7 with an SMS still on it, which b7 hands over again."""
    with Spool(path) as spool:
        early = spool.store_inbound("10086", "before the card was read", sim="a1", received_at=T0)
        spool.upsert_sim("a1", iccid="89860012345678901234")
        spool.upsert_sim("b7", iccid="89860012345678901234")
        assert early and spool.store_inbound("10086", "before the card was read", sim="a1",
                                             received_at=T0) is None
        assert spool.store_inbound("13800138000", "验证码 4321", sim="a1", received_at=T0)
        assert spool.store_inbound("13800138000", "验证码 4321", sim="b7", received_at=T0) is None
        assert spool.store_inbound("10086", "before the card was read", sim="b7",
                                   received_at=T0) is None   # stored under a1's name
        spool.upsert_sim("c3", iccid="89860099999999999999")   # another card: its own SMS
        assert spool.store_inbound("13800138000", "验证码 4321", sim="c3", received_at=T0)
        spool.store_inbound("13800138000", "no card known", sim="d1", received_at=T0)
        assert spool.store_inbound("13800138000", "no card known", sim="d1",
                                   received_at=T0) is None   # by name where no ICCID is known
        assert [r["sim"] for r in spool.inbound()] == ["a1", "a1", "c3", "d1"]


def test_an_sms_on_a_card_moved_to_a_modem_reading_only_its_imsi_is_stored_once(path):
    """The card went from a1 (read its ICCID and IMSI) to b1, whose firmware has no ICCID
    command: the SMS still on it is the card's (keyed by its IMSI there), found stored; and
    the other way round, from an IMSI-only modem to one reading both (audit21 H2)."""
    card, imsi = "89860012345678901234", "460001234567890"
    with Spool(path) as spool:
        spool.upsert_sim("a1", iccid=card, imsi=imsi)
        assert spool.store_inbound("13800138000", "left on the card", sim="a1", received_at=T0)
        spool.upsert_sim("b1", imsi=imsi)
        assert spool.store_inbound("13800138000", "left on the card", sim="b1",
                                   received_at=T0) is None
        later = T0 + timedelta(hours=1)
        assert spool.store_inbound("13800138000", "from b1 first", sim="b1", received_at=later)
        spool.upsert_sim("c1", iccid=card, imsi=imsi)   # the card moved on, to one reading both
        assert spool.store_inbound("13800138000", "from b1 first", sim="c1",
                                   received_at=later) is None
        spool.upsert_sim("d1", imsi="460009999999999")   # another card: its own SMS
        assert spool.store_inbound("13800138000", "from b1 first", sim="d1", received_at=later)
        assert [r["sim"] for r in spool.inbound()] == ["a1", "b1", "d1"]


def test_a_modem_that_fails_to_read_its_card_keeps_the_keys_its_row_knows(path):
    """A restart whose first identify reads neither key (or only one: a command answering
    ERROR just after the PIN) must not erase the card its row names before the modem hands
    over again an SMS stored before the restart (audit21 H2); a key of another card is
    cleared."""
    card, imsi = "89860012345678901234", "460001234567890"
    with Spool(path) as spool:
        spool.name_sim_card("a1", card, imsi)
        assert spool.store_inbound("13800138000", "on the SIM", sim="a1", received_at=T0)
        spool.name_sim_card("a1", None, None)
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == (card, imsi)
        spool.name_sim_card("a1", None, imsi)
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == (card, imsi)
        spool.name_sim_card("a1", card, None)
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == (card, imsi)
        assert spool.store_inbound("13800138000", "on the SIM", sim="a1", received_at=T0) is None
        spool.name_sim_card("a1", None, "460009999999999")     # another card, no ICCID read
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == (None, "460009999999999")
        spool.name_sim_card("a1", "89860099999999999999", None)   # another card again
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == ("89860099999999999999",
                                                                       None)


def test_a_card_read_by_its_iccid_alone_then_by_its_imsi_alone_keeps_its_dedupe_key(path):
    """A card counted in a1, which read both its keys, and now in b1: read there by its ICCID
    alone (AT+CIMI failing), it stores an SMS; restarted, b1 reads its IMSI alone (AT+CCID
    failing) and the SMS is handed over again. The spool knows the two keys as one card's
    (the counts kept with the IMSI: a1 holds another card now), so b1's row keeps the ICCID
    and the SMS is found stored; the old code took the IMSI for another card and stored it
    twice."""
    card, imsi = "89860012345678901234", "460001234567890"
    with Spool(path) as spool:
        spool.name_sim_card("a1", card, imsi)
        spool.sims.count_sent("a1")
        spool.name_sim_card("a1", "89860099999999999999", "460009999999999")   # another card
        assert spool.sims.card_imsis(card) == [imsi]
        spool.name_sim_card("b1", card, None)
        assert spool.store_inbound("13800138000", "on the SIM", sim="b1", received_at=T0)
        spool.name_sim_card("b1", None, imsi)
        assert spool.store_inbound("13800138000", "on the SIM", sim="b1", received_at=T0) is None
        assert len(spool.inbound()) == 1
        assert (spool.sim("b1")["iccid"], spool.sim("b1")["imsi"]) == (card, imsi)
        spool.name_sim_card("b1", None, "460001111111111")   # a card the spool pairs with none
        assert (spool.sim("b1")["iccid"], spool.sim("b1")["imsi"]) == (None, "460001111111111")


def test_a_modem_that_gives_up_reading_its_card_forgets_the_card_its_row_named(path):
    """Once a modem that reads neither key serves unchecked, the card in it may be another:
    its row names none (`forget`), so its sends count under its own name and not against the
    quota of the card now in another modem (rev21b M1)."""
    card, imsi = "89860012345678901234", "460001234567890"
    with Spool(path) as spool:
        spool.name_sim_card("a1", card, imsi)   # the card was in a1
        spool.name_sim_card("b1", card, imsi)   # and moved to b1
        spool.name_sim_card("a1", None, None, forget=True)
        assert (spool.sim("a1")["iccid"], spool.sim("a1")["imsi"]) == (None, None)
        for _ in range(2):
            spool.sims.count_sent("a1")
        assert spool.sims.sent_counts("b1")[1:] == (0, 0)
        assert spool.sims.sent_counts("a1")[1:] == (2, 2)


def test_a_long_sms_on_a_card_moved_to_another_box_is_stored_once(path):
    """Box A joined a long SMS and died before deleting its parts from the card; the card went
    to box B's b7, which hands the parts over again: joined once, by the card. Parts of one
    message stored under the card's two modems join, and a part left alone on the card after
    its message was stored waits for nothing (never flushed as a second, incomplete copy)."""
    card = "89860012345678901234"
    with Spool(path) as spool:
        spool.upsert_sim("a1", iccid=card)
        spool.upsert_sim("b7", iccid=card)
        assert spool.store_inbound_part("a1", "13800138000", 7, 2, 1, "A", received_at=T0) is None
        assert spool.store_inbound_part("a1", "13800138000", 7, 2, 2, "B", received_at=T0).text == "AB"
    with Spool(path) as spool:   # box B, on the same database
        assert spool.store_inbound_part("b7", "13800138000", 7, 2, 1, "A", received_at=T0) is None
        assert spool.store_inbound_part("b7", "13800138000", 7, 2, 2, "B", received_at=T0) is None
        assert spool.pending_inbound_parts() == []
        # Another long SMS: its first part came in on a1, the card moved, the second on b7.
        later = T0 + timedelta(hours=1)
        assert spool.store_inbound_part("a1", "13800138000", 8, 2, 1, "C", received_at=later) is None
        assert spool.store_inbound_part("b7", "13800138000", 8, 2, 1, "C", received_at=later) is None
        joined = spool.store_inbound_part("b7", "13800138000", 8, 2, 2, "D", received_at=later)
        assert (joined.sim, joined.text, joined.parts) == ("b7", "CD", 2)
        # A third one with a part missing, flushed once although its parts sit under both names.
        latest = T0 + timedelta(hours=2)
        spool.store_inbound_part("a1", "13800138000", 9, 3, 1, "E", received_at=latest)
        spool.store_inbound_part("b7", "13800138000", 9, 3, 3, "G", received_at=latest)
        flushed = spool.flush_inbound_parts(timedelta(hours=1), now=datetime.now(timezone.utc)
                                            + timedelta(hours=2))
        assert [(m.text, m.complete) for m in flushed] == [("E…G", False)]
        # The same message again in another card is another copy (its own SIM's SMS).
        spool.upsert_sim("c3", iccid="89860099999999999999")
        spool.store_inbound_part("c3", "13800138000", 7, 2, 1, "A", received_at=T0)
        assert spool.store_inbound_part("c3", "13800138000", 7, 2, 2, "B", received_at=T0).sim == "c3"
        assert [(r["sim"], r["text"]) for r in spool.inbound()] == [
            ("a1", "AB"), ("c3", "AB"), ("b7", "CD"), ("a1", "E…G")]


def test_a_long_sms_joined_before_the_card_was_read_is_not_stored_again(path):
    """Joined under the modem's name before the spool knew the card's ICCID; handed over
    again once it does (a restart), on the same modem or the card's next one."""
    with Spool(path) as spool:
        spool.store_inbound_part("a1", "13800138000", 7, 2, 1, "A", received_at=T0)
        assert spool.store_inbound_part("a1", "13800138000", 7, 2, 2, "B", received_at=T0)
        spool.upsert_sim("a1", iccid="89860012345678901234")
        spool.upsert_sim("b7", iccid="89860012345678901234")
        for sim in ("a1", "b7"):
            spool.store_inbound_part(sim, "13800138000", 7, 2, 1, "A", received_at=T0)
            assert spool.store_inbound_part(sim, "13800138000", 7, 2, 2, "B", received_at=T0) is None
        assert spool.pending_inbound_parts() == []
        assert [(r["sim"], r["text"]) for r in spool.inbound()] == [("a1", "AB")]
