"""SMS commands of a simulated modem (TS 27.005), in PDU and text mode, and SMS arrival.

PDUs are encoded and decoded with our `pdu` package only; this module moves them between the
modem's message stores, the client and the virtual network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pdu
from simulator.commands import TABLE, _int
from simulator.faults import Fault
from simulator.at_syntax import Form, Reply, cms
from simulator.modem import VirtualModem
from simulator.network import TEXT_STATUS, MessageStatus, MessageStore, StoredMessage

command = TABLE.command
_STAT_BY_TEXT = {text: status for status, text in TEXT_STATUS.items()}


# -- settings ------------------------------------------------------------------------------
@command("+CMGF")
def cmgf(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return [f"+CMGF: {modem.settings.cmgf}"]
    if form is Form.TEST:
        return ["+CMGF: (0,1)"]
    modem.settings.cmgf = _int(args[0] or "0", range(2))
    return None


@command("+CSCA", sim="cms")
def csca(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return [f'+CSCA: "{modem.csca}",{145 if modem.csca.startswith("+") else 129}']
    if form is Form.SET:
        if not args[0]:
            raise cms(304)
        modem.csca = args[0]
    return None


@command("+CSMS")
def csms(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return [f"+CSMS: {modem.settings.csms},1,1,1"]
    if form is Form.TEST:
        return ["+CSMS: (0,1)"]
    modem.settings.csms = _int(args[0], range(2))
    return ["+CSMS: 1,1,1"]


@command("+CSMP")
def csmp(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return ["+CSMP: " + ",".join(map(str, modem.settings.csmp))]
    if form is Form.SET:
        values = [int(a) if a else old for a, old in zip(args + [""] * 4, modem.settings.csmp)]
        modem.settings.csmp = tuple(values[:4])  # type: ignore[assignment]
    return None


def _switch(name: str, attribute: str, allowed: range):
    def handler(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
        if form is Form.READ:
            return [f"{name}: {getattr(modem.settings, attribute)}"]
        if form is Form.TEST:
            return [f"{name}: ({allowed.start}-{allowed.stop - 1})"]
        setattr(modem.settings, attribute, _int(args[0] if args and args[0] else "0", allowed))
        return None
    return handler


command("+CSDH")(_switch("+CSDH", "csdh", range(2)))
command("+CMMS")(_switch("+CMMS", "cmms", range(3)))


@command("+CNMI")
def cnmi(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.READ:
        return ["+CNMI: " + ",".join(map(str, modem.settings.cnmi))]
    if form is Form.TEST:
        return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
    limits = (range(4), range(4), range(4), range(3), range(2))
    values = list(modem.settings.cnmi)
    for position, text in enumerate(args[:5]):
        if text:
            values[position] = _int(text, limits[position])
    modem.settings.cnmi = tuple(values)  # type: ignore[assignment]
    return None


@command("+CNMA")
def cnma(modem: VirtualModem, form: Form, args: list[str]) -> Reply | list[str] | None:
    """TS 27.005 3.4.4: acknowledge the +CMT/+CDS shown under AT+CSMS=1 (n=2: RP-ERROR)."""
    if form is Form.TEST:
        return ["+CNMA: (0-2)"] if modem.settings.cmgf == 0 else None
    if form is Form.READ or (form is Form.SET and modem.settings.cmgf == 1):
        raise cms(302)
    reply = _int(args[0] or "0", range(3)) if form is Form.SET else 0
    if modem.awaiting_ack is None:
        if modem.settings.csms == 1:
            raise cms(340)  # no +CNMA acknowledgement expected
        return None  # phase 2 (AT+CSMS=0): nothing to acknowledge, accepted as modems do
    length = _int(args[1], range(0, 177)) if len(args) > 1 and args[1] else 0
    if length:  # an RP-ACK/RP-ERROR TPDU follows the prompt; the network does not need it
        return Reply(prompt=lambda raw: _acknowledge(modem, reply != 2))
    return _acknowledge(modem, reply != 2)


def _acknowledge(modem: VirtualModem, positive: bool) -> Reply:
    from simulator.arrival import drop_ack  # arrival imports this module
    if not drop_ack(modem, acknowledged=positive):
        raise cms(340)
    return Reply()


# -- stores --------------------------------------------------------------------------------
@command("+CPMS", sim="cms")
def cpms(modem: VirtualModem, form: Form, args: list[str]) -> list[str]:
    names = list(modem.personality.stores)
    if form is Form.TEST:
        choice = "(" + ",".join(f'"{n}"' for n in names) + ")"
        return [f"+CPMS: {choice},{choice},{choice}"]
    if form is Form.SET:
        wanted = [a.upper() for a in args[:3] if a]
        if not wanted or any(name not in modem.stores for name in wanted):
            raise cms(302)
        modem.cpms[:len(wanted)] = wanted
        return ["+CPMS: " + ",".join(_usage(modem.stores[n]) for n in modem.cpms)]
    return ["+CPMS: " + ",".join(f'"{n}",{_usage(modem.stores[n])}' for n in modem.cpms)]


def _usage(store: MessageStore) -> str:
    return f"{store.used},{store.capacity}"


def _stamp(when: dt.datetime) -> str:
    quarters = int((when.utcoffset() or dt.timedelta()).total_seconds() // 900)
    return when.strftime("%y/%m/%d,%H:%M:%S") + f"{quarters:+03d}"


def _text_of(modem: VirtualModem, decoded: Any) -> str:
    """Text-mode rendering: UCS2 and 8-bit data as hex (TS 27.005 3.1), else per +CSCS."""
    if decoded.alphabet is pdu.Alphabet.UCS2:
        return decoded.text.encode("utf-16-be", "surrogatepass").hex().upper()
    if decoded.alphabet is pdu.Alphabet.EIGHT_BIT:
        return decoded.text
    if modem.settings.cscs == "UCS2":
        return decoded.text.encode("utf-16-be", "surrogatepass").hex().upper()
    return decoded.text


def _listing(modem: VirtualModem, prefix: str, index: int | None,
             message: StoredMessage) -> list[str]:
    head = f"{prefix}: " + (f"{index}," if index is not None else "")
    if modem.settings.cmgf == 0:
        return [f"{head}{int(message.status)},,{message.tpdu_length}",
                modem.personality.pdu_line.format(pdu=message.pdu)]
    decoded = pdu.decode_pdu(message.pdu)
    status = f'"{TEXT_STATUS[message.status]}"'
    if decoded.type == "status-report":
        return [f'{head}{status},6,{decoded.message_reference},"{decoded.recipient}",145,'
                f'"{_stamp(decoded.scts)}","{_stamp(decoded.discharge_time)}",{decoded.status}']
    if decoded.type == "deliver":
        return [f'{head}{status},"{decoded.sender}",,"{_stamp(decoded.timestamp)}"',
                _text_of(modem, decoded)]
    return [f'{head}{status},"{decoded.recipient}",,', _text_of(modem, decoded)]


def _mark_read(message: StoredMessage) -> None:
    if message.status is MessageStatus.REC_UNREAD:
        message.status = MessageStatus.REC_READ


@command("+CMGL", sim="cms")
def cmgl(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    text_mode = modem.settings.cmgf == 1
    if form is Form.TEST:
        if text_mode:
            return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
        return ["+CMGL: (0-4)"]
    wanted = (args[0] if args and args[0] else ("REC UNREAD" if text_mode else "0")).upper()
    if text_mode:
        statuses = set(MessageStatus) if wanted == "ALL" else {_STAT_BY_TEXT.get(wanted)}
        if None in statuses:
            raise cms(305)
    else:
        number = _int(wanted, range(5)) if wanted.isdigit() else -1
        if number < 0:
            raise cms(304)
        statuses = set(MessageStatus) if number == 4 else {MessageStatus(number)}
    store = modem.stores[modem.cpms[0]]
    lines: list[str] = []
    for index in sorted(store.slots):
        message = store.slots[index]
        if message.status in statuses:
            lines += _listing(modem, "+CMGL", index, message)
            _mark_read(message)
    return lines


def _slot(modem: VirtualModem, store: MessageStore, text: str) -> int:
    index = int(text)
    if not 0 < index <= store.capacity:
        raise cms(321)
    return index


@command("+CMGR", sim="cms")
def cmgr(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    if form is Form.TEST:
        return None
    if form is not Form.SET:
        raise cms(302)
    store = modem.stores[modem.cpms[0]]
    message = store.slots.get(_slot(modem, store, args[0]))
    if message is None:
        return None  # an empty slot: OK with nothing, as SIM800 and Quectel answer
    lines = _listing(modem, "+CMGR", None, message)
    _mark_read(message)
    return lines


_DELETE_FLAGS = {
    1: {MessageStatus.REC_READ},
    2: {MessageStatus.REC_READ, MessageStatus.STO_SENT},
    3: {MessageStatus.REC_READ, MessageStatus.STO_SENT, MessageStatus.STO_UNSENT},
    4: set(MessageStatus),
}


@command("+CMGD", sim="cms")
def cmgd(modem: VirtualModem, form: Form, args: list[str]) -> list[str] | None:
    store = modem.stores[modem.cpms[0]]
    if form is Form.TEST:
        return [f"+CMGD: ({','.join(map(str, sorted(store.slots)))}),(0-4)"]
    flag = _int(args[1], range(5)) if len(args) > 1 and args[1] else 0
    if flag == 0:
        store.slots.pop(_slot(modem, store, args[0]), None)
    else:
        for index in [i for i, m in store.slots.items() if m.status in _DELETE_FLAGS[flag]]:
            del store.slots[index]
    modem.network.retry_pending(modem.sim.msisdn)
    return None


# -- sending -------------------------------------------------------------------------------
def _check_can_send(modem: VirtualModem) -> None:
    """The network's verdict on a send, before a message reference is given."""
    modem.require_sim("CMS")
    if not modem.registered:
        raise cms(modem.personality.cms_on_unregistered)
    rejection = modem.faults.get(Fault.CMS_ERROR)
    if rejection is not None:
        if rejection["count"] is not None:
            rejection["count"] -= 1
            if rejection["count"] <= 0:
                modem.faults.pop(Fault.CMS_ERROR)
        raise cms(int(rejection["code"]))
    sim = modem.sim
    if sim.sends_left is not None:
        if sim.sends_left <= 0:
            raise cms(sim.out_of_credit_code)
        sim.sends_left -= 1
    sim.balance = round(max(0.0, sim.balance - 0.1), 2)


