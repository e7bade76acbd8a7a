"""The codec's value types: parts to send, and decoded SMS-DELIVER / SMS-SUBMIT / STATUS-REPORT."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from .alphabet import Alphabet


@dataclass(frozen=True, slots=True)
class SubmitPart:
    """One SMS-SUBMIT ready for AT+CMGS: hex includes the SMSC part ("00" = modem's default)."""

    hex: str
    tpdu_length: int  # the n of AT+CMGS=n: octets without the SMSC part
    reference: int | None  # concatenation reference, None for a single-part message
    seq: int
    total: int
    alphabet: Alphabet


@dataclass(frozen=True, slots=True)
class Concat:
    """TS 23.040 9.2.3.24.1 / .8: concatenated short message header."""

    reference: int
    total: int
    seq: int
    ref16: bool = False


@dataclass(frozen=True, slots=True)
class MessageWaiting:
    """TS 23.038 4: message waiting indication from DCS groups 1100/1101/1110."""

    active: bool
    kind: str  # "voicemail" | "fax" | "email" | "other"
    store: bool  # False for the "discard message" group


@dataclass(frozen=True, slots=True, kw_only=True)
class _Common:
    smsc: str | None = None
    alphabet: Alphabet = Alphabet.GSM7
    text: str = ""  # decoded text; for 8-bit data, the data as uppercase hex
    data: bytes = b""  # user data after the header: octets (8-bit, UCS2) or septets one per byte (GSM-7)
    udh: tuple[tuple[int, bytes], ...] = ()
    concat: Concat | None = None
    ports: tuple[int, int] | None = None  # (destination, originator) application ports
    national: tuple[int, int] = (0, 0)  # (locking, single-shift) national language ids
    message_class: int | None = None
    waiting: MessageWaiting | None = None
    compressed: bool = False
    pid: int = 0
    dcs: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver(_Common):
    """SMS-DELIVER (service centre -> phone): what a modem reads from +CMGR / +CMT."""

    sender: str
    timestamp: datetime
    sender_toa: int = 0x91
    more_messages: bool = False
    reply_path: bool = False
    status_report_indication: bool = False
    type: str = field(default="deliver", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit(_Common):
    """SMS-SUBMIT (phone -> service centre)."""

    recipient: str
    message_reference: int = 0
    recipient_toa: int = 0x81
    status_report_requested: bool = False
    validity: timedelta | datetime | bytes | None = None
    reject_duplicates: bool = False
    reply_path: bool = False
    type: str = field(default="submit", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport(_Common):
    """SMS-STATUS-REPORT: the fate of an earlier SMS-SUBMIT with the same message reference."""

    message_reference: int
    recipient: str
    scts: datetime
    discharge_time: datetime
    status: int  # TP-ST, TS 23.040 9.2.3.15
    recipient_toa: int = 0x91
    type: str = field(default="status-report", init=False)

    @property
    def delivered(self) -> bool:
        """Received by the recipient (0x00), or forwarded/replaced (0x01, 0x02)."""
        return self.status <= 0x02

    @property
    def final(self) -> bool:
        """No more reports will come: the SC has stopped trying (only 0x20-0x3F are temporary)."""
        return not 0x20 <= self.status <= 0x3F


Decoded = Deliver | Submit | StatusReport


def to_json(value: Any) -> Any:
    """A decoded message (or any codec value) as plain JSON types; see docs/pdu.md."""
    if isinstance(value, (Deliver, Submit, StatusReport, Concat, MessageWaiting, SubmitPart)):
        out = {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, StatusReport):
            out["delivered"] = value.delivered
            out["final"] = value.final
        if isinstance(value, (Deliver, Submit, StatusReport)):
            out["udh"] = [{"iei": iei, "data": data.hex().upper()} for iei, data in value.udh]
            out["national"] = {"locking": value.national[0], "single": value.national[1]}
            out["ports"] = (None if value.ports is None
                            else {"destination": value.ports[0], "originator": value.ports[1]})
        return out
    if isinstance(value, Alphabet):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    return value
