"""TP-DCS, the data coding scheme, in all its coding groups (TS 23.038 4)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .alphabet import Alphabet
from .errors import PduError


@dataclass(frozen=True, slots=True)
class MessageWaiting:
    """Message waiting indication from DCS groups 1100/1101/1110."""

    active: bool
    kind: str  # "voicemail" | "fax" | "email" | "other"
    store: bool  # False for the "discard message" group


@dataclass(frozen=True, slots=True)
class Coding:
    """What a DCS octet says."""

    alphabet: Alphabet
    message_class: int | None = None
    compressed: bool = False
    waiting: MessageWaiting | None = None


_ALPHABET_BITS = {Alphabet.GSM7: 0x00, Alphabet.EIGHT_BIT: 0x04, Alphabet.UCS2: 0x08}
_WAITING_KINDS = ("voicemail", "fax", "email", "other")


def encode_dcs(alphabet: Alphabet, message_class: int | None) -> int:
    """General data coding group; with a class (0 = flash) when one is given."""
    if message_class is None:
        return _ALPHABET_BITS[alphabet]
    if message_class not in (0, 1, 2, 3):
        raise PduError(f"message class must be 0-3 (0 = flash), not {message_class}")
    return 0x10 | _ALPHABET_BITS[alphabet] | message_class


@lru_cache(maxsize=256)
def decode_dcs(dcs: int) -> Coding:
    """Every DCS value means something: reserved ones fall back to the default alphabet."""
    group = dcs >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx automatic deletion: same layout
        # alphabet bits 11 are reserved: treated as the default alphabet
        alphabet = (Alphabet.GSM7, Alphabet.EIGHT_BIT, Alphabet.UCS2, Alphabet.GSM7)[(dcs >> 2) & 0x03]
        return Coding(alphabet, dcs & 0x03 if dcs & 0x10 else None, bool(dcs & 0x20))
    if group in (0xC, 0xD, 0xE):  # message waiting indication: discard / store (GSM-7) / store (UCS2)
        waiting = MessageWaiting(bool(dcs & 0x08), _WAITING_KINDS[dcs & 0x03], store=group != 0xC)
        return Coding(Alphabet.UCS2 if group == 0xE else Alphabet.GSM7, waiting=waiting)
    if group == 0xF:  # data coding / message class
        return Coding(Alphabet.EIGHT_BIT if dcs & 0x04 else Alphabet.GSM7, dcs & 0x03)
    return Coding(Alphabet.GSM7)  # 1000-1011: reserved coding groups