def _decode_submit(hex_text: str, length: int) -> Any:
    hex_text = "".join(hex_text.split())
    try:
        smsc_octets = int(hex_text[:2], 16)
        if len(hex_text) % 2 or len(hex_text) // 2 - 1 - smsc_octets != length:
            raise cms(304)
        decoded = pdu.decode_pdu(hex_text)
    except (ValueError, pdu.PduError):
        raise cms(304) from None
    if decoded.type != "submit":
        raise cms(304)
    return decoded


def _send(modem: VirtualModem, submits: list[Any], prefix: str) -> Reply:
    """Hand parts to the network when the reply is written; hang after it if told to."""
    _check_can_send(modem)
    references = [modem.next_message_reference() for _ in submits]

    def hand_over() -> None:
        for submit, reference in zip(submits, references):
            modem.network.submit(modem.name, modem.sim, submit, reference)

    hang = modem.faults.get(Fault.HANG_AFTER_PDU)
    if hang is not None:
        modem.hung = True
        return Reply(final=False, delay=modem.sms_delay(),
                     action=hand_over if hang["delivered"] else None)
    return Reply(lines=[f"{prefix}: {references[-1]}"], delay=modem.sms_delay(), action=hand_over)


def _text_entry(modem: VirtualModem, raw: bytes) -> str:
    text = raw.decode("latin-1")
    if modem.settings.cscs == "UCS2":
        try:
            return bytes.fromhex(text.replace("\n", "")).decode("utf-16-be")
        except ValueError:
            raise cms(305) from None
    return raw.decode("utf-8", "replace").replace("\n", "\r")


