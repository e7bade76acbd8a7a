"""A sender's Kannel dlr-url cannot make the box call loopback, link-local (cloud metadata),
private or other special addresses, nor another scheme: refused when given (400, nothing
queued) and again when called, against the address actually connected to."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from modempool.callback_guard import CallbackAllow, CallbackRefused, check_callback, guarded_transport
from modempool.config import load_config
from http_harness import Receiver, ServerThread

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


def test_public_addresses_pass_and_the_allow_list_opens_exactly_what_it_names(caplog):
    check_callback("https://93.184.216.34/dlr?s=%d", CallbackAllow())
    check_callback("http://[2606:2800:220:1::1]/", CallbackAllow())
    networks = CallbackAllow.parse(["127.0.0.0/8", "fd00::/8"])
    for url in ("http://127.0.0.1:9/dlr", "http://localhost/x", "http://[fd00::7]/",
                "http://[::ffff:127.0.0.1]/"):
        check_callback(url, networks)
    with caplog.at_level(logging.WARNING, "modempool.callback_guard"):
        with pytest.raises(CallbackRefused, match="not an allowed callback address"):
            check_callback("http://169.254.169.254/", networks)
    assert "link-local address 169.254.169.254" in caplog.text   # why: for the server's log
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
            assert answer.text == ("Rejected: dlr-url: not an allowed callback address (its host "
                                   "must resolve to public addresses only, or be listed in [http] "
                                   "callback_allow)")   # nothing of where the name points
    spool = api.config.open_spool()
    try:
        assert spool.list() == []
    finally:
        spool.close()
    receiver.stop()
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
        receiver.wait_for(1)
    finally:
        server.stop()
        receiver.stop()
    # connected to the address checked, the name kept in the Host header
    assert receiver.seen == [("GET", "/dlr?s=8", f"localhost:{receiver.port}")]


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
        await worker.wait_recorded(1)
        stop.set()
        await task

    asyncio.run(deliver())
    return hooks.log()


def test_the_delivery_checks_the_address_it_connects_to_and_gives_up(tmp_path, caplog):
    from modempool.spool import Spool

    receiver = Receiver()
    spool = Spool(tmp_path / "pool.db")
    try:
        with caplog.at_level(logging.WARNING, "modempool.callback_guard"):
            [row] = _worker_round(spool, f"http://localhost:{receiver.port}/dlr?s=%d",
                                  CallbackAllow())
    finally:
        spool.close()
        receiver.stop()
    assert receiver.seen == []
    assert row["state"] == "dead" and "not an allowed callback address" in row["last_error"], row
    assert "host localhost has the loopback address" in caplog.text


def _allowed_round(tmp_path, receiver: Receiver) -> dict:
    """`_worker_round` with a callback to `receiver` (127.0.0.1, allowed); stops the receiver."""
    from modempool.spool import Spool

    spool = Spool(tmp_path / "pool.db")
    try:
        [row] = _worker_round(spool, f"http://127.0.0.1:{receiver.port}/dlr",
                              CallbackAllow.parse(["127.0.0.1"]))
    finally:
        spool.close()
        receiver.stop()
    return row


def test_a_redirect_is_not_followed(tmp_path):
    receiver = Receiver(lambda arrival: (302, {"location": "http://169.254.169.254/latest/meta-data/"}))
    row = _allowed_round(tmp_path, receiver)
    assert receiver.seen == [("GET", "/dlr", f"127.0.0.1:{receiver.port}")]
    assert (row["state"], row["last_status"]) == ("pending", 302)


ESCAPES = ["/dlr/%2e%2e/admin", "/dlr/%2E%2E/admin", "/dlr/..%2fadmin", "/dlr/..%2Fadmin",
           "/dlr/..%5cadmin", "/dlr/..\\admin", "/dlr/../admin", "/dlr/./../admin", "/dlr/.."]


@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_cannot_climb_out_of_an_allowed_prefix(path):
    prefix = CallbackAllow.parse(["http://127.0.0.1:8080/dlr/"])
    with pytest.raises(CallbackRefused):
        check_callback(f"http://127.0.0.1:8080{path}", prefix)
    check_callback("http://127.0.0.1:8080/dlr/./kannel/../x?s=%d", prefix)   # stays below /dlr/


def test_sendsms_refuses_an_escaping_path_when_it_is_given(config_path):
    from modempool.accounts import Accounts

    config = load_config(config_path)
    spool = config.open_spool()
    key = Accounts(spool).add("oa", "sender")[1]
    spool.close()
    server = _serve(config_path, '["http://127.0.0.1:8080/dlr/"]')
    try:
        for path in ("/dlr/../admin", "/dlr/%2e%2e/admin", "/dlr/..%2fadmin"):
            answer = httpx.get(server.url + "/cgi-bin/sendsms", params={
                "username": "oa", "password": key, "to": "13800138000", "text": "x",
                "dlr-url": f"http://127.0.0.1:8080{path}"})
            assert answer.status_code == 400 and "not an allowed callback address" in answer.text
        answer = httpx.get(server.url + "/cgi-bin/sendsms", params={
            "username": "oa", "password": key, "to": "13800138000", "text": "x",
            "dlr-url": "http://127.0.0.1:8080/dlr/kannel?s=%d"})
        assert answer.status_code == 202, answer.text
    finally:
        server.stop()
    spool = config.open_spool()
    try:
        assert len(spool.list()) == 1
    finally:
        spool.close()


def test_an_account_that_may_not_send_learns_nothing_of_the_callback(api):
    with api.client(None) as client:
        answer = client.get("/cgi-bin/sendsms", params={
            "username": "audit", "password": api.keys["audit"], "to": "13800138000",
            "text": "x", "dlr-url": "http://localhost/dlr"})
    assert answer.status_code == 403, answer.text
    assert "may not send" in answer.text and "callback" not in answer.text


def _resolver(names: dict[str, list[str]]):
    """Our own seam: the transport asks this for a host's addresses instead of the system."""
    import ipaddress

    async def resolve(host: str, port: int):
        return [ipaddress.ip_address(a) for a in names[host]]

    return resolve


