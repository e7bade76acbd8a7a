"""Inbound: received messages and status reports read from the stores, deleted only on acknowledgement.

A message is handed over once: `_handed_over` remembers, per slot (store, index), the PDU handed
over from it until `acknowledge`, so a ``+CMTI`` and a sweep that both see it do not deliver it
twice. A slot is known by what it holds, not by its number alone: the moment a message is deleted,
the modem may store the next one in the same slot and announce it (``+CMTI: "SM",1``) even before
the ``OK`` of the ``AT+CMGD`` that freed it. So a ``+CMTI`` is always answered with a read (under
the command lock, after any delete in flight), and only a slot still holding the same PDU counts
as handed over.

    inbound = Inbound(channel, publish=events.append)
    await inbound.choose_stores()          # the profile's stores, and its report store if offered
    await inbound.sweep()                  # InboundSms / StatusReport for what was not handed over
    await inbound.acknowledge(event)       # stored durably: delete it from the modem

Its state: what it handed over from which slot, and the stores it sweeps. `on_urc` is called
from the port's data callback (no awaiting): a notice of a stored message comes back as the
slot to read, which the modem's background task passes to `read_stored`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .channel import Channel
from .commands import COMMANDS
from .core import Urc
from .errors import AtError
from .events import InboundSms, ModemEvent, StatusReport
from .urc import UrcKind, first_int

# TS 23.040 9.2.3.1 TP-MTI in the first octet after the SMSC field: 0 deliver, 2 status report
_MTI_STATUS_REPORT = 2


def decode(pdu_hex: str) -> Any:
    """`pdu.decode_pdu` of a PDU with SMSC, or None when it cannot be decoded (kept raw)."""
    try:
        from pdu import decode_pdu  # type: ignore[attr-defined]

        return decode_pdu(pdu_hex, smsc=True)
    except Exception:  # noqa: BLE001 - a bad PDU must not lose the message: hand it over raw
        return None


def is_status_report(pdu_hex: str) -> bool:
    try:
        smsc_octets = int(pdu_hex[:2], 16)
        first = int(pdu_hex[2 + 2 * smsc_octets: 4 + 2 * smsc_octets], 16)
    except ValueError:
        return False
    return first & 0x03 == _MTI_STATUS_REPORT


def _key(pdu_hex: str) -> str:
    """A PDU as `_handed_over` compares it (modems differ in hex case)."""
    return pdu_hex.strip().upper()


class Inbound:
    """Received messages and status reports of the modem behind `channel`, handed over once
    each through `publish` and deleted only on `acknowledge`."""

    URC_KINDS = frozenset({UrcKind.NEW_MESSAGE_STORED, UrcKind.STATUS_REPORT_STORED,
                           UrcKind.NEW_MESSAGE, UrcKind.STATUS_REPORT})

    def __init__(self, channel: Channel, publish: Callable[[ModemEvent], None]) -> None:
        self.channel = channel
        self._publish = publish
        self._handed_over: dict[tuple[str | None, int], str] = {}  # slot -> PDU handed over
        self.sweep_stores: tuple[str, ...] = channel.profile.stores  # see `choose_stores`

    def on_urc(self, urc: Urc) -> tuple[str, int] | None:
        """A URC of `URC_KINDS`: a message delivered in the URC is handed over now; a notice of a
        stored one returns its slot (store, index), to be read with `read_stored`."""
        kind = urc.spec.kind if urc.spec else UrcKind.VENDOR
        if kind in (UrcKind.NEW_MESSAGE_STORED, UrcKind.STATUS_REPORT_STORED):
            index = first_int(urc.fields, 1)
            if index is not None:
                return (urc.fields[0] if urc.fields else self.channel.profile.stores[0], index)
        elif kind is UrcKind.NEW_MESSAGE and urc.pdu:
            self._hand_over(urc.pdu, None, None)
        elif kind is UrcKind.STATUS_REPORT and urc.pdu:
            self._publish(StatusReport(self.channel.name, urc.pdu, decode(urc.pdu)))
        return None

    async def choose_stores(self) -> None:
        """Sweep the profile's stores, plus its status-report store when ``AT+CPMS=?`` offers it."""
        profile = self.channel.profile
        stores = profile.stores
        extra = profile.status_report_store
        if extra and extra not in stores:
            offered = await self.channel.ask("store_choices") or ()
            if extra.upper() in offered:
                stores = (*stores, extra)
        self.sweep_stores = stores

    def _hand_over(self, pdu_hex: str, store: str | None, index: int | None) -> bool:
        """Publish a received PDU, unless slot (store, index) was handed over holding it."""
        if index is not None:
            if self._handed_over.get((store, index)) == _key(pdu_hex):
                return False
            self._handed_over[(store, index)] = _key(pdu_hex)
        event_type = StatusReport if is_status_report(pdu_hex) else InboundSms
        self._publish(event_type(self.channel.name, pdu_hex, decode(pdu_hex), index, store))
        return True

    # ---- reading and deleting ----

    async def _in_store(self, store: str, name: str, **arguments: object) -> Any:
        """Run command `name` on `store` (``AT+CPMS="store"`` first when it is not the read
        store): both under one hold of the lock, so no other task moves the store between."""
        async with self.channel.lock:
            return await self._in_store_locked(store, name, **arguments)

    async def _in_store_locked(self, store: str, name: str, **arguments: object) -> Any:
        """`_in_store` for a caller that already holds the command lock."""
        if store != self.channel.read_store:
            await self.channel.run("select_read_store", store=store)
        return await self.channel.run(name, check=False, **arguments)

    async def read_stored(self, store: str, index: int) -> bool:
        """``AT+CMGR`` after ``+CMTI``/``+CDSI``; False when the modem refused the read (the
        message, if there is one, waits for a sweep).

        Read even when the slot was handed over: its message may have been deleted and the
        slot reused by the one this notice is about (see the module docstring)."""
        result = await self._in_store(store, "read", index=index)
        if result.error is not None:
            self.channel.log.info("reading %s/%d: %s", store, index, result.error)
            return False
        for stored in COMMANDS["read"].parse(result.lines):
            self._hand_over(stored.pdu, store, index)
        return True

    async def sweep(self) -> int:
        """List every store (`sweep_stores`) with ``AT+CMGL=4``; hand over what was not yet.

        Catches messages whose ``+CMTI`` was missed (modem restarted, port closed). Returns the
        number of messages newly handed over.
        """
        log = self.channel.log
        handed = 0
        for store in self.sweep_stores:
            try:
                result = await self._in_store(store, "list", status=4)
            except AtError as error:  # the store does not exist on this modem
                log.debug("store %s: %s", store, error)
                continue
            if result.error is not None:
                log.debug("listing %s: %s", store, result.error)
                continue
            for stored in COMMANDS["list"].parse(result.lines):
                if stored.index is not None and self._hand_over(stored.pdu, store, stored.index):
                    handed += 1
        log.debug("sweep: %d new", handed)
        return handed

    def release(self, event: InboundSms | StatusReport) -> None:
        """The consumer could not take `event` (its store failed): it stays on the modem and the
        next sweep hands it over again, as if it had never been handed over."""
        slot = (event.store, event.index)
        if event.index is not None and self._handed_over.get(slot) == _key(event.pdu):
            del self._handed_over[slot]

    async def acknowledge(self, event: InboundSms | StatusReport) -> None:
        """The consumer stored `event` durably: delete it from the modem (or ``AT+CNMA`` it).

        Raises `AtError` when the modem refuses; the message then stays on the modem and the next
        sweep hands it over again (at-least-once). A slot that holds another message by now
        (this one was deleted already) is left alone.
        """
        channel = self.channel
        if event.index is None:
            if channel.profile.cnma_required:
                await channel.execute("acknowledge_new", check=False)
            return
        slot = (event.store, event.index)
        async with channel.lock:  # no read of the slot between the check, the delete and the pop
            held = self._handed_over.get(slot)
            if held is not None and held != _key(event.pdu):
                channel.log.info("%s/%d holds another message now: not deleted again",
                                 event.store, event.index)
                return
            try:
                result = await self._in_store_locked(event.store or channel.profile.stores[0],
                                                     "delete", index=event.index)
            finally:
                self._handed_over.pop(slot, None)  # deleted, or for the next sweep to hand over
            if result.error is not None:
                raise result.error
