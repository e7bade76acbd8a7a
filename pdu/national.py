"""National language single-shift and locking-shift tables (TS 23.038 6.2.1.2.4 and annex A), as data.

Latin tables are written as changes to the default alphabet. The Indian tables share one layout
(ASCII digits, punctuation and Latin letters in fixed places), so each is written as the list of
its script's code points in the free positions, in septet order ("-" marks an unused position).
"""

from __future__ import annotations

import enum
from functools import lru_cache

from .gsm7 import DEFAULT_ALPHABET, DEFAULT_EXTENSION, Charset

UNUSED = "\ufffd"


class Language(enum.IntEnum):
    """National language identifiers (the value of UDH IE 0x24 / 0x25)."""

    DEFAULT = 0
    TURKISH = 1
    SPANISH = 2
    PORTUGUESE = 3
    BENGALI = 4
    GUJARATI = 5
    HINDI = 6
    KANNADA = 7
    MALAYALAM = 8
    ORIYA = 9
    PUNJABI = 10
    TAMIL = 11
    TELUGU = 12
    URDU = 13


def _patched(base: str, changes: dict[int, str]) -> str:
    table = list(base)
    for septet, ch in changes.items():
        table[septet] = ch
    return "".join(table)


# ---- Latin locking-shift tables (A.3.1 Turkish, A.3.3 Portuguese; Spanish has none) ----

_TURKISH_LOCKING = _patched(DEFAULT_ALPHABET, {
    0x04: "€", 0x07: "ı", 0x0B: "Ğ", 0x0C: "ğ", 0x1C: "Ş", 0x1D: "ş", 0x40: "İ", 0x60: "ç",
})
_PORTUGUESE_LOCKING = _patched(DEFAULT_ALPHABET, {
    0x04: "ê", 0x06: "ú", 0x07: "í", 0x08: "ó", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á",
    0x0F: "á", 0x12: "ª", 0x13: "Ç", 0x14: "À", 0x15: "∞", 0x16: "^", 0x17: "\\", 0x18: "€",
    0x19: "Ó", 0x1A: "|", 0x1C: "Â", 0x1D: "â", 0x1E: "Ê", 0x24: "º", 0x40: "Í", 0x5B: "Ã",
    0x5C: "Õ", 0x5D: "Ú", 0x60: "~", 0x7B: "ã", 0x7C: "õ", 0x7D: "`",
})

# ---- Latin single-shift tables (A.2.1-A.2.3): the default extension plus these ----

_TURKISH_SINGLE = {**DEFAULT_EXTENSION, 0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ",
                   0x69: "ı", 0x73: "ş"}
_SPANISH_SINGLE = {**DEFAULT_EXTENSION, 0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú",
                   0x61: "á", 0x69: "í", 0x6F: "ó", 0x75: "ú"}
_PORTUGUESE_SINGLE = {**DEFAULT_EXTENSION, 0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á",
                      0x0F: "á", 0x12: "Φ", 0x13: "Γ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ",
                      0x19: "Θ", 0x1F: "Ê", 0x41: "À", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x5B: "Ã",
                      0x5C: "Õ", 0x61: "Â", 0x69: "í", 0x6F: "ó", 0x75: "ú", 0x7B: "ã", 0x7C: "õ",
                      0x7F: "â"}

# ---- Indian locking-shift tables (A.3.4-A.3.13) ----

# Fixed places shared by every Indian locking table; None marks a place the script fills.
_INDIC_LOCKING_FRAME: list[str | None] = [None] * 128
for _septet, _ch in {0x0A: "\n", 0x0D: "\r", 0x1B: "\x1b", 0x20: " ", 0x21: "!", 0x28: ")",
                     0x29: "(", 0x2C: ",", 0x2E: ".", 0x3F: "?"}.items():
    _INDIC_LOCKING_FRAME[_septet] = _ch
for _i, _ch in enumerate("0123456789:;"):
    _INDIC_LOCKING_FRAME[0x30 + _i] = _ch
