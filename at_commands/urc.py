"""Unsolicited result codes: which lines a modem may send at any time, and how to read them.

A URC is known by its *name*: the text before the colon (``+CMTI``, ``^RSSI``) or the whole line for
bare words (``RING``, ``Call Ready``). The table says whether a PDU line follows it (TS 27.005
§3.4.1: ``+CMT``, ``+CDS``, ``+CBM`` in PDU mode are followed by the PDU on its own line).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class UrcKind(Enum):
    """What a URC is about; the driver routes on this, never on the raw name."""

    NEW_MESSAGE_STORED = "new-message-stored"   # +CMTI: "SM",3
    NEW_MESSAGE = "new-message"                 # +CMT: ,23 <pdu>
    STATUS_REPORT = "status-report"             # +CDS: 25 <pdu>
    STATUS_REPORT_STORED = "status-report-stored"  # +CDSI: "SR",2
    BROADCAST = "broadcast"                     # +CBM: 88 <pdu>
    USSD = "ussd"                               # +CUSD: 0,"...",15
    REGISTRATION = "registration"               # +CREG: 1 / +CGREG / +CEREG
    SIGNAL = "signal"                           # ^RSSI:17, +CSQ (some modems), +CIEV
    CALL = "call"                               # RING, +CRING, +CLIP, NO CARRIER
    BOOT = "boot"                               # RDY, ^BOOT, +PBREADY, Call Ready: modem (re)started
    SIM = "sim"                                 # +CPIN: READY outside a command, ^SIMST
    VENDOR = "vendor"                           # ^MODE, +WIND, +QIND ...: logged, otherwise ignored


@dataclass(frozen=True, slots=True)
class UrcSpec:
    name: str
    kind: UrcKind
    pdu_follows: bool = False


def _specs(*specs: UrcSpec) -> dict[str, UrcSpec]:
    return {spec.name.upper(): spec for spec in specs}


# Every URC we recognise. Profiles may add names (boot noise of their own).
URC_TABLE: dict[str, UrcSpec] = _specs(
    UrcSpec("+CMTI", UrcKind.NEW_MESSAGE_STORED),
    UrcSpec("+CMT", UrcKind.NEW_MESSAGE, pdu_follows=True),
    UrcSpec("+CDS", UrcKind.STATUS_REPORT, pdu_follows=True),
    UrcSpec("+CDSI", UrcKind.STATUS_REPORT_STORED),
    UrcSpec("+CBM", UrcKind.BROADCAST, pdu_follows=True),
    UrcSpec("+CBMI", UrcKind.VENDOR),
    UrcSpec("+CUSD", UrcKind.USSD),
    UrcSpec("+CREG", UrcKind.REGISTRATION),
    UrcSpec("+CGREG", UrcKind.REGISTRATION),
    UrcSpec("+CEREG", UrcKind.REGISTRATION),
    UrcSpec("^RSSI", UrcKind.SIGNAL),
    UrcSpec("^HCSQ", UrcKind.SIGNAL),
    UrcSpec("+CIEV", UrcKind.SIGNAL),
    UrcSpec("RING", UrcKind.CALL),
    UrcSpec("+CRING", UrcKind.CALL),
    UrcSpec("+CLIP", UrcKind.CALL),
    UrcSpec("^CEND", UrcKind.CALL),
    UrcSpec("^ORIG", UrcKind.CALL),
    UrcSpec("^CONF", UrcKind.CALL),
    UrcSpec("^CONN", UrcKind.CALL),
    UrcSpec("RDY", UrcKind.BOOT),
    UrcSpec("START", UrcKind.BOOT),
    UrcSpec("^BOOT", UrcKind.BOOT),
    UrcSpec("+PBREADY", UrcKind.BOOT),
    UrcSpec("PB DONE", UrcKind.BOOT),
    UrcSpec("CALL READY", UrcKind.BOOT),
    UrcSpec("SMS READY", UrcKind.BOOT),
    UrcSpec("+CFUN", UrcKind.BOOT),
    UrcSpec("+QUSIM", UrcKind.BOOT),
    UrcSpec("^SYSSTART", UrcKind.BOOT),
    UrcSpec("+CPIN", UrcKind.SIM),
    UrcSpec("^SIMST", UrcKind.SIM),
    UrcSpec("+ZUSIMR", UrcKind.SIM),
    UrcSpec("^MODE", UrcKind.VENDOR),
    UrcSpec("^SRVST", UrcKind.VENDOR),
    UrcSpec("^DSFLOWRPT", UrcKind.VENDOR),
    UrcSpec("^STIN", UrcKind.VENDOR),
    UrcSpec("+WIND", UrcKind.VENDOR),
    UrcSpec("+QIND", UrcKind.VENDOR),
    UrcSpec("+ZDONR", UrcKind.VENDOR),
    UrcSpec("+ZPASR", UrcKind.VENDOR),
    UrcSpec("+ZEND", UrcKind.VENDOR),
    UrcSpec("+STIN", UrcKind.VENDOR),
    UrcSpec("NORMAL POWER DOWN", UrcKind.VENDOR),
    UrcSpec("UNDER-VOLTAGE WARNNING", UrcKind.VENDOR),
    UrcSpec("UNDER-VOLTAGE POWER DOWN", UrcKind.VENDOR),
)


def urc_name(line: str) -> str:
    """The name of a line: the text before the first colon, or the whole line, upper-cased."""
    head, colon, _ = line.partition(":")
    return (head if colon else line).strip().upper()


def split_fields(text: str) -> tuple[str, ...]:
    """Split ``a,"b,c",d`` into ``('a', 'b,c', 'd')``: commas inside quotes belong to the field."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current or fields or text.strip():
        fields.append("".join(current).strip())
    return tuple(fields)


def fields_of(line: str) -> tuple[str, ...]:
    """The comma-separated fields after the colon of ``+NAME: a,b`` (empty for bare words)."""
    _, colon, rest = line.partition(":")
    return split_fields(rest) if colon else ()


def first_int(fields: tuple[str, ...], position: int) -> int | None:
    """Field `position` as an int, or None when absent or not a number."""
    try:
        return int(fields[position])
    except (IndexError, ValueError):
        return None


def bare_pdu(line: str) -> str:
    """A PDU line without the blanks or the pair of quotes some modems put around it."""
    text = line.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text
