"""The daemon (`modempool run`): every modem of the config, one task each, and the dispatcher.

    daemon = Daemon(load_config("modempool.toml"))
    await daemon.run()          # until SIGTERM/SIGINT or daemon.stop()

Each modem task opens its port, initialises and identifies the modem, then serves two loops:
sending what the dispatcher hands it, and storing what the modem receives (`inbound.py`).
A SIM that keeps failing, is not registered or whose PIN is refused is quarantined: closed, and
probed again after `quarantine_seconds`. A port that goes away is reopened by the driver with
backoff while the other modems carry on. About once a minute the daemon queues recurring jobs
that are due (`recurring.py`) and stores long SMS whose missing parts never came. On SIGTERM/SIGINT
the dispatcher stops claiming, each modem finishes the message it is sending, leases of messages
not yet started are released, and forward commands still running get `forward_drain_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import signal
import socket
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modempool.dispatcher import Dispatcher
from modempool.errors import PoolError
from modempool.inbound import InboundStore
from modempool.limits import Counters, Limits, window_keys
from modempool.sending import ModemTrouble, RetryPolicy
from modempool.sim_slot import SimSlot, SimState

log = logging.getLogger("modempool.daemon")

CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints (see `Daemon._checkpoints`)


class Quarantine(Exception):
    """Take this SIM out of rotation for a while."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModemSpec:
    """What the daemon needs to know about one modem (a config `[[modem]]` or a simulated one)."""

    name: str
    port: str
    pin: str | None = None
    profile: str | None = None
    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    allow_prefixes: tuple[str, ...] = ()
    allow_carriers: tuple[str, ...] = ()
    priority: int = 0

    @classmethod
    def of(cls, modem: Any) -> ModemSpec:
        return cls(name=modem.name, port=str(modem.port), pin=getattr(modem, "pin", None),
                   profile=getattr(modem, "profile", None),
                   per_minute=getattr(modem, "per_minute", None),
                   per_day=getattr(modem, "per_day", None),
                   per_month=getattr(modem, "per_month", None),
                   allow_prefixes=tuple(getattr(modem, "allow_prefixes", None) or ()),
                   allow_carriers=tuple(getattr(modem, "allow_carriers", None) or ()),
                   priority=getattr(modem, "priority", 0) or 0)