for _i, _ch in enumerate("abcdefghijklmnopqrstuvwxyz"):
    _INDIC_LOCKING_FRAME[0x61 + _i] = _ch
_INDIC_LOCKING_SLOTS = [i for i, ch in enumerate(_INDIC_LOCKING_FRAME) if ch is None]
assert len(_INDIC_LOCKING_SLOTS) == 80

_INDIC_LOCKING_CODES = {
    Language.BENGALI: """
        0981 0982 0983 0985 0986 0987 0988 0989 098A 098B 098C -    -    098F
        0990 -    -    0993 0994 0995 0996 0997 0998 0999 099A 099B 099C 099D 099E
        099F 09A0 09A1 09A2 09A3 09A4 09A5 09A6 09A7 09A8 -    09AA 09AB
        09AC 09AD 09AE 09AF 09B0 -    09B2 -    -    -    09B6 09B7 09B8 09B9 09BC 09BD
        09BE 09BF 09C0 09C1 09C2 09C3 09C4 -    -    09C7 09C8 -    -    09CB 09CC 09CD
        09CE 09D7 09DC 09DD 09F0 09F1""",
    Language.GUJARATI: """
        0A81 0A82 0A83 0A85 0A86 0A87 0A88 0A89 0A8A 0A8B 0A8C 0A8D -    0A8F
        0A90 0A91 -    0A93 0A94 0A95 0A96 0A97 0A98 0A99 0A9A 0A9B 0A9C 0A9D 0A9E
        0A9F 0AA0 0AA1 0AA2 0AA3 0AA4 0AA5 0AA6 0AA7 0AA8 -    0AAA 0AAB
        0AAC 0AAD 0AAE 0AAF 0AB0 -    0AB2 0AB3 -    0AB5 0AB6 0AB7 0AB8 0AB9 0ABC 0ABD
        0ABE 0ABF 0AC0 0AC1 0AC2 0AC3 0AC4 0AC5 -    0AC7 0AC8 0AC9 -    0ACB 0ACC 0ACD
        0AD0 0AE0 0AE1 0AE2 0AE3 0AF1""",
    Language.HINDI: """
        0901 0902 0903 0905 0906 0907 0908 0909 090A 090B 090C 090D 090E 090F
        0910 0911 0912 0913 0914 0915 0916 0917 0918 0919 091A 091B 091C 091D 091E
        091F 0920 0921 0922 0923 0924 0925 0926 0927 0928 0929 092A 092B
        092C 092D 092E 092F 0930 0931 0932 0933 0934 0935 0936 0937 0938 0939 093C 093D
        093E 093F 0940 0941 0942 0943 0944 0945 0946 0947 0948 0949 094A 094B 094C 094D
        0950 0972 097B 097C 097E 097F""",
    # A.3.7 prints 0CAA at 0x24 (it is also at 0x3D); the column's pattern says 0CA1.
    Language.KANNADA: """
        -    0C82 0C83 0C85 0C86 0C87 0C88 0C89 0C8A 0C8B 0C8C -    0C8E 0C8F
        0C90 -    0C92 0C93 0C94 0C95 0C96 0C97 0C98 0C99 0C9A 0C9B 0C9C 0C9D 0C9E
        0C9F 0CA0 0CA1 0CA2 0CA3 0CA4 0CA5 0CA6 0CA7 0CA8 -    0CAA 0CAB
        0CAC 0CAD 0CAE 0CAF 0CB0 0CB1 0CB2 0CB3 -    0CB5 0CB6 0CB7 0CB8 0CB9 0CBC 0CBD
        0CBE 0CBF 0CC0 0CC1 0CC2 0CC3 0CC4 -    0CC6 0CC7 0CC8 -    0CCA 0CCB 0CCC 0CCD
        0CD5 0CD6 0CE0 0CE1 0CE2 0CE3""",
    Language.MALAYALAM: """
        -    0D02 0D03 0D05 0D06 0D07 0D08 0D09 0D0A 0D0B 0D0C -    0D0E 0D0F
        0D10 -    0D12 0D13 0D14 0D15 0D16 0D17 0D18 0D19 0D1A 0D1B 0D1C 0D1D 0D1E
        0D1F 0D20 0D21 0D22 0D23 0D24 0D25 0D26 0D27 0D28 -    0D2A 0D2B
        0D2C 0D2D 0D2E 0D2F 0D30 0D31 0D32 0D33 0D34 0D35 0D36 0D37 0D38 0D39 -    0D3D
        0D3E 0D3F 0D40 0D41 0D42 0D43 0D44 -    0D46 0D47 0D48 -    0D4A 0D4B 0D4C 0D4D
        0D57 0D60 0D61 0D62 0D63 0D79""",
    Language.ORIYA: """
        0B01 0B02 0B03 0B05 0B06 0B07 0B08 0B09 0B0A 0B0B 0B0C -    -    0B0F
        0B10 -    -    0B13 0B14 0B15 0B16 0B17 0B18 0B19 0B1A 0B1B 0B1C 0B1D 0B1E
        0B1F 0B20 0B21 0B22 0B23 0B24 0B25 0B26 0B27 0B28 -    0B2A 0B2B
        0B2C 0B2D 0B2E 0B2F 0B30 -    0B32 0B33 -    0B35 0B36 0B37 0B38 0B39 0B3C 0B3D
        0B3E 0B3F 0B40 0B41 0B42 0B43 0B44 -    -    0B47 0B48 -    -    0B4B 0B4C 0B4D
        0B56 0B57 0B60 0B61 0B62 0B63""",
    Language.PUNJABI: """
        0A01 0A02 0A03 0A05 0A06 0A07 0A08 0A09 0A0A -    -    -    -    0A0F
        0A10 -    -    0A13 0A14 0A15 0A16 0A17 0A18 0A19 0A1A 0A1B 0A1C 0A1D 0A1E
        0A1F 0A20 0A21 0A22 0A23 0A24 0A25 0A26 0A27 0A28 -    0A2A 0A2B
        0A2C 0A2D 0A2E 0A2F 0A30 -    0A32 0A33 -    0A35 0A36 -    0A38 0A39 0A3C -
        0A3E 0A3F 0A40 0A41 0A42 -    -    -    -    0A47 0A48 -    -    0A4B 0A4C 0A4D
        0A51 0A70 0A71 0A72 0A73 0A74""",
    Language.TAMIL: """
        -    0B82 0B83 0B85 0B86 0B87 0B88 0B89 0B8A -    -    -    0B8E 0B8F
        0B90 -    0B92 0B93 0B94 0B95 -    -    -    0B99 0B9A -    0B9C -    0B9E
        0B9F -    -    -    0BA3 0BA4 -    -    -    0BA8 0BA9 0BAA -
        -    -    0BAE 0BAF 0BB0 0BB1 0BB2 0BB3 0BB4 0BB5 0BB6 0BB7 0BB8 0BB9 -    -
        0BBE 0BBF 0BC0 0BC1 0BC2 -    -    -    0BC6 0BC7 0BC8 -    0BCA 0BCB 0BCC 0BCD
        0BD0 0BD7 0BF0 0BF1 0BF2 0BF9""",
    Language.TELUGU: """
        0C01 0C02 0C03 0C05 0C06 0C07 0C08 0C09 0C0A 0C0B 0C0C -    0C0E 0C0F
        0C10 -    0C12 0C13 0C14 0C15 0C16 0C17 0C18 0C19 0C1A 0C1B 0C1C 0C1D 0C1E
        0C1F 0C20 0C21 0C22 0C23 0C24 0C25 0C26 0C27 0C28 -    0C2A 0C2B
        0C2C 0C2D 0C2E 0C2F 0C30 0C31 0C32 0C33 -    0C35 0C36 0C37 0C38 0C39 -    0C3D
        0C3E 0C3F 0C40 0C41 0C42 0C43 0C44 -    0C46 0C47 0C48 -    0C4A 0C4B 0C4C 0C4D
        0C55 0C56 0C60 0C61 0C62 0C63""",
    Language.URDU: """
        0627 0622 0628 067B 0680 067E 06A6 062A 06C2 067F 0679 067D 067A 067C
        062B 062C 0681 0684 0683 0685 0686 0687 062D 062E 062F 068C 0688 0689 068A
        068F 068D 0630 0631 0691 0693 0699 0632 0696 0698 069A 0633 0634
        0635 0636 0637 0638 0639 0641 0642 06A9 06AA 06AB 06AF 06B3 06B1 0644 0645 0646
        06BA 06BB 06BC 0648 06C4 06D5 06C1 06BE 0621 06CC 06D0 06D2 064D 0650 064F 0657
        0654 0655 0651 0653 0656 0670""",
}

