"""Issue 12 through the HTTP API: text the dispatcher could not send is refused at the door, as
it is by every other front end (the rule lives in the spool's enqueue)."""

from __future__ import annotations

import pytest


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
