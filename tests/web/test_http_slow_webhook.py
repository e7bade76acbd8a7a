"""A webhook endpoint that holds its connection delays neither another endpoint's deliveries nor
the sending: `modempool run --simulate 2 --http`, one receiver that keeps the first request
open until the test lets it go, and one that answers at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import standardwebhooks

from http_harness import free_port, wait_http
from modempool.config import load_config
from modempool.webhooks import Webhooks

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[spool]
path = "pool.db"

[webhooks]
timeout = 600        # the held connection ends when the test says, not by the worker's timeout
retry_base = 0.2
retry_max = 0.5
"""


class Endpoint:
    """A webhook receiver that verifies signatures and keeps the sent messages' ids in arrival
    order; with `hold`, it keeps every request open until `release()`."""

    def __init__(self, hold: bool = False) -> None:
        self.ids: list[int] = []
        self.arrived = threading.Condition()
        self.released = threading.Event()
        self.hold = hold
        self.verifier: standardwebhooks.Webhook | None = None
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                payload = endpoint.verifier.verify(body, dict(self.headers))
                with endpoint.arrived:
                    endpoint.ids.append(payload["data"]["id"])
                    endpoint.arrived.notify_all()
                if endpoint.hold:
                    endpoint.released.wait(600)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, ids: set[int], timeout: float = 90) -> list[int]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: ids <= set(self.ids), timeout), \
                f"{self.url} got {self.ids}, waited for {sorted(ids)}"
            return list(self.ids)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def test_a_slow_endpoint_delays_neither_another_endpoint_nor_sending(tmp_path):
    config_path = tmp_path / "modempool.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    slow, quick = Endpoint(hold=True), Endpoint()
    config = load_config(config_path)
    with config.open_spool() as spool:
        for endpoint in (slow, quick):
            _, secret = Webhooks(spool).add(endpoint.url, ["message.sent"])
            endpoint.verifier = standardwebhooks.Webhook(secret)
    port = free_port()
    daemon = subprocess.Popen([sys.executable, "-m", "cli", "run", "--simulate", "2", "--config",
                               str(config_path), "--http", f"127.0.0.1:{port}"], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", daemon)
        with config.open_spool() as spool:
            [first] = spool.enqueue_many([{"to": "13800138000", "text": "first"}])
            slow.wait_for({first})            # the slow endpoint now holds its connection
            quick.wait_for({first})
            later = spool.enqueue_many([{"to": f"1380013800{i}", "text": f"later {i}"}
                                        for i in range(1, 4)])
            # sent, and told to the quick endpoint, while the slow one still holds the first
            quick.wait_for(set(later))
            assert slow.ids == [first] and not slow.released.is_set()
            assert {m.state.value for m in spool.get_many(later)} <= {"sent", "delivered"}
            slow.release()
            slow.wait_for(set(later))
            assert sorted(slow.ids) == sorted([first, *later])   # each once, none lost
    finally:
        slow.close()
        quick.close()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.stderr.read()