class Daemon:
    """Runs the pool for one config until stopped."""

    def __init__(self, config: Any, *, simulate: int | None = None, spool: Any = None,
                 handlers: list[Any] | None = None, install_signals: bool = True) -> None:
        self.config = config
        self.simulate = simulate if simulate is not None else getattr(config, "simulator", None)
        self.spool = spool
        self.handlers = handlers
        self.install_signals = install_signals
        self.policy = RetryPolicy.of(config)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher: Dispatcher | None = None
        self.bank: Any = None
        self.ready = asyncio.Event()
        self.incomplete_after = timedelta(hours=12)  # wait this long for missing SMS parts
        self.jobs_interval = 60.0           # recurring jobs (birthdays, notices) are looked at
        self.forward_drain_seconds = 10.0   # forward commands still running get this at shutdown
        self._stop = asyncio.Event()
        self._lock_file: Any = None
        self._recorded_state: dict[str, SimState] = {}

    def stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM/SIGINT do)."""
        if not self._stop.is_set():
            log.info("stopping: finishing messages in flight")
        self._stop.set()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    async def run(self) -> None:
        from modempool.spool import Spool

        own_spool = self.spool is None
        if own_spool:
            self._take_lock(Path(self.config.spool_path))
            opener = getattr(self.config, "open_spool", None)
            self.spool = opener() if opener else Spool(self.config.spool_path)
        loop = asyncio.get_running_loop()
        if self.install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
        try:
            recovery = self.spool.recover_leases(include_live=True)
            if recovery.requeued or recovery.ambiguous:
                log.warning("recovered leases of an earlier run: %d requeued, %d ambiguous%s",
                            len(recovery.requeued), len(recovery.ambiguous),
                            f" (ids {list(recovery.ambiguous)[:10]})" if recovery.ambiguous else "")
            async with contextlib.AsyncExitStack() as stack:
                specs = await self._modem_specs(stack)
                if not specs:
                    raise PoolError("no modems configured: add [[modem]] tables or use --simulate N")
                slots = [self._slot(spec) for spec in specs]
                self.dispatcher = Dispatcher(self.spool, self.config, owner=self.owner, slots=slots)
                if self._stop.is_set():
                    self.dispatcher.stop()
                inbound = InboundStore(self.spool, self.config, self.handlers)
                log.info("modempool starting: %d modem%s, spool %s, strategy %s", len(specs),
                         "" if len(specs) == 1 else "s", self.spool.path,
                         self.dispatcher.strategy.value)
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.dispatcher.run(), name="dispatcher")
                    tasks.create_task(self._announce_ready(slots), name="ready")
                    tasks.create_task(self._housekeeping(inbound), name="housekeeping")
                    tasks.create_task(self._checkpoints(), name="checkpoints")
                    tasks.create_task(self._recurring_jobs(), name="recurring")
                    for spec, slot in zip(specs, slots):
                        tasks.create_task(self._modem_task(spec, slot, inbound), name=spec.name)
                released = sum(len(self.spool.recover_leases(owner=slot.owner).requeued)
                               for slot in slots)
                log.info("modempool stopped%s", f"; {released} leases released" if released else "")
        finally:
            from modempool.forwarding import drain

            try:  # forward commands started for received SMS finish (or are cancelled)
                await drain(timeout=self.forward_drain_seconds)
            except Exception:
                log.exception("could not wait for forward commands")
            if self.install_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            if own_spool:
                self.spool.close()
                self._release_lock()

    # -- set-up ----------------------------------------------------------------------------
    def _take_lock(self, spool_path: Path) -> None:
        """One daemon per spool: then every lease found at start belongs to a dead process."""
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(f"{spool_path}.lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise PoolError(f"another modempool daemon is running on {spool_path}") from None

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def _modem_specs(self, stack: contextlib.AsyncExitStack) -> list[ModemSpec]:
        if not self.simulate:
            return [ModemSpec.of(modem) for modem in getattr(self.config, "modems", [])]
        from simulator import SimulatedBank  # only here: the pool needs no simulator otherwise

        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="modempool-sim-"))
        self.bank = await stack.enter_async_context(
            SimulatedBank(modems=int(self.simulate), directory=directory))
        log.info("simulated bank of %d modems in %s", int(self.simulate), directory)
        limits = list(getattr(self.config, "modems", []) or [])
        specs = []
        for index, (name, port) in enumerate(_devices(self.bank)):
            base = ModemSpec.of(limits[index]) if index < len(limits) else None
            specs.append(dataclasses.replace(base, name=base.name, port=port) if base
                         else ModemSpec(name=name, port=port))
        return specs

    def _slot(self, spec: ModemSpec) -> SimSlot:
        slot = SimSlot(spec.name, Limits(spec.per_minute, spec.per_day, spec.per_month),
                       spec.allow_prefixes, spec.allow_carriers, spec.priority)
        minute, today, month = self.spool.sent_counts(spec.name)
        keys = window_keys(datetime.now(getattr(self.config, "tz", None) or timezone.utc))
        slot.counters = Counters(keys[0], minute, keys[1], today, keys[2], month)
        return slot

    async def _announce_ready(self, slots: list[SimSlot]) -> None:
        while not self._stop.is_set():
            if all(s.state is not SimState.STARTING for s in slots):
                up = sum(s.state is SimState.UP for s in slots)
                log.info("pool ready: %d of %d modems up", up, len(slots))
                self.ready.set()
                return
            await asyncio.sleep(0.05)

    async def _housekeeping(self, inbound: InboundStore) -> None:
        """Now and then: give up on parts of long SMS whose siblings never came."""
        while not self._stop.is_set():
            try:
                await inbound.flush_incomplete(self.incomplete_after)
            except Exception:
                log.exception("housekeeping failed")
            await self._sleep(60.0)

    async def _checkpoints(self) -> None:
        """The spool's WAL copied into the database once a second, in a thread and when the
        modems leave a moment (not inside whichever commit crosses the WAL threshold)."""
        assert self.dispatcher is not None
        self.spool.checkpoint_when_told()
        while not self._stop.is_set():
            await self._sleep(CHECKPOINT_EVERY)
            await self.dispatcher.quiet_moment(CHECKPOINT_EVERY)
            try:
                await asyncio.to_thread(self.spool.checkpoint)  # file syncs: not on the loop
            except Exception:  # a busy database: the next one will do
                log.exception("WAL checkpoint failed")

    async def _recurring_jobs(self) -> None:
        """About once a minute (first at start): queue the messages of recurring jobs now due."""
        from modempool.recurring import run_due_jobs

        while not self._stop.is_set():
            try:
                for run in run_due_jobs(self.spool, self.config):
                    self.spool.record_event("job-run", detail=run)
                if self.dispatcher is not None:
                    self.dispatcher.wake.set()
            except Exception:
                log.exception("recurring jobs failed; trying again in %.0f s", self.jobs_interval)
            await self._sleep(self.jobs_interval)

    # -- one modem -------------------------------------------------------------------------
    async def _modem_task(self, spec: ModemSpec, slot: SimSlot, inbound: InboundStore) -> None:
        """Open, serve, quarantine and re-probe one modem until the daemon stops."""
        from at_commands import AtError, Modem, PinError

        mlog = logging.getLogger(f"modempool.modem.{spec.name}")
        # One driver object for the life of the daemon: it remembers a refused PIN and never
        # enters it again (a wrong PIN tried at every reconnect would lock the SIM).
        modem = Modem(spec.port, name=spec.name, pin=spec.pin, profile=spec.profile)
        backoff = 1.0
        while not self._stop.is_set():
            try:
                await modem.open()
                await modem.initialise()
                self._tune(modem)
                info = await modem.identify()
                if not info.registered:
                    raise Quarantine(f"not registered ({info.registration_text or 'no network'})")
                early = _inbound_only(modem)  # drop news of an earlier connection, keep SMS
                slot.operator = info.operator or ""
                slot.errors_in_row = 0
                self._update_sim(spec, slot, SimState.UP, info=info)
                mlog.info("up: %s %s, operator %s, signal %s dBm, number %s",
                          info.manufacturer or "", info.model or "", info.operator,
                          info.signal_dbm, info.msisdn or "?")
                backoff = 1.0
                await self._serve(spec, slot, modem, inbound, early)
            except (Quarantine, PinError) as exc:
                until = datetime.now(timezone.utc) + timedelta(seconds=self.policy.quarantine_seconds)
                mlog.warning("quarantined until %s: %s", until.strftime("%H:%M:%S"), exc)
                self._update_sim(spec, slot, SimState.QUARANTINED, error=str(exc), until=until)
                await _close(modem)
                await self._sleep(self.policy.quarantine_seconds)
            except Exception as exc:
                why = str(exc) or type(exc).__name__
                if not isinstance(exc, (AtError, OSError, ModemTrouble)):  # a bug: say where
                    mlog.exception("unexpected error; the other modems carry on")
                mlog.warning("down (%s); reopening in %.0f s", why, backoff)
                self._update_sim(spec, slot, SimState.DOWN, error=why)
                await _close(modem)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if self.dispatcher is not None:
                    self.dispatcher.release_unstarted(slot)
                await _close(modem)
        self._update_sim(spec, slot, SimState.STOPPED)

    def _tune(self, modem: Any) -> None:
        """The pool's send timeout becomes the driver's wait for +CMGS after the PDU."""
        timeouts = dict(modem.profile.timeouts)
        timeouts["send_result"] = self.policy.send_timeout
        modem.profile = dataclasses.replace(modem.profile, timeouts=timeouts)

    async def _serve(self, spec: ModemSpec, slot: SimSlot, modem: Any, inbound: InboundStore,
                     early: list[Any]) -> None:
        trouble = asyncio.Event()
        events = asyncio.create_task(self._pump_events(spec, slot, modem, inbound, trouble, early),
                                     name=f"{spec.name}:events")
        try:
            await self._send_loop(slot, modem, trouble)
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
        if trouble.is_set() and not self._stop.is_set():
            raise ModemTrouble("the driver gave up reconnecting")

    async def _send_loop(self, slot: SimSlot, modem: Any, trouble: asyncio.Event) -> None:
        assert self.dispatcher is not None
        while not self._stop.is_set() and not trouble.is_set():
            if slot.inbox.empty():
                message = await _first(slot.inbox.get(), self._stop.wait(), trouble.wait())
                if message is None:
                    return
            else:  # the next one was claimed while the last was on the air
                message = slot.inbox.get_nowait()
            try:
                await self.dispatcher.send_message(slot, modem, message)
            finally:
                self.dispatcher.done(slot, message)
            if slot.errors_in_row >= self.policy.quarantine_after:
                raise Quarantine(f"{slot.errors_in_row} SIM errors in a row")

    async def _pump_events(self, spec: ModemSpec, slot: SimSlot, modem: Any,
                           inbound: InboundStore, trouble: asyncio.Event, early: list[Any]) -> None:
        from at_commands import events as ev

        mlog = logging.getLogger(f"modempool.modem.{spec.name}")
        async for event in _chain(early, modem.events()):
            if isinstance(event, (ev.InboundSms, ev.StatusReport)):
                try:
                    await inbound.handle(spec.name, modem, event)
                except Exception:
                    modem.release(event)
                    mlog.exception("could not store %s; it stays on the modem for the next sweep",
                                   type(event).__name__)
            elif isinstance(event, (ev.Disconnected, ev.Unresponsive)):
                slot.state = SimState.DOWN
                mlog.warning("%s", getattr(event, "reason", None) or "not answering")
                self._update_sim(spec, slot, SimState.DOWN)
            elif isinstance(event, (ev.Reconnected, ev.Responsive)):
                self._tune(modem)
                slot.state = SimState.UP
                self._update_sim(spec, slot, SimState.UP)
                mlog.info("back up")
            elif isinstance(event, ev.ReconnectFailed):
                slot.state = SimState.DOWN
                trouble.set()
                return
            elif isinstance(event, ev.SignalChanged):
                self.spool.upsert_sim(spec.name, signal=event.dbm)

    # -- helpers ---------------------------------------------------------------------------
    def _update_sim(self, spec: ModemSpec, slot: SimSlot, state: SimState, *, info: Any = None,
                    error: str | None = None, until: datetime | None = None) -> None:
        slot.state = state
        fields: dict[str, Any] = {"port": spec.port, "state": state.value}
        if info is not None:
            fields.update(imsi=info.imsi, iccid=info.iccid, msisdn=info.msisdn,
                          operator=info.operator, signal=info.signal_dbm)
        if error is not None:
            fields["last_error"] = error
        fields["quarantined_until"] = until
        try:
            self.spool.upsert_sim(spec.name, **fields)
            if self._recorded_state.get(spec.name) is not state:  # the audit log: changes only
                self._recorded_state[spec.name] = state
                self.spool.record_event(f"sim-{state.value}", sim=spec.name, detail=error)
        except Exception:
            log.exception("could not record the state of %s", spec.name)
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()


async def _first(*awaitables: Any) -> Any:
    """The result of the first awaitable to finish (the others are cancelled); None if not the first."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if tasks[0] in done:
        return tasks[0].result()
    return None


def _inbound_only(modem: Any) -> list[Any]:
    """Take the events waiting in the driver, keeping only received SMS and reports."""
    from at_commands.events import InboundSms, StatusReport

    kept = []
    while (event := modem.event_nowait()) is not None:
        if isinstance(event, (InboundSms, StatusReport)):
            kept.append(event)
    return kept


async def _chain(first: list[Any], rest: Any) -> Any:
    for event in first:
        yield event
    async for event in rest:
        yield event


async def _close(modem: Any) -> None:
    with contextlib.suppress(Exception):
        await modem.close()


def _devices(bank: Any) -> list[tuple[str, str]]:
    """(name, port) of each simulated modem, whatever shape `bank.devices` has."""
    devices = bank.devices
    if isinstance(devices, dict):
        return [(str(name), str(port)) for name, port in devices.items()]
    out = []
    for index, device in enumerate(devices):
        if isinstance(device, (tuple, list)):
            out.append((str(device[0]), str(device[1])))
        elif hasattr(device, "name") and hasattr(device, "port"):
            out.append((str(device.name), str(device.port)))
        else:
            out.append((Path(str(device)).name or f"sim{index + 1}", str(device)))
    return out
