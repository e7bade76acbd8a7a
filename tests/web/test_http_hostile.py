"""Issue 12 through the HTTP API: text the dispatcher could not send is refused at the door, as
it is by every other front end (the rule lives in the spool's enqueue)."""

from __future__ import annotations

import pytest

from http_harness import both_engines


@pytest.mark.parametrize("text, detail", [
    ("长" * 20000, "needs 299 parts"),
    ("长" * 800, "needs 12 SMS parts; at most 10 are allowed"),
    ("   ", "only blank space"),
])
def test_unsendable_text_is_a_422_and_nothing_is_queued(api, text, detail):
    with api.client() as client:
        answer = client.post("/v1/messages", json={"to": "13800138000", "text": text})
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert detail in answer.json()["detail"]
        assert client.get("/v1/messages").json()["messages"] == []


@both_engines
def test_a_nul_character_is_refused_alike_on_both_engines(api):
    """U+0000 cannot be stored in PostgreSQL text: every text field refuses it with a 422 on
    both engines (a 500 from psycopg before; campaigns and the blacklist's reason a generic
    422 on PostgreSQL and stored on SQLite), naming the field, and nothing is stored."""
    with api.client() as client:
        refusals = [
            client.post("/v1/messages", json={"to": "13800138000", "text": "验证码\x001234"}),
            client.post("/v1/messages", json={"to": "13800138000", "text": "hi",
                                              "client_id": "order\x007"}),
            client.put("/v1/contacts/13800138000", json={"name": "张\x00三"}),
            client.put("/v1/contacts/13800138000", json={"fields": {"班级": "三\x00班"}}),
            client.put("/v1/contacts/13800138000", json={"groups": ["家\x00长"]}),
            client.get("/v1/contacts", params={"search": "张\x00"}),
            client.post("/v1/campaigns", json={"name": "春\x00节", "text": "您好",
                                               "to": ["13800138000"]}),
            client.post("/v1/campaigns", json={"name": "春节", "text": "您\x00好",
                                               "to": ["13800138000"]}),
            client.post("/v1/campaigns", json={"name": "春节", "text": "您好",
                                               "groups": "家\x00长"}),
        ]
        with api.client("root") as admin:
            refusals.append(admin.post("/v1/blacklist", json={"numbers": ["13800138000"],
                                                              "reason": "骚\x00扰"}))
        for answer in refusals:
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "NUL character (U+0000)" in answer.json()["detail"]
            assert not answer.json()["detail"].startswith("the text contains"), answer.request.content   # the field named
        kannel = client.get("/cgi-bin/sendsms", params={
            "username": "shop", "password": api.keys["shop"], "to": "13800138000",
            "text": "a\x00b"})
        assert kannel.status_code == 422 and "NUL character (U+0000)" in kannel.text
        stranger = client.get("/cgi-bin/sendsms", params={
            "username": "sh\x00op", "password": api.keys["shop"], "to": "13800138000", "text": "x"})
        assert (stranger.status_code, stranger.text) == (403, "Authorization failed for sendsms")
        assert client.get("/v1/messages").json()["messages"] == []
        assert client.get("/v1/contacts").json()["contacts"] == []
        assert client.get("/v1/campaigns").json()["campaigns"] == []
        with api.client("root") as admin:
            assert admin.get("/v1/blacklist").json()["blacklist"] == []


def test_a_streamed_body_over_the_limit_is_413_and_bad_utf8_a_clear_400(api):
    def over_the_limit():   # no Content-Length: the limit is found while reading
        for _ in range(5):
            yield b"x" * 1_000_000

    with api.client() as client:
        too_big = client.post("/v1/messages", content=over_the_limit(),
                              headers={"content-type": "application/json"})
        assert too_big.status_code == 413, too_big.text    # was FastAPI's 400
        assert "[http] max_body" in too_big.json()["detail"]
        not_utf8 = client.post("/v1/messages", content=b'{"to": "13800138000", "text": "\xff"}',
                               headers={"content-type": "application/json"})
        assert not_utf8.status_code == 400
        assert not_utf8.json()["detail"] == "the request body is not valid UTF-8 (byte 0xff at offset 31)"
        assert client.get("/v1/messages").json()["messages"] == []


@pytest.mark.parametrize("when, detail", [
    ({"expires": "2020-01-01T00:00:00Z"}, "is already past"),
    ({"at": "2099-01-02T00:00:00Z", "expires": "2099-01-01T00:00:00Z"}, "is not after at"),
])
def test_an_expiry_that_could_never_be_met_is_refused(api, when, detail):
    with api.client() as client:
        answer = client.post("/v1/messages", json={"to": "13800138000", "text": "hi", **when})
        assert answer.status_code == 422 and detail in answer.json()["detail"]
        assert client.get("/v1/messages").json()["messages"] == []


def test_an_unknown_sim_is_named_without_the_configuration_files_path(api, config_path):
    with api.client() as client:
        answer = client.post("/v1/messages", json={"to": "13800138000", "text": "hi", "sims": ["nope"]})
        assert answer.status_code == 422 and "no modem named nope" in answer.json()["detail"]
        assert str(config_path) not in answer.text and config_path.name not in answer.text
        assert client.get("/v1/messages").json()["messages"] == []
