"""The API while its PostgreSQL is away: a real uvicorn server over a throwaway cluster of its
own, which the test stops under it. A request then gets a 503 with Retry-After and one clear
line (a problem document on the API, plain text on Kannel's sendsms, a page in the console's
style and language on the console), the log one line without a traceback; once the cluster is
back, the same requests succeed."""

from __future__ import annotations

import logging
import time

import pytest

from tests.pg_cluster import WatchLines, throwaway_cluster, watching

HANG = 120.0   # seconds after the restart before the test calls it a hang


@pytest.fixture
def own_cluster():
    """A cluster of the test's own: stopping it must not disturb the session's."""
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def watch() -> WatchLines:
    """The API server's server watch, by its log lines (the server's engine is its own)."""
    with watching() as lines:
        yield lines


@pytest.fixture
def spool_section(own_cluster) -> str:   # the API's spool on the test's own cluster
    return f'[spool]\nurl = "{own_cluster.new_schema()}"\n'


def send(client, text: str):
    return client.post("/v1/messages", json={"to": "13800138000", "text": text})


def kannel_send(client, key: str, text: str):
    return client.get("/cgi-bin/sendsms", params={"username": "shop", "password": key,
                                                  "to": "13800138000", "text": text})


def test_the_database_away_is_a_503_with_retry_after_and_the_api_recovers(api, own_cluster,
                                                                          caplog, watch):
    with api.client() as client, api.client(None) as anonymous:
        assert send(client, "before").status_code == 202
        own_cluster.stop()
        with caplog.at_level(logging.INFO):
            away = send(client, "while away")
            kannel = kannel_send(anonymous, api.keys["shop"], "while away")
        assert away.status_code == 503, away.text
        assert away.headers["content-type"] == "application/problem+json"
        assert int(away.headers["retry-after"]) > 0
        problem = away.json()
        assert problem["title"] == "Database unavailable"
        assert problem["detail"].startswith("the spool's database cannot answer now (")
        assert "\n" not in problem["detail"] and "try again in" in problem["detail"]
        assert kannel.status_code == 503 and int(kannel.headers["retry-after"]) > 0
        assert kannel.headers["content-type"].startswith("text/plain")
        assert kannel.text.startswith("Temporary failure, try again later: the spool's database")
        said = [r for r in caplog.records if r.getMessage().startswith("503 on")]
        assert [r.getMessage().split(":")[0] for r in said] == [
            "503 on POST /v1/messages", "503 on GET /cgi-bin/sendsms"]
        assert all(r.exc_info is None and "\n" not in r.getMessage() for r in said)
        assert not [r for r in caplog.records if r.exc_info]   # nor its background tasks
        for language, title in (("zh-CN", "数据库暂时无法响应"),
                                ("en", "The database cannot answer now")):
            page = anonymous.get("/", headers={"Cookie": "mp_session=a-session-token",
                                               "Accept-Language": language})
            assert page.status_code == 503 and int(page.headers["retry-after"]) > 0
            assert page.headers["content-type"].startswith("text/html")  # the console's page
            assert f"<h1>{title}</h1>" in page.text and 'href="/static/console.css"' in page.text
        assert not [r for r in caplog.records if r.exc_info]
        own_cluster.start()
        answers = [send(client, "after").status_code]
        deadline = time.monotonic() + HANG
        while answers[-1] != 202 and time.monotonic() < deadline:   # until the probe finds it
            watch.back.wait(max(deadline - time.monotonic(), 0))   # (503s at once meanwhile)
            answers.append(send(client, "after").status_code)
        assert answers[-1] == 202 and set(answers) <= {202, 503}, answers
        assert kannel_send(anonymous, api.keys["shop"], "after, Kannel").status_code == 202
    with api.config.open_spool() as spool:
        assert sorted(m.text for m in spool.list()) == ["after", "after, Kannel", "before"]


#: Ends the connection of the transaction that stores the message "lose me", or that closes a
#: console session, when it commits: the server rolls it back, the client cannot know.
LOSE_AT_COMMIT = """
CREATE FUNCTION lose_connection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER lose_sent AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.text = 'lose me') EXECUTE FUNCTION lose_connection();
CREATE CONSTRAINT TRIGGER lose_logout AFTER DELETE ON console_sessions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lose_connection();
"""


