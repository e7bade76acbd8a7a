"""Serving the API: `modempool serve` (the API alone, over the spool), and the sidecar that
`modempool run` starts for `[http] listen` / `--http`.

The daemon's event loop drives the modems; the API runs in a child process of its own (the
sidecar), so that HTTP parsing, JSON and webhook deliveries never take the loop or the
interpreter lock from the modems. Both share the spool file (SQLite WAL, one writer at a time,
short transactions). The sidecar also delivers webhooks; when no API is wanted but webhooks
exist, the daemon still starts a sidecar that only delivers them. It exits when its parent does.

What keeps the API's slowest answers close to its typical ones (docs/http.md, "Latency"):
- its commits do not copy the WAL into the database file (a commit that crosses SQLite's
  1,000-page threshold would, and fsync twice, while the requests of its batch wait):
  `serve` checkpoints once a second in a thread of its own, the sidecar leaves it to its
  daemon; a commit does it only past CHECKPOINT_BACKSTOP pages, should those fall behind;
- once started, a server process freezes what it has made so far (`gc.freeze`): the
  start-up's objects (FastAPI, pydantic, the routes: ~75,000) are then never walked again by
  the collector's full passes, which otherwise took 50-80 ms of CPU about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from datetime import timedelta
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from modempool.errors import ConfigError
from modempool.http_listen import DEFAULT_LISTEN, check_exposure, parse_listen
from modempool.spool.unavailable import log_failure

log = logging.getLogger("modempool.web")
T = TypeVar("T")

CHECKPOINT_EVERY = 1.0   # seconds between the WAL checkpoints of `serve` (as the daemon's)
CHECKPOINT_BACKSTOP = 10_000   # WAL pages (40 MB) past which a commit checkpoints after all
SPOOL_AGAIN_EVERY = 2.0   # seconds between a sidecar's attempts to open a spool that is away


def exposure_warning(config: Any, listen: str) -> str | None:
    """ConfigError for a non-loopback address not asked for; the warning to print, if any."""
    try:
        address = parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    http = config.http
    return check_exposure(address, public=http.public, tls=bool(http.tls_cert and http.tls_key),
                          behind_proxy=http.behind_proxy)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's event loop where it is installed (uvicorn[standard]
    brings it): the API answers more requests per CPU second on it (benchmarks/bench_http.py)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def serve_api(config: Any, listen: str | None, *, stop: asyncio.Event | None = None,
                    webhooks: bool = True, parent_pid: int | None = None,
                    ready: Any = None, checkpoints: bool = True,
                    freeze_heap: bool = False) -> None:
    """Run the API on `listen` (None: only the webhook worker) until `stop` is set, SIGTERM
    or SIGINT comes, or the parent process `parent_pid` goes away. With `checkpoints` it
    copies the WAL into the database file itself (without, a daemon on the same spool does);
    `freeze_heap` is for a process that is the server and nothing else (see the top). A
    sidecar (`parent_pid`) whose spool cannot be reached waits for it (`_spool_when_back`)."""
    from modempool.webhooks.delivery import RetrySchedule, WebhookWorker

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread
            loop.add_signal_handler(signum, stop.set)
    if parent_pid is None:
        spool = config.open_spool()
    elif (spool := await _spool_when_back(config, stop, parent_pid)) is None:
        return
    spool.checkpoint_when_told(backstop=CHECKPOINT_BACKSTOP)   # not in a commit (see the top)

    def started() -> None:
        if freeze_heap:
            _freeze_heap()
        if ready is not None:
            ready()

    try:
        async with asyncio.TaskGroup() as tasks:
            if checkpoints:
                tasks.create_task(_checkpoints(spool, stop), name="checkpoints")
            if webhooks:
                settings = config.webhooks
                worker = WebhookWorker(spool, timeout=settings.timeout, schedule=RetrySchedule(
                    settings.retry_base, settings.retry_max, settings.give_up_after),
                    keep=timedelta(days=settings.keep_days),
                    callback_allow=config.http.callback_allow)
                tasks.create_task(worker.run(stop), name="webhooks")
            if parent_pid is not None:
                tasks.create_task(_watch_parent(parent_pid, stop), name="parent")
            if listen is not None:
                tasks.create_task(_uvicorn(config, spool, listen, stop, started), name="http")
            else:
                started()
            await stop.wait()
    finally:
        spool.close()


async def _spool_when_back(config: Any, stop: asyncio.Event, parent_pid: int) -> Any | None:
    """A sidecar's spool, opened once its database answers. Its daemon has the spool open, so
    a database that cannot be reached now is an outage (the sidecar started, or was started
    again, while it lasts): waited for, one line as it begins, again once a minute, one as it
    ends, rather than an exit that its daemon would answer with a restart and an ERROR line
    each time. None when stopped (or the daemon gone) meanwhile."""
    from modempool.spool.engine import SpoolUnreachable

    since = said = None
    while not stop.is_set() and os.getppid() == parent_pid:
        try:
            spool = await asyncio.to_thread(config.open_spool)
        except SpoolUnreachable as exc:
            now = time.monotonic()
            if since is None:
                since = said = now
                log.warning("%s; the HTTP API and webhook deliveries start once it answers "
                            "(tried every %g s)", exc, SPOOL_AGAIN_EVERY)
            elif now - said >= 60.0:
                said = now
                log.warning("the spool is still away, for %.0f s now: %s", now - since, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SPOOL_AGAIN_EVERY):
                    await stop.wait()
            continue
        if since is not None:
            log.info("the spool answers again, after %.0f s: starting", time.monotonic() - since)
        return spool
    return None


async def _uvicorn(config: Any, spool: Any, listen: str, stop: asyncio.Event,
                   started: Callable[[], None]) -> None:
    import uvicorn

    from modempool.web import create_app

    address = parse_listen(listen)
    http = config.http
    app = create_app(config, spool=spool)
    server = uvicorn.Server(uvicorn.Config(
        app, host=address.host, port=address.port, log_level="warning", access_log=False,
        proxy_headers=http.behind_proxy, forwarded_allow_ips="127.0.0.1,::1" if http.behind_proxy else None,
        ssl_certfile=http.tls_cert, ssl_keyfile=http.tls_key, server_header=False,
        timeout_graceful_shutdown=5, lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # ours are set
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if task.done():  # the port is taken, or the address is not ours
        stop.set()
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
            await task
        raise ConfigError(f"cannot listen on {address.text} (in use, or not an address of this host)")
    log.info("HTTP API on http%s://%s", "s" if http.tls_cert else "", address.text)
    started()
    await app.state.api.throttle.keep_flushing(stop)   # returns once `stop` is set
    server.should_exit = True
    await task


def _freeze_heap() -> None:
    """What the server made while starting lives as long as the process: out of the
    collector's sight from now on (its full passes walk only what came after)."""
    gc.collect()
    gc.freeze()


