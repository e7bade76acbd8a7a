"""Bringing a modem to a known state, entering the PIN once, asking who it is.

    setup = Setup(channel, pin="1234", pin_memory=memory)
    await setup.prepare()            # echo, CMEE=1, vendor profile, PIN, PDU mode, CNMI, stores
    await setup.run_vendor_commands()
    info = await setup.identify()    # ModemInfo

Its state: the PIN and what became of it (`pin_error`: once set, never entered again) and the
last `ModemInfo`. The profile detected from ``AT+CGMI`` becomes the channel's.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Protocol

from .channel import Channel
from .commands import REGISTERED, REGISTRATION_STATES, csq_to_bars, csq_to_dbm
from .errors import AtError, AtTimeout, CmeError, CommandError, PinError
from .events import ModemInfo
from .profiles import detect_profile
from .urc import first_int

# TS 27.007 §8.3 +CPIN <code>: what each answer means for us
_PIN_STATES: dict[str, str] = {
    "READY": "ready",
    "SIM PIN": "pin",
    "SIM PUK": "puk",
    "PH-SIM PIN": "locked",
    "SIM PIN2": "ready",   # PIN2 is for phonebook FDN, not for SMS
    "SIM PUK2": "ready",
}

_LOCKED_TEXT: dict[str, str] = {
    "puk": "the SIM is blocked and wants its PUK (AT+CPIN?: SIM PUK); unblock it in a phone",
    "locked": "the modem is locked to another SIM (AT+CPIN?: PH-SIM PIN)",
}


class PinMemory(Protocol):
    """Where refused PINs are remembered across restarts (the pool keeps them in its spool).

    `sim_key` names the SIM: ``iccid:<ICCID>`` (readable before the PIN on most modems), else
    ``port:<device>``. A refused PIN is never entered again for that SIM until the configured
    PIN changes: three restarts would otherwise lock the SIM (PUK). Its methods may be
    coroutines (a memory that waits for a database without holding up the event loop's other
    modems) or plain functions (a memory in a dict or a file); `Setup` takes either."""

    async def pin_refused(self, sim_key: str, pin: str) -> str | None:
        """Why this PIN was refused by this SIM before (None: it was not)."""

    async def pin_was_refused(self, sim_key: str, pin: str, reason: str,
                              attempts_left: int | None) -> None:
        """Remember that this SIM refused this PIN (`attempts_left` before the PUK, if known)."""

    async def pin_accepted(self, sim_key: str) -> None:
        """The SIM took the configured PIN: forget an older refusal."""


# (port, PIN) pairs a SIM refused, for the life of the process: a new `Modem` on the same port
# with the same PIN (a pool re-creating its driver) must not try it again and lock the SIM.
_REFUSED_PINS: dict[tuple[str, str | None], PinError] = {}


async def _answer(value: Any) -> Any:
    """A `PinMemory` method's answer, whether it is a coroutine's or a plain function's."""
    return await value if inspect.isawaitable(value) else value


