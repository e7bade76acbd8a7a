"""Bringing a modem to a known state, entering the PIN once, asking who it is."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from .commands import REGISTERED, REGISTRATION_STATES, csq_to_bars, csq_to_dbm
from .errors import AtError, AtTimeout, CmeError, CommandError, PinError
from .events import ModemInfo
from .profiles import detect_profile
from .urc import first_int

if TYPE_CHECKING:
    from .driver import Modem

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
    PIN changes: three restarts would otherwise lock the SIM (PUK)."""

    def pin_refused(self, sim_key: str, pin: str) -> str | None:
        """Why this PIN was refused by this SIM before (None: it was not)."""

    def pin_was_refused(self, sim_key: str, pin: str, reason: str,
                        attempts_left: int | None) -> None:
        """Remember that this SIM refused this PIN (`attempts_left` before the PUK, if known)."""

    def pin_accepted(self, sim_key: str) -> None:
        """The SIM took the configured PIN: forget an older refusal."""


# (port, PIN) pairs a SIM refused, for the life of the process: a new `Modem` on the same port
# with the same PIN (a pool re-creating its driver) must not try it again and lock the SIM.
_REFUSED_PINS: dict[tuple[str, str | None], PinError] = {}


class SetupMixin:
    def _init_setup(self: Modem) -> None:
        self._pin_error: PinError | None = None   # once set, the PIN is never tried again
        self._pin_accepted = False
        self.info: ModemInfo | None = None

    async def initialise(self: Modem) -> None:
        """Reset the modem to a known state: echo, ``CMEE=1``, PDU mode, CNMI, stores, PIN.

        Raises `PinError` when the SIM needs a PIN we lack, refused ours (tried once, never
        again, even on reconnect) or wants the PUK; `AtTimeout` when the modem does not answer.
        """
        from .driver import ModemState

        refused = _REFUSED_PINS.get((self.port, self._pin))
        if self._pin_error is None and refused is not None:
            self._pin_error = refused  # another Modem on this port already had it refused
        if self._pin_error is not None:
            self.state = ModemState.LOCKED
            raise self._pin_error
        await self._synchronise()
        await self.execute("echo_on" if self.profile.echo else "echo_off")
        await self.execute("verbose_errors", check=False)
        if not self._profile_fixed:
            manufacturer = await self.query("manufacturer")
            profile = detect_profile(manufacturer)
            if profile is not self.profile:
                self.log.info("profile %s (from %r)", profile.name, manufacturer)
                self.channel.use_profile(profile)
        await self._unlock_sim()
        await self.execute("pdu_mode")
        if self.profile.sms_service is not None:
            await self.execute("sms_service", service=self.profile.sms_service, check=False)
        routing = await self.execute(self.profile.new_message_routing, check=False)
        if routing.error is not None:
            self.log.warning("%s refused (%s): relying on the store sweep",
                             self.profile.new_message_routing, routing.error)
        await self.execute("select_stores", store=self.profile.stores[0])  # +CPMS mem1, 2 and 3
        await self.inbound.choose_stores()
        await self.health.start()
        for line in self.profile.init_commands:
            result = await self.execute(line, check=False)
            if result.error is not None:
                self.log.info("%s: %s (ignored)", line, result.error)
        self.state = ModemState.READY
        self._start_background()

    async def _synchronise(self: Modem) -> None:
        """Get the modem's attention: cancel a half-entered PDU, then ``AT`` until ``OK``.

        A modem left at the ``> `` prompt (a client killed after ``AT+CMGS``) answers the ESC
        with ``OK``, which the first ``AT`` would take as its own: every later answer would then
        go to the command after the one it belongs to. So the first exchange resynchronises
        (driver `_resync_if_needed`: echo on, ``AT`` whose echo marks where its answer starts).
        """
        if self.profile.boot_delay:
            await asyncio.sleep(self.profile.boot_delay)
        self.channel.interrupt()
        last: AtError | None = None
        # Generous and growing waits: a modem on a busy hub or still registering may take
        # seconds; its late answer teaches the driver its pace (`Modem.patience`).
        for wait in (1.0, 3.0, 10.0):
            try:
                result = await self.execute("attention", timeout=wait, check=False)
            except AtTimeout as error:
                last = error
                continue
            if result.ok:
                return
        raise last or AtTimeout("modem does not answer AT")

    async def _unlock_sim(self: Modem) -> None:
        from .driver import ModemState

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
            if state == "pin" and not self._pin_accepted and self._pin_error is None:
                assert self._pin is not None
                memory = self.pin_memory
                before = None
                if memory is not None:   # the SIM's key is read only where it is remembered
                    sim_key = sim_key or await self._sim_key()
                    before = memory.pin_refused(sim_key, self._pin)
                if before is not None:
                    self._lock_out(PinError(
                        f"PIN refused: fix the config (this SIM refused the configured PIN "
                        f"before: {before}; it is not entered again until the PIN changes)"))
                try:
                    await self.execute("enter_pin", pin=self._pin)
                except (CmeError, CommandError) as error:
                    left = await self._pin_attempts_left()
                    if memory is not None:
                        memory.pin_was_refused(sim_key, self._pin, str(error), left)
                    self._lock_out(PinError(
                        f"PIN refused: fix the config ({error}; "
                        + (f"{left} attempt(s) left before the SIM asks for its PUK"
                           if left is not None else "attempts left unknown")
                        + "); not trying it again"))
                if memory is not None:
                    memory.pin_accepted(sim_key)
                self._pin_accepted = entered_now = True
                continue
            if state == "pin":  # our PIN, accepted before: the modem was reset, enter it again
                await self.execute("enter_pin", pin=self._pin)
                entered_now = True
                continue
            self._pin_error = PinError(_LOCKED_TEXT.get(state, f"the SIM reports {state!r} to "
                                                           "AT+CPIN?; it needs a human"))
            self.state = ModemState.LOCKED
            raise self._pin_error
        raise PinError("the SIM did not become ready")

    def _lock_out(self: Modem, error: PinError) -> None:
        """Never enter this PIN again on this port (in this process; `pin_memory` beyond it)."""
        from .driver import ModemState

        self._pin_error = error
        _REFUSED_PINS[(self.port, self._pin)] = error
        self.state = ModemState.LOCKED
        raise error

    async def _sim_key(self: Modem) -> str:
        """``iccid:<ICCID>`` when the modem reads it before the PIN, else ``port:<device>``."""
        iccid = await self._first_answer(self.profile.iccid_command, "iccid")
        return f"iccid:{iccid}" if iccid else f"port:{self.port}"

    async def _pin_attempts_left(self: Modem) -> int | None:
        """PIN attempts the SIM has left (vendor command, then ``AT+CPINR``); None: unknown.
        Never raises: a modem silent here must not keep a refused PIN from being locked out."""
        try:
            return await self._first_answer(self.profile.pin_retries_command, "pin_retries")
        except AtError:
            return None

    async def _first_answer(self: Modem, *names: str) -> Any:
        """The first useful answer of the named queries, tried in turn (None: none answered);
        a modem that does not answer at all raises `AtTimeout`."""
        for name in dict.fromkeys(names):
            try:
                value = await self.query(name)
            except AtError as error:
                if isinstance(error, AtTimeout):
                    raise
                continue
            if value not in (None, ""):
                return value
        return None

    async def _pin_state(self: Modem) -> str:
        try:
            answer = await self.query("pin_status")
        except CmeError as error:
            if error.code == 14:          # SIM busy: still starting
                return "busy"
            if error.code in (11, 12):
                return "pin" if error.code == 11 else "puk"
            raise
        return _PIN_STATES.get(answer.upper(), answer or "unknown")

    async def identify(self: Modem) -> ModemInfo:
        """Ask the modem who it is and how it is doing; unanswered fields stay None."""

        async def ask(name: str, **arguments: Any) -> Any:
            try:
                return await self.query(name, **arguments)
            except AtError as error:
                if isinstance(error, AtTimeout):
                    raise
                self.log.debug("%s: %s", name, error)
                return None

        iccid = await ask(self.profile.iccid_command)
        if not iccid and self.profile.iccid_command != "iccid":
            iccid = await ask("iccid")
        registration = await ask("registration") or ()
        reg_state = first_int(registration, 1 if len(registration) > 1 else 0)
        signal = await ask("signal") or ()
        rssi = first_int(signal, 0)
        operator = await ask("operator") or ()
        smsc = await ask("smsc") or ()
        storage = await ask("store_usage") or ()
        self.info = ModemInfo(
            name=self.name, port=self.port, profile=self.profile.name,
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
