"""One modem over a serial port: a thin asyncio loop around the sans-I/O `AtConnection`.

    modem = Modem("/dev/ttyUSB0", name="m1", pin="1234")
    await modem.open(); await modem.initialise(); info = await modem.identify()
    refs = await modem.send(pdu.encode_submit("+8613800138000", "你好"))
    async for event in modem.events():          # InboundSms, StatusReport, Disconnected ...
        store(event); await modem.acknowledge(event)
    await modem.close()

Commands are serialised by one lock and every wait is bounded. URCs are framed whenever they
arrive (also inside a command's reply); follow-up work they need (``AT+CMGR`` after ``+CMTI``)
runs in the modem's own background task, which also sweeps the stores and polls signal and
registration. The set-up (`setup.py`), sending (`sending.py`), inbound (`inbound.py`) and
health/reconnect (`health.py`) parts of `Modem` are mixins in their own files; this file is the
port, the lock and the command exchange.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from enum import Enum
from typing import Any

import serial_asyncio_fast

from .commands import COMMANDS, Command, command_for_line
from .core import (NEED_DATA, AtConnection, Echo, Event, FinalResult, InfoLine, Noise, Prompt, Urc,
                   is_final_result)
from .errors import AtTimeout, ModemDisconnected
from .events import Disconnected, ModemEvent, Responsive, Unresponsive
from .health import HealthMixin
from .inbound import InboundMixin
from .profiles import ModemProfile, get_profile
from .port_exclusivity import release_port, take_port
from .sending import SendingMixin
from .setup import PinMemory, SetupMixin

_QUICK_COMMAND = 5.0  # s: a command with this timeout or less answers at once on a healthy modem
_SECRET = re.compile(r'(\+CPIN2?=|\+CLCK=[^,]*,[^,]*,|\+CPWD=)(.*)', re.IGNORECASE)


def mask_secrets(line: str) -> str:
    """A line fit for a log: PINs and passwords replaced by ****."""
    return _SECRET.sub(r"\1****", line)


class ModemState(Enum):
    CLOSED = "closed"
    OPEN = "open"                 # port open, not initialised
    READY = "ready"
    DISCONNECTED = "disconnected"
    LOCKED = "locked"             # wrong PIN / PUK: never retried


class _Link(asyncio.Protocol):
    """Feeds bytes from the port to the modem; reports the port going away."""

    def __init__(self, modem: Modem) -> None:
        self.modem = modem

    def data_received(self, data: bytes) -> None:
        self.modem._receive(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.modem._port_lost(self, exc)


class Modem(SetupMixin, SendingMixin, InboundMixin, HealthMixin):
    """One modem. Public API: `open`, `initialise`, `identify`, `send`, `events`, `acknowledge`,
    `release`, `ussd`, `sweep`, `execute`, `reconnect`, `close`; `state`, `profile`, `info`.

    `profile`: a `ModemProfile`, a profile name, or None to detect it from ``AT+CGMI``.
    `poll_interval`: seconds between signal/registration polls; `sweep_interval`: between
    ``AT+CMGL=4`` sweeps of all stores; `failed_read_sweep`: how soon a sweep follows a
    notice (``+CMTI``) whose read the modem refused; `reconnect_delays`: backoff after the port
    went away (empty: no automatic reconnect); `pin_memory`: where a refused PIN is remembered
    beyond this process (`setup.PinMemory`).
    """

    def __init__(self, port: str, *, name: str, pin: str | None = None,
                 profile: ModemProfile | str | None = None, baudrate: int = 115200,
                 poll_interval: float = 30.0, sweep_interval: float = 60.0,
                 failed_read_sweep: float = 5.0,
                 reconnect_delays: Sequence[float] = (0.2, 0.5, 1, 2, 5, 10, 30),
                 pin_memory: PinMemory | None = None) -> None:
        self.port = port
        self.name = name
        self.baudrate = baudrate
        self.log = logging.getLogger(f"modempool.modem.{name}")
        self._pin = pin
        self.pin_memory = pin_memory  # refused PINs remembered across restarts (setup.PinMemory)
        self._profile_fixed = profile is not None
        self.profile: ModemProfile = (profile if isinstance(profile, ModemProfile)
                                      else get_profile(profile))
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.failed_read_sweep = failed_read_sweep
        self.reconnect_delays = tuple(reconnect_delays)
        self._state_changed = asyncio.Event()  # set on every change of `state`
        self.state = ModemState.CLOSED
        self._core = AtConnection()
        self._transport: asyncio.Transport | None = None
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[Event] | None = None
        self._events: asyncio.Queue[ModemEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unresponsive = False
        self._closing = False
        self._early_result: FinalResult | None = None
        self._needs_resync = False
        self._resyncing = False
        self._link_kept = False  # AT+CMMS=2 is on
        # How long this modem usually takes to answer (learned; None until it answered once).
        # Old serial modems, busy USB hubs and modems still registering answer after a second
        # or more: waits grow with it, so a slow modem is never taken for a silent one.
        self.response_time: float | None = None
        self._written_at = 0.0          # monotonic time the pending command was written
        self._heard_at = 0.0            # monotonic time of the last byte from the modem
        self._abandoned_at: float | None = None  # written at, of a command we stopped waiting for
        self._grace_for: str | None = None  # the command whose answer may lack its final result
        self._grace_timer: asyncio.TimerHandle | None = None
        self._init_inbound()
        self._init_health()
        self._init_setup()

    @property
    def state(self) -> ModemState:
        return self._state

    @state.setter
    def state(self, value: ModemState) -> None:
        self._state = value
        self._state_changed.set()

    # ---- port ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the serial port. Raises OSError/serial.SerialException if it cannot be opened."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        self._core = AtConnection(extra_urcs=dict(self.profile.extra_urcs),
                                  noise=self.profile.boot_noise)
        self._link = _Link(self)
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop, lambda: self._link, self.port, baudrate=self.baudrate)
        try:
            take_port(transport.serial.fileno(), self.port)
        except OSError:  # another process owns the modem: not a port lost, a port refused
            self._link = None
            transport.abort()
            raise
        self._transport = transport
        self._closing = False
        self._needs_resync = False
        self._link_kept = False
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
        self._drop_transport()
        self.state = ModemState.CLOSED

    async def __aenter__(self) -> Modem:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        self._link = None
        if transport is not None:
            release_port(transport.serial)
            transport.close()
        self._fail_waiter(ModemDisconnected("port closed"))

    def _port_lost(self, link: _Link, exc: Exception | None) -> None:
        if link is not self._link:
            return  # a port we already let go of
        self._transport = None
        self._link = None
        reason = str(exc) if exc else "end of file"
        self._fail_waiter(ModemDisconnected(f"port lost: {reason}"))
        if self._closing:
            return
        self.log.warning("port %s lost: %s", self.port, reason)
        self.state = ModemState.DISCONNECTED
        self._publish(Disconnected(self.name, reason))
        self._start_reconnect()

    # ---- bytes in ------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        self._heard_at = time.monotonic()
        self._core.receive_data(data)
        while (event := self._core.next_event()) is not NEED_DATA:
            self._dispatch(event)  # type: ignore[arg-type]

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Urc):
            self.log.debug("<< %s%s", event.line, f" / {event.pdu}" if event.pdu else "")
            self._on_urc(event)
        elif isinstance(event, (Prompt, FinalResult)):
            self.log.debug("<< %s", "> " if isinstance(event, Prompt) else event.result)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(event)
            elif isinstance(event, FinalResult):
                self._early_result = event  # came with the prompt, before the PDU was asked for
        elif isinstance(event, (Echo, InfoLine)):
            self.log.debug("<< %s", mask_secrets(event.line))
            if isinstance(event, InfoLine) and event.command == self._grace_for:
                self._start_grace()
        elif isinstance(event, Noise):
            self.log.debug("<< (noise) %s", mask_secrets(event.line))
            if self._abandoned_at is not None and is_final_result(event.line.strip().upper()):
                # the late answer of a command we gave up on: the modem is slow, not silent
                self._learn(time.monotonic() - self._abandoned_at, late=True)
                self._abandoned_at = None

    # ---- slow modems and answers without a final result ----------------------------------

    def _learn(self, seconds: float, *, late: bool = False) -> None:
        """Keep the modem's usual response time: the slowest of the recent answers counts most."""
        seconds = max(0.0, seconds)
        known = self.response_time
        self.response_time = seconds if known is None or seconds > known else \
            known * 0.8 + seconds * 0.2
        if late:
            self.log.info("answers slowly (%.1f s): waiting longer for it", seconds)

    def patience(self, timeout: float) -> float:
        """`timeout`, lengthened for a modem known to answer slowly (never shortened)."""
        if self.response_time is None:
            return timeout
        return max(timeout, 4 * self.response_time + 1.0)

    def _start_grace(self) -> None:
        """An information line came for a command whose final result this modem may never send:
        take the answer as complete unless more follows within the profile's grace period."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        grace = max(self.profile.unterminated_grace, 2 * (self.response_time or 0.0))
        self._grace_timer = asyncio.get_running_loop().call_later(grace, self._end_grace)

    def _end_grace(self) -> None:
        self._grace_timer = None
        if self._waiter is None or self._waiter.done():
            return
        result = self._core.assume_final()
        if result is not None:
            self.log.debug("<< (no final result: answer taken after %g s)",
                           self.profile.unterminated_grace)
            self._waiter.set_result(result)

    def _stop_grace(self) -> None:
        self._grace_for = None
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _fail_waiter(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def _publish(self, event: ModemEvent) -> None:
        self._events.put_nowait(event)

    # ---- commands ------------------------------------------------------------------------

    @property
    def pending_command(self) -> str | None:
        """The command line written and not yet answered (None when idle)."""
        return self._core.pending_command

    async def execute(self, name_or_line: str, *, timeout: float | None = None,
                      check: bool = True, **arguments: object) -> FinalResult:
        """Run one command (a `commands.COMMANDS` name with its arguments, or a raw ``AT`` line).

        Returns its `FinalResult`; raises its `AtError` when `check` and it failed, `AtTimeout`
        when the modem did not answer, `ModemDisconnected` when the port is gone.
        """
        async with self._lock:
            return await self._execute(name_or_line, timeout=timeout, check=check, **arguments)

    async def _execute(self, name_or_line: str, *, timeout: float | None = None,
                       check: bool = True, **arguments: object) -> FinalResult:
        """`execute` for a caller that already holds the command lock."""
        if name_or_line in COMMANDS:
            command = COMMANDS[name_or_line]
            line = command.line(**arguments)
        else:
            command, line = command_for_line(name_or_line), name_or_line.strip()
        wait = self.patience(timeout or self.profile.timeout(command.name, command.timeout))
        result = await self._exchange(line, command, wait)
        if line.upper().startswith("AT+CPMS=") and not line.endswith("?"):  # keep track of the read store, whoever set it
            self._current_store = line.split("=", 1)[1].split(",")[0].strip('"') if result.ok else None
        if check and result.error is not None:
            raise result.error
        return result

    async def query(self, name: str, **arguments: object) -> Any:
        """Run the named command and return what its parser makes of the reply."""
        command = COMMANDS[name]
        result = await self.execute(name, **arguments)
        return command.parse(result.lines)

    async def _exchange(self, line: str, command: Command, timeout: float, *,
                        require_echo: bool = False, stale_ok: bool = False) -> FinalResult:
        """Write `line` and wait for its final result. The caller holds the lock.

        `stale_ok`: the answer may be the late one of an abandoned command (resynchronising),
        so its delay says nothing about the modem's pace."""
        await self._resync_if_needed(timeout)
        data = self._core.send_command(line, prefixes=(command.prefix,) if command.prefix else (),
                                       require_echo=require_echo)
        self.log.debug(">> %s", f"{line.split('=')[0]}=****" if command.secret else line)
        if command.name in self.profile.unterminated_replies:
            self._grace_for = line.strip()
        try:
            event = await self._wait(self._write_and_wait(data), timeout, line)
        finally:
            self._stop_grace()
        assert isinstance(event, FinalResult)
        if not stale_ok and command.timeout <= _QUICK_COMMAND:
            # only quick commands tell the modem's pace (a PIN entry or a listing works for seconds)
            self._learn(time.monotonic() - self._written_at)
        return event

    async def _write_and_wait(self, data: bytes) -> Event:
        if self._transport is None:
            self._core.abandon()
            raise ModemDisconnected(f"{self.port} is not open")
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._written_at = time.monotonic()
        self._transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    async def _wait(self, waiting: Any, timeout: float, line: str) -> Event:
        try:
            async with asyncio.timeout(timeout):
                event = await waiting
        except TimeoutError:
            await self._timed_out(line)
            raise AtTimeout(f"no answer to {mask_secrets(line)} within {timeout:g} s") from None
        except ModemDisconnected:
            self._core.abandon()
            raise
        except asyncio.CancelledError:  # the caller gave up: the answer, if any, is stale
            self._core.abandon()
            self._needs_resync = True
            raise
        if self._unresponsive:
            self._unresponsive = False
            self._publish(Responsive(self.name))
        return event

    async def _timed_out(self, line: str) -> None:
        """Forget the command and cancel a prompt; resynchronise before the next command."""
        escape = self._core.abandon()
        self._needs_resync = True
        self._abandoned_at = self._written_at
        if self._heard_at > self._written_at:  # it talks, just not (yet) this answer
            self.log.info("no answer to %s in time, but the modem is talking",
                          mask_secrets(line))
        else:
            self.log.warning("no answer to %s", mask_secrets(line))
        if not self._unresponsive and self._heard_at <= self._written_at:
            self._unresponsive = True
            self._publish(Unresponsive(self.name, mask_secrets(line)))
        if self._transport is not None:
            self._transport.write(escape)

    async def _resync_if_needed(self, timeout: float = 1.0) -> None:
        """After a timeout, a late answer to the abandoned command may still come. Turn echo on
        and send ``AT`` requiring its echo: the modem answers in order, so whatever comes before
        that echo is the old command's tail (`AtConnection.send_command(require_echo=True)`)."""
        if not self._needs_resync or self._resyncing:
            return
        self._resyncing = True
        try:
            wait = self.patience(min(max(timeout, 1.0), 3.0))
            await self._exchange("ATE1", COMMANDS["echo_on"], wait, stale_ok=True)
            await self._exchange("AT", COMMANDS["attention"], wait, require_echo=True)
            if not self.profile.echo:
                await self._exchange("ATE0", COMMANDS["echo_off"], wait)
            self._needs_resync = False
        finally:
            self._resyncing = False

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


__all__ = ["Modem", "ModemState", "mask_secrets"]
