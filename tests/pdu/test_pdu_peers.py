"""Cross-checks against independent implementations: smspdudecoder and python-gsmmodem-new.

Ours is decoded with theirs and theirs with ours over one corpus. Where a peer is known to be
wrong, the test names the bug, checks that the peer still shows it (so we notice when it is
fixed) and checks our side against the spec instead.
"""

import gsmmodem.pdu as gsmmodem
import pytest
from smspdudecoder.easy import read_incoming_sms, read_outgoing_sms

from pdu import decode_pdu, encode_deliver, encode_submit

CORPUS = {
    "chinese": "你好，世界！短信猫测试。",
    "chinese_long": "我们的短信猫设备已经连接成功，请查收验证码。" * 8,
    "emoji": "生日快乐🎂🎉 see you 😀",
    "emoji_long": "表情😀" * 60,
    "euro_on_boundary": "a" * 152 + "€" + "b" * 20,
    "gsm_long": "The quick brown fox [jumps] over {the} lazy dog. " * 5,
    "plain": "hello world",
}
NO_EMOJI = [k for k in CORPUS if "emoji" not in k]
SENDERS = ["+8613800138000", "10086", "Alipay", "ChinaMobile"]


def has_astral(text: str) -> bool:
    return any(ord(c) > 0xFFFF for c in text)


def smspdudecoder_view(msg) -> tuple[str, ...]:
    """What smspdudecoder may show for a part we decode as msg.text.

    Its bug: it cuts TP-UDL out of the decoded *characters* instead of septets, so each escape
    pair (€ [ ] { } ...) lets one more character in: the zero padding of a last octet with 7
    spare bits then shows as a trailing '@'. TS 23.040 9.2.3.16: TP-UDL counts septets.
    """
    if msg.alphabet.value == "gsm7" and 0x1B in msg.data:
        return (msg.text, msg.text + "@")
    return (msg.text,)


# ---- ours -> smspdudecoder ----

@pytest.mark.parametrize("name", CORPUS)
def test_our_submits_decode_with_smspdudecoder(name):
    text = CORPUS[name]
    for part in encode_submit("+8613800138000", text, reference=9):
        theirs = read_outgoing_sms(part.hex)
        ours = decode_pdu(part.hex)
        assert theirs["recipient"] == ours.recipient == "+8613800138000"
        assert theirs["content"] in smspdudecoder_view(ours)
    assert "".join(decode_pdu(p.hex).text for p in encode_submit("+8613800138000", text)) == text


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("name", CORPUS)
@pytest.mark.parametrize("ref16", [False, True])
def test_our_delivers_decode_with_smspdudecoder(name, sender, ref16):
    text = CORPUS[name]
    pdus = encode_deliver(sender, text, reference=0x1234 if ref16 else 0x34, ref16=ref16)
    contents = []
    for i, pdu in enumerate(pdus, 1):
        theirs = read_incoming_sms(pdu)
        ours = decode_pdu(pdu)
        assert theirs["sender"] == ours.sender == sender
        assert theirs["date"] == ours.timestamp
        if len(pdus) > 1:
            assert theirs["partial"]["reference"] == f"{ours.concat.reference}-{len(pdus)}"
            assert (theirs["partial"]["part_number"], theirs["partial"]["parts_count"]) == (i, len(pdus))
        else:
            assert theirs["partial"] is False
        assert theirs["content"] in smspdudecoder_view(ours)
        contents.append(ours.text)
    assert "".join(contents) == text


def test_smspdudecoder_udl_bug_shows_on_escapes():
    # Part 2 of gsm_long has escape pairs and a last octet with 7 spare bits.
    part = encode_submit("+8613800138000", CORPUS["gsm_long"], reference=9)[1]
    ours = decode_pdu(part.hex)
    assert not ours.text.endswith("@")
    assert read_outgoing_sms(part.hex)["content"] == ours.text + "@"


# ---- ours -> python-gsmmodem-new ----

