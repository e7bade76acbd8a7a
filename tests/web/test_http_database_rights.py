"""The API whose database role lost a right it needs: a 500 with one line that says the
server is misconfigured (the role and the GRANT go to its log, one line, no traceback), on the
API and on Kannel's sendsms; nothing is queued."""

from __future__ import annotations

import logging
import os

import psycopg
import pytest

_SCHEMA = {"name": ""}


@pytest.fixture
def spool_section(pg_cluster) -> str:
    """The API's spool in a schema owned by a role of its own (not a superuser, whose rights
    cannot be taken away)."""
    role = schema = f"api_{os.getpid()}_{len(_SCHEMA['name']) + 1}"
    _SCHEMA["name"] += "x"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    _SCHEMA.update(role=role, schema=schema)
    url = pg_cluster.url(schema).replace("postgresql://postgres@", f"postgresql://{role}@")
    return f'[spool]\nurl = "{url}"\n'


def test_a_right_taken_from_the_apis_role_is_a_500_in_one_line(api, pg_cluster, caplog):
    role, schema = _SCHEMA["role"], _SCHEMA["schema"]
    with api.client() as client, api.client(None) as anonymous:
        assert client.post("/v1/messages", json={"to": "13800138000", "text": "before"}
                           ).status_code == 202
        with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON {schema}.messages FROM {role}")
        with caplog.at_level(logging.INFO):
            refused = client.post("/v1/messages", json={"to": "13800138000", "text": "no"})
            kannel = anonymous.get("/cgi-bin/sendsms", params={
                "username": "shop", "password": api.keys["shop"], "to": "13800138000",
                "text": "no"})
    assert refused.status_code == 500, refused.text
    assert refused.json()["title"] == "Server misconfigured"
    detail = refused.json()["detail"]
    assert "\n" not in detail and "Traceback" not in refused.text and role not in refused.text
    assert kannel.status_code == 500 and kannel.text.startswith("Internal error: ")
    said = [r for r in caplog.records if r.getMessage().startswith("500 on")]
    assert [r.getMessage().split(":")[0] for r in said] == [
        "500 on POST /v1/messages", "500 on GET /cgi-bin/sendsms"]
    assert all(f"the role '{role}' may not write table messages: GRANT" in r.getMessage()
               and r.exc_info is None and "\n" not in r.getMessage() for r in said)
    with api.config.open_spool() as spool:
        assert [m.text for m in spool.list()] == ["before"]


def test_the_consoles_send_form_hides_the_grant_from_its_user(api, pg_cluster, caplog):
    """The console is a front end as the API is: a right taken from the server's role is the
    server's fault (a 500 saying so), not a refusal shown beside the form's field with the
    role and the GRANT in it; the operator finds them in the log, one line."""
    from tests.web.test_console_http import _csrf, signed_in

    role, schema = _SCHEMA["role"], _SCHEMA["schema"]
    shop = signed_in(api, "shop")
    form = shop.get("/send")
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        conn.execute(f"REVOKE INSERT ON {schema}.messages FROM {role}")
    with caplog.at_level(logging.INFO):
        answer = shop.post("/send", data={"to": "13800138000", "text": "no", "csrf": _csrf(form)})
    assert answer.status_code == 500, answer.text
    assert role not in answer.text and "GRANT" not in answer.text
    [said] = [r for r in caplog.records if r.getMessage().startswith("500 on")]
    assert said.getMessage().startswith(f"500 on POST /send: the role '{role}' may not write "
                                        "table messages: GRANT") and said.exc_info is None
    with api.config.open_spool() as spool:
        assert spool.list() == []
