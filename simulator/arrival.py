"""New messages and status reports reaching a simulated modem: stored or shown per +CNMI.

TS 27.005 3.4.1: `<mt>` routes an SMS-DELIVER to a store with a `+CMTI` index notice or to the
client directly as `+CMT`; `<ds>` does the same for status reports (`+CDSI` / `+CDS`). Under
`AT+CSMS=1` a `+CMT`/`+CDS` must be acknowledged with `AT+CNMA` (3.4.4): until then no other one
is shown, and when none comes the network gets an error and delivers the message again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pdu
from simulator.faults import Fault
from simulator.modem import VirtualModem
from simulator.network import MessageStatus, StoredMessage
from simulator.sms_commands import _stamp, _text_of


@dataclass(slots=True)
class PendingAck:
    """A +CMT/+CDS shown under AT+CSMS=1, waiting for AT+CNMA."""

    on_missing: Callable[[], None] | None  # what the network does on RP-ERROR / no answer
    timer: asyncio.TimerHandle  # the modem's wait for AT+CNMA


def expect_ack(modem: VirtualModem, on_missing: Callable[[], None] | None) -> None:
    """A +CMT/+CDS went out under AT+CSMS=1: wait for AT+CNMA, else `on_missing`."""
    timer = asyncio.get_running_loop().call_later(modem.ack_timeout, _ack_timed_out, modem)
    modem.awaiting_ack = PendingAck(on_missing, timer)


def drop_ack(modem: VirtualModem, *, acknowledged: bool) -> bool:
    """End the wait for AT+CNMA: RP-ACK (`acknowledged`) or RP-ERROR to the network."""
    pending, modem.awaiting_ack = modem.awaiting_ack, None
    if pending is None:
        return False
    pending.timer.cancel()
    if not acknowledged and pending.on_missing:
        pending.on_missing()
    modem.network.retry_pending(modem.sim.msisdn)  # the next +CMT may be shown now
    return True


def _ack_timed_out(modem: VirtualModem) -> None:
    # TS 27.005 3.4.4: without +CNMA in time the ME answers the network with an error and
    # turns routing to the TE off (<mt> and <ds> of +CNMI to zero).
    mode, _, bm, _, bfr = modem.settings.cnmi
    modem.settings.cnmi = (mode, 0, bm, 0, bfr)
    modem.log.info("no AT+CNMA in %.1f s: +CNMI routing off, the network will deliver again",
                   modem.ack_timeout)
    drop_ack(modem, acknowledged=False)


def receive_sms(modem: VirtualModem, deliver_pdu: str) -> bool:
    """An SMS-DELIVER from the network; False when the modem cannot take it now."""
    if not (modem.connected and modem.sim_present and modem.registered) or modem.hung:
        return False
    decoded = pdu.decode_pdu(deliver_pdu)
    mode, mt = modem.settings.cnmi[:2]
    direct = mode != 0 and (mt == 2 and decoded.message_class != 2
                            or mt == 3 and decoded.message_class == 3)
    if direct:
        if modem.awaiting_ack is not None:
            return False  # the previous +CMT is not acknowledged yet: the network waits
        modem.urc(_arrival_lines(modem, "+CMT", deliver_pdu, decoded))
        if modem.settings.csms == 1:
            expect_ack(modem, lambda: modem.network.redeliver_later(modem.sim.msisdn,
                                                                   deliver_pdu))
        return True
    memory = modem.cpms[2]
    index = modem.stores[memory].store(StoredMessage(MessageStatus.REC_UNREAD, deliver_pdu))
    if index is None:
        return False
    if mode != 0 and mt in (1, 2, 3):
        modem.urc(f'+CMTI: "{memory}",{index}')
    return True


def _arrival_lines(modem: VirtualModem, prefix: str, raw: str, decoded: Any) -> str:
    if modem.settings.cmgf == 0:
        length = len(raw) // 2 - 1 - int(raw[:2], 16)
        alpha = "," if prefix == "+CMT" else ""  # +CMT: [<alpha>],<length>; +CDS: <length>
        return f"{prefix}: {alpha}{length}\r\n{modem.personality.pdu_line.format(pdu=raw)}"
    if decoded.type == "status-report":
        return (f'{prefix}: 6,{decoded.message_reference},"{decoded.recipient}",145,'
                f'"{_stamp(decoded.scts)}","{_stamp(decoded.discharge_time)}",{decoded.status}')
    return (f'{prefix}: "{decoded.sender}",,"{_stamp(decoded.timestamp)}"\r\n'
            f"{_text_of(modem, decoded)}")


def receive_status_report(modem: VirtualModem, report_pdu: str) -> str:
    """A status report: +CDS (shown) or +CDSI (stored) per the <ds> of +CNMI. Returns what
    became of it: "shown", "stored" or "dropped" (the network logs it).

    A report that nobody could read as ``+CDS`` (the modem hangs after the PDU it reports on,
    so its ``+CMGS`` answer was lost; or no client has the port open: the daemon was killed)
    waits in the report store for the next client's sweep, as real modems keep it."""
    if Fault.NO_STATUS_REPORT in modem.faults or not modem.connected or not modem.sim_present:
        return "dropped"
    mode, ds = modem.settings.cnmi[0], modem.settings.cnmi[3]
    if mode == 0 or ds == 0:
        return "dropped"
    if modem.hung or not modem.client_attached:
        stored = modem.stores[modem.cpms[2]].store(
            StoredMessage(MessageStatus.REC_UNREAD, report_pdu))
        return "dropped" if stored is None else "stored"
    decoded = pdu.decode_pdu(report_pdu)
    if ds == 1 and modem.awaiting_ack is None:
        modem.urc(_arrival_lines(modem, "+CDS", report_pdu, decoded))
        if modem.settings.csms == 1:
            expect_ack(modem, None)  # a report the client missed is not sent again
        return "shown"
    # ds=2, or a +CDS would overtake an unacknowledged +CMT: keep it in the store.
    memory = modem.cpms[2]
    index = modem.stores[memory].store(StoredMessage(MessageStatus.REC_UNREAD, report_pdu))
    if index is None:
        return "dropped"
    modem.urc(f'+CDSI: "{memory}",{index}')
    return "shown"
