"""SMS-SUBMIT / SMS-DELIVER / STATUS-REPORT encoding, against PDUs written out by hand."""

from datetime import datetime, timedelta, timezone

import pytest

from pdu import Alphabet, PduError, decode_pdu, encode_deliver, encode_status_report, encode_submit

CN = timezone(timedelta(hours=8))


def test_hellohello_submit_with_relative_validity():
    # First octet 11 (SUBMIT, VPF relative), MR 00, DA +46708251358, PID 00, DCS 00, VP AA (4 days).
    [part] = encode_submit("+46708251358", "hellohello", validity=timedelta(days=4))
    assert part.hex == "00" "11000B916407281553F80000AA0AE8329BFD4697D9EC37"
    assert part.tpdu_length == 23
    assert (part.seq, part.total, part.reference, part.alphabet) == (1, 1, None, Alphabet.GSM7)


def test_chinese_ucs2_submit():
    [part] = encode_submit("+8613800138000", "你好")
    assert part.hex == "00" "01000D91683108108300F00008044F60597D"
    assert part.tpdu_length == 18


def test_national_number_uses_unknown_type_of_address():
    [part] = encode_submit("13800138000", "hi")
    assert part.hex.startswith("0001000B813108108300F0")


def test_smsc_prefix_is_not_counted_in_tpdu_length():
    [with_smsc] = encode_submit("+8613800138000", "hi", smsc="+8613800100500")
    [without] = encode_submit("+8613800138000", "hi")
    assert with_smsc.hex.startswith("0891683108100005F0")
    assert with_smsc.hex[18:] == without.hex[2:]
    assert with_smsc.tpdu_length == without.tpdu_length == len(without.hex) // 2 - 1


def test_concatenated_gsm7_header_and_fill_bit():
    parts = encode_submit("+8613800138000", "a" * 161, reference=0x42)
    assert [(p.seq, p.total, p.reference) for p in parts] == [(1, 2, 0x42), (2, 2, 0x42)]
    first = parts[0].hex
    assert first.startswith("0041000D91683108108300F00000")
    # UDL 160 septets = 7 header septets + 153; header 05 00 03 42 02 01; 'a' shifted by one fill bit
    assert first[28:].startswith("A0" "050003420201" "C2")
    assert all(p.tpdu_length - 15 <= 140 for p in parts)


def test_16bit_reference_header():
    parts = encode_submit("+8613800138000", "你" * 100, reference=0x1234, ref16=True)
    assert [p.total for p in parts] == [2, 2]
    assert parts[0].hex[28:].startswith("8B" "06080412340201")  # 7 + 66*2 = 139 octets
    with pytest.raises(PduError, match="0-255"):
        encode_submit("+8613800138000", "你" * 100, reference=0x1234)


def test_status_report_request_and_flash():
    [part] = encode_submit("+8613800138000", "hi", status_report=True, message_class=0)
    msg = decode_pdu(part.hex)
    assert part.hex[2:4] == "21"
    assert msg.status_report_requested and msg.message_class == 0 and msg.dcs == 0x10
    [ucs] = encode_submit("+8613800138000", "你", message_class=0)
    assert decode_pdu(ucs.hex).dcs == 0x18


@pytest.mark.parametrize("period,vp", [
    (timedelta(minutes=5), 0), (timedelta(hours=12), 143), (timedelta(hours=13), 145),
    (timedelta(days=1), 167), (timedelta(days=2), 168), (timedelta(days=30), 196),
    (timedelta(weeks=5), 197), (timedelta(weeks=200), 255),
])
def test_relative_validity_octet(period, vp):
    [part] = encode_submit("+8613800138000", "x", validity=period)
    assert int(part.hex[28:30], 16) == vp
    assert decode_pdu(part.hex).validity >= min(period, timedelta(weeks=63))


def test_absolute_validity_round_trips():
    when = datetime(2026, 12, 1, 9, 30, tzinfo=CN)
    [part] = encode_submit("+8613800138000", "x", validity=when)
    assert decode_pdu(part.hex).validity == when


def test_ports_header():
    [part] = encode_submit("+8613800138000", b"\x01\x02", ports=(2948, 9200))
    msg = decode_pdu(part.hex)
    assert msg.ports == (2948, 9200) and msg.data == b"\x01\x02" and msg.alphabet is Alphabet.EIGHT_BIT


def test_turkish_locking_shift_header():
    text = "Şişli ğ ı İ ç " * 6  # 84 characters: 2 parts in UCS2, 1 with the Turkish table
    [part] = encode_submit("+905321234567", text)
    msg = decode_pdu(part.hex)
    assert (0x25, b"\x01") in msg.udh and msg.national == (1, 0)
    assert msg.text == text


@pytest.mark.parametrize("bad", ["", "abc", "+86 138 0013 800x"])
def test_bad_destination(bad):
    with pytest.raises(PduError):
        encode_submit(bad, "hi")


def test_deliver_with_alphanumeric_sender():
    when = datetime(2026, 11, 25, 16, 28, 7, tzinfo=CN)
    [pdu] = encode_deliver("Alipay", "Hi", timestamp=when, smsc="+8613800100500")
    assert pdu == "0891683108100005F0" "04" "0BD041761A1ECE03" "0000" "62115261827023" "02C834"
    msg = decode_pdu(pdu)
    assert (msg.sender, msg.sender_toa, msg.timestamp, msg.text) == ("Alipay", 0xD0, when, "Hi")


def test_alphanumeric_sender_limits():
    with pytest.raises(PduError, match="11"):
        encode_deliver("ABCDEFGHIJKL", "x")
    with pytest.raises(PduError, match="GSM-7"):
        encode_deliver("银行", "x")


def test_negative_time_zone():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    [pdu] = encode_deliver("+12125550100", "x", timestamp=when)
    assert decode_pdu(pdu).timestamp == when


def test_status_report_encoding():
    when = datetime(2026, 11, 25, 16, 28, 7, tzinfo=CN)
    pdu = encode_status_report(42, "+8613800138000", status=0, scts=when, discharge_time=when, smsc=None)
    assert pdu == "00" "06" "2A" "0D91683108108300F0" "62115261827023" "62115261827023" "00"
