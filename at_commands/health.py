"""The modem's background task (follow-up reads, sweeps, signal and registration polls) and the
reconnect loop after the port went away."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

from .commands import csq_to_bars, csq_to_dbm
from .errors import AtError, PinError
from .events import ReconnectFailed, Reconnected, RegistrationChanged, SignalChanged
from .inbound import REINITIALISE
from .urc import first_int

if TYPE_CHECKING:
    from .driver import Modem


class HealthMixin:
    def _init_health(self: Modem) -> None:
        self._background: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._last_rssi: int | None = None
        self.registration: int | None = None

    def _start_background(self: Modem) -> None:
        if self._background is None or self._background.done():
            self._background = self._spawn(self._run_background(), "background")

    async def _run_background(self: Modem) -> None:
        """Follow-up reads as URCs ask for them; a sweep and a poll when their time comes."""
        from .driver import ModemState

        now = time.monotonic()
        next_sweep = now  # sweep at once: messages that arrived while we were away
        # The modems of a bank open together; a phase of their own keeps their polls and sweeps
        # from falling due all at once (and holding up every modem's next send together).
        phase = random.uniform(0.5, 1.5)
        next_poll = now + self.poll_interval * phase
        while True:
            item = await self._next_work(min(next_sweep, next_poll))
            if self.state is not ModemState.READY or self.channel.unresponsive:
                if item is not None:
                    self._work.put_nowait(item)  # keep it for when the modem is back
                await self._wait_until_usable()
                continue
            try:
                if item == REINITIALISE:
                    await self.initialise()
                elif item is not None and not await self._read_stored(*item):
                    next_sweep = min(next_sweep, time.monotonic() + self.failed_read_sweep)
                else:
                    now = time.monotonic()
                    if now >= next_sweep:
                        next_sweep = now + self.sweep_interval * phase
                        phase = 1.0  # one shifted interval sets the phase
                        await self.sweep()
                    if now >= next_poll:
                        next_poll = now + self.poll_interval
                        await self.poll_health()
            except AtError as error:  # a timeout already produced an Unresponsive event
                self.log.info("background: %s", error)
                if item is not None and item != REINITIALISE:  # a notice not acted on
                    next_sweep = min(next_sweep, time.monotonic() + self.failed_read_sweep)
            except Exception:  # noqa: BLE001 - background work must go on
                self.log.exception("background work failed")

    async def _next_work(self: Modem, deadline: float) -> tuple[str, int] | None:
        """The next work item, or None when `deadline` (monotonic) comes first."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self._work.get()
        except TimeoutError:
            return None

    async def _wait_until_usable(self: Modem) -> None:
        """Until the modem is ready again (initialised, reconnected) wait for its state to
        change; while it is ready but silent, probe it with a cheap ``AT`` once a second."""
        from .driver import ModemState

        if self.state is not ModemState.READY:
            self._state_changed.clear()
            if self.state is not ModemState.READY:
                await self._state_changed.wait()
            return
        try:
            await self.execute("attention", timeout=1.0)
            return
        except AtError:
            pass
        await asyncio.sleep(1.0)  # the modem has no way to tell us it is back: ask again later

    async def poll_health(self: Modem) -> None:
        """``AT+CSQ`` and ``AT+CREG?``: publish `SignalChanged` when the signal bars change."""
        signal = await self.query("signal")
        rssi = first_int(signal, 0)
        if csq_to_bars(rssi) != csq_to_bars(self._last_rssi) or self._last_rssi is None:
            self._publish(SignalChanged(self.name, rssi, csq_to_dbm(rssi), csq_to_bars(rssi)))
        self._last_rssi = rssi
        await self.poll_registration()

    async def poll_registration(self: Modem, *, announce: bool = True) -> None:
        """``AT+CREG?`` (<n>,<stat>[,<lac>,<ci>...]); `RegistrationChanged` when it changed."""
        fields = await self.query("registration")
        status = first_int(fields, 1 if len(fields) > 1 else 0)
        location = fields[2:4] if len(fields) >= 4 else (None, None)
        self._note_registration(status, *location, announce=announce)

    def _on_registration_urc(self: Modem, fields: tuple[str, ...]) -> None:
        """``+CREG: <stat>[,<lac>,<ci>[,<AcT>]]`` (the URC has no <n>, unlike the answer)."""
        location = fields[1:3] if len(fields) >= 3 else (None, None)
        self._note_registration(first_int(fields, 0), *location)

    def _note_registration(self: Modem, status: int | None, lac: str | None, ci: str | None,
                           *, announce: bool = True) -> None:
        if status is None or status == self.registration:
            return
        known, self.registration = self.registration is not None, status
        self.log.info("registration: %d%s", status, f" (lac {lac}, cell {ci})" if lac else "")
        if known and announce:
            self._publish(RegistrationChanged(self.name, status, lac or None, ci or None))

    def _start_reconnect(self: Modem) -> None:
        if self.reconnect_delays and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = self._spawn(self._reconnect_loop(), "reconnect")

    async def reconnect(self: Modem) -> None:
        """Reopen the port and initialise again, waiting longer after each failure (the
        `reconnect_delays`; a single 1 s step when that is empty). Joins a reconnect already
        under way. Publishes `Reconnected` on success, `ReconnectFailed` when the SIM is locked
        (a refused PIN is never entered again). Returns only then, or when the modem is closed.
        """
        if self._reconnecting is not None and not self._reconnecting.done():
            await asyncio.shield(self._reconnecting)
            return
        await self._reconnect_loop(wait_first=False)

    async def _reconnect_loop(self: Modem, *, wait_first: bool = True) -> None:
        from .driver import ModemState

        attempt = 0
        while not self._closing:
            delays = self.reconnect_delays or (1.0,)
            if attempt or wait_first:
                await asyncio.sleep(delays[min(attempt, len(delays) - 1)])
            attempt += 1
            try:
                self.channel.close()
                await self.open()
                await self.initialise()
            except PinError as error:
                self.state = ModemState.LOCKED
                self._publish(ReconnectFailed(self.name, str(error)))
                return
            except Exception as error:  # noqa: BLE001 - OSError, AtError...: keep trying
                self.log.info("reconnect attempt %d: %s", attempt, error)
                self.channel.close()
                self.state = ModemState.DISCONNECTED
                continue
            self.log.info("reconnected after %d attempt(s)", attempt)
            self._publish(Reconnected(self.name))
            return
