"""Where a message is split into parts, and what it costs (TS 23.040 9.2.3.24.1, TS 23.038)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .alphabet import EIGHT_BIT, GSM7_DEFAULT, UCS2, Alphabet, Encoding, coerce_alphabet
from .errors import PduError
from .gsm7 import DEFAULT_CHARSET, ESC
from .national import LOCKING_REPERTOIRE, SINGLE_REPERTOIRE, charset, national_repertoire

MAX_USER_DATA = 140  # octets of TP-UD in one SMS
CONCAT8_IE = 5  # IEI 0x00: iei, length, reference, total, seq
CONCAT16_IE = 6  # IEI 0x08: iei, length, reference(2), total, seq
SHIFT_IE = 3  # IEI 0x24 / 0x25: iei, length, language
PORTS16_IE = 6  # IEI 0x05: iei, length, dest(2), src(2)
MAX_PARTS = 255


@dataclass(frozen=True, slots=True)
class Plan:
    """How a message goes out: its encoding, and each part's payload.

    GSM-7 payloads are septets one per byte (escape pairs included); others are octets.
    """

    encoding: Encoding
    payloads: tuple[bytes, ...]
    units: int  # septets / octets / UTF-16 code units in the whole message
    capacity: int  # units one part can hold (the multi-part figure when split)
    extra_udh: int  # UDH octets besides concatenation (national shift IEs, ports)

    @property
    def alphabet(self) -> Alphabet:
        return self.encoding.alphabet

    def texts(self) -> list[str]:
        enc = self.encoding
        if enc.alphabet is Alphabet.GSM7:
            cs = charset(enc.locking, enc.single)
            return [cs.decode(p) for p in self.payloads]
        if enc.alphabet is Alphabet.UCS2:
            return [p.decode("utf-16-be") for p in self.payloads]
        return [p.hex().upper() for p in self.payloads]


@dataclass(frozen=True, slots=True)
class Cost:
    """What a text costs before sending: parts, alphabet, and room left in the last part."""

    parts: int
    alphabet: Alphabet
    chars_left: int  # characters that still fit in the last part (single-septet / BMP ones)
    units: int  # septets (GSM-7), UTF-16 code units (UCS2) or octets (8-bit) used
    units_per_part: int
    national: tuple[int, int] = (0, 0)  # (locking, single-shift) language ids


def udh_octets(extra: int, concat: bool, ref16: bool) -> int:
    """Total UDH octets (with the UDHL octet) of one part; 0 if there is no header at all."""
    ies = extra + ((CONCAT16_IE if ref16 else CONCAT8_IE) if concat else 0)
    return 1 + ies if ies else 0


def capacity(alphabet: Alphabet, udh: int) -> int:
    room = MAX_USER_DATA - udh
    if alphabet is Alphabet.GSM7:
        return (MAX_USER_DATA * 8 - ((udh * 8 + 6) // 7) * 7) // 7  # header padded to a septet
    if alphabet is Alphabet.UCS2:
        return room // 2
    return room


def _shift_ies(enc: Encoding) -> int:
    return SHIFT_IE * (bool(enc.locking) + bool(enc.single))


# Where a part may not end: after an ESC (GSM-7 escape pair) or a high surrogate (UCS2 pair).
_NEVER_LAST = {Alphabet.GSM7: (1, frozenset({ESC})), Alphabet.UCS2: (2, frozenset(range(0xD8, 0xDC))),
               Alphabet.EIGHT_BIT: (1, frozenset())}


def _chunks(data: bytes, size: int, alphabet: Alphabet) -> list[bytes]:
    """Cut data into chunks of at most `size` bytes, never through an escape or surrogate pair."""
    step, bad = _NEVER_LAST[alphabet]
    out = []
    i, n = 0, len(data)
    while i < n:
        j = i + size
        if j >= n:
            out.append(data[i:])
            break
        if data[j - step] in bad:  # the first half of a pair: it moves to the next part
            j -= step
        out.append(data[i:j])
        i = j
    return out


def _plan_units(enc: Encoding, data: bytes, ref16: bool, extra: int) -> Plan:
    alphabet = enc.alphabet
    extra = extra + _shift_ies(enc)
    width = 2 if alphabet is Alphabet.UCS2 else 1
    single = capacity(alphabet, udh_octets(extra, False, ref16)) * width
    if len(data) <= single:
        return Plan(enc, (data,), len(data) // width, single // width, extra)
    size = capacity(alphabet, udh_octets(extra, True, ref16)) * width
    return Plan(enc, tuple(_chunks(data, size, alphabet)), len(data) // width, size // width, extra)


_ANY_SINGLE = frozenset().union(*SINGLE_REPERTOIRE.values())


def _national_candidates(counts: Counter, length: int) -> list[tuple[int, int, int]]:
    """(locking, single, septets) for each locking table that, with some single-shift table, codes
    every character: characters outside the locking table cost an escape and one more septet."""
    found = []
    needed = frozenset(counts)
    for locking, one_septet in LOCKING_REPERTOIRE.items():
        rest = needed - one_septet
        if not rest:
            if locking:
                found.append((locking, 0, length))
            continue
        if not _ANY_SINGLE.issuperset(rest):
            continue
        # any single-shift table that covers the rest costs the same: prefer the default one
        # (no header element), then the same language
        for single in (0, locking, *SINGLE_REPERTOIRE):
            shift = SINGLE_REPERTOIRE.get(single)
            if shift is not None and (locking or single) and shift.issuperset(rest):
                found.append((locking, single, length + sum(counts[ch] for ch in rest)))
                break
    return found


def _national_plan(text: str, ref16: bool, extra: int) -> Plan | None:
    """The cheapest national-table plan for text, or None if no table pair codes it.

    Pairs are priced from character counts, a lower bound on their parts (an escape pair may move
    to the next part); only pairs that could still win are cut for real.
    """
    if not national_repertoire().issuperset(text):
        return None
    candidates = []
    for locking, single, septets in _national_candidates(Counter(text), len(text)):
        enc = Encoding(Alphabet.GSM7, locking, single)
        header = extra + _shift_ies(enc)
        one = capacity(Alphabet.GSM7, udh_octets(header, False, ref16))
        many = capacity(Alphabet.GSM7, udh_octets(header, True, ref16))
        least_parts = 1 if septets <= one else -(-septets // many)
        candidates.append(((least_parts, header, septets), enc))
    best: Plan | None = None
    best_key = None
    for bound, enc in sorted(candidates, key=lambda c: c[0]):
        if best_key is not None and bound >= best_key:
            break
        plan = _plan_units(enc, charset(enc.locking, enc.single).encode(text), ref16, extra)
        key = (len(plan.payloads), plan.extra_udh, plan.units)
        if best_key is None or key < best_key:
            best, best_key = plan, key
    return best


def plan_message(text: str | bytes, *, alphabet: Alphabet | str | None = None,
                 ref16: bool = False, extra_udh: int = 0) -> Plan:
    """Choose the coding (unless forced) and cut the message into parts."""
    forced = coerce_alphabet(alphabet)
    if isinstance(text, (bytes, bytearray, memoryview)):
        if forced not in (None, Alphabet.EIGHT_BIT):
            raise PduError(f"binary data can only be sent as 8-bit, not {forced.value}")
        plan = _plan_units(EIGHT_BIT, bytes(text), ref16, extra_udh)
    elif not isinstance(text, str):
        raise PduError(f"text must be str or bytes, not {type(text).__name__}")
    elif (pos := _lone_surrogate(text)) is not None:
        raise PduError(f"character {text[pos]!r} at position {pos} is half of a UTF-16 pair "
                       "(a lone surrogate): it is no character and cannot be sent")
    elif forced is Alphabet.EIGHT_BIT:
        plan = _plan_units(EIGHT_BIT, text.encode("utf-8"), ref16, extra_udh)
    elif forced is Alphabet.UCS2:
        plan = _plan_units(UCS2, text.encode("utf-16-be"), ref16, extra_udh)
    elif DEFAULT_CHARSET.fits(text):
        plan = _plan_units(GSM7_DEFAULT, DEFAULT_CHARSET.encode(text), ref16, extra_udh)
    else:
        national = _national_plan(text, ref16, extra_udh)
        if forced is Alphabet.GSM7:
            if national is None:
                pos = next(i for i, ch in enumerate(text) if not DEFAULT_CHARSET.fits(ch))
                raise PduError(f"character {text[pos]!r} at position {pos} cannot be coded in GSM-7 "
                               "(no national language table fits the whole text)")
            plan = national
        else:
            plan = _plan_units(UCS2, text.encode("utf-16-be"), ref16, extra_udh)
            # National tables only when they are cheaper than UCS2 (TS 23.038 annex A is optional
            # in handsets, so a tie goes to UCS2, which every phone shows).
            if national is not None and len(national.payloads) < len(plan.payloads):
                plan = national
    if len(plan.payloads) > MAX_PARTS:
        raise PduError(f"message needs {len(plan.payloads)} parts; at most {MAX_PARTS} can be concatenated")
    return plan


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(text: str) -> int | None:
    """Position of the first lone surrogate in `text` (no codec can carry one), or None."""
    found = None if text.isascii() else _SURROGATE.search(text)
    return found.start() if found else None


def split_into_parts(text: str | bytes, *, alphabet: Alphabet | str | None = None,
                     ref16: bool = False) -> list[str]:
    """The text of each part the message is split into (8-bit data: uppercase hex per part)."""
    return plan_message(text, alphabet=alphabet, ref16=ref16).texts()


def parts_needed(text: str | bytes, *, alphabet: Alphabet | str | None = None,
                 ref16: bool = False) -> Cost:
    """How many parts a text needs, in which alphabet, and how much room the last part has left."""
    plan = plan_message(text, alphabet=alphabet, ref16=ref16)
    width = 2 if plan.alphabet is Alphabet.UCS2 else 1
    used_last = len(plan.payloads[-1]) // width
    left = plan.capacity - used_last
    return Cost(len(plan.payloads), plan.alphabet, left, plan.units, plan.capacity,
                (int(plan.encoding.locking), int(plan.encoding.single)))
