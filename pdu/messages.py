"""The codec's value types: parts to send, and decoded SMS-DELIVER / SMS-SUBMIT / STATUS-REPORT.

Decoded messages hold the octets as read (DCS, UDH, first octet); what those mean (class,
concatenation, ports, flags) is given by properties, so decoding does only the work asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, ClassVar

from .alphabet import Alphabet
from .dcs import MessageWaiting, decode_dcs
from .udh import Elements, concat_of, national_of, ports_of


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
    """Concatenated short message header (TS 23.040 9.2.3.24.1 / .8)."""

    reference: int
    total: int
    seq: int
    ref16: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class _Common:
    smsc: str | None = None
    alphabet: Alphabet = Alphabet.GSM7
    text: str = ""  # decoded text; for 8-bit data, the data as uppercase hex
    data: bytes = b""  # user data after the header: octets (8-bit, UCS2) or septets one per byte (GSM-7)
    udh: Elements = ()
    pid: int = 0
    dcs: int = 0
    first_octet: int = 0

    @property
    def concat(self) -> Concat | None:
        found = concat_of(self.udh)
        return None if found is None else Concat(*found)

    @property
    def ports(self) -> tuple[int, int] | None:
        """(destination, originator) application ports."""
        return ports_of(self.udh)

    @property
    def national(self) -> tuple[int, int]:
        """(locking, single-shift) national language ids; (0, 0) for the default tables."""
        return national_of(self.udh) if self.alphabet is Alphabet.GSM7 else (0, 0)

    @property
    def message_class(self) -> int | None:
        return decode_dcs(self.dcs).message_class

    @property
    def waiting(self) -> MessageWaiting | None:
        return decode_dcs(self.dcs).waiting

    @property
    def compressed(self) -> bool:
        return decode_dcs(self.dcs).compressed

    @property
    def reply_path(self) -> bool:
        return bool(self.first_octet & 0x80)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver(_Common):
    """SMS-DELIVER (service centre -> phone): what a modem reads from +CMGR / +CMT."""

    type: ClassVar[str] = "deliver"
    sender: str
    timestamp: datetime
    sender_toa: int = 0x91

    @property
    def more_messages(self) -> bool:
        return not self.first_octet & 0x04  # TP-MMS

    @property
    def status_report_indication(self) -> bool:
        return bool(self.first_octet & 0x20)


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit(_Common):
    """SMS-SUBMIT (phone -> service centre)."""

    type: ClassVar[str] = "submit"
    recipient: str
    message_reference: int = 0
    recipient_toa: int = 0x81
    validity: timedelta | datetime | bytes | None = None

    @property
    def status_report_requested(self) -> bool:
        return bool(self.first_octet & 0x20)

    @property
    def reject_duplicates(self) -> bool:
        return bool(self.first_octet & 0x04)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport(_Common):
    """SMS-STATUS-REPORT: the fate of an earlier SMS-SUBMIT with the same message reference."""

    type: ClassVar[str] = "status-report"
    message_reference: int
    recipient: str
    scts: datetime
    discharge_time: datetime
    status: int  # TP-ST, TS 23.040 9.2.3.15
    recipient_toa: int = 0x91

    @property
    def delivered(self) -> bool:
        """Received by the recipient (0x00), or forwarded/replaced (0x01, 0x02)."""
        return self.status <= 0x02

    @property
    def final(self) -> bool:
        """No more reports will come: the SC has stopped trying (only 0x20-0x3F are temporary)."""
        return not 0x20 <= self.status <= 0x3F


Decoded = Deliver | Submit | StatusReport

_DERIVED = {
    Deliver: ("more_messages", "status_report_indication"),
    Submit: ("status_report_requested", "reject_duplicates"),
    StatusReport: ("delivered", "final"),
}


def to_json(value: Any) -> Any:
    """A decoded message (or any codec value) as plain JSON types; the shape is in docs/pdu.md."""
    if isinstance(value, (Deliver, Submit, StatusReport)):
        out: dict[str, Any] = {"type": value.type}
        out.update((f.name, to_json(getattr(value, f.name))) for f in fields(value))
        for name in ("concat", "message_class", "waiting", "compressed", "reply_path",
                     *_DERIVED[type(value)]):
            out[name] = to_json(getattr(value, name))
        out["udh"] = [{"iei": iei, "data": data.hex().upper()} for iei, data in value.udh]
        out["national"] = {"locking": value.national[0], "single": value.national[1]}
        ports = value.ports
        out["ports"] = None if ports is None else {"destination": ports[0], "originator": ports[1]}
        return out
    if isinstance(value, (Concat, MessageWaiting, SubmitPart)):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
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