# ---- Indian single-shift tables (A.2.4-A.2.13) ----

_INDIC_SINGLE_FRAME: dict[int, str] = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "¿", 0x05: '"', 0x06: "¤", 0x07: "%",
    0x08: "&", 0x09: "'", 0x0A: "\x0c", 0x0B: "*", 0x0C: "+", 0x0E: "-", 0x0F: "/", 0x10: "<",
    0x11: "=", 0x12: ">", 0x13: "¡", 0x14: "^", 0x15: "¡", 0x16: "_", 0x17: "#", 0x18: "*",
    0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
    **{0x41 + i: chr(ord("A") + i) for i in range(26)},
}
_INDIC_SINGLE_SLOTS = [0x19, 0x1A, *range(0x1C, 0x28), *range(0x2A, 0x2F), *range(0x30, 0x3C)]
assert len(_INDIC_SINGLE_SLOTS) == 31

_INDIC_SINGLE_CODES = {
    Language.BENGALI: """09E6 09E7 09E8 09E9 09EA 09EB 09EC 09ED 09EE 09EF 09DF 09E0 09E1 09E2
        09E3 09F2 09F3 09F4 09F5 09F6 09F7 09F8 09F9 09FA - - - - - - -""",
    Language.GUJARATI: """0964 0965 0AE6 0AE7 0AE8 0AE9 0AEA 0AEB 0AEC 0AED 0AEE 0AEF - -
        - - - - - - - - - - - - - - - - -""",
    Language.HINDI: """0964 0965 0966 0967 0968 0969 096A 096B 096C 096D 096E 096F 0951 0952
        0953 0954 0958 0959 095A 095B 095C 095D 095E 095F 0960 0961 0962 0963 0970 0971 -""",
    Language.KANNADA: """0964 0965 0CE6 0CE7 0CE8 0CE9 0CEA 0CEB 0CEC 0CED 0CEE 0CEF 0CDE 0CF1
        0CF2 - - - - - - - - - - - - - - - -""",
    Language.MALAYALAM: """0964 0965 0D66 0D67 0D68 0D69 0D6A 0D6B 0D6C 0D6D 0D6E 0D6F 0D70 0D71
        0D72 0D73 0D74 0D75 0D7A 0D7B 0D7C 0D7D 0D7E 0D7F - - - - - - -""",
    Language.ORIYA: """0964 0965 0B66 0B67 0B68 0B69 0B6A 0B6B 0B6C 0B6D 0B6E 0B6F 0B5C 0B5D
        0B5F 0B70 0B71 - - - - - - - - - - - - - -""",
    Language.PUNJABI: """0964 0965 0A66 0A67 0A68 0A69 0A6A 0A6B 0A6C 0A6D 0A6E 0A6F 0A59 0A5A
        0A5B 0A5C 0A5E 0A75 - - - - - - - - - - - - -""",
    Language.TAMIL: """0964 0965 0BE6 0BE7 0BE8 0BE9 0BEA 0BEB 0BEC 0BED 0BEE 0BEF 0BF3 0BF4
        0BF5 0BF6 0BF7 0BF8 0BFA - - - - - - - - - - - -""",
    Language.TELUGU: """- - 0C66 0C67 0C68 0C69 0C6A 0C6B 0C6C 0C6D 0C6E 0C6F 0C58 0C59
        0C78 0C79 0C7A 0C7B 0C7C 0C7D 0C7E 0C7F - - - - - - - - -""",
    Language.URDU: """0600 0601 06F0 06F1 06F2 06F3 06F4 06F5 06F6 06F7 06F8 06F9 060C 060D
        060E 060F 0610 0611 0612 0613 0614 061B 061F 0640 0652 0658 066B 066C 0672 0673 06CD""",
}
_URDU_SINGLE_EXTRA = {0x3F: "\u06d4"}  # Urdu full stop where the others leave 0x3F empty


