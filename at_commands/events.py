"""What a `Modem` hands to its consumer through `Modem.events()`, and the identity it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .commands import REGISTERED, StoreUsage


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A received SMS part. `index`/`store` say where it sits on the modem (None for ``+CMT``).

    `decoded` is `pdu.decode_pdu(pdu)` or None when the PDU could not be decoded (the raw `pdu` is
    always kept). Call `await modem.acknowledge(event)` once it is stored durably: only then is it
    deleted from the modem (``AT+CMGD``) or acknowledged to the network (``AT+CNMA``).
    """

    modem: str
    pdu: str
    decoded: Any
    index: int | None = None
    store: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A delivery report (``+CDS`` / ``+CDSI``); acknowledge it like an `InboundSms`."""

    modem: str
    pdu: str
    decoded: Any
    index: int | None = None
    store: str | None = None


@dataclass(frozen=True, slots=True)
class UssdReply:
    """A USSD message the network sent without a pending `Modem.ussd()` call."""

    modem: str
    status: int | None
    text: str


@dataclass(frozen=True, slots=True)
class SignalChanged:
    modem: str
    rssi: int | None
    dbm: int | None
    bars: int


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """The network registration changed (TS 27.007 §7.2 ``+CREG`` <stat>: 1 home, 5 roaming,
    0/2/3/4 not registered), from a ``+CREG`` URC or a poll. `lac`/`ci` are hex strings when the
    modem gave them (``AT+CREG=2``), else None."""

    modem: str
    status: int
    lac: str | None = None
    ci: str | None = None

    @property
    def registered(self) -> bool:
        return self.status in REGISTERED


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The port went away (unplugged, I/O error). The driver reconnects with backoff if allowed."""

    modem: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The port is back and the modem was initialised again."""

    modem: str


@dataclass(frozen=True, slots=True)
class Unresponsive:
    """A command got no answer in time: the modem may be hung."""

    modem: str
    command: str


@dataclass(frozen=True, slots=True)
class Responsive:
    """The modem answers again after `Unresponsive`."""

    modem: str


@dataclass(frozen=True, slots=True)
class ReconnectFailed:
    """Reconnecting stopped for good (wrong PIN, PUK needed): the modem needs a human."""

    modem: str
    reason: str


ModemEvent = (InboundSms | StatusReport | UssdReply | SignalChanged | RegistrationChanged
              | Disconnected | Reconnected | Unresponsive | Responsive | ReconnectFailed)


@dataclass(frozen=True, slots=True)
class ModemInfo:
    """What `Modem.identify()` found; a field is None when the modem would not tell."""

    name: str
    port: str
    profile: str
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    msisdn: str | None = None
    operator: str | None = None
    registration: int | None = None
    registration_text: str | None = None
    registered: bool = False
    rssi: int | None = None
    signal_dbm: int | None = None
    signal_bars: int = 0
    smsc: str | None = None
    storage: tuple[StoreUsage, ...] = ()
