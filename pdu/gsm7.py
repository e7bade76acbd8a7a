"""GSM 7-bit default alphabet, its extension table, and septet packing (TS 23.038 6.1.2, 6.2.1)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from functools import lru_cache

ESC = 0x1B

# TS 23.038 6.2.1: the default alphabet, indexed by septet value ("\x1b" = escape to extension).
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(DEFAULT_ALPHABET) == 128

# TS 23.038 6.2.1.1: the default extension table (reached by ESC; two septets per character).
DEFAULT_EXTENSION: dict[int, str] = {
    0x0A: "\x0c", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}


@dataclass(frozen=True, slots=True)
class Charset:
    """A locking-shift table (128 characters) plus a single-shift table, ready to encode/decode."""

    locking: str
    shift: dict[int, str]
    _septets: dict[int, str] = field(repr=False, default_factory=dict)  # ordinal -> septet(s) as str
    _repertoire: frozenset[str] = field(repr=False, default=frozenset())

    @classmethod
    def build(cls, locking: str, shift: dict[int, str]) -> "Charset":
        enc: dict[int, str] = {}
        for code, ch in shift.items():
            if ch not in ("\x1b", "\ufffd"):
                enc.setdefault(ord(ch), chr(ESC) + chr(code))
        for code, ch in enumerate(locking):
            if ch not in ("\x1b", "\ufffd"):
                enc[ord(ch)] = chr(code)  # one septet beats two
        repertoire = frozenset(map(chr, enc))
        # Latin-1 characters outside the charset must not pass through str.translate unchanged:
        # map them past Latin-1 so the final encode refuses them.
        for o in range(256):
            enc.setdefault(o, "\uffff")
        return cls(locking, dict(shift), enc, repertoire)

    def encode(self, text: str) -> bytes:
        """Text -> septets, one per byte (escape pairs included); UnicodeEncodeError if it does not fit."""
        return text.translate(self._septets).encode("latin-1")

    @property
    def repertoire(self) -> frozenset[str]:
        return self._repertoire

    def fits(self, text: str) -> bool:
        return self._repertoire.issuperset(text)

    def decode(self, septets: bytes) -> str:
        """Septets (one per byte, values < 128) -> text; unknown escapes fall back to the main table."""
        table = self.locking
        if ESC not in septets:
            return codecs.charmap_decode(septets, "strict", table)[0]
        out: list[str] = []
        chunks = septets.split(b"\x1b")
        out.append(codecs.charmap_decode(chunks[0], "strict", table)[0])
        shift = self.shift
        pending_escape = False
        for chunk in chunks[1:]:
            if not chunk:  # ESC ESC (reserved) or a trailing ESC: show a space (TS 23.038 6.2.1.1)
                if pending_escape:
                    out.append(" ")
                pending_escape = not pending_escape
                continue
            pending_escape = False
            code = chunk[0]
            ch = shift.get(code)
            out.append(ch if ch is not None else table[code].replace("\x1b", " "))
            out.append(codecs.charmap_decode(chunk[1:], "strict", table)[0])
        return "".join(out)


DEFAULT_CHARSET = Charset.build(DEFAULT_ALPHABET, DEFAULT_EXTENSION)


# ---- packing: septets <-> octets, with big-integer bit tricks instead of per-bit loops ----

@lru_cache(maxsize=64)
def _masks(lanes: int) -> tuple[int, ...]:
    """Repeated 64-bit masks for `lanes` 8-septet groups (cached per size)."""
    def rep(word: int) -> int:
        return int.from_bytes(word.to_bytes(8, "little") * lanes, "little")
    return (rep(0x007F007F007F007F), rep(0x7F007F007F007F00),
            rep(0x00003FFF00003FFF), rep(0x3FFF00003FFF0000),
            rep(0x000000000FFFFFFF), rep(0x0FFFFFFF00000000))


def packed_length(septets: int, fill_bits: int = 0) -> int:
    return (septets * 7 + fill_bits + 7) // 8


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values (one per byte) into octets, LSB first, after `fill_bits` zero bits."""
    n = len(septets)
    if not n:
        return bytes(packed_length(0, fill_bits))
    lanes = (n + 7) // 8
    m = _masks(lanes)
    x = int.from_bytes(septets, "little")  # padding septets beyond n are zero
    x = (x & m[0]) | ((x & m[1]) >> 1)
    x = (x & m[2]) | ((x & m[3]) >> 2)
    x = (x & m[4]) | ((x & m[5]) >> 4)
    buf = bytearray(x.to_bytes(lanes * 8, "little"))
    del buf[7::8]  # each 64-bit lane now holds 56 bits: drop its empty top octet
    if fill_bits:
        x = int.from_bytes(buf, "little") << fill_bits
        return x.to_bytes(packed_length(n, fill_bits), "little")
    return bytes(buf[: packed_length(n)])


@lru_cache(maxsize=64)
def _spread_levels(lanes: int) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """Masks that move each 56-bit group of packed septets into its own 64-bit lane.

    Top-down halving: in every group of G lanes, the upper half of the data moves up by
    G/2 octets. After log2(lanes) steps each lane holds its 8 septets in its low 56 bits.
    """
    size = 1
    while size < lanes:
        size *= 2
    levels = []
    group = size
    while group > 1:
        half = group // 2
        low_bits = (1 << (half * 56)) - 1
        high_bits = ((1 << (group * 56)) - 1) ^ low_bits
        low = high = 0
        for g in range(size // group):
            low |= low_bits << (g * group * 64)
            high |= high_bits << (g * group * 64)
        levels.append((low, high, half * 8))
        group = half
    return size, tuple(levels)


def unpack_septets(octets: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Unpack `count` septets (after `fill_bits`) from octets; caller checks the length fits."""
    if count <= 0:
        return b""
    x = int.from_bytes(octets[: packed_length(count, fill_bits)], "little") >> fill_bits
    lanes, levels = _spread_levels((count + 7) // 8)
    for low, high, shift in levels:
        x = (x & low) | ((x & high) << shift)
    m = _masks(lanes)  # then each 56-bit lane into eight 7-bit values, one per octet
    x = (x & m[4]) | ((x << 4) & m[5])
    x = (x & m[2]) | ((x << 2) & m[3])
    x = (x & m[0]) | ((x << 1) & m[1])
    return x.to_bytes(lanes * 8, "little")[:count]
