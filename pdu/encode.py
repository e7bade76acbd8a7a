"""Encoding SMS-SUBMIT (to send), and SMS-DELIVER / STATUS-REPORT (for the simulator) (TS 23.040 9.2.2)."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

from .alphabet import Alphabet, Encoding
from .dcs import encode_dcs
from .errors import PduError
from .fields import encode_address, encode_relative_validity, encode_smsc, encode_timestamp
from .gsm7 import pack_septets
from .messages import SubmitPart
from .split import PORTS16_IE, Plan, plan_message
from .udh import IEI_CONCAT8, IEI_CONCAT16, IEI_LOCKING_SHIFT, IEI_PORTS16, IEI_SINGLE_SHIFT, encode_udh

DEFAULT_SMSC = "+8613800100500"


# Consecutive messages get consecutive references (from a random start), so two long messages
# to one phone do not share a reference by chance.
_references = itertools.count(random.randrange(0x10000))


def _new_reference(ref16: bool) -> int:
    return next(_references) % (0x10000 if ref16 else 0x100)


def _check_reference(reference: int | None, ref16: bool) -> int:
    if reference is None:
        return _new_reference(ref16)
    limit = 0xFFFF if ref16 else 0xFF
    if not 0 <= reference <= limit:
        raise PduError(f"concatenation reference {reference} out of range 0-{limit}")
    return reference


def _ports_ie(ports: tuple[int, int] | None) -> list[tuple[int, bytes]]:
    if ports is None:
        return []
    dest, src = ports
    if not (0 <= dest <= 0xFFFF and 0 <= src <= 0xFFFF):
        raise PduError(f"application ports {ports} out of range 0-65535")
    return [(IEI_PORTS16, dest.to_bytes(2, "big") + src.to_bytes(2, "big"))]


_OCTET = [bytes((i,)) for i in range(256)]


def _user_data(plan: Plan, reference: int, ref16: bool,
               ports: list[tuple[int, bytes]]) -> list[tuple[bytes, ...]]:
    """TP-UDL and TP-UD of every part, as pieces to join: UDL, header (concat, national shifts,
    ports, with this part's seq octet spliced in), then the payload."""
    total = len(plan.payloads)
    ies: list[tuple[int, bytes]] = []
    if total > 1:  # concatenation first, so the seq octet sits at a fixed place (see below)
        if ref16:
            ies.append((IEI_CONCAT16, bytes((reference >> 8, reference & 0xFF, total, 1))))
        else:
            ies.append((IEI_CONCAT8, bytes((reference, total, 1))))
    enc: Encoding = plan.encoding
    if enc.locking:
        ies.append((IEI_LOCKING_SHIFT, _OCTET[enc.locking]))
    if enc.single:
        ies.append((IEI_SINGLE_SHIFT, _OCTET[enc.single]))
    ies.extend(ports)
    udh = encode_udh(ies)
    seq_at = 6 if ref16 else 5  # UDHL, IEI, length, reference (1 or 2), total, *seq*
    before, after = (udh[:seq_at], udh[seq_at + 1:]) if total > 1 else (udh, b"")
    gsm7 = plan.alphabet is Alphabet.GSM7
    fill = -(len(udh) * 8) % 7  # GSM-7 text starts on a septet boundary (TS 23.040 9.2.3.24)
    header_units = (len(udh) * 8 + fill) // 7 if gsm7 else len(udh)
    out = []
    for seq, payload in enumerate(plan.payloads, 1):
        body = pack_septets(payload, fill) if gsm7 else payload
        out.append((_OCTET[header_units + len(payload)], before, _OCTET[seq] if total > 1 else b"",
                    after, body))
    return out


def _plan(text: str | bytes, alphabet, ref16: bool, ports) -> Plan:
    return plan_message(text, alphabet=alphabet, ref16=ref16,
                        extra_udh=PORTS16_IE if ports is not None else 0)


def encode_submit(to: str, text: str | bytes, *, alphabet: Alphabet | str | None = None,
                  reference: int | None = None, ref16: bool = False, status_report: bool = False,
                  validity: timedelta | datetime | None = None, message_class: int | None = None,
                  smsc: str | None = None, message_reference: int = 0,
                  ports: tuple[int, int] | None = None,
                  reject_duplicates: bool = False) -> list[SubmitPart]:
    """SMS-SUBMIT PDUs for a message, one per part, ready for AT+CMGS=<tpdu_length>."""
    plan = _plan(text, alphabet, ref16, ports)
    total = len(plan.payloads)
    ref = _check_reference(reference, ref16) if total > 1 else None
    port_ies = _ports_ie(ports)
    smsc_octets = encode_smsc(smsc)
    destination = encode_address(to, allow_alphanumeric=False)
    dcs = encode_dcs(plan.alphabet, message_class)
    first = 0x01 | (0x04 if reject_duplicates else 0) | (0x20 if status_report else 0)
    if total > 1 or plan.extra_udh:
        first |= 0x40  # TP-UDHI
    if validity is None:
        vp = b""
    elif isinstance(validity, timedelta):
        first |= 0x10  # TP-VPF = relative
        vp = bytes((encode_relative_validity(validity),))
    elif isinstance(validity, datetime):
        first |= 0x18  # TP-VPF = absolute
        vp = encode_timestamp(validity)
    else:
        raise PduError(f"validity must be a timedelta or datetime, not {type(validity).__name__}")
    if not 0 <= message_reference <= 0xFF:
        raise PduError(f"message reference {message_reference} out of range 0-255")
    after_mr = destination + bytes((0x00, dcs)) + vp  # TP-DA, TP-PID, TP-DCS, TP-VP
    parts = []
    for index, pieces in enumerate(_user_data(plan, ref or 0, ref16, port_ies)):
        octets = b"".join((smsc_octets, _OCTET[first], _OCTET[(message_reference + index) & 0xFF],
                           after_mr, *pieces))
        parts.append(SubmitPart(octets.hex().upper(), len(octets) - len(smsc_octets), ref,
                                index + 1, total, plan.alphabet))
    return parts


def encode_deliver(sender: str, text: str | bytes, *, timestamp: datetime | None = None,
                   alphabet: Alphabet | str | None = None, reference: int | None = None,
                   ref16: bool = False, smsc: str | None = DEFAULT_SMSC,
                   message_class: int | None = None, ports: tuple[int, int] | None = None,
                   status_report_indication: bool = False) -> list[str]:
    """SMS-DELIVER PDUs (hex with the SMSC part), one per part, as a modem would read them."""
    plan = _plan(text, alphabet, ref16, ports)
    ref = _check_reference(reference, ref16) if len(plan.payloads) > 1 else 0
    port_ies = _ports_ie(ports)
    head = encode_smsc(smsc)
    originator = encode_address(sender)
    scts = encode_timestamp(timestamp or datetime.now().astimezone())
    dcs = encode_dcs(plan.alphabet, message_class)
    first = 0x04 | (0x20 if status_report_indication else 0)  # TP-MMS: no more messages waiting
    if len(plan.payloads) > 1 or plan.extra_udh:
        first |= 0x40
    before_udl = head + bytes((first,)) + originator + bytes((0x00, dcs)) + scts
    return [b"".join((before_udl, *pieces)).hex().upper()
            for pieces in _user_data(plan, ref, ref16, port_ies)]


def encode_status_report(message_reference: int, recipient: str, *, status: int = 0,
                         scts: datetime | None = None, discharge_time: datetime | None = None,
                         smsc: str | None = DEFAULT_SMSC) -> str:
    """An SMS-STATUS-REPORT PDU (hex with the SMSC part) for the simulator's network."""
    if not 0 <= message_reference <= 0xFF:
        raise PduError(f"message reference {message_reference} out of range 0-255")
    if not 0 <= status <= 0xFF:
        raise PduError(f"status {status} out of range 0-255")
    now = datetime.now().astimezone()
    scts = scts or now
    discharge_time = discharge_time or scts
    tpdu = (bytes((0x06, message_reference)) + encode_address(recipient)
            + encode_timestamp(scts) + encode_timestamp(discharge_time) + bytes((status,)))
    return (encode_smsc(smsc) + tpdu).hex().upper()