def _codes(text: str, count: int) -> list[str]:
    tokens = text.split()
    assert len(tokens) == count, (len(tokens), count)
    return [UNUSED if t == "-" else chr(int(t, 16)) for t in tokens]


def _indic_locking(text: str) -> str:
    table = list(_INDIC_LOCKING_FRAME)
    for septet, ch in zip(_INDIC_LOCKING_SLOTS, _codes(text, len(_INDIC_LOCKING_SLOTS)), strict=True):
        table[septet] = ch
    return "".join(table)  # type: ignore[arg-type]


def _indic_single(text: str) -> dict[int, str]:
    table = dict(_INDIC_SINGLE_FRAME)
    for septet, ch in zip(_INDIC_SINGLE_SLOTS, _codes(text, len(_INDIC_SINGLE_SLOTS)), strict=True):
        if ch != UNUSED:
            table[septet] = ch
    return table


# Locking-shift tables: 128 characters indexed by septet; "\x1b" is the escape, UNUSED unused.
LOCKING: dict[int, str] = {
    Language.DEFAULT: DEFAULT_ALPHABET,
    Language.TURKISH: _TURKISH_LOCKING,
    Language.PORTUGUESE: _PORTUGUESE_LOCKING,
    **{lang: _indic_locking(codes) for lang, codes in _INDIC_LOCKING_CODES.items()},
}
# Single-shift tables: septet (after ESC) -> character.
SINGLE: dict[int, dict[int, str]] = {
    Language.DEFAULT: DEFAULT_EXTENSION,
    Language.TURKISH: _TURKISH_SINGLE,
    Language.SPANISH: _SPANISH_SINGLE,
    Language.PORTUGUESE: _PORTUGUESE_SINGLE,
    **{lang: _indic_single(codes) for lang, codes in _INDIC_SINGLE_CODES.items()},
}
SINGLE[Language.URDU].update(_URDU_SINGLE_EXTRA)


@lru_cache(maxsize=None)
def charset(locking: int = 0, single: int = 0) -> Charset:
    """The Charset for a (locking, single-shift) language pair; KeyError if a table is unknown."""
    return Charset.build(LOCKING[locking], SINGLE[single])


# What each table codes: in one septet (locking) or two (ESC + code, single shift).
LOCKING_REPERTOIRE = {lang: frozenset(table) - {UNUSED, "\x1b"} for lang, table in LOCKING.items()}
SINGLE_REPERTOIRE = {lang: frozenset(table.values()) for lang, table in SINGLE.items()}


@lru_cache(maxsize=1)
def national_repertoire() -> frozenset[str]:
    """Every character some national table can code (a quick reject before trying them)."""
    chars: set[str] = set()
    for table in LOCKING.values():
        chars.update(table)
    for shift in SINGLE.values():
        chars.update(shift.values())
    chars.discard(UNUSED)
    chars.discard("\x1b")
    return frozenset(chars)
