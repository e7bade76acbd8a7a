"""The virtual GSM network: SIM cards, routing between them, and the network log.

A message submitted by a simulated modem is logged part by part (`{"kind": "part", ...}`),
reassembled, logged as a whole (`{"kind": "message", ...}`) and, when it is addressed to another
simulated SIM, delivered there as SMS-DELIVER parts that keep the concatenation reference.
Messages injected from the outside world are logged as `{"kind": "inbound", ...}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pdu

log = logging.getLogger("modempool.simulator.network")
_TO_JSON = json.JSONEncoder(ensure_ascii=False).encode  # made once: dumps() makes one per call


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    short: str
    plmn: str  # MCC+MNC, e.g. "46000"
    prefixes: tuple[str, ...]  # MSISDN prefixes after +86
    iccid_issuer: str  # digits 5-6 of a Chinese ICCID
    smsc: str


OPERATORS = (
    Operator("China Mobile", "CMCC", "46000", ("138", "139"), "00", "+8613800100500"),
    Operator("China Unicom", "UNICOM", "46001", ("186",), "01", "+8613010112500"),
    Operator("China Telecom", "CHN-CT", "46011", ("189",), "03", "+8613800100569"),
)
# m1, m2, m3, m4... get +86138, +86186, +86189, +86139, then around again.
_NUMBER_PLAN = ((OPERATORS[0], "138"), (OPERATORS[1], "186"), (OPERATORS[2], "189"),
                (OPERATORS[0], "139"))


class PinState(enum.StrEnum):
    READY = "READY"
    PIN = "SIM PIN"
    PUK = "SIM PUK"
    BLOCKED = "BLOCKED"


class MessageStatus(enum.IntEnum):
    """TS 27.005 <stat> in PDU mode."""

    REC_UNREAD = 0
    REC_READ = 1
    STO_UNSENT = 2
    STO_SENT = 3


TEXT_STATUS = {MessageStatus.REC_UNREAD: "REC UNREAD", MessageStatus.REC_READ: "REC READ",
               MessageStatus.STO_UNSENT: "STO UNSENT", MessageStatus.STO_SENT: "STO SENT"}


@dataclass(slots=True)
class StoredMessage:
    status: MessageStatus
    pdu: str  # hex with SMSC octets

    @property
    def tpdu_length(self) -> int:
        smsc_octets = int(self.pdu[:2], 16)
        return len(self.pdu) // 2 - 1 - smsc_octets


@dataclass(slots=True)
class MessageStore:
    """One message memory ("SM" on the SIM, "ME" in the phone): numbered slots from 1."""

    capacity: int
    slots: dict[int, StoredMessage] = field(default_factory=dict)
    full: bool = False  # set by the storage_full fault

    @property
    def used(self) -> int:
        return self.capacity if self.full else len(self.slots)

    def store(self, message: StoredMessage) -> int | None:
        """Put a message in the lowest free slot; None when the store is full."""
        if self.full:
            return None
        for index in range(1, self.capacity + 1):
            if index not in self.slots:
                self.slots[index] = message
                return index
        return None


@dataclass(slots=True)
class Sim:
    """A SIM card: identity, PIN state, credit and its own message store."""

    imsi: str
    iccid: str
    msisdn: str
    operator: Operator
    pin: str = "1234"
    puk: str = "12345678"
    pin_state: PinState = PinState.READY
    pin_attempts: int = 3
    puk_attempts: int = 10
    balance: float = 50.0
    sends_left: int | None = None  # None = unlimited credit
    out_of_credit_code: int = 21
    rssi: int = 20
    store: MessageStore = field(default_factory=lambda: MessageStore(50))


def _luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            value = value - 9 if value > 9 else value
        total += value
    return str((10 - total % 10) % 10)


def make_sim(index: int, rng: random.Random, sm_capacity: int) -> Sim:
    """The SIM of modem number `index` (1-based): deterministic MSISDN, seeded IMSI/ICCID."""
    operator, prefix = _NUMBER_PLAN[(index - 1) % len(_NUMBER_PLAN)]
    msisdn = f"+86{prefix}{index:08d}"
    imsi = operator.plmn + "".join(rng.choice("0123456789") for _ in range(10))
    body = "8986" + operator.iccid_issuer + "".join(rng.choice("0123456789") for _ in range(13))
    return Sim(imsi=imsi, iccid=body + _luhn_digit(body), msisdn=msisdn, operator=operator,
               store=MessageStore(sm_capacity))


def make_imei(tac: str, rng: random.Random) -> str:
    body = tac + "".join(rng.choice("0123456789") for _ in range(6))
    return body + _luhn_digit(body)


class Endpoint(Protocol):
    """What the network needs from the modem that holds a SIM."""

    name: str

    def receive_sms(self, deliver_pdu: str) -> bool: ...  # False: could not take it now
    def receive_status_report(self, report_pdu: str) -> str: ...  # "shown", "stored", "dropped"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Network:
    """Routes messages between simulated SIMs and the outside world, and keeps the log."""

    def __init__(self, log_path: Path | None = None, *, seed: int | None = None,
                 report_delay: float = 0.2, redelivery_delay: float = 5.0) -> None:
        self.report_delay = report_delay  # seconds from a submit to its status report
        # Seconds before the network tries again a message a modem refused (no +CNMA).
        self.redelivery_delay = redelivery_delay
        self.sims: dict[str, Sim] = {}  # by MSISDN
        self.endpoints: dict[str, Endpoint] = {}  # by MSISDN
        self.entries: list[dict[str, Any]] = []
        self._log_path = log_path
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        # The network does not drop duplicates: a part sent again is a new part. The reassembler
        # remembers completed groups for `timeout` of its clock, so it is given a clock that
        # advances by one per part and a timeout shorter than one tick.
        self._reassembler = pdu.Reassembler(timeout=0.5)
        self._parts_seen = 0
        self._pending: dict[str, list[str]] = {}  # MSISDN -> DELIVER PDUs not yet taken
        self._message_count = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._rng = random.Random(seed)
        self._part_refs: dict[str, list[int]] = {}

    # -- membership -----------------------------------------------------------------------
    def attach(self, sim: Sim, endpoint: Endpoint) -> None:
        self.sims[sim.msisdn] = sim
        self.endpoints[sim.msisdn] = endpoint

    def close(self) -> None:
        if self._log_file:
            self._log_file.close()
            self._log_file = None

    # -- log ------------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("time", _now().isoformat(timespec="milliseconds"))
        self.entries.append(entry)
        if self._log_file:
            self._log_file.write(_TO_JSON(entry) + "\n")
            self._log_file.flush()
        if entry["kind"] == "message":
            self._message_count += 1
            for n, future in list(self._waiters):
                if self._message_count >= n and not future.done():
                    future.set_result(None)
        for listener in list(self._listeners):
            listener(entry)

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener(entry)` for every new log entry; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `n` completed messages are in the log; return the message entries."""
        if self._message_count < n:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (n, future)
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                raise TimeoutError(f"only {self._message_count} of {n} messages reached the "
                                   f"network within {timeout} s") from None
            finally:
                self._waiters.remove(waiter)
        return [e for e in self.entries if e["kind"] == "message"]

    # -- sending --------------------------------------------------------------------------
    def submit(self, modem: str, sim: Sim, submit: Any, message_reference: int) -> None:
        """Take one SMS-SUBMIT part from a modem: log it, reassemble, route, report."""
        concat = submit.concat
        recipient = submit.recipient
        self.record({
            "kind": "part", "from": sim.msisdn, "to": recipient, "text": submit.text,
            "reference": message_reference, "modem": modem, "sim": sim.imsi,
            "concat": [concat.reference, concat.total, concat.seq] if concat else None,
        })
        key = f"{sim.msisdn}>{recipient}"
        self._part_refs.setdefault(f"{key}/{concat.reference if concat else ''}", []).append(
            message_reference)
        self._parts_seen += 1
        text = self._reassembler.add(key, submit, now=float(self._parts_seen))
        if submit.status_report_requested:
            self._report_later(sim, message_reference, recipient)
        if text is None:
            return
        refs = self._part_refs.pop(f"{key}/{concat.reference if concat else ''}", [])
        local = recipient in self.sims
        self.record({
            "kind": "message", "from": sim.msisdn, "to": recipient, "text": text,
            "reference": concat.reference if concat else None, "message_references": refs,
            "modem": modem, "sim": sim.imsi, "delivered_to": self.endpoints[recipient].name
            if local else None,
        })
        if local:
            parts = pdu.encode_deliver(
                sim.msisdn, text, alphabet=submit.alphabet,
                reference=concat.reference if concat else None,
                ref16=bool(concat and getattr(concat, "ref16", False)))
            for part in parts:
                self._deliver(recipient, part)

    def _report_later(self, sim: Sim, message_reference: int, recipient: str) -> None:
        endpoint = self.endpoints.get(sim.msisdn)
        if endpoint is None:
            return
        now = _now()
        report = pdu.encode_status_report(message_reference, recipient, status=0,
                                          scts=now, discharge_time=now)

        def hand_over() -> None:
            fate = endpoint.receive_status_report(report)
            self.record({"kind": "report", "modem": endpoint.name, "to": recipient,
                         "reference": message_reference, "fate": fate})

        asyncio.get_running_loop().call_later(self.report_delay, hand_over)

    # -- receiving ------------------------------------------------------------------------
    def _deliver(self, msisdn: str, deliver_pdu: str) -> None:
        pending = self._pending.setdefault(msisdn, [])
        if pending or not self.endpoints[msisdn].receive_sms(deliver_pdu):
            pending.append(deliver_pdu)

    def retry_pending(self, msisdn: str) -> None:
        """Offer messages the SIM could not take earlier (storage freed, modem back)."""
        pending = self._pending.get(msisdn, [])
        while pending and self.endpoints[msisdn].receive_sms(pending[0]):
            pending.pop(0)

    def redeliver_later(self, msisdn: str, deliver_pdu: str) -> None:
        """The modem answered RP-ERROR (or nothing): offer the message again later."""
        def again() -> None:
            self._pending.setdefault(msisdn, []).insert(0, deliver_pdu)
            self.retry_pending(msisdn)
        asyncio.get_running_loop().call_later(self.redelivery_delay, again)

    def resolve(self, to: str) -> str:
        """An MSISDN of a simulated SIM from an MSISDN or a modem name."""
        if to in self.sims:
            return to
        for msisdn, endpoint in self.endpoints.items():
            if endpoint.name == to:
                return msisdn
        raise ValueError(f"no simulated SIM or modem called {to!r}; "
                         f"have {', '.join(e.name for e in self.endpoints.values())}")

    async def inject(self, to: str, sender: str, text: str, *, out_of_order: bool = False,
                     parts_delay: float = 0.0, alphabet: Any = None) -> list[str]:
        """An SMS from the outside world to a simulated SIM; returns the DELIVER PDUs."""
        msisdn = self.resolve(to)
        parts = pdu.encode_deliver(sender, text, alphabet=alphabet)
        order = list(parts)
        if out_of_order and len(order) > 1:
            order.reverse()
        self.record({"kind": "inbound", "from": sender, "to": msisdn, "text": text,
                     "parts": len(parts), "delivered_to": self.endpoints[msisdn].name})
        for position, part in enumerate(order):
            if position and parts_delay:
                await asyncio.sleep(parts_delay)
            self._deliver(msisdn, part)
        return parts
