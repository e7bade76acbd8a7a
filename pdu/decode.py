"""Decoding any PDU a modem hands us; malformed input raises PduError, nothing else (TS 23.040 9.2)."""

from __future__ import annotations

import string
from datetime import datetime, timedelta

from .alphabet import Alphabet
from .dcs import decode_dcs
from .errors import PduError
from .fields import decode_address_value, decode_digits, decode_relative_validity, decode_timestamp
from .gsm7 import DEFAULT_CHARSET, unpack_septets
from .messages import Decoded, Deliver, StatusReport, Submit
from .national import charset
from .udh import decode_udh, national_of

_HEX = frozenset(string.hexdigits)


class _Reader:
    """Bounds-checked cursor over the PDU octets; every read names the field it is for."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octet(self, what: str) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise PduError(f"PDU ends before {what}", offset=pos)
        self.pos = pos + 1
        return self.data[pos]

    def take(self, count: int, what: str) -> bytes:
        pos = self.pos
        end = pos + count
        if end > len(self.data):
            raise PduError(f"PDU ends inside {what}: needs {count} octets, {len(self.data) - pos} left",
                           offset=pos)
        self.pos = end
        return self.data[pos:end]

    def address(self, what: str) -> tuple[str, int]:
        pos = self.pos
        if pos + 2 > len(self.data):  # (messages built only on failure: this path is hot)
            self.octet(what + " length")
            self.octet(what + " type of address")
        semi, toa = self.data[pos], self.data[pos + 1]
        self.pos = pos + 2
        value = self.take((semi + 1) // 2, what)
        return decode_address_value(toa, value, semi), toa

    def timestamp(self, what: str) -> datetime:
        pos = self.pos
        return decode_timestamp(self.take(7, what), pos, what)


def _hex_to_bytes(hex_str: str) -> bytes:
    if not isinstance(hex_str, str):
        raise PduError(f"PDU must be a hex string, not {type(hex_str).__name__}")
    try:
        data = bytes.fromhex(hex_str)  # also skips whitespace between octets
    except ValueError:
        text = "".join(hex_str.split())
        for i, ch in enumerate(text):
            if ch not in _HEX:
                raise PduError(f"PDU has a non-hex character {ch!r} at hex digit {i}") from None
        if len(text) % 2:
            raise PduError(f"PDU has an odd number of hex digits ({len(text)})") from None
        data = bytes.fromhex(text)  # whitespace inside an octet
    if not data:
        raise PduError("PDU is empty")
    return data


def _smsc(r: _Reader) -> str | None:
    length = r.octet("SMSC length")
    if length == 0:
        return None
    toa = r.octet("SMSC type of address")
    value = r.take(length - 1, "SMSC address")
    digits = decode_digits(value, 2 * len(value))
    return "+" + digits if (toa >> 4) & 0x07 == 0x01 else digits


def _user_data(r: _Reader, dcs: int, has_udh: bool) -> dict:
    """Fields from TP-DCS, TP-UDL and TP-UD: alphabet, header, payload and text."""
    coding = decode_dcs(dcs)
    alphabet = coding.alphabet
    septets = alphabet is Alphabet.GSM7 and not coding.compressed
    udl_pos = r.pos
    udl = r.octet("TP-UDL")
    size = (udl * 7 + 7) // 8 if septets else udl
    start = r.pos
    if len(r.data) - start < size:
        says = f"{udl} septets ({size} octets)" if septets else f"{udl} octets"
        raise PduError(f"TP-UDL says {says} but only {len(r.data) - start} octets of user data follow",
                       offset=udl_pos)
    ud = r.take(size, "user data")
    header_len = 0
    udh: tuple = ()
    if has_udh:
        if not ud:
            raise PduError("TP-UDHI is set but the user data is empty", offset=start)
        header_len = ud[0] + 1
        if header_len > len(ud):
            raise PduError(f"UDH length {ud[0]} exceeds the user data ({len(ud)} octets)", offset=start)
        udh = decode_udh(ud[1:header_len], start + 1)
    if septets:
        fill = -(header_len * 8) % 7
        count = udl - (header_len * 8 + fill) // 7
        if count < 0:
            raise PduError(f"TP-UDL ({udl} septets) is shorter than the user data header", offset=udl_pos)
        data = unpack_septets(ud[header_len:] if header_len else ud, count, fill)
        text = charset(*national_of(udh)).decode(data) if udh else DEFAULT_CHARSET.decode(data)
    else:
        data = ud[header_len:]
        if coding.compressed:
            text = ""
        elif alphabet is Alphabet.UCS2:
            text = data.decode("utf-16-be", "replace")
        else:
            text = data.hex().upper()
    return {"alphabet": alphabet, "dcs": dcs, "udh": udh, "data": data, "text": text}


def _deliver(r: _Reader, first: int, smsc: str | None) -> Deliver:
    sender, toa = r.address("originator address")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    timestamp = r.timestamp("service centre timestamp")
    ud = _user_data(r, dcs, bool(first & 0x40))
    return Deliver(smsc=smsc, sender=sender, sender_toa=toa, timestamp=timestamp, pid=pid,
                   first_octet=first, **ud)


def _submit(r: _Reader, first: int, smsc: str | None) -> Submit:
    mr = r.octet("TP-MR")
    recipient, toa = r.address("destination address")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    vpf = (first >> 3) & 0x03
    validity: timedelta | object | None = None
    if vpf == 0x02:
        validity = decode_relative_validity(r.octet("TP-VP"))
    elif vpf == 0x03:
        validity = r.timestamp("TP-VP (absolute)")
    elif vpf == 0x01:
        validity = bytes(r.take(7, "TP-VP (enhanced)"))
    ud = _user_data(r, dcs, bool(first & 0x40))
    return Submit(smsc=smsc, recipient=recipient, recipient_toa=toa, message_reference=mr, pid=pid,
                  validity=validity, first_octet=first, **ud)


def _status_report(r: _Reader, first: int, smsc: str | None) -> StatusReport:
    mr = r.octet("TP-MR")
    recipient, toa = r.address("recipient address")
    scts = r.timestamp("service centre timestamp")
    discharge = r.timestamp("discharge time")
    status = r.octet("TP-ST")
    pid, dcs, ud = 0, 0, {}
    if r.pos < len(r.data):  # TP-PI and the optional fields (TS 23.040 9.2.3.27)
        try:
            pi = ext = r.octet("TP-PI")
            while ext & 0x80:
                ext = r.octet("TP-PI extension")
            if pi & 0x01:
                pid = r.octet("TP-PID")
            if pi & 0x02:
                dcs = r.octet("TP-DCS")
            if pi & 0x04:
                ud = _user_data(r, dcs, bool(first & 0x40))
        except PduError:
            # Optional trailing fields that do not parse must not lose the report itself.
            pid, dcs, ud = 0, 0, {}
    ud.setdefault("dcs", dcs)
    return StatusReport(smsc=smsc, message_reference=mr, recipient=recipient, recipient_toa=toa,
                        scts=scts, discharge_time=discharge, status=status, pid=pid,
                        first_octet=first, **ud)


def decode_pdu(hex_str: str, *, smsc: bool = True) -> Decoded:
    """Decode a PDU as read from a modem (with the SMSC part unless smsc=False).

    TP-MTI decides the type: 0 SMS-DELIVER, 1 SMS-SUBMIT, 2 SMS-STATUS-REPORT.
    """
    r = _Reader(_hex_to_bytes(hex_str))
    sc = _smsc(r) if smsc else None
    first = r.octet("first octet")
    mti = first & 0x03
    if mti == 0x00:
        return _deliver(r, first, sc)
    if mti == 0x01:
        return _submit(r, first, sc)
    if mti == 0x02:
        return _status_report(r, first, sc)
    raise PduError("TP-MTI 3 is reserved: not an SMS PDU", offset=r.pos - 1)