class Setup:
    """Session bring-up of the modem behind `channel`: known state, PIN, identity.

    `pin`: the SIM's PIN (None: none configured); `pin_memory`: where a refused PIN is
    remembered beyond this process; `detect_profile`: choose the vendor profile from
    ``AT+CGMI`` (False when the caller fixed it)."""

    def __init__(self, channel: Channel, *, pin: str | None = None,
                 pin_memory: PinMemory | None = None, detect_profile: bool = True) -> None:
        self.channel = channel
        self.pin_memory = pin_memory
        self._pin = pin
        self._detect_profile = detect_profile
        self.pin_error: PinError | None = None  # once set, the PIN is never tried again
        self._pin_accepted = False
        self.info: ModemInfo | None = None

    async def prepare(self) -> None:
        """Reset the modem to a known state: echo, ``CMEE=1``, profile, PIN, PDU mode, CNMI,
        stores.

        Raises `PinError` when the SIM needs a PIN we lack, refused ours (tried once, never
        again, even on reconnect: `pin_error` is then set) or wants the PUK (also `pin_error`);
        `AtTimeout` when the modem does not answer.
        """
        channel = self.channel
        refused = _REFUSED_PINS.get((channel.port, self._pin))
        if self.pin_error is None and refused is not None:
            self.pin_error = refused  # another Modem on this port already had it refused
        if self.pin_error is not None:
            raise self.pin_error
        await self._synchronise()
        await channel.execute("echo_on" if channel.profile.echo else "echo_off")
        await channel.execute("verbose_errors", check=False)
        if self._detect_profile:
            manufacturer = await channel.query("manufacturer")
            profile = detect_profile(manufacturer)
            if profile is not channel.profile:
                channel.log.info("profile %s (from %r)", profile.name, manufacturer)
                channel.use_profile(profile)
        await self._unlock_sim()
        profile = channel.profile
        await channel.execute("pdu_mode")
        if profile.sms_service is not None:
            await channel.execute("sms_service", service=profile.sms_service, check=False)
        routing = await channel.execute(profile.new_message_routing, check=False)
        if routing.error is not None:
            channel.log.warning("%s refused (%s): relying on the store sweep",
                                profile.new_message_routing, routing.error)
        await channel.execute("select_stores", store=profile.stores[0])  # +CPMS mem1, 2 and 3

    async def run_vendor_commands(self) -> None:
        """The profile's own initialisation lines; a refusal is logged, not fatal."""
        for line in self.channel.profile.init_commands:
            result = await self.channel.execute(line, check=False)
            if result.error is not None:
                self.channel.log.info("%s: %s (ignored)", line, result.error)

    async def _synchronise(self) -> None:
        """Get the modem's attention: cancel a half-entered PDU, then ``AT`` until ``OK``.

        A modem left at the ``> `` prompt (a client killed after ``AT+CMGS``) answers the ESC
        with ``OK``, which the first ``AT`` would take as its own: every later answer would then
        go to the command after the one it belongs to. So the first exchange resynchronises
        (`Channel.interrupt`: echo on, ``AT`` whose echo marks where its answer starts).
        """
        if self.channel.profile.boot_delay:
            await asyncio.sleep(self.channel.profile.boot_delay)
        self.channel.interrupt()
        last: AtError | None = None
        # Generous and growing waits: a modem on a busy hub or still registering may take
        # seconds; its late answer teaches the channel its pace (`Channel.patience`).
        for wait in self.channel.timing.attention_waits():
            try:
                result = await self.channel.execute("attention", timeout=wait, check=False)
            except AtTimeout as error:
                last = error
                continue
            if result.ok:
                return
        raise last or AtTimeout("modem does not answer AT")

    async def _unlock_sim(self) -> None:
        channel = self.channel
        entered_now = False
        sim_key: str | None = None
        for _ in range(20):
            state = await self._pin_state()
            if state == "ready":
                return
            if state == "busy" or (state == "pin" and entered_now):  # still taking the PIN in
                await asyncio.sleep(0.5)
                continue
            if state == "pin" and self._pin is None:
                raise PinError("the SIM wants a PIN and none is configured")
            if state == "pin" and not self._pin_accepted and self.pin_error is None:
                assert self._pin is not None
                memory = self.pin_memory
                before = None
                if memory is not None:   # the SIM's key is read only where it is remembered
                    sim_key = sim_key or await self._sim_key()
                    before = await _answer(memory.pin_refused(sim_key, self._pin))
                if before is not None:
                    self._lock_out(PinError(
                        f"PIN refused: fix the config (this SIM refused the configured PIN "
                        f"before: {before}; it is not entered again until the PIN changes)"))
                try:
                    await channel.execute("enter_pin", pin=self._pin)
                except (CmeError, CommandError) as error:
                    left = await self._pin_attempts_left()
                    if memory is not None:
                        await _answer(memory.pin_was_refused(sim_key, self._pin, str(error), left))
                    self._lock_out(PinError(
                        f"PIN refused: fix the config ({error}; "
                        + (f"{left} attempt(s) left before the SIM asks for its PUK"
                           if left is not None else "attempts left unknown")
                        + "); not trying it again"))
                if memory is not None:
                    await _answer(memory.pin_accepted(sim_key))
                self._pin_accepted = entered_now = True
                continue
            if state == "pin":  # our PIN, accepted before: the modem was reset, enter it again
                await channel.execute("enter_pin", pin=self._pin)
                entered_now = True
                continue
            self.pin_error = PinError(_LOCKED_TEXT.get(state, f"the SIM reports {state!r} to "
                                                          "AT+CPIN?; it needs a human"))
            raise self.pin_error
        raise PinError("the SIM did not become ready")

    def _lock_out(self, error: PinError) -> None:
        """Never enter this PIN again on this port (in this process; `pin_memory` beyond it)."""
        self.pin_error = error
        _REFUSED_PINS[(self.channel.port, self._pin)] = error
        raise error

    async def _sim_key(self) -> str:
        """``iccid:<ICCID>`` when the modem reads it before the PIN, else ``port:<device>``."""
        iccid = await self._first_answer(self.channel.profile.iccid_command, "iccid")
        return f"iccid:{iccid}" if iccid else f"port:{self.channel.port}"

    async def _pin_attempts_left(self) -> int | None:
        """PIN attempts the SIM has left (vendor command, then ``AT+CPINR``); None: unknown.
        Never raises: a modem silent here must not keep a refused PIN from being locked out."""
        try:
            return await self._first_answer(self.channel.profile.pin_retries_command,
                                            "pin_retries")
        except AtError:
            return None

    async def _first_answer(self, *names: str) -> Any:
        """The first useful answer of the named queries, tried in turn (None: none answered);
        a modem that does not answer at all raises `AtTimeout`."""
        for name in dict.fromkeys(names):
            value = await self.channel.ask(name)
            if value not in (None, ""):
                return value
        return None

    async def _pin_state(self) -> str:
        try:
            answer = await self.channel.query("pin_status")
        except CmeError as error:
            if error.code == 14:          # SIM busy: still starting
                return "busy"
            if error.code in (11, 12):
                return "pin" if error.code == 11 else "puk"
            raise
        return _PIN_STATES.get(answer.upper(), answer or "unknown")

    async def identify(self) -> ModemInfo:
        """Ask the modem who it is and how it is doing; unanswered fields stay None."""
        channel = self.channel
        ask = channel.ask
        iccid = await self._first_answer(channel.profile.iccid_command, "iccid")
        registration = await ask("registration") or ()
        reg_state = first_int(registration, 1 if len(registration) > 1 else 0)
        signal = await ask("signal") or ()
        rssi = first_int(signal, 0)
        operator = await ask("operator") or ()
        smsc = await ask("smsc") or ()
        storage = await ask("store_usage") or ()
        self.info = ModemInfo(
            name=channel.name, port=channel.port, profile=channel.profile.name,
            manufacturer=await ask("manufacturer") or None, model=await ask("model") or None,
            revision=await ask("revision") or None, imei=await ask("imei") or None,
            imsi=await ask("imsi") or None, iccid=iccid or None, msisdn=await ask("own_number"),
            operator=operator[2] if len(operator) > 2 and operator[2] else None,
            registration=reg_state, registration_text=REGISTRATION_STATES.get(reg_state or -1),
            registered=reg_state in REGISTERED, rssi=rssi, signal_dbm=csq_to_dbm(rssi),
            signal_bars=csq_to_bars(rssi), smsc=smsc[0] if smsc and smsc[0] else None,
            storage=tuple({usage.store: usage for usage in storage}.values()),
        )
        return self.info