def _get(transport, url: str) -> httpx.Response:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            return await client.get(url)

    return asyncio.run(get())


def test_each_checked_address_is_tried_in_turn():
    receiver = Receiver()   # on 127.0.0.1 only: ::1 refuses the connection
    transport = guarded_transport(CallbackAllow.parse(["127.0.0.1", "::1"]),
                                  resolver=_resolver({"crm.test": ["::1", "127.0.0.1"]}))
    try:
        answer = _get(transport, f"http://crm.test:{receiver.port}/dlr?s=8")
    finally:
        receiver.stop()
    assert answer.status_code == 200
    assert receiver.seen == [("GET", "/dlr?s=8", f"crm.test:{receiver.port}")]


def test_a_name_with_one_address_not_allowed_is_refused_before_any_connection():
    receiver = Receiver()
    transport = guarded_transport(CallbackAllow.parse(["127.0.0.1"]),
                                  resolver=_resolver({"crm.test": ["127.0.0.1", "10.0.0.1"]}))
    try:
        with pytest.raises(CallbackRefused):
            _get(transport, f"http://crm.test:{receiver.port}/dlr")
    finally:
        receiver.stop()
    assert receiver.seen == []


def test_environment_proxies_are_not_used_for_callbacks(tmp_path, monkeypatch):
    proxy, receiver = Receiver(), Receiver()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    try:
        row = _allowed_round(tmp_path, receiver)
    finally:
        proxy.stop()
    assert proxy.seen == []
    assert receiver.seen == [("GET", "/dlr", f"127.0.0.1:{receiver.port}")]
    assert row["state"] == "delivered", row


