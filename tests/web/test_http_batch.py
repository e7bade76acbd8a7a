"""A 100,000-recipient `POST /v1/messages` through a real uvicorn server and httpx, on both
engines: read as it arrives, queued chunk by chunk in one transaction, answered a page at a
time; all or nothing, the bad entry named by its index; the members in either order; the
retry with the same Idempotency-Key. Also the problem documents of a big body that is not a
valid send, which the model's words must match."""

from __future__ import annotations

import json

import pytest

from http_harness import both_engines
from modempool.web.send_body import SMALL_BODY

NUMBERS = [f"13{i:09d}" for i in range(100_000)]


def body(*members: tuple[str, object]) -> bytes:
    """A JSON object with its members in the order given."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                            for k, v in members) + "}").encode()


def post(client, content: bytes, **headers: str):
    return client.post("/v1/messages", content=content,
                       headers={"content-type": "application/json", **headers})


def queued(api) -> int:
    with api.config.open_spool() as spool:
        return spool.counts()["queued"]


def message_ids_taken(spool) -> int | None:
    """PostgreSQL's message id sequence, which a rolled-back write moves too (None on SQLite,
    whose ids a rollback gives back)."""
    if spool.engine.name == "sqlite":
        return None
    return spool.rows("SELECT last_value FROM messages_id_seq")[0][0]


@both_engines
def test_100k_recipients_are_queued_and_a_retry_returns_the_same_messages(api):
    request = body(("to", NUMBERS), ("text", "【商城】双十二活动今晚开始，回T退订"),
                   ("at", "2099-01-01T00:00:00Z"))
    assert len(request) > 1_000_000
    with api.client() as client:
        answer = post(client, request, **{"Idempotency-Key": "sale-12"})
        assert answer.status_code == 202, answer.text[:500]
        first = answer.json()
        assert first["count"] == 100_000 and len(first["messages"]) == 100_000
        assert first["messages"][0] == {"id": first["messages"][0]["id"], "to": "+8613000000000",
                                        "state": "queued", "parts": 1}
        assert first["messages"][-1]["to"] == "+8613000099999"
        assert len({m["id"] for m in first["messages"]}) == 100_000
        again = post(client, request, **{"Idempotency-Key": "sale-12"}).json()
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    assert queued(api) == 100_000
    with api.config.open_spool() as spool:
        last = spool.get(first["messages"][-1]["id"])
    assert last.to == "+8613000099999" and last.text == "【商城】双十二活动今晚开始，回T退订"


@both_engines
def test_a_bad_number_at_index_99999_queues_nothing_and_is_named(api):
    spoiled = NUMBERS[:99_999] + ["12"]
    with api.client() as client:   # the text after the numbers: kept until then
        answer = post(client, body(("to", spoiled), ("text", "通知")))
        assert answer.status_code == 422, answer.text[:500]
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        assert problem["errors"][0]["field"] == "to.99999"
        assert "row 100000" in problem["detail"] and "12" in problem["detail"]
    assert queued(api) == 0


def test_the_members_may_come_in_either_order(api):
    numbers = NUMBERS[:6000]
    with api.client() as client:
        before = post(client, body(("priority", 5), ("text", "先"), ("client_id", "a"),
                                   ("to", numbers)))
        after = post(client, body(("to", numbers), ("text", "后"), ("priority", 5),
                                  ("client_id", "b")))
        assert before.status_code == after.status_code == 202
        assert before.json()["count"] == after.json()["count"] == 6000
        first = client.get(f"/v1/messages/{before.json()['messages'][0]['id']}").json()
        last = client.get(f"/v1/messages/{after.json()['messages'][-1]['id']}").json()
    assert (first["text"], first["priority"], first["client_id"]) == ("先", 5, "a:1")
    assert (last["text"], last["to"], last["client_id"]) == ("后", "+8613000005999", "b:6000")


def test_a_big_body_gets_the_problems_a_small_one_gets(api):
    numbers = NUMBERS[:6000]
    assert len(body(("to", numbers))) > SMALL_BODY
    with api.client() as client:
        wrong = post(client, body(("to", numbers[:4000] + [13800138000] + numbers[4000:]),
                                  ("text", ["x"]), ("prio", 3)))
        assert wrong.status_code == 422, wrong.text
        fields = {e["field"] for e in wrong.json()["errors"]}
        assert fields == {"to", "to.4000", "text", "prio"}
        small = post(client, body(("to", ["13800138000", 13800138000]), ("text", ["x"]), ("prio", 3)))
        assert {e["field"] for e in small.json()["errors"]} == {"to", "to.1", "text", "prio"}
        assert wrong.json()["errors"][1]["problem"] == small.json()["errors"][1]["problem"]
        missing = post(client, body(("to", numbers)))
        assert missing.status_code == 422 and missing.json()["errors"] == [
            {"field": "text", "problem": "Field required"}]
        too_many = post(client, body(("to", NUMBERS + ["13800138000"]), ("text", "x")))
        assert too_many.status_code == 422
        assert "at most 100000 items" in too_many.json()["detail"]
        cut = post(client, body(("to", numbers), ("text", "x"))[:-30])
        assert cut.status_code == 400 and cut.json()["title"] == "Malformed JSON"
        not_utf8 = post(client, body(("to", numbers), ("text", "x")).replace(b'"x"', b'"\xff"'))
        assert not_utf8.status_code == 400
        offset = body(("to", numbers), ("text", "x")).index(b'"x"') + 1
        assert not_utf8.json()["detail"] == (f"the request body is not valid UTF-8 (byte 0xff at "
                                             f"offset {offset})")
        empty_text = post(client, body(("text", ""), ("to", numbers)))
        assert empty_text.status_code == 422
        assert empty_text.json()["errors"][0]["field"] == "text"
    assert queued(api) == 0


@both_engines
def test_a_big_batch_refused_by_the_rules_queues_nothing(api):
    from modempool.operator.optout import OptOutList

    with api.config.open_spool() as spool:
        OptOutList(spool.db).add_to_blacklist(["13000004321"])
        ids_before = message_ids_taken(spool)
    with api.client("branch") as branch:   # 3 a minute, SIM m2 only
        over = post(branch, body(("to", NUMBERS[10_000:16_000]), ("text", "x")))
        assert over.status_code == 429 and "6000 more asked" in over.json()["detail"]
    with api.config.open_spool() as spool:   # refused before its first chunk was written
        assert message_ids_taken(spool) == ids_before
    with api.client() as client:
        refused = post(client, body(("to", NUMBERS[:6000]), ("text", "x")))
        assert refused.status_code == 422
        assert refused.json()["errors"] == [{"field": "to.4321",
                                             "problem": "+8613000004321: number is on the blacklist"}]
        wrong_sim = post(client, body(("to", NUMBERS[:6000]), ("text", "x"), ("sims", ["m9"])))
        assert wrong_sim.status_code == 422 and "m9" in wrong_sim.json()["detail"]
    assert queued(api) == 0


@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_a_big_body_that_is_not_json_by_its_type_is_a_422(api, content_type):
    headers = {"content-type": content_type} if content_type else {}
    with api.client() as client:
        answer = client.post("/v1/messages", content=body(("to", NUMBERS[:6000]), ("text", "x")),
                             headers=headers)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == ""
    assert queued(api) == 0


def test_a_big_body_with_one_number_is_a_single_send(api):
    padded = b'{"to": "13800138000",' + b" " * (SMALL_BODY + 1000) + b'"text": "hi"}'
    with api.client() as client:
        answer = post(client, padded)
    assert answer.status_code == 202, answer.text
    assert [m["to"] for m in answer.json()["messages"]] == ["+8613800138000"]
    assert queued(api) == 1


@pytest.mark.parametrize("member, detail", [
    (b'"text": "\\ud800"', "lone UTF-16 surrogate"),            # ijson alone would send "?"
    (b'"text": "x", "priority": 1' + b"0" * 5000, "more digits than can be read"),   # was a 500
])
def test_a_big_body_with_a_lone_surrogate_or_an_endless_number_is_a_400(api, member, detail):
    padded = b'{"to": ["13800138000"],' + b" " * (SMALL_BODY + 1000) + member + b"}"
    with api.client() as client:
        answer = post(client, padded)
        assert answer.status_code == 400 and detail in answer.json()["detail"], answer.text
        assert client.get("/healthz").status_code == 200   # the connection lives on
    assert queued(api) == 0
