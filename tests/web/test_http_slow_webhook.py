"""A webhook endpoint that holds its connection delays neither another endpoint's deliveries nor
the sending: `modempool run --simulate 2 --http`, one receiver that keeps the first request
open until the test lets it go, and one that answers at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from http_harness import Receiver, free_port, wait_http
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


def endpoint(held: threading.Event | None = None) -> tuple[Receiver, str]:
    """A webhook receiver (its secret set once the webhook is added) and its URL; given `held`,
    it keeps every request open until that event is set."""
    def answer(arrival) -> tuple[int, dict]:
        if held is not None:
            held.wait(600)
        return 204, {}

    receiver = Receiver(answer)
    return receiver, f"http://127.0.0.1:{receiver.port}/hook"


def ids(receiver: Receiver) -> list[int]:
    """The sent messages' ids of its verified deliveries, in arrival order."""
    return [payload["data"]["id"] for payload in receiver.attempts]


def wait_for(receiver: Receiver, wanted: set[int]) -> None:
    receiver.wait_until(lambda: wanted <= set(ids(receiver)), 90,
                        f"got {ids(receiver)}, waited for {sorted(wanted)}")


def test_a_slow_endpoint_delays_neither_another_endpoint_nor_sending(tmp_path):
    config_path = tmp_path / "modempool.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    released = threading.Event()
    (slow, slow_url), (quick, quick_url) = endpoint(released), endpoint()
    config = load_config(config_path)
    with config.open_spool() as spool:
        for receiver, url in ((slow, slow_url), (quick, quick_url)):
            receiver.secret = Webhooks(spool).add(url, ["message.sent"])[1]
    port = free_port()
    daemon = subprocess.Popen([sys.executable, "-m", "cli", "run", "--simulate", "2", "--config",
                               str(config_path), "--http", f"127.0.0.1:{port}"], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", daemon)
        with config.open_spool() as spool:
            [first] = spool.enqueue_many([{"to": "13800138000", "text": "first"}])
            wait_for(slow, {first})            # the slow endpoint now holds its connection
            wait_for(quick, {first})
            later = spool.enqueue_many([{"to": f"1380013800{i}", "text": f"later {i}"}
                                        for i in range(1, 4)])
            # sent, and told to the quick endpoint, while the slow one still holds the first
            wait_for(quick, set(later))
            assert ids(slow) == [first] and not released.is_set()
            assert {m.state.value for m in spool.get_many(later)} <= {"sent", "delivered"}
            released.set()
            wait_for(slow, set(later))
            assert sorted(ids(slow)) == sorted([first, *later])   # each once, none lost
            assert slow.rejected == quick.rejected == 0
    finally:
        released.set()
        slow.stop()
        quick.stop()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.stderr.read()