@pytest.mark.parametrize("name", CORPUS)
def test_our_submits_decode_with_gsmmodem(name):
    text = CORPUS[name]
    parts = encode_submit("+8613800138000", text, reference=77)
    got = [gsmmodem.decodeSmsPdu(p.hex) for p in parts]
    assert {g["number"] for g in got} == {"+8613800138000"}
    assert all(g["tpdu_length"] == p.tpdu_length for g, p in zip(got, parts, strict=True))
    if len(parts) > 1:
        assert [g["udh"][0].reference for g in got] == [77] * len(parts)
        assert [g["udh"][0].number for g in got] == list(range(1, len(parts) + 1))
    joined = "".join(g["text"] for g in got)
    if has_astral(text):
        # gsmmodem bug: it decodes UCS2 code unit by code unit, so an emoji comes back as two lone
        # surrogates. Our UTF-16 bytes are right: re-pairing its halves gives the original text.
        assert joined != text
        assert joined.encode("utf-16-be", "surrogatepass").decode("utf-16-be") == text
    else:
        assert joined == text


@pytest.mark.parametrize("name", NO_EMOJI)
def test_our_16bit_references_with_gsmmodem(name):
    text = CORPUS[name]
    pdus = encode_deliver("Alipay", text, reference=0xBEEF, ref16=True)
    got = [gsmmodem.decodeSmsPdu(p) for p in pdus]
    ours = [decode_pdu(p) for p in pdus]
    if len(pdus) > 1:
        assert [g["udh"][0].reference for g in got] == [0xBEEF] * len(pdus)
    assert "".join(o.text for o in ours) == text
    if len(pdus) > 1 and ours[0].alphabet.value == "gsm7":
        # gsmmodem bug: with the 7-octet 16-bit header it assumes the 8-bit header's fill bit,
        # so it loses the first character. TS 23.040 9.2.3.24: 7 header octets = 8 septets, no fill.
        assert got[0]["text"] != ours[0].text
        assert got[0]["text"].startswith(ours[0].text[1:20])
    else:
        assert [g["text"] for g in got] == [o.text for o in ours]


# ---- python-gsmmodem-new -> ours ----

@pytest.mark.parametrize("name", NO_EMOJI)
def test_gsmmodem_submits_decode_with_ours(name):
    text = CORPUS[name]
    theirs = gsmmodem.encodeSmsSubmitPdu("+8613800138000", text, reference=5, requestStatusReport=True)
    ours = [decode_pdu(str(p)) for p in theirs]
    assert "".join(o.text for o in ours) == text
    assert {o.recipient for o in ours} == {"+8613800138000"}
    assert all(o.status_report_requested for o in ours)
    assert all(len(bytes(p.data)) - 1 == p.tpduLength for p in theirs)
    if len(theirs) > 1:
        assert [(o.concat.reference, o.concat.seq, o.concat.total) for o in ours] == [
            (5, i, len(theirs)) for i in range(1, len(theirs) + 1)]
    # same part count as our own split of the same text
    assert len(theirs) == len(encode_submit("+8613800138000", text))


def test_gsmmodem_cannot_encode_emoji_but_we_can():
    with pytest.raises(ValueError):  # its bug: UCS2 encoding with one octet pair per code point
        gsmmodem.encodeSmsSubmitPdu("+8613800138000", CORPUS["emoji"])
    parts = encode_submit("+8613800138000", CORPUS["emoji"])
    assert decode_pdu(parts[0].hex).text == CORPUS["emoji"]


def test_gsmmodem_cannot_encode_16bit_references_but_we_can():
    with pytest.raises(ValueError):  # its bug: the reference is packed into one octet
        gsmmodem.encodeSmsSubmitPdu("+8613800138000", "x" * 200, reference=300)
    parts = encode_submit("+8613800138000", "x" * 200, reference=300, ref16=True)
    assert {decode_pdu(p.hex).concat.reference for p in parts} == {300}


# ---- a published PDU: all three agree ----

def test_published_pdu_agrees_across_all_three():
    pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    ours = decode_pdu(pdu)
    theirs_a = read_incoming_sms(pdu)
    theirs_b = gsmmodem.decodeSmsPdu(pdu)
    assert ours.text == theirs_a["content"] == theirs_b["text"] == "How are you?"
    assert ours.sender == theirs_a["sender"] == theirs_b["number"] == "+31641600986"
    assert ours.timestamp == theirs_a["date"] == theirs_b["time"]
    assert ours.smsc == theirs_b["smsc"]