def _certificates(tmp_path, name: str):
    """A throwaway CA, and a server certificate for `name` signed by it (both PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    later = now + datetime.timedelta(days=1)

    def issued(subject: str, key, issuer_name, issuer_key, ca: bool):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(later)
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       issuer_key.public_key()), critical=False)
                   .add_extension(x509.KeyUsage(
                       digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True))
        if not ca:
            builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]),
                                             critical=False)
                       .add_extension(x509.ExtendedKeyUsage(
                           [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modempool test CA")])
    ca = issued("modempool test CA", ca_key, ca_name, ca_key, ca=True)
    server = issued(name, server_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(server.public_bytes(pem) + server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "server.pem"


def test_https_keeps_the_name_for_sni_and_checks_the_certificate_against_it(tmp_path):
    """The connection goes to the checked address, but TLS is made with the URL's name: the
    certificate for crm.test is accepted for crm.test and refused for other.test, although both
    names point at the same address (no connection to it is reused across names)."""
    import ssl

    ca, server_pem = _certificates(tmp_path, "crm.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server_pem)
    server_names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: server_names.append(name)
    receiver = Receiver(tls=tls)
    client_tls = ssl.create_default_context(cafile=str(ca))
    transport = guarded_transport(
        CallbackAllow.parse(["127.0.0.1"]), verify=client_tls,
        resolver=_resolver({"crm.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}))

    async def calls() -> tuple[int, Exception | None]:
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            first = await client.get(f"https://crm.test:{receiver.port}/dlr")
            try:
                await client.get(f"https://other.test:{receiver.port}/dlr")
            except httpx.ConnectError as exc:
                return first.status_code, exc
            return first.status_code, None

    try:
        status, refused = asyncio.run(calls())
    finally:
        receiver.stop()
    assert status == 200
    assert receiver.seen == [("GET", "/dlr", f"crm.test:{receiver.port}")]
    assert refused is not None and "certificate" in str(refused).lower(), refused
    assert server_names == ["crm.test", "other.test"]


def test_a_dlr_url_whose_host_never_resolves_is_the_fixed_one_line_400(caplog):
    """The lookup when a dlr-url is given is limited (5 s by default; here a hundredth of
    a second): a resolver that never answers gets the refusal every other bad address gets."""
    import json
    import threading

    from modempool.web.problems import for_error

    release = threading.Event()

    def never_answers(host, port, **options):
        release.wait()   # until the test ends: its thread is the resolver's own, not ours
        raise OSError("released at the test's end")

    with caplog.at_level(logging.WARNING, logger="modempool.callback_guard"):
        try:
            with pytest.raises(CallbackRefused) as refused:
                check_callback("http://crm.test/dlr?s=%d", CallbackAllow.parse([]),
                               timeout=0.01, lookup=never_answers)
        finally:
            release.set()
    answer = for_error(refused.value)
    assert answer.status_code == 400
    assert json.loads(answer.body)["detail"] == (
        "dlr-url: not an allowed callback address (its host must resolve to public addresses "
        "only, or be listed in [http] callback_allow)")
    assert [r.getMessage() for r in caplog.records] == [
        "dlr-url refused: host crm.test does not resolve (no answer within 0.01 s)"]


def test_a_callback_whose_host_never_resolves_is_refused_when_called(caplog):
    """The same limit when a callback is made: the transport waits for its resolver at most
    `resolve_timeout` (5 s by default), whatever the resolver."""
    asked: list[str] = []

    async def never_answers(host: str, port: int):
        asked.append(host)
        await asyncio.Event().wait()   # an event nobody sets

    transport = guarded_transport(CallbackAllow.parse([]), resolver=never_answers,
                                  resolve_timeout=0.01)
    with caplog.at_level(logging.WARNING, logger="modempool.callback_guard"):
        with pytest.raises(CallbackRefused) as refused:
            _get(transport, "http://crm.test/dlr")
    assert asked == ["crm.test"] and "not an allowed callback address" in str(refused.value)
    assert [r.getMessage() for r in caplog.records] == [
        "callback refused: host crm.test does not resolve (no answer within 0.01 s)"]
