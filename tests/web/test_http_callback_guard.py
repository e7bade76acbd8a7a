"""A sender's Kannel dlr-url cannot make the box call loopback, link-local (cloud metadata),
private or other special addresses, nor another scheme: refused when given (400, nothing
queued) and again when called, against the address actually connected to."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modempool.callback_guard import CallbackAllow, CallbackRefused, check_callback
from modempool.config import load_config
from http_harness import ServerThread

REFUSED = [
    "http://127.0.0.1/dlr", "http://localhost:8080/dlr", "http://2130706433/", "http://0177.0.0.1/",
    "http://0x7f.1/", "http://127.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/", "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/", "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/",
    "http://100.64.0.1/", "http://[fd00::1]/", "http://224.0.0.1/", "http://[ff02::1]/",
    "http://0.0.0.0/", "http://[::]/", "http://240.0.0.1/", "http://192.0.2.1/",
    "http://[2002:7f00:1::]/", "http://[64:ff9b::a9fe:a9fe]/",
    "ftp://93.184.216.34/", "file:///etc/passwd", "gopher://93.184.216.34/", "http://x:abc/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_special_addresses_and_other_schemes_are_refused_by_default(url):
    with pytest.raises(CallbackRefused) as refused:
        check_callback(url, CallbackAllow())
    assert "\n" not in str(refused.value) and str(refused.value).startswith("dlr-url")


def test_public_addresses_pass_and_the_allow_list_opens_exactly_what_it_names():
    check_callback("https://93.184.216.34/dlr?s=%d", CallbackAllow())
    check_callback("http://[2606:2800:220:1::1]/", CallbackAllow())
    networks = CallbackAllow.parse(["127.0.0.0/8", "fd00::/8"])
    for url in ("http://127.0.0.1:9/dlr", "http://localhost/x", "http://[fd00::7]/",
                "http://[::ffff:127.0.0.1]/"):
        check_callback(url, networks)
    with pytest.raises(CallbackRefused, match="link-local"):
        check_callback("http://169.254.169.254/", networks)
    prefix = CallbackAllow.parse(["http://127.0.0.1:8080/dlr/"])
    check_callback("http://127.0.0.1:8080/dlr/kannel?s=%d", prefix)
    for outside in ("http://127.0.0.1:8080/dlrx", "http://127.0.0.1:8081/dlr/",
                    "https://127.0.0.1:8080/dlr/", "http://127.0.0.1:8080@169.254.169.254/dlr/",
                    "http://127.0.0.1:8080/admin"):
        with pytest.raises(CallbackRefused):
            check_callback(outside, prefix)


def test_a_bad_allow_entry_is_a_config_error_naming_it(tmp_path):
    from modempool.errors import ConfigError

    path = tmp_path / "modempool.toml"
    path.write_text('[http]\ncallback_allow = ["crm.example.com"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="callback_allow.*crm.example.com"):
        load_config(path)


class Receiver:
    """Records the GET requests (path and Host header) it gets; `redirect` answers 302 to it."""

    def __init__(self, redirect: str | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                receiver.seen.append((self.path, self.headers["host"]))
                self.send_response(302 if redirect else 200)
                if redirect:
                    self.send_header("location", redirect)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _serve(config_path, allow: str):
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text.replace("[http]\n", f"[http]\ncallback_allow = {allow}\n"),
                           encoding="utf-8")
    return ServerThread(load_config(config_path)).start()


def test_sendsms_refuses_a_loopback_dlr_url_and_queues_nothing(api):
    receiver = Receiver()
    with api.client(None) as client:
        for url in (f"http://127.0.0.1:{receiver.port}/dlr?s=%d", "http://169.254.169.254/x",
                    f"http://2130706433:{receiver.port}/"):
            answer = client.get("/cgi-bin/sendsms", params={
                "username": "shop", "password": api.keys["shop"], "to": "13800138000",
                "text": "x", "dlr-url": url})
            assert answer.status_code == 400, answer.text
            assert answer.text.startswith("Rejected: dlr-url") and "callback_allow" in answer.text
            assert "\n" not in answer.text
    spool = api.config.open_spool()
    try:
        assert spool.list() == []
    finally:
        spool.close()
    receiver.server.shutdown()
    assert receiver.seen == []


def test_an_allowed_network_is_called_with_the_host_kept(config_path):
    from modempool.accounts import Accounts

    config = load_config(config_path)
    spool = config.open_spool()
    key = Accounts(spool).add("oa", "sender")[1]
    spool.close()
    receiver = Receiver()
    server = _serve(config_path, '["127.0.0.0/8"]')
    try:
        import httpx

        answer = httpx.get(server.url + "/cgi-bin/sendsms", params={
            "username": "oa", "password": key, "to": "13800138000", "text": "x",
            "dlr-mask": "8", "dlr-url": f"http://localhost:{receiver.port}/dlr?s=%d"})
        assert answer.status_code == 202, answer.text
        spool = config.open_spool()
        try:
            [message] = spool.list()
            assert spool.claim(message.id, "m1", "test", 60)
            assert spool.mark_sent(message.id)
        finally:
            spool.close()
        _wait(lambda: receiver.seen)
    finally:
        server.stop()
        receiver.server.shutdown()
    # connected to the address checked, the name kept in the Host header
    assert receiver.seen == [("/dlr?s=8", f"localhost:{receiver.port}")]


def _wait(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def _worker_round(spool, url: str, allow: CallbackAllow) -> list[dict]:
    """Queue a message with a Kannel callback to `url` written straight into the outbox (as if
    the name had resolved elsewhere when it was given), mark it sent, and run a delivery worker
    until the callback's row is no longer pending."""
    from modempool.webhooks import Webhooks
    from modempool.webhooks.delivery import WebhookWorker

    hooks = Webhooks(spool)
    message = spool.enqueue("13800138000", "x").id
    with spool.transaction() as conn:
        hooks.add_dlr(conn, [message], url, 8)
    assert spool.claim(message, "m1", "test", 60)
    assert spool.mark_sent(message)

    async def deliver() -> None:
        stop = asyncio.Event()
        worker = WebhookWorker(spool, poll=0.05, callback_allow=allow)
        task = asyncio.create_task(worker.run(stop))
        while [r for r in hooks.log() if r["state"] == "pending" and r["attempts"] == 0]:
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(deliver())
    return hooks.log()


def test_the_delivery_checks_the_address_it_connects_to_and_gives_up(tmp_path):
    from modempool.spool import Spool

    receiver = Receiver()
    spool = Spool(tmp_path / "pool.db")
    try:
        [row] = _worker_round(spool, f"http://localhost:{receiver.port}/dlr?s=%d", CallbackAllow())
    finally:
        spool.close()
        receiver.server.shutdown()
    assert receiver.seen == []
    assert row["state"] == "dead" and "loopback" in row["last_error"], row


def test_a_redirect_is_not_followed(tmp_path):
    from modempool.spool import Spool

    receiver = Receiver(redirect="http://169.254.169.254/latest/meta-data/")
    spool = Spool(tmp_path / "pool.db")
    try:
        [row] = _worker_round(spool, f"http://127.0.0.1:{receiver.port}/dlr",
                              CallbackAllow.parse(["127.0.0.1"]))
    finally:
        spool.close()
        receiver.server.shutdown()
    assert receiver.seen == [("/dlr", f"127.0.0.1:{receiver.port}")]
    assert (row["state"], row["last_status"]) == ("pending", 302)
