"""How a modem is doing: signal (``AT+CSQ``, ``^RSSI``), network registration (``AT+CREG``, its
URCs) and USSD (``AT+CUSD``, e.g. a balance query).

    health = Health(channel, publish=events.append)
    await health.start()               # registration URCs on where the profile asks, first AT+CREG?
    await health.poll()                # SignalChanged when the bars changed, RegistrationChanged
    text = await health.ussd("*100#")

Its state: the last registration status and signal, and the USSD session waiting for its reply.
The URC handlers (`on_registration_urc`, `on_signal_urc`, `on_ussd_urc`) are called from the
port's data callback, so they never await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .channel import Channel
from .commands import USSD_REPLY_TIMEOUT, csq_to_bars, csq_to_dbm
from .errors import AtError, AtTimeout
from .events import ModemEvent, RegistrationChanged, SignalChanged, UssdReply
from .urc import first_int
from .ussd import decode_ussd_text


class Health:
    """Signal, registration and USSD of the modem behind `channel`; events go to `publish`."""

    def __init__(self, channel: Channel, publish: Callable[[ModemEvent], None]) -> None:
        self.channel = channel
        self._publish = publish
        self.registration: int | None = None  # last +CREG <stat> (TS 27.007 §7.2)
        self._last_rssi: int | None = None
        self._ussd_waiter: asyncio.Future[tuple[str, ...]] | None = None
        self._ussd_lock = asyncio.Lock()  # one USSD session at a time

    async def start(self) -> None:
        """Registration URCs on (where the profile has them), and the baseline status that later
        `RegistrationChanged` events compare with. Raises `AtTimeout` only."""
        channel = self.channel
        reports = channel.profile.registration_reports
        if reports:
            result = await channel.execute(reports, check=False)
            if result.error is not None:
                channel.log.info("%s: %s (polling only)", reports, result.error)
        try:
            await self.poll_registration()
        except AtError as error:
            if isinstance(error, AtTimeout):
                raise
            channel.log.info("AT+CREG?: %s", error)

    async def poll(self) -> None:
        """``AT+CSQ`` and ``AT+CREG?``: publish `SignalChanged` when the signal bars change."""
        signal = await self.channel.query("signal")
        rssi = first_int(signal, 0)
        if csq_to_bars(rssi) != csq_to_bars(self._last_rssi) or self._last_rssi is None:
            self._publish(SignalChanged(self.channel.name, rssi, csq_to_dbm(rssi),
                                        csq_to_bars(rssi)))
        self._last_rssi = rssi
        await self.poll_registration()

    async def poll_registration(self, *, announce: bool = True) -> None:
        """``AT+CREG?`` (<n>,<stat>[,<lac>,<ci>...]); `RegistrationChanged` when it changed."""
        fields = await self.channel.query("registration")
        status = first_int(fields, 1 if len(fields) > 1 else 0)
        location = fields[2:4] if len(fields) >= 4 else (None, None)
        self._note_registration(status, *location, announce=announce)

    def on_registration_urc(self, fields: tuple[str, ...]) -> None:
        """``+CREG: <stat>[,<lac>,<ci>[,<AcT>]]`` (the URC has no <n>, unlike the answer)."""
        location = fields[1:3] if len(fields) >= 3 else (None, None)
        self._note_registration(first_int(fields, 0), *location)

    def on_signal_urc(self, fields: tuple[str, ...]) -> None:
        """A vendor's signal report (``^RSSI: <rssi>``, same scale as ``+CSQ``)."""
        rssi = first_int(fields, 0)
        self._publish(SignalChanged(self.channel.name, rssi, csq_to_dbm(rssi), csq_to_bars(rssi)))

    def _note_registration(self, status: int | None, lac: str | None, ci: str | None,
                           *, announce: bool = True) -> None:
        if status is None or status == self.registration:
            return
        known, self.registration = self.registration is not None, status
        self.channel.log.info("registration: %d%s", status,
                              f" (lac {lac}, cell {ci})" if lac else "")
        if known and announce:
            self._publish(RegistrationChanged(self.channel.name, status, lac or None, ci or None))

    # ---- USSD ----

    async def ussd(self, code: str, *, timeout: float = USSD_REPLY_TIMEOUT) -> str:
        """Send a USSD code (``*100#``) and return the network's text reply.

        Raises `AtError` when the network ends the session without text or does not answer.
        """
        async with self._ussd_lock:
            self._ussd_waiter = asyncio.get_running_loop().create_future()
            try:
                await self.channel.execute("ussd", code=code)
                try:
                    async with asyncio.timeout(timeout):
                        fields = await self._ussd_waiter
                except TimeoutError:
                    await self.channel.execute("ussd_cancel", check=False)
                    raise AtTimeout(f"no USSD reply to {code} within {timeout:g} s") from None
            finally:
                self._ussd_waiter = None
        if len(fields) < 2:
            raise AtError(f"USSD {code}: session ended with status {first_int(fields, 0)} "
                          "and no text")
        return self._text(fields)

    def on_ussd_urc(self, fields: tuple[str, ...]) -> None:
        """``+CUSD: <m>[,<str>,<dcs>]``: the reply `ussd` waits for, else a `UssdReply` event
        (a network-initiated message, or a reply that came after its wait)."""
        if self._ussd_waiter is not None and not self._ussd_waiter.done():
            self._ussd_waiter.set_result(fields)
            return
        text = self._text(fields) if len(fields) > 1 else ""
        self._publish(UssdReply(self.channel.name, first_int(fields, 0), text))

    def _text(self, fields: tuple[str, ...]) -> str:
        return decode_ussd_text(fields[1], first_int(fields, 2),
                                packed_septets=self.channel.profile.ussd_packed_septets)
