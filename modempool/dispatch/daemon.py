"""The daemon (`modempool run`): every modem of the config, one task each, and the dispatcher.

    daemon = Daemon(load_config("modempool.toml"))
    await daemon.run()          # until SIGTERM/SIGINT or daemon.stop()

Its modems and their SIM slots come from `run_modems.py`; each modem's life is
`modem_task.py`'s. Each modem task opens its port, initialises and identifies the modem, then
serves two loops: sending what the dispatcher hands it, and storing what the modem receives
(`inbound.py`).
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
import logging
import os
import signal
import socket
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from modempool.box.notify import notify, watchdog_interval
from modempool.box.ports import process_start
from modempool.dispatch.balance import BalanceTracker
from modempool.dispatch.cards import CardsServed, dead_judge, hold_names
from modempool.dispatch.dispatcher import Dispatcher
from modempool.errors import PoolError
from modempool.dispatch.inbound import InboundStore
from modempool.dispatch.limits import Counters
from modempool.dispatch.liveness import new_run_owner
from modempool.dispatch.shared import (dead_runs, is_shared, recover_dead, wake_on_enqueue,
                                       watch_dead_daemons)
from modempool.spool.daemons import HeartbeatWatch
from modempool.spool.file_lock import SpoolFileLock
from modempool.config import Config, ModemConfig
from modempool.dispatch.modem_task import ModemTaskMixin
from modempool.dispatch.requests import RequestDesk
from modempool.dispatch.run_modems import bank_specs, make_slots, stored_counters
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.dispatch.sim_states import SimStates
from modempool.dispatch.slow_spool import SlowSpoolWatch
from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane
from modempool.spool.database_errors import database_error
from modempool.spool.unavailable import log_failure, own_repeated_lines

log = logging.getLogger("modempool.dispatch.daemon")

CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints (see `Daemon._checkpoints`)


class Daemon(ModemTaskMixin):
    """Runs the pool for one config until stopped."""

    def __init__(self, config: Config, *, simulate: int | None = None, spool: Any = None,
                 handlers: list[Any] | None = None, install_signals: bool = True) -> None:
        self.config = config
        self.simulate = simulate if simulate is not None else config.simulator
        self.spool = spool
        self.handlers = handlers
        self.install_signals = install_signals
        self.policy = config.retry
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.process_started = process_start(self.pid)   # with the pid, names this process
        self.owner = new_run_owner(self.host, self.pid)
        # a heartbeat six times per [pool] silent_after; others' watched as often
        self.beat_every = config.silent_after / 6
        self.watch = HeartbeatWatch(config.silent_after, gap=3 * self.beat_every)
        self.started_at = datetime.now(timezone.utc)
        self.dispatcher: Dispatcher | None = None
        self.desk: RequestDesk | None = None
        self.balance: BalanceTracker | None = None
        self.bank: Any = None
        self.ready = asyncio.Event()
        self.incomplete_after = timedelta(hours=12)  # wait this long for missing SMS parts
        self.jobs_interval = 60.0           # recurring jobs (birthdays, notices) are looked at
        self.forward_drain_seconds = 10.0   # forward commands still running get this at shutdown
        self._stop = asyncio.Event()
        self._lock: SpoolFileLock | None = None   # an SQLite spool's (none on PostgreSQL)
        # SIM states, heartbeats and the requests desk's looks, one after another (off the
        # event loop on a database server; see spool_lane.py). Made by `run`.
        self.books = SpoolLane()
        self.cards: CardsServed   # the SIM cards it serves (cards.py); made by `run`
        self.sim_states: SimStates   # what the spool shows of its SIMs; made by `run`

    def stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM/SIGINT do)."""
        if not self._stop.is_set():
            log.info("stopping: finishing messages in flight")
            notify("STOPPING=1", "STATUS=stopping: finishing messages in flight")
        self._stop.set()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    async def run(self) -> None:
        """Run until `stop()`: its outage said by itself, not held back by another daemon's
        line in the same process (`own_repeated_lines`)."""
        with own_repeated_lines():
            await self._run()

    async def _run(self) -> None:
        from modempool.operator.hooks import send_refusal

        if self.config.http.listen:
            from modempool.web.server import exposure_warning

            warning = exposure_warning(self.config, self.config.http.listen)  # ConfigError: refused
            if warning:
                log.warning("%s", warning)
        own_spool = self.spool is None
        if own_spool:
            if not self.config.spool_url:  # a shared database needs none
                self._take_lock(Path(self.config.spool_path))
            try:
                self.spool = self.config.open_spool()
            except BaseException:   # refused (newer, unreadable): no lock file left beside it
                self._release_lock(remove=True)
                raise
        loop = asyncio.get_running_loop()
        if self.install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
        try:
            self._beat()
            shared = is_shared(self.spool)
            recovery = (recover_dead(self.spool, self.watch) if shared  # other daemons' leases may be live
                        else self.spool.recover_leases(include_live=True))
            if recovery.requeued or recovery.ambiguous:
                log.warning("recovered leases of an earlier run: %d requeued, %d ambiguous%s",
                            len(recovery.requeued), len(recovery.ambiguous),
                            f" (ids {list(recovery.ambiguous)[:10]})" if recovery.ambiguous else "")
            async with contextlib.AsyncExitStack() as stack:
                specs = await self._modem_specs(stack)
                if not specs:
                    raise PoolError("no modems configured: add [[modem]] tables or use --simulate N")
                if shared:   # each name served by one live daemon (a copied config refused)
                    hold_names(self.spool, self.owner, [spec.name for spec in specs],
                               self.config.silent_after)
                slots = make_slots(self.spool, self.config, specs)
                lane = SpoolLane.for_spool(self.spool)
                inbound_lane = SpoolLane.for_spool(self.spool, INBOUND_THREADS)
                self.books = SpoolLane.for_spool(self.spool, 1)  # in order: SIM states, beats
                self.sim_states = SimStates(self.spool, self.books)
                self.cards = CardsServed(self.spool, self.owner, self.books,
                                         dead_judge(self.spool, self.watch, shared),
                                         lane_for_looks=lane)
                stack.callback(lane.close)
                stack.callback(inbound_lane.close)
                stack.callback(self.books.close)
                # forward commands record their outcomes in the inbound lane: before it closes
                stack.push_async_callback(self._drain_forwards)
                self.dispatcher = Dispatcher(self.spool, self.config, owner=self.owner, slots=slots,
                                             refusals=send_refusal(self.spool, self.config),
                                             lane=lane)
                self.dispatcher.shared = shared
                if self._stop.is_set():
                    self.dispatcher.stop()
                self.desk = RequestDesk(self.spool, self.owner, slots, lane=self.books)
                self.balance = BalanceTracker(self.spool, self.config, slots, self.desk)
                self.desk.on_ussd = self.balance.on_ussd
                inbound = InboundStore(self.spool, self.config, self.handlers, lane=inbound_lane,
                                       owner=self.owner,
                                       dead=dead_runs(self.spool, self.watch) if shared else None)
                stack.push_async_callback(inbound.close)   # hooks waiting: before the lanes close
                inbound.on_proven = self.dispatcher.count_proven
                inbound.card_of = self.cards.card_of   # stored with each report it hears
                inbound.quiet_moment = self.dispatcher.quiet_moment   # reports: between bursts
                await inbound.take_over()   # a killed run's hooks, before any SMS comes in
                log.info("modempool starting: %d modem%s, spool %s, strategy %s", len(specs),
                         "" if len(specs) == 1 else "s", self.spool.where,
                         self.dispatcher.strategy.value)
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.dispatcher.run(), name="dispatcher")
                    tasks.create_task(self._announce_ready(slots), name="ready")
                    tasks.create_task(self._housekeeping(inbound), name="housekeeping")
                    tasks.create_task(inbound.keep_up(self._stop, self.beat_every),
                                      name="inbound-hooks")
                    tasks.create_task(self._checkpoints(), name="checkpoints")
                    tasks.create_task(self._heartbeat(), name="heartbeat")
                    tasks.create_task(self._card_checks(), name="card-checks")
                    tasks.create_task(self._watchdog(), name="watchdog")
                    slow = SlowSpoolWatch((lane, inbound_lane, self.books), self.spool.where,
                                          self.config.slow_spool_after)
                    tasks.create_task(slow.run(self._stop), name="slow-spool")
                    tasks.create_task(self.desk.run(self._stop), name="requests")
                    tasks.create_task(self.balance.run(self._stop), name="balance")
                    tasks.create_task(self._recurring_jobs(), name="recurring")
                    tasks.create_task(self._http_sidecar(), name="http")
                    if shared:
                        wake = self.dispatcher.wake.set
                        tasks.create_task(watch_dead_daemons(self.spool, self._stop, wake,
                                                             self.watch, self.beat_every),
                                          name="dead-daemons")
                        tasks.create_task(wake_on_enqueue(self.spool, self._stop, wake),
                                          name="notifications")
                    for spec, slot in zip(specs, slots):
                        tasks.create_task(self._modem_task(spec, slot, inbound), name=spec.name)
                # A record kept (it failed: the database away a moment, a deadlock's victim) is
                # tried once more before recovery calls its lease ambiguous (dead23).
                await self.dispatcher.recording.record_now()
                self.dispatcher.recording.close()   # its timer arms no more: the lanes close
                await lane.drain()
                await inbound_lane.drain()
                await self.books.drain()
                released = self._release_leases(slots)
                log.info("modempool stopped%s", f"; {released} leases released" if released else "")
        finally:
            if self.install_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            with contextlib.suppress(Exception):
                self.spool.card_holders.let_go(self.owner)   # each modem did; if one could not
            with contextlib.suppress(Exception):
                self.spool.daemon_stopped(self.owner)
            if own_spool:
                self.spool.close()
                self._release_lock()

    async def _drain_forwards(self) -> None:
        """Forward commands started for received SMS finish (or are cancelled)."""
        from modempool.operator.forwarding import drain

        try:
            await drain(timeout=self.forward_drain_seconds)
        except Exception:
            log.exception("could not wait for forward commands")

    # -- set-up ----------------------------------------------------------------------------
    def _take_lock(self, spool_path: Path) -> None:
        """One daemon per spool: then every lease found at start belongs to a dead process."""
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = SpoolFileLock(spool_path)
        self._lock.take(f"another modempool daemon is running on {spool_path}")

    def _release_lock(self, *, remove: bool = False) -> None:
        """Let the lock go; with `remove` (a spool refused at open), its file too when this
        daemon made it."""
        if self._lock is not None:
            self._lock.release(remove=remove)
            self._lock = None

    async def _modem_specs(self, stack: contextlib.AsyncExitStack) -> list[ModemConfig]:
        """The config's modems; or, with `simulate`, a simulated bank's, started in `stack`."""
        if not self.simulate:
            return list(self.config.modems)
        from simulator import SimulatedBank  # only here: the pool needs no simulator otherwise

        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="modempool-sim-"))
        options = self.config.simulation
        self.bank = await stack.enter_async_context(SimulatedBank(
            modems=int(self.simulate), directory=directory, personality=options.personality,
            latency=options.latency, seed=options.seed, realistic=options.realistic,
            chatter=options.chatter))
        log.info("simulated bank of %d modems in %s", int(self.simulate), directory)
        return bank_specs(self.config, self.bank)

    def _stored_counters(self, sim: str) -> Counters:
        """What the spool counts for `sim` (`run_modems.stored_counters`)."""
        return stored_counters(self.spool, self.config, sim)

    def _release_leases(self, slots: list[SimSlot]) -> int:
        """At the stop, each SIM's leases settled by recovery (what it never began goes back
        to the queue); returns how many went back. A message the database refuses to settle
        stays SENDING (recovery's ERROR line names it); the database failing fails the stop
        with one line (a PoolError), after the other SIMs, the rest left for the next start."""
        released, failure = 0, None
        for slot in slots:
            try:
                released += len(self.spool.recover_leases(owner=slot.owner).requeued)
            except Exception as exc:
                found = database_error(exc)
                if found is None:
                    raise
                failure = failure or found
        if failure is not None:
            raise PoolError(f"stopped, but the leases left were not settled ({failure}); the "
                            "next start settles them")
        return released

    async def _announce_ready(self, slots: list[SimSlot]) -> None:
        while not self._stop.is_set():
            if all(s.state is not SimState.STARTING for s in slots):
                up = sum(s.state is SimState.UP for s in slots)
                log.info("pool ready: %d of %d modems up", up, len(slots))
                self.ready.set()
                notify("READY=1", f"STATUS=pool ready: {up} of {len(slots)} modems up")
                return
            await asyncio.sleep(0.05)

    async def _housekeeping(self, inbound: InboundStore) -> None:
        """Now and then: give up on parts of long SMS whose siblings never came."""
        while not self._stop.is_set():
            try:
                await inbound.flush_incomplete(self.incomplete_after)
            except Exception as exc:
                log_failure(log, "housekeeping failed", exc)
            await self._sleep(60.0)

    async def _checkpoints(self) -> None:
        """The spool's WAL copied into the database once a second, in a thread and when the
        modems leave a moment (not inside whichever commit crosses the WAL threshold)."""
        assert self.dispatcher is not None
        # In the lane: on the loop it could wait for the engine's lock while a claim round
        # in the lane holds it and waits for the loop (SQLite: one connection, one lock).
        await self.books.run(self.spool.checkpoint_when_told)
        while not self._stop.is_set():
            await self._sleep(CHECKPOINT_EVERY)
            await self.dispatcher.quiet_moment(CHECKPOINT_EVERY)
            try:
                await asyncio.to_thread(self.spool.checkpoint)  # file syncs: not on the loop
            except Exception as exc:  # a busy database: the next one will do
                log_failure(log, f"{self.spool.engine.checkpoint_does} failed", exc)

    def _beat(self) -> None:
        self.spool.beat(self.owner, host=self.host, pid=self.pid, started_at=self.started_at,
                        process_started=self.process_started)

    async def _heartbeat(self) -> None:
        """Tell `status` and the other daemons that this one lives: a heartbeat every few seconds."""
        while not self._stop.is_set():
            try:
                await self.books.run(self._beat)
            except Exception as exc:  # a busy database: the next one will do
                log_failure(log, "could not write the heartbeat", exc)
            await self._sleep(self.beat_every)

    async def _card_checks(self) -> None:
        """Every heartbeat, apart from its write (which may wait): its SIM cards still its own?"""
        while not self._stop.is_set():
            await self.cards.check()
            await self._sleep(self.beat_every)

    async def _watchdog(self) -> None:
        """Tell systemd's watchdog that the loop turns, whatever the database does: a commit
        that waits (a synchronous standby gone) is said by the slow-spool watch, and a restart
        by systemd would only leave the parts in flight ambiguous and wait again."""
        every = watchdog_interval()
        if every is None:
            return
        while not self._stop.is_set():
            notify("WATCHDOG=1")
            await self._sleep(every)

    async def _recurring_jobs(self) -> None:
        """About once a minute (first at start): queue the messages of recurring jobs now due."""
        from modempool.operator.recurring import run_due_jobs

        def queue_due() -> None:
            for run in run_due_jobs(self.spool, self.config):
                self.spool.record_event("job-run", detail=run.to_dict())

        while not self._stop.is_set():
            try:
                await self.books.run(queue_due)
                if self.dispatcher is not None:
                    self.dispatcher.wake.set()
            except Exception as exc:
                log_failure(log, f"recurring jobs failed; trying again in {self.jobs_interval:.0f} s",
                            exc)
            await self._sleep(self.jobs_interval)

    async def _http_sidecar(self) -> None:
        """The HTTP API (`[http] listen`) and webhook deliveries run in a child process (see
        modempool/web/server.py), started when an API is wanted or a webhook exists. The web
        package is imported only then: its import (FastAPI's models) holds the event loop up
        for a second or more, before the modems are opened."""
        from modempool.webhooks.store import any_subscribed

        listen = self.config.http.listen
        while not self._stop.is_set():
            try:
                wanted = bool(listen) or await self.books.run(any_subscribed, self.spool)
            except Exception as exc:  # the database away for a moment: ask again later
                log_failure(log, "could not look for webhooks; asking again in 30 s", exc)
                wanted = False
            if wanted:
                from modempool.web.server import run_sidecar

                await run_sidecar(self.config, listen, self._stop)
                return
            await self._sleep(30.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

