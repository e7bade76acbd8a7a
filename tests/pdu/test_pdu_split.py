"""Where messages are split, and what they cost (TS 23.040 9.2.3.24, TS 23.038)."""

import pytest

from pdu import Alphabet, PduError, parts_needed, split_into_parts


@pytest.mark.parametrize("text,alphabet,parts,per_part", [
    ("a" * 160, Alphabet.GSM7, 1, 160),
    ("a" * 161, Alphabet.GSM7, 2, 153),
    ("a" * 306, Alphabet.GSM7, 2, 153),
    ("a" * 307, Alphabet.GSM7, 3, 153),
    ("你" * 70, Alphabet.UCS2, 1, 70),
    ("你" * 71, Alphabet.UCS2, 2, 67),
    ("你" * 134, Alphabet.UCS2, 2, 67),
    ("你" * 135, Alphabet.UCS2, 3, 67),
    (b"\x01" * 140, Alphabet.EIGHT_BIT, 1, 140),
    (b"\x01" * 141, Alphabet.EIGHT_BIT, 2, 134),
])
def test_part_sizes(text, alphabet, parts, per_part):
    cost = parts_needed(text)
    assert (cost.parts, cost.alphabet, cost.units_per_part) == (parts, alphabet, per_part)


def test_16bit_reference_costs_one_more_octet():
    assert parts_needed("a" * 400, ref16=True).units_per_part == 152
    assert parts_needed("你" * 100, ref16=True).units_per_part == 66
    assert [len(p) for p in split_into_parts("a" * 305, ref16=True)] == [152, 152, 1]


def test_chars_left_in_last_part():
    assert parts_needed("hello").chars_left == 155
    assert parts_needed("a" * 160).chars_left == 0
    assert parts_needed("a" * 161).chars_left == 145
    assert parts_needed("你好").chars_left == 68
    assert parts_needed("").parts == 1


def test_extension_characters_count_double():
    cost = parts_needed("€" * 80)
    assert (cost.parts, cost.units, cost.chars_left) == (1, 160, 0)
    assert parts_needed("€" * 81).parts == 2


def test_escape_pair_never_split():
    # 152 plain septets then '€': the escape would be septet 153, its code 154 -> both move on.
    text = "a" * 152 + "€" + "b" * 10
    parts = split_into_parts(text)
    assert parts == ["a" * 152, "€" + "b" * 10]


def test_surrogate_pair_never_split():
    text = "你" * 66 + "😀" + "好" * 10
    parts = split_into_parts(text)
    assert parts == ["你" * 66, "😀" + "好" * 10]
    assert "".join(parts) == text


def test_gsm7_preferred_then_ucs2():
    assert parts_needed("Hello [world]").alphabet is Alphabet.GSM7
    assert parts_needed("你好").alphabet is Alphabet.UCS2
    assert parts_needed("hi 😀").alphabet is Alphabet.UCS2


def test_caller_can_force_alphabet():
    assert parts_needed("hello", alphabet="ucs2").alphabet is Alphabet.UCS2
    assert parts_needed("hello", alphabet=Alphabet.EIGHT_BIT).units == 5
    with pytest.raises(PduError, match="position 2"):
        parts_needed("ab你", alphabet="gsm7")
    with pytest.raises(PduError, match="unknown alphabet"):
        parts_needed("ab", alphabet="latin1")


def test_too_many_parts_is_refused():
    with pytest.raises(PduError, match="255"):
        parts_needed("你" * (67 * 255 + 1))


def test_turkish_locking_shift_chosen_when_cheaper_than_ucs2():
    text = "Çok güzel bir gün, değil mi? Yarın görüşürüz. Şimdi çıkıyorum, İstanbul'a gidiyorum."
    cost = parts_needed(text)
    assert cost.alphabet is Alphabet.GSM7
    assert cost.national[0] == 1  # Turkish locking shift
    assert cost.parts == 1
    assert parts_needed(text, alphabet="ucs2").parts == 2


def test_spanish_single_shift_only_when_it_saves_a_part():
    short = "¿Dónde está la estación? Mañana a las 9:30."
    assert parts_needed(short).alphabet is Alphabet.UCS2  # one part either way: UCS2 wins the tie
    long = short * 3
    cost = parts_needed(long)
    assert cost.alphabet is Alphabet.GSM7 and cost.national[1] == 2
    assert cost.parts < parts_needed(long, alphabet="ucs2").parts


def test_forced_gsm7_uses_national_tables():
    cost = parts_needed("Şişli", alphabet="gsm7")
    assert cost.alphabet is Alphabet.GSM7 and cost.national != (0, 0)


def test_hindi_locking_shift():
    text = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ और आप? कल मिलते हैं, धन्यवाद। " * 2
    cost = parts_needed(text)
    assert cost.alphabet is Alphabet.GSM7 and cost.national[0] == 6
    assert cost.parts < parts_needed(text, alphabet="ucs2").parts