def _answering(client, watch: WatchLines) -> None:
    """Wait until the console answers again (its server watch found the server back)."""
    deadline = time.monotonic() + HANG
    while client.get("/messages").status_code == 503:
        assert time.monotonic() < deadline, "the console still answers 503"   # a hang guard
        watch.back.wait(max(deadline - time.monotonic(), 0))


def test_the_console_says_a_lost_commit_may_have_been_stored_and_a_send_in_an_outage_is_a_503(
        api, own_cluster, watch):
    import psycopg

    from tests.web.test_console_http import _csrf, signed_in

    shop = signed_in(api, "shop")
    zh = {"Accept-Language": "zh-CN"}
    with api.config.open_spool() as spool, psycopg.connect(spool.url, autocommit=True) as db:
        db.execute(LOSE_AT_COMMIT)
    form = shop.get("/send")
    lost = shop.post("/send", data={"to": "13800138000", "text": "lose me",
                                    "csrf": _csrf(form)}, headers=zh)
    assert lost.status_code == 503 and int(lost.headers["retry-after"]) > 0
    assert "它可能已经保存" in lost.text and "没有做任何更改" not in lost.text
    assert 'href="/messages"' in lost.text   # to look, not "try again"
    _answering(shop, watch)
    for language, unknown, unchanged in (("zh-CN", "它可能已经保存", "没有做任何更改"),
                                         ("en", "it may have been stored", "Nothing was changed")):
        page = shop.post("/logout", data={"csrf": _csrf(shop.get("/send"))},
                         headers={"Accept-Language": language})
        assert page.status_code == 503, page.text
        assert unknown in page.text and unchanged not in page.text
        assert 'href="/messages"' in page.text
        _answering(shop, watch)
    form = shop.get("/send")
    own_cluster.stop()
    away = shop.post("/send", data={"to": "13800138000", "text": "while away",
                                    "csrf": _csrf(form)})
    assert away.status_code == 503 and int(away.headers["retry-after"]) > 0
    assert "Nothing was changed" in away.text and "may have been stored" not in away.text
    own_cluster.start()
    _answering(shop, watch)
    with api.config.open_spool() as spool:
        assert [m.text for m in spool.list()] == []


async def test_a_sidecar_started_while_the_database_is_away_waits_for_it_quietly(
        tmp_path, own_cluster):
    """`run`'s sidecar (re)started during an outage (its daemon has the spool open) waits for
    the database: one line as the wait begins, one as it ends, then the API answers; it
    neither exits (its daemon restarted it with an ERROR line each time, every 1, 2, 4... s)
    nor writes a traceback."""
    import asyncio
    import os
    import sys

    import httpx

    from modempool.spool import Spool
    from tests.web.http_harness import free_port

    url = own_cluster.new_schema()
    Spool(url).close()   # the spool exists, as its daemon made it
    port = free_port()
    (tmp_path / "pool.toml").write_text(f'[spool]\nurl = "{url}"\n', "utf-8")
    own_cluster.stop()
    sidecar = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modempool.web.sidecar", "--spool", str(tmp_path / "spool.db"),
        "--config", str(tmp_path / "pool.toml"), "--listen", f"127.0.0.1:{port}",
        "--parent", str(os.getpid()), stderr=asyncio.subprocess.PIPE)
    said: list[str] = []

    async def line_with(words: str) -> None:
        async with asyncio.timeout(HANG):   # hang guard
            while not said or words not in said[-1]:
                line = await sidecar.stderr.readline()
                assert line, f"the sidecar exited ({await sidecar.wait()}): {said}"
                said.append(line.decode())

    try:
        await line_with("start once it answers")
        own_cluster.start()
        await line_with("HTTP API on")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        if sidecar.returncode is None:
            sidecar.terminate()
        async with asyncio.timeout(HANG):
            said += [line.decode() for line in (await sidecar.stderr.read()).splitlines(True)]
            await sidecar.wait()
    away = [line for line in said if "cannot reach the spool" in line]
    assert len(away) == 1 and "WARNING" in away[0], said
    assert [line for line in said if "the spool answers again" in line], said
    assert not [line for line in said if "Traceback" in line or "ERROR" in line], said
