"""Helpers of the HTTP tests."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest

#: `@both_engines` on a test runs it on an SQLite spool and on a PostgreSQL one (the fixtures
#: `config_path` and `api` follow `spool_engine`); the other tests run on SQLite only.
both_engines = pytest.mark.parametrize("spool_engine", ["sqlite", "postgresql"])


def wait_http(url: str, process: subprocess.Popen, ok=lambda r: r.status_code == 200,
              timeout: float = 60, headers: dict | None = None) -> httpx.Response:
    """Poll `url` until `ok` holds for its answer (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.get(url, headers=headers)
            if ok(answer):
                return answer
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else "exited"
        assert time.monotonic() < deadline, f"{url} never answered as expected"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sims_up(spool, **sims: int) -> None:
    """Record a live daemon (this process) and SIMs up with these signals, as `run` would."""
    import os
    import socket as _socket
    from datetime import datetime, timezone

    spool.beat("test-daemon", host=_socket.gethostname(), pid=os.getpid(),
               started_at=datetime.now(timezone.utc))
    for name, signal in sims.items():
        spool.upsert_sim(name, state="up", signal=signal)


class ServerThread:
    """`serve_api` (uvicorn and the webhook worker) in a thread with its own event loop."""

    def __init__(self, config: Any, webhooks: bool = True) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhooks = webhooks
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from modempool.web.server import serve_api

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve_api(self.config, f"127.0.0.1:{self.port}", stop=self._stop,
                            webhooks=self.webhooks, ready=self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by start() or the test
            self.error = exc
        finally:
            self._ready.set()

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(30), "the API did not start"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
