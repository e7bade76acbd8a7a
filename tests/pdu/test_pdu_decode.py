"""Decoding: published PDUs, every DCS group, and malformed input (always PduError)."""

import re
from datetime import datetime, timedelta, timezone

import pytest

from pdu import Alphabet, Concat, PduError, decode_pdu, encode_deliver, encode_submit

# The classic SMS-DELIVER example found in most PDU tutorials: "hellohello" from 27838890001.
HELLO = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"
# Another widely published one: "How are you?" from +31641600986 via SMSC +31624000000.
HOW_ARE_YOU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def test_published_deliver_hellohello():
    msg = decode_pdu(HELLO)
    assert msg.type == "deliver"
    assert msg.smsc == "+27381000015"
    assert msg.sender == "27838890001" and msg.sender_toa == 0xC8
    assert msg.timestamp == datetime(1999, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2)))
    assert (msg.text, msg.alphabet, msg.concat, msg.udh) == ("hellohello", Alphabet.GSM7, None, ())


def test_published_deliver_how_are_you():
    msg = decode_pdu(HOW_ARE_YOU)
    assert (msg.smsc, msg.sender, msg.text) == ("+31624000000", "+31641600986", "How are you?")
    # its time zone octet is 08: the sign bit with zero quarters, i.e. UTC
    assert msg.timestamp == datetime(2002, 8, 26, 19, 37, 41, tzinfo=timezone.utc)


def test_without_smsc_part():
    msg = decode_pdu(HELLO[16:], smsc=False)
    assert msg.smsc is None and msg.text == "hellohello"


def test_lowercase_and_whitespace_are_accepted():
    assert decode_pdu(" " + HELLO.lower() + "\r\n").text == "hellohello"


def test_status_report():
    pdu = "00062A0D91683108108300F0621152618270236211526182802300"
    msg = decode_pdu(pdu)
    assert msg.type == "status-report"
    assert (msg.message_reference, msg.recipient, msg.status) == (42, "+8613800138000", 0)
    assert msg.delivered and msg.final
    assert msg.discharge_time - msg.scts == timedelta(seconds=1)


@pytest.mark.parametrize("status,delivered,final", [
    (0x00, True, True), (0x02, True, True), (0x20, False, False), (0x30, False, False),
    (0x40, False, True), (0x45, False, True), (0x60, False, True),
])
def test_status_report_status_classes(status, delivered, final):
    msg = decode_pdu(f"00062A0D91683108108300F06211526182702362115261828023{status:02X}")
    assert (msg.delivered, msg.final) == (delivered, final)


def test_status_report_with_trailing_junk_keeps_the_report():
    msg = decode_pdu("00062A0D91683108108300F0621152618270236211526182802300FF")
    assert msg.status == 0


def _deliver_with_dcs(dcs: int, ud_hex: str, udl: int) -> str:
    return f"00040D91683108108300F000{dcs:02X}62115261827023{udl:02X}{ud_hex}"


@pytest.mark.parametrize("dcs,alphabet,cls", [
    (0x00, Alphabet.GSM7, None), (0x04, Alphabet.EIGHT_BIT, None), (0x08, Alphabet.UCS2, None),
    (0x10, Alphabet.GSM7, 0), (0x11, Alphabet.GSM7, 1), (0x16, Alphabet.EIGHT_BIT, 2),
    (0x1B, Alphabet.UCS2, 3), (0x0C, Alphabet.GSM7, None),  # reserved alphabet -> default
    (0x48, Alphabet.UCS2, None),  # automatic deletion group
    (0xF0, Alphabet.GSM7, 0), (0xF1, Alphabet.GSM7, 1), (0xF6, Alphabet.EIGHT_BIT, 2),
    (0x80, Alphabet.GSM7, None),  # reserved group
])
def test_dcs_groups(dcs, alphabet, cls):
    if alphabet is Alphabet.GSM7:
        pdu = _deliver_with_dcs(dcs, "E8329BFD4697D9EC37", 10)
        text = "hellohello"
    elif alphabet is Alphabet.UCS2:
        pdu = _deliver_with_dcs(dcs, "4F60597D", 4)
        text = "你好"
    else:
        pdu = _deliver_with_dcs(dcs, "0102", 2)
        text = "0102"
    msg = decode_pdu(pdu)
    assert (msg.alphabet, msg.message_class, msg.text, msg.waiting) == (alphabet, cls, text, None)


@pytest.mark.parametrize("dcs,active,kind,store,alphabet", [
    (0xC8, True, "voicemail", False, Alphabet.GSM7),
    (0xD1, False, "fax", True, Alphabet.GSM7),
    (0xDA, True, "email", True, Alphabet.GSM7),
    (0xEB, True, "other", True, Alphabet.UCS2),
])
def test_message_waiting_groups(dcs, active, kind, store, alphabet):
    ud = ("4F60597D", 4) if alphabet is Alphabet.UCS2 else ("E8329BFD4697D9EC37", 10)
    msg = decode_pdu(_deliver_with_dcs(dcs, *ud))
    assert (msg.waiting.active, msg.waiting.kind, msg.waiting.store) == (active, kind, store)
    assert msg.alphabet is alphabet


