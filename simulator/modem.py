"""One virtual modem: an AT interpreter, fed bytes, that answers like real hardware.

The interpreter does no I/O. `feed(data)` takes what the client wrote; everything the modem says
(echo, replies, unsolicited codes) goes to `self.output(Output)`, which its port
(`simulator/modem_port.py`) writes to the pseudo-terminal honouring each output's delay
(`simulator/modem_output.py`).
Commands live in tables (`simulator/commands.py`, `simulator/sms_commands.py`); this module keeps
the modem's state (settings, SIM, faults, registration), frames lines, splits a command line into
commands and checks SIM preconditions. What each fault does when set or lifted is in
`simulator/faults.py`.
"""

from __future__ import annotations

import enum
import logging
import re
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.at_syntax import (AtFailure, Command, Form, Output, Reply, cme, parse_command_line,
                                 split_args)
from simulator.faults import Fault, apply_fault, check_command_error, fault_params, lift_fault
from simulator.modem_output import ModemOutput
from simulator.network import MessageStore, Network, PinState, Sim
from simulator.personalities import Personality

CTRL_Z, ESC, BACKSPACE = 0x1A, 0x1B, 0x08

_PRINTABLE_RUN = re.compile(rb"[\x20-\xff]*")
_PIN_ARGUMENT = re.compile(r'(\+CPIN\s*=\s*)[^\r\n]*', re.IGNORECASE)


def mask_pin(text: str) -> str:
    """The command line with any PIN/PUK argument blanked, for logs."""
    return _PIN_ARGUMENT.sub(r"\1****", text)


class InputMode(enum.Enum):
    COMMAND = "command"
    ENTRY = "entry"  # after the "> " prompt, until Ctrl-Z or ESC


@dataclass(slots=True)
class Settings:
    """What ATZ / AT&F put back."""

    echo: bool = True
    verbose: bool = True
    cmee: int = 0
    cmgf: int = 0
    cscs: str = "IRA"
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    creg: int = 0
    cgreg: int = 0
    cops_format: int = 0
    cmms: int = 0
    csms: int = 0
    csdh: int = 0
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    cusd: int = 0
    curc: int = 1


