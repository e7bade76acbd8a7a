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


class Receiver:
    """A real HTTP(S) server in a thread that records each request it gets (`seen`: method,
    path, Host header) and answers `answer(n)` for the n-th (status, headers); `wait_for(n)`
    waits until n requests have arrived (on a condition, not by polling). With `tls` (an
    `ssl.SSLContext` for a server) it speaks HTTPS."""

    def __init__(self, answer=lambda n: (200, {}), tls: Any = None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[tuple[str, str, str]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # connections kept open, as a real receiver's

            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with receiver.arrived:
                    receiver.seen.append((self.command, self.path, self.headers["host"]))
                    status, headers = answer(len(receiver.seen))
                    receiver.arrived.notify_all()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _record  # noqa: N815 (http.server's names)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]

    def wait_for(self, count: int, timeout: float = 60) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.seen) >= count, timeout), self.seen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
