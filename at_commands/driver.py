"""One modem: the object that holds its parts and its state.

    modem = Modem("/dev/ttyUSB0", name="m1", pin="1234")
    await modem.open(); await modem.initialise(); info = await modem.identify()
    refs = await modem.send(pdu.encode_submit("+8613800138000", "你好"))
    async for event in modem.events():          # InboundSms, StatusReport, Disconnected ...
        store(event); await modem.acknowledge(event)
    await modem.close()

The parts: `modem.channel` (`channel.py`: the port, the command lock and the exchange through
the sans-I/O core) and `modem.sending` (`sending.py`: ``AT+CMGS``). The set-up (`setup.py`),
inbound (`inbound.py`) and health/reconnect (`health.py`) parts are still mixins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from enum import Enum
from typing import Any

from .channel import Channel
from .core import FinalResult
from .events import Disconnected, ModemEvent
from .health import HealthMixin
from .inbound import InboundMixin
from .profiles import ModemProfile, get_profile
from .sending import Sending
from .setup import PinMemory, SetupMixin


class ModemState(Enum):
    CLOSED = "closed"
    OPEN = "open"                 # port open, not initialised
    READY = "ready"
    DISCONNECTED = "disconnected"
    LOCKED = "locked"             # wrong PIN / PUK: never retried


class Modem(SetupMixin, InboundMixin, HealthMixin):
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
        self._pin = pin
        self.pin_memory = pin_memory  # refused PINs remembered across restarts (setup.PinMemory)
        self._profile_fixed = profile is not None
        self.channel = Channel(port, name=name, baudrate=baudrate,
                               profile=(profile if isinstance(profile, ModemProfile)
                                        else get_profile(profile)),
                               on_urc=self._on_urc, on_lost=self._port_lost,
                               publish=self._publish)
        self.sending = Sending(self.channel)
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self.failed_read_sweep = failed_read_sweep
        self.reconnect_delays = tuple(reconnect_delays)
        self._state_changed = asyncio.Event()  # set on every change of `state`
        self.state = ModemState.CLOSED
        self._events: asyncio.Queue[ModemEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
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
    def response_time(self) -> float | None:
        """How long this modem usually takes to answer (None until it answered once)."""
        return self.channel.response_time

    @property
    def pending_command(self) -> str | None:
        """The command line written and not yet answered (None when idle)."""
        return self.channel.pending_command

    def patience(self, timeout: float) -> float:
        """`timeout`, lengthened for a modem known to answer slowly (never shortened)."""
        return self.channel.patience(timeout)

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
                   before_pdu: Callable[[Any], None] | None = None) -> list[int]:
        """Send the parts of one message: see `Sending.send`."""
        return await self.sending.send(parts, more_to_follow=more_to_follow,
                                       before_pdu=before_pdu)

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
