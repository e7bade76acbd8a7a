"""The API while its PostgreSQL is away: a real uvicorn server over a throwaway cluster of its
own, which the test stops under it. A request then gets a 503 with Retry-After and one clear
line (a problem document on the API, plain text on Kannel's sendsms, a page in the console's
style and language on the console), the log one line without a traceback; once the cluster is
back, the same requests succeed."""

from __future__ import annotations

import logging
import time

import pytest

from tests.pg_cluster import throwaway_cluster

HANG = 120.0   # seconds after the restart before the test calls it a hang


@pytest.fixture
def own_cluster():
    """A cluster of the test's own: stopping it must not disturb the session's."""
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture
def spool_section(own_cluster) -> str:   # the API's spool on the test's own cluster
    return f'[spool]\nurl = "{own_cluster.new_schema()}"\n'


def send(client, text: str):
    return client.post("/v1/messages", json={"to": "13800138000", "text": text})


def kannel_send(client, key: str, text: str):
    return client.get("/cgi-bin/sendsms", params={"username": "shop", "password": key,
                                                  "to": "13800138000", "text": text})


def test_the_database_away_is_a_503_with_retry_after_and_the_api_recovers(api, own_cluster,
                                                                          caplog):
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
            time.sleep(0.05)   # (503s at once meanwhile: the server watch knows it is away)
            answers.append(send(client, "after").status_code)
        assert answers[-1] == 202 and set(answers) <= {202, 503}, answers
        assert kannel_send(anonymous, api.keys["shop"], "after, Kannel").status_code == 202
    with api.config.open_spool() as spool:
        assert sorted(m.text for m in spool.list()) == ["after", "after, Kannel", "before"]
