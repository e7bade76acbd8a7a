"""TPDU fields shared by encoder and decoder: addresses, timestamps, validity, DCS, UDH (TS 23.040 9)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from .errors import PduError
from .gsm7 import DEFAULT_CHARSET, pack_septets, unpack_septets

# Semi-octets are stored low nibble first: swapping nibbles makes bytes.hex() read in order.
SWAP_NIBBLES = bytes(((b & 0x0F) << 4) | (b >> 4) for b in range(256))
_DIGITS_OUT = str.maketrans("abcdef", "*#abc ")  # semi-octet values 0xA-0xE (TS 23.040 9.1.2.3)
_DIGITS_IN = str.maketrans("*#", "ab")
_NUMBER = re.compile(r"\+?[0-9*#]+")

TOA_INTERNATIONAL = 0x91
TOA_UNKNOWN = 0x81
TOA_ALPHANUMERIC = 0xD0


# ---- addresses (TS 23.040 9.1.2.5) ----

def _number_digits(addr: str) -> tuple[str, int] | None:
    cleaned = addr.replace(" ", "").replace("-", "")
    if not _NUMBER.fullmatch(cleaned):
        return None
    if cleaned.startswith("+"):
        return cleaned[1:], TOA_INTERNATIONAL
    return cleaned, TOA_UNKNOWN


def _semi_octets(digits: str) -> bytes:
    digits = digits.translate(_DIGITS_IN)
    if len(digits) % 2:
        digits += "f"
    return bytes.fromhex(digits).translate(SWAP_NIBBLES)


def encode_address(addr: str, *, allow_alphanumeric: bool = True) -> bytes:
    """TP-OA/TP-DA/TP-RA: length (semi-octets), type of address, value."""
    parsed = _number_digits(addr)
    if parsed is not None:
        digits, toa = parsed
        if len(digits) > 20:
            raise PduError(f"address {addr!r} has {len(digits)} digits; at most 20 fit")
        return bytes((len(digits), toa)) + _semi_octets(digits)
    if not allow_alphanumeric:
        raise PduError(f"destination {addr!r} is not a phone number (digits, optional leading +)")
    if not addr:
        raise PduError("empty address")
    try:
        septets = DEFAULT_CHARSET.encode(addr)
    except UnicodeEncodeError as exc:
        raise PduError(f"alphanumeric address {addr!r}: {addr[exc.start]!r} is not in GSM-7") from None
    if len(septets) > 11:
        raise PduError(f"alphanumeric address {addr!r} is {len(septets)} septets; at most 11 fit")
    value = pack_septets(septets)
    return bytes(((len(septets) * 7 + 3) // 4, TOA_ALPHANUMERIC)) + value


def encode_smsc(addr: str | None) -> bytes:
    """The SMSC information that precedes the TPDU in AT+CMGS: length in octets, TOA, value."""
    if not addr:
        return b"\x00"
    parsed = _number_digits(addr)
    if parsed is None:
        raise PduError(f"SMSC address {addr!r} is not a phone number")
    digits, toa = parsed
    value = _semi_octets(digits)
    if len(value) > 10:
        raise PduError(f"SMSC address {addr!r} is too long")
    return bytes((len(value) + 1, toa)) + value


def decode_digits(value: bytes, count: int) -> str:
    digits = value.translate(SWAP_NIBBLES).hex()[:count]
    if digits.isdigit():
        return digits
    return digits.translate(_DIGITS_OUT).replace(" ", "")


def decode_address_value(toa: int, value: bytes, semi_octets: int) -> str:
    if (toa >> 4) & 0x07 == 0x05:  # alphanumeric, GSM-7 packed (TS 23.040 9.1.2.5)
        septets = unpack_septets(value, semi_octets * 4 // 7)
        # The length counts useful semi-octets. An SMSC that counts whole octets instead
        # (14 for a 7-character name) makes the seven zero fill bits of the last octet look
        # like one more septet, an "@": when the septets end exactly on that octet boundary
        # and the last one is zero, it is padding.
        if septets and septets[-1] == 0 and semi_octets % 2 == 0 and (semi_octets * 4) % 7 == 0:
            septets = septets[:-1]
        return DEFAULT_CHARSET.decode(septets)
    digits = decode_digits(value, semi_octets)
    return "+" + digits if (toa >> 4) & 0x07 == 0x01 else digits


# ---- timestamps (TS 23.040 9.2.3.11) ----

def encode_timestamp(when: datetime) -> bytes:
    if when.tzinfo is None:
        when = when.astimezone()
    offset = when.utcoffset() or timedelta(0)
    quarters = round(offset.total_seconds() / 900)
    if abs(quarters) > 79:
        raise PduError(f"time zone offset {offset} does not fit the SCTS field")
    digits = "%02d%02d%02d%02d%02d%02d%02d" % (when.year % 100, when.month, when.day, when.hour,
                                              when.minute, when.second, abs(quarters))
    octets = bytearray(bytes.fromhex(digits).translate(SWAP_NIBBLES))
    if quarters < 0:
        octets[6] |= 0x08
    return bytes(octets)


# Semi-octet BCD value of each octet (low nibble is the tens digit), -1 if a nibble is not decimal.
_BCD = [((b & 0x0F) * 10 + (b >> 4)) if (b & 0x0F) < 10 and (b >> 4) < 10 else -1 for b in range(256)]


@lru_cache(maxsize=None)
def _zone(quarters: int) -> timezone:
    return timezone(timedelta(minutes=15 * quarters))


def decode_timestamp(octets: bytes, offset: int, what: str = "timestamp") -> datetime:
    year, month, day, hour, minute, second = (_BCD[o] for o in octets[:6])
    tz = octets[6]
    units, tens = tz >> 4, tz & 0x07  # bit 3 of the octet is the sign
    if min(year, month, day, hour, minute, second) < 0 or units > 9:
        raise PduError(f"{what} has non-decimal digits ({octets.hex().upper()})", offset=offset)
    quarters = tens * 10 + units
    year += 1900 if year >= 90 else 2000  # the field has two digits; 90-99 are last century
    try:
        return datetime(year, month, day, hour, minute, second,
                        tzinfo=_zone(-quarters if tz & 0x08 else quarters))
    except ValueError as exc:
        raise PduError(f"{what} is not a valid date/time ({exc})", offset=offset) from None


# ---- validity period (TS 23.040 9.2.3.12.1) ----

def encode_relative_validity(period: timedelta) -> int:
    """The smallest TP-VP octet whose period is at least `period` (capped at 63 weeks)."""
    minutes = period.total_seconds() / 60
    if minutes <= 0:
        raise PduError(f"validity period must be positive, not {period}")
    if minutes <= 720:
        return max(0, math.ceil(minutes / 5) - 1)
    if minutes <= 1440:
        return 143 + math.ceil((minutes - 720) / 30)
    days = math.ceil(minutes / 1440)
    if days <= 30:
        return 166 + days
    return min(255, 192 + math.ceil(days / 7))


def decode_relative_validity(vp: int) -> timedelta:
    if vp <= 143:
        return timedelta(minutes=5 * (vp + 1))
    if vp <= 167:
        return timedelta(hours=12, minutes=30 * (vp - 143))
    if vp <= 196:
        return timedelta(days=vp - 166)
    return timedelta(weeks=vp - 192)
