"""The text of a ``+CUSD: <m>,<str>,<dcs>`` reply (TS 27.007 §7.15), by its data coding scheme.

Modems give GSM 7-bit text in one of two forms: as plain text in the TE character set, or (many
Huawei sticks, and any modem with ``AT+CSCS="HEX"``) as the hex of the packed septets. Which form
a vendor uses is profile data (`ModemProfile.ussd_packed_septets`); UCS2 always comes as hex.
"""

from __future__ import annotations

from enum import Enum

from pdu.gsm7 import DEFAULT_CHARSET, unpack_septets

_HEX = frozenset("0123456789ABCDEFabcdef")


class UssdAlphabet(Enum):
    GSM7 = "gsm7"
    EIGHT_BIT = "8bit"
    UCS2 = "ucs2"


def ussd_alphabet(dcs: int | None) -> UssdAlphabet:
    """The alphabet a cell-broadcast/USSD DCS names (TS 23.038 §5); GSM 7-bit when unknown."""
    if dcs is None or not 0 <= dcs <= 0xFF:
        return UssdAlphabet.GSM7
    group = dcs >> 4
    if dcs == 0x11:                       # UCS2 preceded by a language indication
        return UssdAlphabet.UCS2
    if group in (0x4, 0x5, 0x6, 0x7, 0x9):  # general data coding: bits 3..2 are the alphabet
        return {0: UssdAlphabet.GSM7, 1: UssdAlphabet.EIGHT_BIT,
                2: UssdAlphabet.UCS2}.get((dcs >> 2) & 0x03, UssdAlphabet.GSM7)
    if group == 0xF:
        return UssdAlphabet.EIGHT_BIT if dcs & 0x04 else UssdAlphabet.GSM7
    return UssdAlphabet.GSM7              # groups 0000-0011: language groups, 7-bit


def _is_hex(text: str) -> bool:
    return bool(text) and len(text) % 2 == 0 and _HEX.issuperset(text)


def unpack_gsm7_hex(text: str) -> str:
    """Hex of packed septets → text. When the last 7 bits only fill the last octet they are
    padding: CR by TS 23.038 §6.1.2.3.1, zeros (``@``) from many modems; both are dropped."""
    octets = bytes.fromhex(text)
    count = len(octets) * 8 // 7
    septets = unpack_septets(octets, count)
    if count % 8 == 0 and septets[-1:] in (b"\r", b"\x00"):
        septets = septets[:-1]
    return DEFAULT_CHARSET.decode(septets)


def decode_ussd_text(text: str, dcs: int | None, *, packed_septets: bool = False) -> str:
    """The reply text. UCS2 hex is decoded; GSM 7-bit hex when `packed_septets` (the vendor's
    form) and the text is hex; anything else is already text and is returned as it came."""
    alphabet = ussd_alphabet(dcs)
    try:
        if alphabet is UssdAlphabet.UCS2 and _is_hex(text) and len(text) % 4 == 0:
            return bytes.fromhex(text).decode("utf-16-be")
        if alphabet is UssdAlphabet.GSM7 and packed_septets and _is_hex(text):
            return unpack_gsm7_hex(text)
    except ValueError:
        pass
    return text
