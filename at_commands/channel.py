"""One modem's command channel: the serial port, the sans-I/O core, the command lock, and the
exchange of one command for its answer.

    channel = Channel("/dev/ttyUSB0", name="m1", profile=get_profile("simcom"))
    await channel.open()
    result = await channel.execute("signal")          # FinalResult; AtError when it failed
    async with channel.lock:                          # several commands with nothing between
        await channel.run("select_read_store", store="SM"); await channel.run("list", status=4)
    channel.close()

Every wait is bounded. The channel learns how fast its modem answers (`patience`), takes an
answer a firmware leaves without ``OK`` after a grace (profile ``unterminated_replies``; both
in `pace.py`), and resynchronises after a command it stopped waiting for. What it cannot handle
itself it hands to its owner: each unsolicited result code (`on_urc`, called from the port's
data callback, so without awaiting), the port going away (`on_lost`), and
`Unresponsive`/`Responsive` (`publish`). Lines go to the log through `masking.mask_secrets`.
The other parts of a `Modem` (set-up, sending, inbound, health) talk to the modem only through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import serial_asyncio_fast

from .commands import COMMANDS, Command, command_for_line
from .core import (NEED_DATA, AtConnection, Echo, Event, FinalResult, InfoLine, Noise, Prompt, Urc,
                   is_final_result)
from .errors import AtError, AtTimeout, ErrorClass, ModemDisconnected
from .events import ModemEvent, Responsive, Unresponsive
from .masking import mask_secrets
from .pace import AnswerGrace, Pace
from .port_exclusivity import release_port, take_port
from .profiles import ModemProfile
from .timing import Timing

_QUICK_COMMAND = 5.0  # s: a command with this timeout or less answers at once on a healthy modem


class _Link(asyncio.Protocol):
    """Feeds bytes from the port to the channel; reports the port going away."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def data_received(self, data: bytes) -> None:
        self.channel._receive(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.channel._port_lost(self, exc)


class Channel:
    """The port and the command exchange of one modem. Public: `open`, `close`, `is_open`, `fileno`,
    `execute` (takes the lock), `run` (lock held), `query`, `ask`, `lock`, `pending_command`,
    `patience` (`pace`); the prompt exchange of ``AT+CMGS`` (`ask_for_prompt`, `write_pdu`,
    `cancel_prompt`); `interrupt`; `profile` (replaceable), `read_store`, `unresponsive`."""

    def __init__(self, port: str, *, name: str, profile: ModemProfile, baudrate: int = 115200,
                 on_urc: Callable[[Urc], None] | None = None,
                 on_lost: Callable[[str], None] | None = None,
                 publish: Callable[[ModemEvent], None] | None = None,
                 timing: Timing | None = None) -> None:
        self.port = port
        self.name = name
        self.baudrate = baudrate
        self.log = logging.getLogger(f"modempool.modem.{name}")
        self.profile = profile
        self.timing = timing or Timing()  # the user's waits for this modem, over the profile's
        self.lock = asyncio.Lock()  # one command at a time; hold it for commands that belong together
        self.read_store: str | None = None  # the store AT+CMGR/CMGL/CMGD use (last AT+CPMS=)
        self.unresponsive = False   # a command went unanswered and nothing was heard since
        self.pace = Pace(self.log, margin=self.timing.answer_wait)  # waits grow with its pace
        self._on_urc = on_urc or (lambda urc: None)
        self._on_lost = on_lost or (lambda reason: None)
        self._publish = publish or (lambda event: None)
        self._core = AtConnection()
        self._transport: asyncio.Transport | None = None
        self._link: _Link | None = None
        self._waiter: asyncio.Future[Event] | None = None
        self._early_result: FinalResult | None = None
        self._needs_resync = False
        self._resyncing = False
        self._written_at = 0.0          # monotonic time the pending command was written
        self._heard_at = 0.0            # monotonic time of the last byte from the modem
        self._abandoned_at: float | None = None  # written at, of a command we stopped waiting for
        self._grace = AnswerGrace(self._end_grace)  # for answers that may lack a final result

    # ---- port ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    def fileno(self) -> int | None:
        """The open port's file descriptor (None when closed)."""
        return self._transport.serial.fileno() if self._transport is not None else None

    async def open(self) -> None:
        """Open the serial port, alone (`port_exclusivity`). Raises OSError /
        serial.SerialException if it cannot be opened or another process owns it."""
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
        self._needs_resync = False

    def close(self) -> None:
        """Let the port go; a command waiting for its answer gets `ModemDisconnected`."""
        transport, self._transport = self._transport, None
        self._link = None
        if transport is not None:
            release_port(transport.serial)
            transport.close()
        self._fail_waiter(ModemDisconnected("port closed"))

    def use_profile(self, profile: ModemProfile) -> None:
        """Switch to the vendor profile detected after opening (its URCs and noise lines too)."""
        self.profile = profile
        self._core.add_vendor_lines(dict(profile.extra_urcs), profile.boot_noise)

    def _port_lost(self, link: _Link, exc: Exception | None) -> None:
        if link is not self._link:
            return  # a port we already let go of
        self._transport = None
        self._link = None
        reason = str(exc) if exc else "end of file"
        self._fail_waiter(ModemDisconnected(f"port lost: {reason}"))
        self._on_lost(reason)

    # ---- bytes in ------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        self._heard_at = time.monotonic()
        self._core.receive_data(data)
        while (event := self._core.next_event()) is not NEED_DATA:
            self._dispatch(event)  # type: ignore[arg-type]

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Urc):
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("<< %s%s", event.line, f" / {event.pdu}" if event.pdu else "")
            self._on_urc(event)
        elif isinstance(event, (Prompt, FinalResult)):
            self.log.debug("<< %s", "> " if isinstance(event, Prompt) else event.result)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(event)
            elif isinstance(event, FinalResult):
                self._early_result = event  # came with the prompt, before the PDU was asked for
        elif isinstance(event, (Echo, InfoLine)):
            if self.log.isEnabledFor(logging.DEBUG):   # masking costs, on every line
                self.log.debug("<< %s", mask_secrets(event.line))
            if isinstance(event, InfoLine) and event.command == self._grace.command:
                self._start_grace()
        elif isinstance(event, Noise):
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("<< (noise) %s", mask_secrets(event.line))
            if self._abandoned_at is not None and is_final_result(event.line.strip().upper()):
                # the late answer of a command we gave up on: the modem is slow, not silent
                self.pace.learn(time.monotonic() - self._abandoned_at, late=True)
                self._abandoned_at = None

    # ---- slow modems and answers without a final result ----------------------------------

    @property
    def response_time(self) -> float | None:
        """How long this modem usually takes to answer (learned; None until it answered once)."""
        return self.pace.response_time

    def patience(self, timeout: float) -> float:
        """`timeout`, lengthened for a modem known to answer slowly (never shortened)."""
        return self.pace.patience(timeout)

    def timeout_of(self, command: str, default: float) -> float:
        """The wait for `command` before the pace lengthens it: the user's (`timing`), else
        the profile's, else `default`."""
        return self.timing.timeout(command, self.profile, default)

    def _start_grace(self) -> None:
        """An information line came for a command whose final result this modem may never send:
        take the answer as complete unless more follows within the profile's grace period."""
        self._grace.restart(max(self.profile.unterminated_grace, 2 * (self.response_time or 0.0)))

    def _end_grace(self) -> None:
        if self._waiter is None or self._waiter.done():
            return
        result = self._core.assume_final()
        if result is not None:
            self.log.debug("<< (no final result: answer taken after %g s)",
                           self.profile.unterminated_grace)
            self._waiter.set_result(result)

    def _fail_waiter(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

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
        async with self.lock:
            return await self.run(name_or_line, timeout=timeout, check=check, **arguments)

    async def run(self, name_or_line: str, *, timeout: float | None = None,
                  check: bool = True, **arguments: object) -> FinalResult:
        """`execute` for a caller that already holds `lock`."""
        if name_or_line in COMMANDS:
            command = COMMANDS[name_or_line]
            line = command.line(**arguments)
        else:
            command, line = command_for_line(name_or_line), name_or_line.strip()
        wait = self.patience(timeout or self.timeout_of(command.name, command.timeout))
        result = await self._exchange(line, command, wait)
        if line.upper().startswith("AT+CPMS=") and not line.endswith("?"):  # whoever set it
            self.read_store = line.split("=", 1)[1].split(",")[0].strip('"') if result.ok else None
        if check and result.error is not None:
            raise result.error
        return result

    async def query(self, name: str, **arguments: object) -> Any:
        """Run the named command and return what its parser makes of the reply."""
        command = COMMANDS[name]
        result = await self.execute(name, **arguments)
        return command.parse(result.lines)

    async def ask(self, name: str, **arguments: object) -> Any:
        """What `query` returns, or None when the modem refused the command (logged at DEBUG).
        A modem that does not answer at all still raises `AtTimeout`."""
        try:
            return await self.query(name, **arguments)
        except AtError as error:
            if isinstance(error, AtTimeout):
                raise
            self.log.debug("%s: %s", name, error)
            return None

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
            self._grace.command = line.strip()
        try:
            event = await self._wait(self._write_and_wait(data), timeout, line)
        finally:
            self._grace.stop()
        assert isinstance(event, FinalResult)
        if not stale_ok and command.timeout <= _QUICK_COMMAND:
            # only quick commands tell the modem's pace (a PIN entry or a listing works for seconds)
            self.pace.learn(time.monotonic() - self._written_at)
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
        if self.unresponsive:
            self.unresponsive = False
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
        if not self.unresponsive and self._heard_at <= self._written_at:
            self.unresponsive = True
            self._publish(Unresponsive(self.name, mask_secrets(line)))
        if self._transport is not None:
            self._transport.write(escape)

    async def _resync_if_needed(self, timeout: float = 0.0) -> None:
        """After a timeout, a late answer to the abandoned command may still come. Turn echo on
        and send ``AT`` requiring its echo: the modem answers in order, so whatever comes before
        that echo is the old command's tail (`AtConnection.send_command(require_echo=True)`)."""
        if not self._needs_resync or self._resyncing:
            return
        self._resyncing = True
        try:
            wait = self.patience(self.timing.resync_wait(timeout))
            await self._exchange("ATE1", COMMANDS["echo_on"], wait, stale_ok=True)
            await self._exchange("AT", COMMANDS["attention"], wait, require_echo=True)
            if not self.profile.echo:
                await self._exchange("ATE0", COMMANDS["echo_off"], wait)
            self._needs_resync = False
        finally:
            self._resyncing = False

    def interrupt(self) -> None:
        """ESC to a modem that may sit at a ``> `` prompt left by someone else; whatever it
        answers is stale, so the next command resynchronises first."""
        if self._transport is not None:
            self._transport.write(b"\x1b\r")
            self._needs_resync = True

    # ---- the prompt exchange of AT+CMGS (TS 27.005 §3.5.1) --------------------------------

    async def ask_for_prompt(self, line: str, command: Command, timeout: float) -> None:
        """Write `line` and wait for the ``> `` prompt. The caller holds the lock.

        Raises the modem's `AtError` when it refused before the prompt (nothing was sent)."""
        await self._resync_if_needed()
        self._early_result = None
        data = self._core.send_command(line, prefixes=(command.prefix,), expects_prompt=True)
        self.log.debug(">> %s", line)
        first = await self._wait(self._write_and_wait(data), self.patience(timeout), line)
        if isinstance(first, FinalResult):  # refused before the prompt
            if first.error is not None:
                raise first.error
            raise AtError(f"{line} answered {first.result} without a prompt")
        self._raise_if_ended_at_prompt(line)   # prompt and result arrived together

    def _raise_if_ended_at_prompt(self, line: str) -> None:
        """The modem's final result came after its prompt, with no PDU written (its entry
        timer ran out, or it refused): nothing was sent, and the modem takes commands again.
        An AtError of the modem (SIM_OR_MODEM, never PERMANENT: it judged no PDU), naming
        the result; the modem's own error is its cause."""
        if self._core.pending_command is not None:
            return
        early, self._early_result = self._early_result, None
        result = early.result if early is not None else "?"
        raise AtError(f"{line} ended at the prompt ({result}) before the PDU: nothing sent",
                      error_class=ErrorClass.SIM_OR_MODEM) from (early.error if early else None)

    async def write_pdu(self, hex_pdu: str, line: str, timeout: float) -> FinalResult:
        """At the prompt: write the PDU and Ctrl-Z, and wait for the final result of `line`.
        Raises `AtTimeout` or `ModemDisconnected` when no answer comes (the PDU may be out).
        If the modem ended the command at its prompt meanwhile (while `before_pdu` ran), the
        PDU is not written (it would be read as a command line) and its result is raised."""
        self._raise_if_ended_at_prompt(line)
        pdu_bytes = self._core.send_pdu(hex_pdu)
        self.log.debug(">> %s<Ctrl-Z>", hex_pdu)
        result = await self._wait(self._write_and_wait(pdu_bytes), timeout, line)
        assert isinstance(result, FinalResult)
        return result

    def cancel_prompt(self) -> None:
        """ESC at the prompt: the modem drops the command without sending (TS 27.005 §3.5.1);
        its late ``OK`` is stale, so the next command resynchronises first."""
        escape = self._core.abandon()
        self._needs_resync = True
        if self._transport is not None:
            self._transport.write(escape)


__all__ = ["Channel", "mask_secrets"]