async def _checkpoints(spool: Any, stop: asyncio.Event) -> None:
    """The WAL copied into the database file once a second, in a thread (it syncs the file),
    so that no commit of a request does it."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHECKPOINT_EVERY):
                await stop.wait()
        try:
            await asyncio.to_thread(spool.checkpoint)
        except Exception as exc:  # a busy or vanished file: the next one will do
            log_failure(log, f"{spool.engine.checkpoint_does} failed", exc)


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the daemon is gone: stopping the HTTP sidecar")
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stop.wait()


def sidecar_command(config: Any, listen: str | None) -> list[str]:
    """The command line of a sidecar for `config` (its file, and its spool path explicitly,
    which `--simulate` runs without a file need)."""
    command = [sys.executable, "-m", "modempool.web.sidecar", "--spool", str(config.spool_path),
               "--parent", str(os.getpid())]
    if config.path is not None:
        command += ["--config", str(config.path)]
    if listen is not None:
        command += ["--listen", listen]
    return command


async def run_sidecar(config: Any, listen: str | None, stop: asyncio.Event) -> None:
    """For the daemon: keep a sidecar process running until `stop`; restart it if it dies
    (after a pause), stop it with SIGTERM at the end."""
    delay = 1.0
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(*sidecar_command(config, listen))
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not waiter.done():
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await waiter
            except TimeoutError:
                process.kill()
                await waiter
            return
        log.error("the HTTP sidecar exited with status %s; restarting in %.0f s",
                  process.returncode, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
        delay = min(delay * 2, 60.0)


def load_for_sidecar(config_path: str | None, spool_path: str) -> Any:
    from pathlib import Path

    from modempool.config import load_config

    config = load_config(config_path)
    return replace(config, spool_path=Path(spool_path))


def default_listen(config: Any, override: str | None) -> str:
    return override or config.http.listen or DEFAULT_LISTEN
