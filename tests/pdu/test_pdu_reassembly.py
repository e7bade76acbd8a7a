"""Reassembling concatenated parts: any order, duplicates, timeouts."""

from datetime import datetime, timedelta, timezone

from pdu import Reassembler, decode_pdu, encode_deliver

TEXT = "长短信测试：" + "你好😀" * 40 + " end"


def parts(text=TEXT, sender="+8613800138000", **kw):
    return [decode_pdu(p) for p in encode_deliver(sender, text, **kw)]


def test_single_part_message_returns_at_once():
    r = Reassembler()
    [p] = parts("hi")
    assert r.add("+8613800138000", p) == "hi"
    assert len(r) == 0


def test_any_order_with_duplicates():
    ps = parts(reference=77)
    assert len(ps) == 3
    r = Reassembler()
    assert r.add("a", ps[2]) is None
    assert r.add("a", ps[2]) is None  # duplicate
    assert r.add("a", ps[0]) is None
    assert r.add("a", ps[1]) == TEXT
    assert len(r) == 0
    assert r.add("a", ps[1]) is None  # late duplicate of a finished message: dropped
    assert len(r) == 0


def test_groups_are_kept_apart_by_sender_reference_and_total():
    a = parts(reference=5)
    b = parts("x" * 200, reference=5)  # same reference, other total
    r = Reassembler()
    assert r.add("s1", a[0]) is None
    assert r.add("s2", a[1]) is None  # other sender
    assert r.add("s1", b[0]) is None
    assert r.add("s1", b[1]) == "x" * 200
    assert r.add("s1", a[1]) is None
    assert r.add("s1", a[2]) == TEXT


def test_8_and_16_bit_references_do_not_mix():
    a = parts(reference=7)
    b = parts(reference=7, ref16=True)
    r = Reassembler()
    r.add("s", a[0])
    r.add("s", b[1])
    r.add("s", a[1])
    assert r.add("s", b[0]) is None
    assert r.add("s", a[2]) == TEXT


def test_expired_groups_are_reported_and_removed():
    r = Reassembler(timeout=timedelta(minutes=10))
    ps = parts(reference=9)
    t0 = 1000.0
    r.add("s", ps[0], now=t0)
    r.add("s", ps[2], now=t0 + 60)
    assert r.expired(now=t0 + 599) == []
    [gone] = r.expired(now=t0 + 600)
    assert (gone.sender, gone.reference, gone.total, gone.parts_received) == ("s", 9, 3, (1, 3))
    assert gone.text_so_far == ps[0].text + ps[2].text
    assert len(r) == 0 and r.expired(now=t0 + 9999) == []


def test_datetime_clock():
    r = Reassembler(timeout=3600)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ps = parts("y" * 200, reference=1)
    r.add("s", ps[0], now=start)
    assert r.expired(now=start + timedelta(minutes=59)) == []
    assert len(r.expired(now=start + timedelta(hours=1))) == 1


def test_peer_split_surrogate_pair_still_joins():
    # A peer that cut an emoji in half: each part alone has half a character; joined bytes are whole.
    head = "00440D91683108108300F0000862115261827023"
    p1 = decode_pdu(head + "0A" "050003010201" "4F60D83D")
    p2 = decode_pdu(head + "0A" "050003010202" "DE00597D")
    assert "\ufffd" in p1.text
    r = Reassembler()
    r.add("s", p2)
    assert r.add("s", p1) == "你😀好"


def test_peer_split_escape_pair_still_joins():
    from pdu.gsm7 import pack_septets
    head = "00440D91683108108300F0000062115261827023"
    ud1 = bytes.fromhex("050003020201") + pack_septets(b"ab\x1b", 1)
    ud2 = bytes.fromhex("050003020202") + pack_septets(b"\x65c", 1)
    p1 = decode_pdu(head + f"{7 + 3:02X}" + ud1.hex())
    p2 = decode_pdu(head + f"{7 + 2:02X}" + ud2.hex())
    r = Reassembler()
    r.add("s", p1)
    assert r.add("s", p2) == "ab€c"
