"""GSM 7-bit alphabet, extension table and septet packing (TS 23.038 6.1.2, 6.2.1)."""

import random

import pytest

from pdu.gsm7 import DEFAULT_ALPHABET, DEFAULT_CHARSET, pack_septets, unpack_septets


def naive_pack(septets: bytes, fill: int = 0) -> bytes:
    """Bit-by-bit reference packing, written the slow obvious way."""
    bits = [0] * fill
    for s in septets:
        bits += [(s >> i) & 1 for i in range(7)]
    while len(bits) % 8:
        bits.append(0)
    return bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))


def test_hellohello_packs_to_the_spec_example():
    # TS 23.038 packing of "hellohello" (also the classic SMS-DELIVER example).
    assert pack_septets(DEFAULT_CHARSET.encode("hellohello")).hex().upper() == "E8329BFD4697D9EC37"


@pytest.mark.parametrize("fill", range(7))
def test_pack_matches_bitwise_reference_for_every_length(fill):
    rng = random.Random(fill)
    for n in range(0, 170):
        septets = bytes(rng.randrange(128) for _ in range(n))
        packed = pack_septets(septets, fill)
        assert packed == naive_pack(septets, fill)
        assert unpack_septets(packed, n, fill) == septets


def test_eight_septets_fill_seven_octets():
    assert len(pack_septets(b"\x7f" * 8)) == 7
    assert pack_septets(b"\x7f" * 8) == b"\xff" * 7


def test_default_table_is_the_spec_table():
    assert len(DEFAULT_ALPHABET) == 128
    assert DEFAULT_ALPHABET[0x00] == "@" and DEFAULT_ALPHABET[0x02] == "$"
    assert DEFAULT_ALPHABET[0x10] == "Δ" and DEFAULT_ALPHABET[0x11] == "_"
    assert DEFAULT_ALPHABET[0x24] == "¤" and DEFAULT_ALPHABET[0x40] == "¡"
    assert DEFAULT_ALPHABET[0x60] == "¿" and DEFAULT_ALPHABET[0x7F] == "à"
    assert DEFAULT_ALPHABET[0x1B] == "\x1b"


@pytest.mark.parametrize("ch,code", [("€", 0x65), ("[", 0x3C), ("]", 0x3E), ("{", 0x28), ("}", 0x29),
                                     ("\\", 0x2F), ("~", 0x3D), ("^", 0x14), ("|", 0x40), ("\f", 0x0A)])
def test_extension_characters_cost_two_septets(ch, code):
    assert DEFAULT_CHARSET.encode(ch) == bytes((0x1B, code))
    assert DEFAULT_CHARSET.decode(bytes((0x1B, code))) == ch


def test_unknown_escape_shows_the_main_table_character():
    # TS 23.038 6.2.1.1: an escape sequence the receiver does not know shows the default character.
    assert DEFAULT_CHARSET.decode(b"\x1bA") == "A"


def test_trailing_escape_does_not_crash():
    assert DEFAULT_CHARSET.decode(b"ab\x1b") == "ab"


def test_not_encodable_raises_unicode_error_with_position():
    with pytest.raises(UnicodeEncodeError) as exc:
        DEFAULT_CHARSET.encode("abc你")
    assert exc.value.start == 3


def test_every_default_character_round_trips():
    text = "".join(ch for ch in DEFAULT_ALPHABET if ch != "\x1b") + "€[]{}\\~^|"
    assert DEFAULT_CHARSET.decode(DEFAULT_CHARSET.encode(text)) == text
