"""National language tables (TS 23.038 annex A): landmarks from the spec, and every table round trips."""

import unicodedata

import pytest

from pdu import Alphabet, Language, decode_pdu, encode_submit
from pdu.national import LOCKING, SINGLE, UNUSED, charset


@pytest.mark.parametrize("lang,septet,char", [
    (Language.TURKISH, 0x04, "€"), (Language.TURKISH, 0x07, "ı"), (Language.TURKISH, 0x40, "İ"),
    (Language.TURKISH, 0x60, "ç"), (Language.PORTUGUESE, 0x15, "∞"), (Language.PORTUGUESE, 0x7D, "`"),
    (Language.BENGALI, 0x00, "\u0981"), (Language.HINDI, 0x00, "\u0901"), (Language.HINDI, 0x7F, "\u097F"),
    (Language.TAMIL, 0x7F, "\u0BF9"), (Language.URDU, 0x00, "\u0627"), (Language.URDU, 0x60, "\u0654"),
    (Language.TELUGU, 0x11, UNUSED), (Language.KANNADA, 0x24, "\u0CA1"),
])
def test_locking_table_landmarks(lang, septet, char):
    assert LOCKING[lang][septet] == char


@pytest.mark.parametrize("lang,septet,char", [
    (Language.TURKISH, 0x47, "Ğ"), (Language.TURKISH, 0x73, "ş"), (Language.SPANISH, 0x09, "ç"),
    (Language.SPANISH, 0x75, "ú"), (Language.PORTUGUESE, 0x12, "Φ"), (Language.PORTUGUESE, 0x7F, "â"),
    (Language.BENGALI, 0x19, "\u09E6"), (Language.HINDI, 0x19, "\u0964"), (Language.URDU, 0x3F, "\u06D4"),
    (Language.TELUGU, 0x1C, "\u0C66"), (Language.ORIYA, 0x20, "\u0B6A"), (Language.HINDI, 0x65, "€"),
])
def test_single_shift_landmarks(lang, septet, char):
    assert SINGLE[lang][septet] == char


@pytest.mark.parametrize("lang", list(LOCKING))
def test_locking_tables_are_well_formed(lang):
    table = LOCKING[lang]
    assert len(table) == 128 and table[0x1B] == "\x1b"
    used = [c for c in table if c not in (UNUSED, "\x1b")]
    assert len(used) == len(set(used)), "a character twice in one table"
    for c in used:
        assert unicodedata.category(c) != "Cn", f"unassigned {ord(c):04X}"


@pytest.mark.parametrize("lang", list(SINGLE))
def test_single_tables_never_use_the_escape(lang):
    assert 0x1B not in SINGLE[lang]
    assert all(unicodedata.category(c) != "Cn" for c in SINGLE[lang].values())


@pytest.mark.parametrize("locking", list(LOCKING))
@pytest.mark.parametrize("single", [0, 1, 2, 3, 6, 13])
def test_every_table_pair_round_trips_through_a_pdu(locking, single):
    cs = charset(locking, single)
    text = "".join(sorted(cs.repertoire))
    parts = encode_submit("+8613800138000", text, alphabet="gsm7")
    decoded = [decode_pdu(p.hex) for p in parts]
    assert "".join(d.text for d in decoded) == text
    assert all(d.alphabet is Alphabet.GSM7 for d in decoded)


@pytest.mark.parametrize("lang,text", [
    (Language.HINDI, "आज शाम को मिलते हैं। कृपया समय पर आइए, धन्यवाद।"),
    (Language.BENGALI, "আজ সন্ধ্যায় দেখা হবে। দয়া করে সময়মতো আসুন।"),
    (Language.TAMIL, "இன்று மாலை சந்திப்போம். நேரத்திற்கு வாருங்கள்."),
    (Language.URDU, "آج شام ملتے ہیں۔ براہ کرم وقت پر پہنچیں، شکریہ۔"),
])
def test_indian_scripts_get_their_locking_table_when_it_saves_parts(lang, text):
    text = (text + " ") * 3
    parts = encode_submit("+919812345678", text)
    assert len(parts) < len(encode_submit("+919812345678", text, alphabet="ucs2"))
    msg = decode_pdu(parts[0].hex)
    assert msg.national[0] == lang and (0x25, bytes((lang,))) in msg.udh
    assert "".join(decode_pdu(p.hex).text for p in parts) == text


def test_unknown_language_id_falls_back_to_default_tables():
    from pdu.gsm7 import DEFAULT_CHARSET, pack_septets

    udh = bytes.fromhex("03250163")  # locking shift to language 99, which does not exist
    ud = udh + pack_septets(DEFAULT_CHARSET.encode("hello"), 3)  # 32 header bits + 3 fill bits
    pdu = "0041000D91683108108300F00000" + f"{5 + 5:02X}" + ud.hex()
    msg = decode_pdu(pdu)
    assert msg.udh == ((0x25, b"\x63"),) and msg.national == (0, 0) and msg.text == "hello"
