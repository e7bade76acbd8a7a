"""Property tests: round trips over all of Unicode, part limits, whole characters, and fuzzing."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdu import Alphabet, PduError, Reassembler, decode_pdu, encode_deliver, encode_submit, to_json
from pdu.gsm7 import DEFAULT_ALPHABET, DEFAULT_EXTENSION

# Any code point but lone surrogates (not text); all planes.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
gsm_text = st.text(st.sampled_from([c for c in DEFAULT_ALPHABET if c != "\x1b"]
                                   + list(DEFAULT_EXTENSION.values())), max_size=500)
turkish_text = st.text(st.sampled_from(list("abcçdefgğhıijklmnoöprsştuüvyzÇĞİÖŞÜ .,?!€[]")), max_size=400)
# Explicit per-test settings (a global profile would leak into other suites in the same process).
common = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def user_data_octets(tpdu: bytes) -> int:
    """Octets of TP-UD in an SMS-SUBMIT without validity period (header + text)."""
    da_len = (tpdu[2] + 1) // 2
    udl_at = 2 + 2 + da_len + 2
    return len(tpdu) - udl_at - 1


def round_trip(text, **kw):
    parts = encode_submit("+8613800138000", text, **kw)
    decoded = [decode_pdu(p.hex) for p in parts]
    r = Reassembler()
    results = [r.add("x", d) for d in decoded]
    return parts, decoded, results


@common
@given(any_text, st.booleans())
def test_any_text_round_trips_and_every_part_fits(text, ref16):
    parts, decoded, results = round_trip(text, ref16=ref16)
    assert results[-1] == text and all(r is None for r in results[:-1])
    for p in parts:
        tpdu = bytes.fromhex(p.hex)[1:]
        assert len(tpdu) == p.tpdu_length
        assert user_data_octets(tpdu) <= 140
    # every part on its own is whole characters: no lone surrogate, no replacement character
    assert "".join(d.text for d in decoded) == text


@common
@given(gsm_text)
def test_gsm7_text_stays_gsm7_and_escapes_are_never_split(text):
    parts, decoded, results = round_trip(text)
    assert {p.alphabet for p in parts} == {Alphabet.GSM7}
    assert results[-1] == text
    for d in decoded:
        assert not d.data.endswith(b"\x1b")
    assert "".join(d.text for d in decoded) == text


@common
@given(turkish_text)
def test_national_tables_round_trip(text):
    parts, decoded, results = round_trip(text)
    assert results[-1] == text
    assert "".join(d.text for d in decoded) == text


@common
@given(any_text, st.sampled_from(["+8613800138000", "10086", "Alipay", "ABCDEFGHIJK"]))
def test_deliver_round_trips(text, sender):
    decoded = [decode_pdu(p) for p in encode_deliver(sender, text)]
    assert {d.sender for d in decoded} == {sender}
    assert "".join(d.text for d in decoded) == text


@common
@given(st.binary(max_size=400))
def test_8bit_data_round_trips(data):
    parts = encode_submit("+8613800138000", data)
    assert b"".join(decode_pdu(p.hex).data for p in parts) == data


@settings(common, max_examples=400)
@given(st.binary(max_size=180), st.booleans())
def test_fuzz_random_octets_only_ever_raise_pdu_error(data, smsc):
    try:
        decode_pdu(data.hex(), smsc=smsc)
    except PduError:
        pass


@settings(common, max_examples=300)
@given(st.data())
def test_fuzz_mutated_valid_pdus_only_ever_raise_pdu_error(data):
    base = bytearray.fromhex(data.draw(st.sampled_from([
        encode_submit("+8613800138000", "你好😀" * 30, reference=3)[0].hex,
        encode_submit("+8613800138000", "a€" * 90, ref16=True, status_report=True)[1].hex,
        encode_deliver("Alipay", "Şişli ğ ı" * 10)[0],
        encode_deliver("+8613800138000", b"\x00\x01" * 5, ports=(1, 2))[0],
        "0891683108100005F006050D91683119325476F8621152618270006211526182700000",
    ])))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    try:
        msg = decode_pdu(bytes(base[:cut]).hex())
    except PduError:
        return
    to_json(msg)  # every derived field (concat, ports, class, ...) must hold up too


@settings(common, max_examples=200)
@given(st.text(max_size=60))
def test_fuzz_arbitrary_strings(s):
    try:
        decode_pdu(s)
    except PduError:
        pass
