"""One modem: the object that holds its parts and its state.

    modem = Modem("/dev/ttyUSB0", name="m1", pin="1234")
    await modem.open(); await modem.initialise(); info = await modem.identify()
    refs = await modem.send(pdu.encode_submit("+8613800138000", "你好"))
    async for event in modem.events():          # InboundSms, StatusReport, Disconnected ...
        store(event); await modem.acknowledge(event)
    await modem.close()

Each part is an object holding its own state, readable alone (and tested alone):

- `modem.channel` (`channel.py`): the port, the command lock, the exchange through the sans-I/O
  core, the modem's pace; every other part talks to the modem through it;
- `modem.setup` (`setup.py`): a known state, the PIN entered once, identity;
- `modem.sending` (`sending.py`): ``AT+CMGS`` and what its outcome means;
- `modem.inbound` (`inbound.py`): received messages and reports, handed over once, deleted on
  acknowledgement;
- `modem.health` (`health.py`): signal, registration, USSD.

This file holds the parts together: the modem's state and its events, the order of the
initialisation, where each URC goes, the background task (follow-up reads, sweeps, polls) and
the reconnect loop after the port went away. No part reads another's state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

from .channel import Channel
from .commands import USSD_REPLY_TIMEOUT
from .core import FinalResult, Urc
from .errors import AtError, PinError
from .events import (Disconnected, InboundSms, ModemEvent, ModemInfo, ReconnectFailed,
                     Reconnected, StatusReport)
from .health import Health
from .inbound import Inbound
from .profiles import ModemProfile, get_profile
from .sending import Sending
from .setup import PinMemory, Setup
from .timing import Timing
from .urc import UrcKind

REINITIALISE = ("", -1)  # a background work item: the modem restarted


class ModemState(Enum):
    CLOSED = "closed"
    OPEN = "open"                 # port open, not initialised
    READY = "ready"
    DISCONNECTED = "disconnected"
    LOCKED = "locked"             # wrong PIN / PUK: never retried


class Modem:
    """One modem. Public API: `open`, `initialise`, `identify`, `send`, `events`, `acknowledge`,
    `release`, `ussd`, `sweep`, `execute`, `reconnect`, `close`; `state`, `profile`, `info`.

    `profile`: a `ModemProfile`, a profile name, or None to detect it from ``AT+CGMI``.
    `poll_interval`: seconds between signal/registration polls; `sweep_interval`: between
    ``AT+CMGL=4`` sweeps of all stores; `failed_read_sweep`: how soon a sweep follows a
    notice (``+CMTI``) whose read the modem refused; `reconnect_delays`: backoff after the port
    went away (empty: no automatic reconnect); `pin_memory`: where a refused PIN is remembered
    beyond this process (`setup.PinMemory`); `timing`: the user's waits for this modem
    (`timing.Timing`: a slow modem's, or a test's short ones).
    """

    def __init__(self, port: str, *, name: str, pin: str | None = None,
                 profile: ModemProfile | str | None = None, baudrate: int = 115200,
                 poll_interval: float = 30.0, sweep_interval: float = 60.0,
                 failed_read_sweep: float = 5.0,
                 reconnect_delays: Sequence[float] = (0.2, 0.5, 1, 2, 5, 10, 30),
                 pin_memory: PinMemory | None = None, timing: Timing | None = None) -> None:
        self.port = port
        self.name = name
        self.channel = Channel(port, name=name, baudrate=baudrate,
                               profile=(profile if isinstance(profile, ModemProfile)
                                        else get_profile(profile)),
                               on_urc=self._on_urc, on_lost=self._port_lost,
                               publish=self._publish, timing=timing)
        self.setup = Setup(self.channel, pin=pin, pin_memory=pin_memory,
                           detect_profile=profile is None)
        self.sending = Sending(self.channel)
        self.inbound = Inbound(self.channel, self._publish)
        self.health = Health(self.channel, self._publish)
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.failed_read_sweep = failed_read_sweep
        self.reconnect_delays = tuple(reconnect_delays)
        self._state_changed = asyncio.Event()  # set on every change of `state`
        self.state = ModemState.CLOSED
        self._events: asyncio.Queue[ModemEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._work: asyncio.Queue[tuple[str, int]] = asyncio.Queue()  # for the background task
        self._background: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None

    @property
    def state(self) -> ModemState:
        return self._state

    @state.setter
    def state(self, value: ModemState) -> None:
        self._state = value
        self._state_changed.set()

    # ---- the parts' shared facts --------------------------------------------------------

    @property
    def profile(self) -> ModemProfile:
        """The vendor profile every part follows (replaceable: the pool tunes its timeouts)."""
        return self.channel.profile

    @profile.setter
    def profile(self, value: ModemProfile) -> None:
        self.channel.profile = value

    @property
    def log(self) -> logging.Logger:
        return self.channel.log

    @property
    def pending_command(self) -> str | None:
        """The command line written and not yet answered (None when idle)."""
        return self.channel.pending_command

    @property
    def info(self) -> ModemInfo | None:
        """What the last `identify` found."""
        return self.setup.info

    @property
    def sweep_stores(self) -> tuple[str, ...]:
        """The stores a sweep lists (`Inbound.choose_stores`)."""
        return self.inbound.sweep_stores

    @property
    def registration(self) -> int | None:
        """The last network registration status (``+CREG`` <stat>)."""
        return self.health.registration

    # ---- port ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the serial port. Raises OSError/serial.SerialException if it cannot be opened."""
        if self.channel.is_open:
            return
        await self.channel.open()
        self._closing = False
        self.sending.port_reopened()
        self.state = ModemState.OPEN
        self.log.info("opened %s", self.port)

    async def close(self) -> None:
        """Stop background work and close the port."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        self.channel.close()
        self.state = ModemState.CLOSED

    async def __aenter__(self) -> Modem:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _port_lost(self, reason: str) -> None:
        if self._closing:
            return
        self.log.warning("port %s lost: %s", self.port, reason)
        self.state = ModemState.DISCONNECTED
        self._publish(Disconnected(self.name, reason))
        self._start_reconnect()

    def _publish(self, event: ModemEvent) -> None:
        self._events.put_nowait(event)

    # ---- initialisation ------------------------------------------------------------------

    async def initialise(self) -> None:
        """Reset the modem to a known state: echo, ``CMEE=1``, PDU mode, CNMI, stores, PIN,
        registration reports; then start the background task.

        Raises `PinError` when the SIM needs a PIN we lack, refused ours (tried once, never
        again, even on reconnect: the state becomes LOCKED) or wants the PUK (LOCKED too);
        `AtTimeout` when the modem does not answer.
        """
        try:
            await self.setup.prepare()
        except PinError:
            if self.setup.pin_error is not None:  # not by waiting: a human must act
                self.state = ModemState.LOCKED
            raise
        await self.inbound.choose_stores()
        await self.health.start()
        await self.setup.run_vendor_commands()
        self.state = ModemState.READY
        self._start_background()

    async def identify(self) -> ModemInfo:
        """Ask the modem who it is and how it is doing (see `Setup.identify`)."""
        return await self.setup.identify()

    # ---- commands ------------------------------------------------------------------------

    async def execute(self, name_or_line: str, *, timeout: float | None = None,
                      check: bool = True, **arguments: object) -> FinalResult:
        """Run one command (a `commands.COMMANDS` name with its arguments, or a raw ``AT`` line).

        Returns its `FinalResult`; raises its `AtError` when `check` and it failed, `AtTimeout`
        when the modem did not answer, `ModemDisconnected` when the port is gone.
        """
        return await self.channel.execute(name_or_line, timeout=timeout, check=check,
                                          **arguments)

    async def query(self, name: str, **arguments: object) -> Any:
        """Run the named command and return what its parser makes of the reply."""
        return await self.channel.query(name, **arguments)

    async def send(self, parts: Sequence[Any], *, more_to_follow: bool = False,
                   before_pdu: Callable[[Any], Awaitable[None] | None] | None = None) -> list[int]:
        """Send the parts of one message: see `Sending.send`."""
        return await self.sending.send(parts, more_to_follow=more_to_follow,
                                       before_pdu=before_pdu)

    # ---- inbound and health ----------------------------------------------------------------

    async def sweep(self) -> int:
        """List every store now: see `Inbound.sweep` (also runs periodically)."""
        return await self.inbound.sweep()

    async def acknowledge(self, event: InboundSms | StatusReport) -> None:
        """`event` is stored durably: delete it from the modem (see `Inbound.acknowledge`)."""
        await self.inbound.acknowledge(event)

    def release(self, event: InboundSms | StatusReport) -> None:
        """`event` could not be stored: the next sweep hands it over again."""
        self.inbound.release(event)

    async def ussd(self, code: str, *, timeout: float = USSD_REPLY_TIMEOUT) -> str:
        """Send a USSD code and return the network's text reply (see `Health.ussd`)."""
        return await self.health.ussd(code, timeout=timeout)

    def _on_urc(self, urc: Urc) -> None:
        """Each URC to the part it concerns (from the port's data callback: no awaiting here)."""
        kind = urc.spec.kind if urc.spec else UrcKind.VENDOR
        if kind in Inbound.URC_KINDS:
            slot = self.inbound.on_urc(urc)
            if slot is not None:
                self._work.put_nowait(slot)  # read it under the lock, in the background task
        elif kind is UrcKind.USSD:
            self.health.on_ussd_urc(urc.fields)
        elif kind is UrcKind.REGISTRATION and urc.name == "+CREG":
            self.health.on_registration_urc(urc.fields)
        elif kind is UrcKind.SIGNAL and urc.name == "^RSSI":
            self.health.on_signal_urc(urc.fields)
        if urc.line.upper() in {marker.upper() for marker in self.profile.reboot_markers}:
            self.log.info("modem restarted (%s): initialising it again", urc.line)
            self._work.put_nowait(REINITIALISE)

    # ---- the background task ---------------------------------------------------------------

    def _start_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = self._spawn(self._run_background(), "background")

    async def _run_background(self) -> None:
        """Follow-up reads as URCs ask for them; a sweep and a poll when their time comes."""
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
                elif item is not None and not await self.inbound.read_stored(*item):
                    next_sweep = min(next_sweep, time.monotonic() + self.failed_read_sweep)
                else:
                    now = time.monotonic()
                    if now >= next_sweep:
                        next_sweep = now + self.sweep_interval * phase
                        phase = 1.0  # one shifted interval sets the phase
                        await self.inbound.sweep()
                    if now >= next_poll:
                        next_poll = now + self.poll_interval
                        await self.health.poll()
            except AtError as error:  # a timeout already produced an Unresponsive event
                self.log.info("background: %s", error)
                if item is not None and item != REINITIALISE:  # a notice not acted on
                    next_sweep = min(next_sweep, time.monotonic() + self.failed_read_sweep)
            except Exception:  # noqa: BLE001 - background work must go on
                self.log.exception("background work failed")

    async def _next_work(self, deadline: float) -> tuple[str, int] | None:
        """The next work item, or None when `deadline` (monotonic) comes first."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self._work.get()
        except TimeoutError:
            return None

    async def _wait_until_usable(self) -> None:
        """Until the modem is ready again (initialised, reconnected) wait for its state to
        change; while it is ready but silent, probe it with a cheap ``AT`` every
        `Timing.answer_wait` (a second by default)."""
        if self.state is not ModemState.READY:
            self._state_changed.clear()
            if self.state is not ModemState.READY:
                await self._state_changed.wait()
            return
        every = self.channel.timing.answer_wait
        try:
            await self.execute("attention", timeout=every)
            return
        except AtError:
            pass
        await asyncio.sleep(every)  # the modem has no way to tell us it is back: ask again later

    # ---- reconnecting ----------------------------------------------------------------------

    def _start_reconnect(self) -> None:
        if self.reconnect_delays and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = self._spawn(self._reconnect_loop(), "reconnect")

    async def reconnect(self) -> None:
        """Reopen the port and initialise again, waiting longer after each failure (the
        `reconnect_delays`; a single 1 s step when that is empty). Joins a reconnect already
        under way. Publishes `Reconnected` on success, `ReconnectFailed` when the SIM is locked
        (a refused PIN is never entered again). Returns only then, or when the modem is closed.
        """
        if self._reconnecting is not None and not self._reconnecting.done():
            await asyncio.shield(self._reconnecting)
            return
        await self._reconnect_loop(wait_first=False)

    async def _reconnect_loop(self, *, wait_first: bool = True) -> None:
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

    # ---- events --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ModemEvent]:
        """Everything the modem reports, in order, for one consumer. Never ends on its own."""
        while True:
            yield await self._events.get()

    def event_nowait(self) -> ModemEvent | None:
        """The next event if one is waiting (for pollers that do not iterate `events()`)."""
        try:
            return self._events.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


__all__ = ["Modem", "ModemState"]
