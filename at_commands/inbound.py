"""Inbound: URCs routed by kind, messages read from the stores, deleted only on acknowledgement.

A message is handed over once: `_handed_over` remembers, per slot (store, index), the PDU handed
over from it until `acknowledge`, so a ``+CMTI`` and a sweep that both see it do not deliver it
twice. A slot is known by what it holds, not by its number alone: the moment a message is deleted,
the modem may store the next one in the same slot and announce it (``+CMTI: "SM",1``) even before
the ``OK`` of the ``AT+CMGD`` that freed it. So a ``+CMTI`` is always answered with a read (under
the command lock, after any delete in flight), and only a slot still holding the same PDU counts
as handed over.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .commands import COMMANDS, csq_to_bars, csq_to_dbm
from .core import Urc
from .errors import AtError
from .events import InboundSms, SignalChanged, StatusReport, UssdReply
from .urc import UrcKind, first_int
from .ussd import decode_ussd_text

if TYPE_CHECKING:
    from .driver import Modem

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


REINITIALISE = ("", -1)  # a work item: the modem restarted


class InboundMixin:
    def _init_inbound(self: Modem) -> None:
        self._work: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._handed_over: dict[tuple[str | None, int], str] = {}  # slot -> PDU handed over

    # ---- URCs (called from the port's data callback: no awaiting here) ----

    def _on_urc(self: Modem, urc: Urc) -> None:
        kind = urc.spec.kind if urc.spec else UrcKind.VENDOR
        if kind in (UrcKind.NEW_MESSAGE_STORED, UrcKind.STATUS_REPORT_STORED):
            index = first_int(urc.fields, 1)
            if index is not None:
                self._work.put_nowait((urc.fields[0] if urc.fields else self.profile.stores[0],
                                       index))
        elif kind is UrcKind.NEW_MESSAGE and urc.pdu:
            self._hand_over(urc.pdu, None, None)
        elif kind is UrcKind.STATUS_REPORT and urc.pdu:
            self._publish(StatusReport(self.name, urc.pdu, decode(urc.pdu)))
        elif kind is UrcKind.USSD:
            if self._ussd_waiter is not None and not self._ussd_waiter.done():
                self._ussd_waiter.set_result(urc.fields)
            else:
                text = decode_ussd_text(urc.fields[1], first_int(urc.fields, 2),
                                        packed_septets=self.profile.ussd_packed_septets) \
                    if len(urc.fields) > 1 else ""
                self._publish(UssdReply(self.name, first_int(urc.fields, 0), text))
        elif kind is UrcKind.REGISTRATION and urc.name == "+CREG":
            self._on_registration_urc(urc.fields)
        elif kind is UrcKind.SIGNAL and urc.name == "^RSSI":
            rssi = first_int(urc.fields, 0)
            self._publish(SignalChanged(self.name, rssi, csq_to_dbm(rssi), csq_to_bars(rssi)))
        if urc.line.upper() in {marker.upper() for marker in self.profile.reboot_markers}:
            self.log.info("modem restarted (%s): initialising it again", urc.line)
            self._work.put_nowait(REINITIALISE)

    def _hand_over(self: Modem, pdu_hex: str, store: str | None, index: int | None) -> bool:
        """Publish a received PDU, unless slot (store, index) was handed over holding it."""
        if index is not None:
            if self._handed_over.get((store, index)) == _key(pdu_hex):
                return False
            self._handed_over[(store, index)] = _key(pdu_hex)
        event_type = StatusReport if is_status_report(pdu_hex) else InboundSms
        self._publish(event_type(self.name, pdu_hex, decode(pdu_hex), index, store))
        return True

    # ---- reading and deleting ----

    async def _in_store(self: Modem, store: str, name: str, **arguments: object) -> Any:
        """Run command `name` on `store` (``AT+CPMS="store"`` first when it is not the read
        store): both under one hold of the lock, so no other task moves the store between."""
        async with self.channel.lock:
            return await self._in_store_locked(store, name, **arguments)

    async def _in_store_locked(self: Modem, store: str, name: str, **arguments: object) -> Any:
        """`_in_store` for a caller that already holds the command lock."""
        if store != self.channel.read_store:
            await self.channel.run("select_read_store", store=store)
        return await self.channel.run(name, check=False, **arguments)

    async def _read_stored(self: Modem, store: str, index: int) -> bool:
        """``AT+CMGR`` after ``+CMTI``/``+CDSI``; False when the modem refused the read (the
        message, if there is one, waits for a sweep).

        Read even when the slot was handed over: its message may have been deleted and the
        slot reused by the one this notice is about (see the module docstring)."""
        result = await self._in_store(store, "read", index=index)
        if result.error is not None:
            self.log.info("reading %s/%d: %s", store, index, result.error)
            return False
        for stored in COMMANDS["read"].parse(result.lines):
            self._hand_over(stored.pdu, store, index)
        return True

    async def sweep(self: Modem) -> int:
        """List every store (`sweep_stores`) with ``AT+CMGL=4`` and hand over what was not yet handed over.

        Catches messages whose ``+CMTI`` was missed (modem restarted, port closed). Returns the
        number of messages newly handed over.
        """
        before = self._events.qsize()
        handed = 0
        for store in self.sweep_stores:
            try:
                result = await self._in_store(store, "list", status=4)
            except AtError as error:  # the store does not exist on this modem
                self.log.debug("store %s: %s", store, error)
                continue
            if result.error is not None:
                self.log.debug("listing %s: %s", store, result.error)
                continue
            for stored in COMMANDS["list"].parse(result.lines):
                if stored.index is not None and self._hand_over(stored.pdu, store, stored.index):
                    handed += 1
        self.log.debug("sweep: %d new (queue %d)", handed, before)
        return handed

    def release(self: Modem, event: InboundSms | StatusReport) -> None:
        """The consumer could not take `event` (its store failed): it stays on the modem and the
        next sweep hands it over again, as if it had never been handed over."""
        slot = (event.store, event.index)
        if event.index is not None and self._handed_over.get(slot) == _key(event.pdu):
            del self._handed_over[slot]

    async def acknowledge(self: Modem, event: InboundSms | StatusReport) -> None:
        """The consumer stored `event` durably: delete it from the modem (or ``AT+CNMA`` it).

        Raises `AtError` when the modem refuses; the message then stays on the modem and the next
        sweep hands it over again (at-least-once). A slot that holds another message by now
        (this one was deleted already) is left alone.
        """
        if event.index is None:
            if self.profile.cnma_required:
                await self.execute("acknowledge_new", check=False)
            return
        slot = (event.store, event.index)
        async with self.channel.lock:  # no read of the slot between the check, the delete and the pop
            held = self._handed_over.get(slot)
            if held is not None and held != _key(event.pdu):
                self.log.info("%s/%d holds another message now: not deleted again",
                              event.store, event.index)
                return
            try:
                result = await self._in_store_locked(event.store or self.profile.stores[0],
                                                     "delete", index=event.index)
            finally:
                self._handed_over.pop(slot, None)  # deleted, or for the next sweep to hand over
            if result.error is not None:
                raise result.error