class VirtualModem(ModemOutput):
    """The AT interpreter of one simulated modem holding one SIM."""

    def __init__(self, name: str, personality: Personality, sim: Sim, network: Network,
                 *, imei: str, rng: random.Random, latency: float = 0.0,
                 realistic: bool = False,
                 table: dict[str, Command]) -> None:
        self.name = name
        self.personality = personality
        self.sim = sim
        self.network = network
        self.imei = imei
        self.rng = rng
        self.latency = latency
        self.realistic = realistic  # use the personality's typical timings
        self.table = table
        self.log = logging.getLogger(f"modempool.simulator.{name}")
        self.output: Callable[[Output], None] = lambda out: None
        self.faults: dict[Fault, dict[str, Any]] = {}
        self.stores: dict[str, MessageStore] = {}
        for store_name, capacity in personality.stores.items():
            self.stores[store_name] = sim.store if store_name == "SM" else MessageStore(capacity)
        sim.store.capacity = personality.stores.get("SM", sim.store.capacity)
        self.settings = Settings()
        self.cpms = [personality.default_store] * 3
        self.cfun = 1
        self.csca = sim.operator.smsc
        self.message_reference = self.rng.randrange(256)
        self.connected = False  # the pty exists (not unplugged)
        self.client_attached = False  # a client has the port open and talks to it
        self.hung = False
        self._mode = InputMode.COMMAND
        self._buffer = bytearray()
        self._entry: Reply | None = None
        self._registered = False
        # URCs a command causes are held until its final result is written (a real modem
        # finishes its reply first: `OK` of AT+CFUN=1, then `+CREG: 1`).
        self._held_urcs: list[str] | None = None
        # TS 27.005 3.4.4: with AT+CSMS=1 a +CMT/+CDS waits for AT+CNMA, for `ack_timeout` s.
        self.ack_timeout = personality.ack_timeout
        self.awaiting_ack: Any = None  # arrival.PendingAck while a +CMT waits for AT+CNMA
        self.reboot(announce=False)

    # -- lifecycle ------------------------------------------------------------------------
    def reboot(self, *, announce: bool = True) -> None:
        """Power cycle: settings back to defaults, SIM asks its PIN again if locking is on."""
        self.settings = self.power_on_settings()
        self.cpms = [self.personality.default_store] * 3
        self.cfun = 1
        self.hung = Fault.HANG in self.faults
        from simulator.arrival import drop_ack  # a reboot forgets a +CMT waiting for +CNMA
        drop_ack(self, acknowledged=False)
        self._mode, self._buffer, self._entry = InputMode.COMMAND, bytearray(), None
        if Fault.PIN_LOCKED in self.faults and self.sim.pin_state is PinState.READY:
            self.sim.pin_state = PinState.PIN
        self._registered = self.registered
        if announce:
            for line in self.power_on_urcs():
                self.urc(line)
        if announce and Fault.BOOT_NOISE in self.faults:
            self.boot_noise()

    def power_on_settings(self) -> Settings:
        p = self.personality
        return Settings(cnmi=p.default_cnmi, csms=p.default_csms, curc=p.urc_switch_default)

    def power_on_urcs(self) -> list[str]:
        """What the vendor prints by itself at every power-on (Wavecom `+WIND`, Quectel `RDY`)."""
        cpin = self.sim.pin_state.value if self.sim_present else "NOT INSERTED"
        return [line.format(rssi=self.sim.rssi, imei=self.imei, cpin=cpin)
                for line in self.personality.power_on_urcs]

    def boot_noise(self) -> None:
        for line in self.personality.boot_urcs:
            self.urc(line.format(rssi=self.sim.rssi, imei=self.imei))

    # -- faults ---------------------------------------------------------------------------
    def set_fault(self, kind: Fault | str, **params: Any) -> None:
        fault, merged = fault_params(kind, params)
        self.faults[fault] = merged
        apply_fault(self, fault, merged)
        self.registration_changed()

    def clear_fault(self, kind: Fault | str | None = None) -> None:
        kinds = list(self.faults) if kind is None else [Fault(kind)]
        for fault in kinds:
            self.faults.pop(fault, None)
            lift_fault(self, fault)
        self.registration_changed()
        self.network.retry_pending(self.sim.msisdn)

    # -- state the commands read ----------------------------------------------------------
    @property
    def sim_present(self) -> bool:
        return Fault.SIM_ABSENT not in self.faults

    @property
    def registered(self) -> bool:
        return (self.sim_present and self.sim.pin_state is PinState.READY and self.cfun == 1
                and Fault.NO_REGISTRATION not in self.faults)

    def registration_changed(self) -> None:
        """Print +CREG (and the vendor's mode URC) when registration flips."""
        now = self.registered
        if now == self._registered:
            return
        self._registered = now
        stat = 1 if now else 2
        if self.settings.creg == 1:
            self.urc(f"+CREG: {stat}")
        elif self.settings.creg == 2:
            self.urc(f"+CREG: {stat},\"2540\",\"0E1F\"" if now else f"+CREG: {stat}")
        if now and self.personality.mode_urc:
            self.vendor_urc(self.personality.mode_urc)
        if now:
            self.network.retry_pending(self.sim.msisdn)

    def set_signal(self, rssi: int) -> None:
        """A new signal level (0-31); vendors that report it say so (Huawei `^RSSI:n`)."""
        if not 0 <= rssi <= 31:
            raise ValueError(f"signal level {rssi} out of range 0-31")
        changed, self.sim.rssi = rssi != self.sim.rssi, rssi
        if changed and self.personality.signal_urc and self.registered:
            self.vendor_urc(self.personality.signal_urc.format(rssi=rssi))

    def vendor_urc(self, line: str) -> None:
        """A vendor's own URC (`^RSSI`, `^MODE`, `+WIND`), unless its switch is off (`AT^CURC=0`)."""
        if self.settings.curc:
            self.urc(line)

    def require_sim(self, family: str) -> None:
        """Raise the error a real modem gives when the SIM is missing or locked."""
        codes = {"CME": (10, 11, 12, 13), "CMS": (310, 311, 316, 310)}[family]
        if not self.sim_present:
            raise AtFailure(family, codes[0])
        state = self.sim.pin_state
        if state is PinState.PIN:
            raise AtFailure(family, codes[1])
        if state is PinState.PUK:
            raise AtFailure(family, codes[2])
        if state is PinState.BLOCKED:
            raise AtFailure(family, codes[3])

    def command_delay(self) -> float:
        if Fault.LATENCY in self.faults:
            return float(self.faults[Fault.LATENCY]["seconds"])
        if self.latency or not self.realistic:
            return self.latency
        return self.personality.command_latency

    def sms_delay(self) -> float:
        if Fault.SMS_LATENCY in self.faults:
            return float(self.faults[Fault.SMS_LATENCY]["seconds"])
        return self.personality.sms_latency if self.realistic else 0.0

    def next_message_reference(self) -> int:
        self.message_reference = (self.message_reference + 1) % 256
        return self.message_reference

    # -- the network's side (Endpoint) ----------------------------------------------------
    def receive_sms(self, deliver_pdu: str) -> bool:
        from simulator.arrival import receive_sms  # routing per +CNMI, with +CNMA
        return receive_sms(self, deliver_pdu)

    def receive_status_report(self, report_pdu: str) -> str:
        from simulator.arrival import receive_status_report
        return receive_status_report(self, report_pdu)

    # -- input ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes written by the client."""
        if self.hung or not self.connected:
            return
        position = 0
        while position < len(data):
            if self.hung:
                return
            # Printable bytes only join the line (and its echo): taken a run at a time, as a
            # PDU line is mostly them. Control bytes (CR, Ctrl-Z, ESC, backspace) one by one.
            end = _PRINTABLE_RUN.match(data, position).end()
            if end > position:
                self._take_run(data[position:end])
                position = end
                continue
            if self._mode is InputMode.ENTRY:
                self._feed_entry(data[position])
            else:
                self._feed_command(data[position])
            position += 1

    def _take_run(self, run: bytes) -> None:
        echo = self.settings.echo and (self._mode is InputMode.COMMAND
                                       or self.personality.echo_pdu_line)
        if echo:
            self._say(run)
        self._buffer += run

    def _feed_command(self, byte: int) -> None:
        if self.settings.echo:
            self._say(bytes([byte]))
        if byte == 0x0D:
            line = self._buffer.decode("latin-1")
            self._buffer.clear()
            self._run_line(line)
        elif byte == BACKSPACE:
            del self._buffer[-1:]
        elif byte >= 0x20:
            self._buffer.append(byte)

    def _feed_entry(self, byte: int) -> None:
        entry = self._entry
        assert entry is not None and entry.prompt is not None
        if byte == CTRL_Z:
            text = bytes(self._buffer)
            self._mode, self._buffer, self._entry = InputMode.COMMAND, bytearray(), None
            self._finish(lambda: entry.prompt(text))
        elif byte == ESC:
            self._mode, self._buffer, self._entry = InputMode.COMMAND, bytearray(), None
            self._result([], "OK", self.command_delay())
        else:
            if self.personality.echo_pdu_line and self.settings.echo:
                self._say(bytes([byte]))
            if byte == 0x0D and entry.text_entry:
                self._buffer.extend(b"\n")
                self._say(self.personality.prompt)
            elif byte == BACKSPACE:
                del self._buffer[-1:]
            elif byte >= 0x20:
                self._buffer.append(byte)

    def give_up_prompt(self, code: int | None = None, *, entry: Reply | None = None) -> None:
        """Leave the ``> `` prompt without a PDU, as a modem whose entry timer ran out: it
        answers ``+CMS ERROR: <code>`` (``ERROR`` without one) and reads what follows as
        command lines. `entry`: only if that prompt is still open."""
        if self._mode is not InputMode.ENTRY or (entry is not None and self._entry is not entry):
            return
        self._mode, self._buffer, self._entry = InputMode.COMMAND, bytearray(), None
        failure = AtFailure("CMS", int(code)) if code is not None else AtFailure()
        self._result([], self.error_text(failure), 0.0)

    def _run_line(self, line: str) -> None:
        stripped = line.strip()
        if not stripped:
            return
        if stripped[:2].upper() != "AT":
            return  # real modems ignore lines that do not start with AT
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("<- %s", mask_pin(stripped))

        def run_all() -> Reply:
            combined = Reply()
            for name, form, argument_text in parse_command_line(stripped[2:]):
                reply = self._run_one(name, form, argument_text)
                combined.lines.extend(reply.lines)
                combined.then.extend(reply.then)
                combined.then_delay = max(combined.then_delay, reply.then_delay)
                combined.delay += reply.delay
                combined.action = reply.action or combined.action
                combined.omit_result = combined.omit_result or reply.omit_result
                if reply.prompt or not reply.final:
                    reply.lines = combined.lines
                    return reply
            return combined

        self._finish(run_all)

    def _run_one(self, name: str, form: Form, argument_text: str) -> Reply:
        command = self.table.get(name)
        if command is None:
            raise AtFailure("CME", 100) if self.settings.cmee else AtFailure()
        if command.sim and not (command.sim == "cme-set" and form is not Form.SET):
            self.require_sim("CMS" if command.sim == "cms" else "CME")
        check_command_error(self.faults, name)
        args = split_args(argument_text) if form is Form.SET else []
        result = command.handler(self, form, args)
        if result is None:
            return Reply()
        if isinstance(result, list):
            return Reply(lines=result)
        return result

    def _finish(self, run: Callable[[], Reply]) -> None:
        """Run a command (or the end of a text entry) and write what it answers."""
        self._hold_urcs()
        try:
            self._answer(run)
        finally:
            self._release_urcs()

    def _answer(self, run: Callable[[], Reply]) -> None:
        delay = self.command_delay()
        try:
            reply = run()
        except AtFailure as failure:
            self._result([], self.error_text(failure), delay)
            return
        except (ValueError, IndexError):
            failure = cme(50) if self.settings.cmee else AtFailure()
            self._result([], self.error_text(failure), delay)
            return
        except Exception:  # a bug here must not leave the client waiting for ever
            self.log.exception("command failed inside the simulator")
            self._result([], "ERROR", delay)
            return
        if reply.prompt is not None:
            self._mode, self._entry = InputMode.ENTRY, reply
            self._say(self.personality.prompt, delay)
            impatient = self.faults.get(Fault.PROMPT_GIVE_UP)
            if impatient is not None:
                self._say(b"", float(impatient["seconds"]),
                          lambda: self.give_up_prompt(impatient["code"], entry=reply))
            return
        if not reply.final:
            if reply.action:
                self._say(b"", delay + reply.delay, reply.action)
            return
        self._result(reply.lines, "" if reply.omit_result else "OK", delay + reply.delay,
                     self._after_result(reply.action))
        self._release_urcs()
        for line in reply.then:
            self._say(f"\r\n{line}\r\n".encode("latin-1", "replace"), reply.then_delay)