def _submits_for_text(modem: VirtualModem, recipient: str, text: str) -> list[Any]:
    report = bool(modem.settings.csmp[0] & 0x20)
    parts = pdu.encode_submit(recipient, text, status_report=report)
    return [pdu.decode_pdu(part.hex) for part in parts]


@command("+CMGS", sim="cms")
def cmgs(modem: VirtualModem, form: Form, args: list[str]) -> Reply | None:
    if form is Form.TEST:
        return None
    if form is not Form.SET or not args[0]:
        raise cms(304 if modem.settings.cmgf == 0 else 305)
    if modem.settings.cmgf == 0:
        length = _int(args[0], range(1, 177))
        return Reply(prompt=lambda raw: _send(
            modem, [_decode_submit(raw.decode("latin-1"), length)], "+CMGS"))
    recipient = args[0]
    return Reply(text_entry=True, prompt=lambda raw: _send(
        modem, _submits_for_text(modem, recipient, _text_entry(modem, raw)), "+CMGS"))


@command("+CMGW", sim="cms")
def cmgw(modem: VirtualModem, form: Form, args: list[str]) -> Reply | None:
    if form is Form.TEST:
        return None
    store = modem.stores[modem.cpms[1]]

    def write(hex_text: str, status: MessageStatus) -> Reply:
        index = store.store(StoredMessage(status, hex_text))
        if index is None:
            raise cms(322)
        return Reply(lines=[f"+CMGW: {index}"])

    if modem.settings.cmgf == 0:
        if form is not Form.SET:
            raise cms(304)
        length = _int(args[0], range(1, 177))
        status = MessageStatus(_int(args[1], range(4))) if len(args) > 1 and args[1] else (
            MessageStatus.STO_UNSENT)

        def store_pdu(raw: bytes) -> Reply:
            hex_text = "".join(raw.decode("latin-1").split()).upper()
            _decode_any(hex_text, length)
            return write(hex_text, status)
        return Reply(prompt=store_pdu)
    recipient = args[0] if args else ""
    return Reply(text_entry=True, prompt=lambda raw: write(
        pdu.encode_submit(recipient, _text_entry(modem, raw))[0].hex, MessageStatus.STO_UNSENT))


def _decode_any(hex_text: str, length: int) -> None:
    try:
        if len(hex_text) // 2 - 1 - int(hex_text[:2], 16) != length:
            raise cms(304)
        pdu.decode_pdu(hex_text)
    except (ValueError, pdu.PduError):
        raise cms(304) from None


@command("+CMSS", sim="cms")
def cmss(modem: VirtualModem, form: Form, args: list[str]) -> Reply | None:
    if form is Form.TEST:
        return None
    store = modem.stores[modem.cpms[1]]
    message = store.slots.get(_slot(modem, store, args[0]))
    if message is None:
        raise cms(321)
    decoded = pdu.decode_pdu(message.pdu)
    if decoded.type != "submit":
        raise cms(302)
    if len(args) > 1 and args[1]:
        decoded = _submits_for_text(modem, args[1], decoded.text)[0]
    reply = _send(modem, [decoded], "+CMSS")
    message.status = MessageStatus.STO_SENT
    return reply