def test_compressed_text_is_kept_as_data():
    msg = decode_pdu(_deliver_with_dcs(0x24, "0102", 2))
    assert msg.compressed and msg.data == b"\x01\x02" and msg.text == ""


def test_concat_8_and_16_bit():
    p8 = encode_deliver("+8613800138000", "你" * 80, reference=200)
    p16 = encode_deliver("+8613800138000", "你" * 80, reference=40000, ref16=True)
    assert decode_pdu(p8[1]).concat == Concat(200, 2, 2, False)
    assert decode_pdu(p16[0]).concat == Concat(40000, 2, 1, True)


def test_invalid_concat_element_is_ignored():
    # seq 0 (TS 23.040 9.2.3.24.1: ignore the element): kept in udh, no concat.
    pdu = "00440D91683108108300F0000862115261827023" "0A" "050003070200" "4F60597D"
    msg = decode_pdu(pdu)
    assert msg.concat is None and msg.udh == ((0x00, b"\x07\x02\x00"),) and msg.text == "你好"


def test_8bit_ports():
    msg = decode_pdu("00440D91683108108300F0000462115261827023" "08" "060504" "0B8423F0" "AA")
    assert msg.ports == (0x0B84, 0x23F0) and msg.data == b"\xaa" and msg.text == "AA"


def test_udh_with_gsm7_fill_bits_and_unknown_ie():
    # UDH: unknown IE 0x70 with 2 octets, then 00 03 concat: 1+4+5 = 10 octets -> 80 bits, 4 fill bits
    parts = encode_submit("+8613800138000", "x" * 200, reference=1)
    assert decode_pdu(parts[1].hex).text == "x" * 47


@pytest.mark.parametrize("pdu,message", [
    ("", "empty"),
    ("0", "odd number"),
    ("0G", "non-hex character 'G' at hex digit 1"),
    ("07917283010010", "PDU ends inside SMSC address"),
    ("00", "before first octet"),
    ("03", "PDU ends before SMSC type"),
    ("0003", "TP-MTI 3 is reserved"),
    ("00040D91683108108300F000", "before TP-DCS"),
    ("00040D91683108108300F0000062115261", "inside service centre timestamp"),
    ("00040D91683108108300F0000062115261827023", "before TP-UDL"),
    ("00040D91683108108300F00000621152618270230AE8329B", "TP-UDL says 10 septets (9 octets) but only 3"),
    ("00040D91683108108300F000006211526182702399", "TP-UDL says 153 septets"),
    ("00440D91683108108300F0000862115261827023040900033F", "UDH length 9 exceeds"),
    ("00440D91683108108300F000086211526182702305040003070201", "UDH element 0x00 claims 3 octets"),
    ("00440D91683108108300F000006211526182702301" "00", "shorter than the user data header"),
    ("00040D91683108108300F00000A2115261827023" "00", "non-decimal digits"),
    ("00040D91683108108300F00000623152618270230" "0", "not a valid date"),
])
def test_malformed_pdus_raise_pdu_error_saying_what(pdu, message):
    with pytest.raises(PduError, match=re.escape(message)):
        decode_pdu(pdu)


def test_every_truncation_of_a_valid_pdu_raises_pdu_error():
    full = encode_submit("+8613800138000", "你好😀" * 30, reference=9, smsc="+8613800100500",
                         validity=timedelta(days=1))[0].hex
    for cut in range(0, len(full) - 2, 2):
        with pytest.raises(PduError):
            decode_pdu(full[:cut])


def test_error_offset_points_at_the_field():
    with pytest.raises(PduError) as exc:
        decode_pdu("00040D91683108108300F0000062115261827023")
    assert exc.value.offset == 20 and "octet 20" in str(exc.value)


def test_non_string_input():
    with pytest.raises(PduError):
        decode_pdu(b"0011")  # type: ignore[arg-type]


def test_alphanumeric_sender_counted_in_whole_octets_has_no_trailing_at():
    # TS 23.040 9.1.2.5: the length counts useful semi-octets (13 for "Taobao1"); some SMSCs
    # send 14 (whole octets), which turns the seven zero fill bits into an "@".
    correct = encode_deliver("Taobao1", "hi")[0]
    assert "0DD0" in correct
    padded = correct.replace("0DD0", "0ED0", 1)
    assert decode_pdu(correct).sender == "Taobao1"
    assert decode_pdu(padded).sender == "Taobao1"
    # an "@" inside the name, or one the length says is useful, stays
    assert decode_pdu(encode_deliver("a@b", "hi")[0]).sender == "a@b"
    assert decode_pdu(encode_deliver("Shop@", "hi")[0]).sender == "Shop@"
