"""Helpers of the HTTP tests."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Arrival:
    """One request a `Receiver` got: its number (from 1), method, path, Host header, headers and
    body; `payload`, a webhook delivery's, when the receiver checks signatures and it verified."""

    number: int
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes
    payload: dict | None = None


class Receiver:
    """A real HTTP(S) server in a thread, the one every HTTP test calls: it records each request
    it gets (`arrivals`; `seen`: method, path, Host header) and answers it `answer(arrival)`
    (status, headers), called outside its lock so that it may hold the connection open (a slow
    endpoint); `answered` lists each request with its status once answered. With `secret` (a
    webhook's; may be set after the start, as `receiver.secret`) it is a webhook endpoint that
    checks every delivery's Standard Webhooks signature: one that does not verify is answered
    400 (counted in `rejected`), one that does gets `answer` (204 by default) and its payload
    kept (`attempts`; `deliveries`: webhook-id and payload of those answered 2xx). `wait_for`,
    `wait_until` and `delivered` wait on a condition, not by polling. With `tls` (an
    `ssl.SSLContext` for a server) it speaks HTTPS; `port` 0 takes a free one."""

    def __init__(self, answer=None, tls: Any = None, *, port: int = 0,
                 secret: str | None = None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrivals: list[Arrival] = []
        self.answered: list[tuple[Arrival, int]] = []
        self.rejected = 0   # deliveries whose signature did not verify
        self._open: set[Any] = set()   # connections kept open, closed by stop()
        self.arrived = threading.Condition()
        self.secret = secret
        receiver = self
        answer = answer or (lambda arrival: (204, {}) if receiver.secret else (200, {}))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # connections kept open, as a real receiver's

            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                payload, verified = receiver._verified(body, dict(self.headers))
                with receiver.arrived:
                    arrival = Arrival(len(receiver.arrivals) + 1, self.command, self.path,
                                      self.headers["host"], dict(self.headers), body, payload)
                    receiver.arrivals.append(arrival)
                    receiver.arrived.notify_all()
                status, headers = answer(arrival) if verified else (400, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.answered.append((arrival, status))
                    receiver.rejected += 0 if verified else 1
                    receiver.arrived.notify_all()

            do_GET = do_POST = _record  # noqa: N815 (http.server's names)

            def setup(self) -> None:
                super().setup()
                receiver._open.add(self.connection)

            def finish(self) -> None:
                receiver._open.discard(self.connection)
                super().finish()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True   # a held answer does not hold the test's end
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _verified(self, body: bytes, headers: dict[str, str]) -> tuple[dict | None, bool]:
        """The delivery's payload and whether it may be answered (its signature verifies, or
        the receiver checks none)."""
        if self.secret is None:
            return None, True
        import standardwebhooks

        try:
            return standardwebhooks.Webhook(self.secret).verify(body, headers), True
        except standardwebhooks.WebhookVerificationError:
            return None, False

    @property
    def seen(self) -> list[tuple[str, str, str]]:
        return [(a.method, a.path, a.host) for a in self.arrivals]

    @property
    def paths(self) -> list[str]:
        return [a.path for a in self.arrivals]

    @property
    def attempts(self) -> list[dict]:
        """The payload of every delivery whose signature verified, in arrival order."""
        return [a.payload for a in self.arrivals if a.payload is not None]

    @property
    def deliveries(self) -> list[tuple[str, dict]]:
        """(webhook-id, payload) of each verified delivery answered 2xx, in answer order."""
        return [(a.headers["webhook-id"], a.payload) for a, status in self.answered
                if 200 <= status < 300 and a.payload is not None]

    def wait_until(self, condition, timeout: float = 60, what: str = "") -> None:
        with self.arrived:
            assert self.arrived.wait_for(condition, timeout), what or self.seen

    def wait_for(self, count: int, timeout: float = 60) -> None:
        self.wait_until(lambda: len(self.arrivals) >= count, timeout)

    def delivered(self, count: int, timeout: float = 60) -> list[tuple[str, dict]]:
        """The deliveries once `count` were answered 2xx."""
        self.wait_until(lambda: len(self.deliveries) >= count, timeout,
                        f"{len(self.deliveries)} of {count} deliveries arrived")
        return self.deliveries

    def stop(self) -> None:
        """Stop listening and end the connections kept open: the receiver is down."""
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self._open):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
