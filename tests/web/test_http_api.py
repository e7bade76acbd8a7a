"""The /v1 API through a real uvicorn server and httpx: sending, reading, the account rules,
bad input, and the problem documents."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx

from http_harness import both_engines, sims_up
from modempool.spool import Spool
from modempool.spool.records import SentPart


def _spool(api) -> Spool:
    return api.config.open_spool()


@both_engines
def test_send_one_then_read_it(api):
    with api.client() as client:
        answer = client.post("/v1/messages", json={"to": "13800138000", "text": "验证码 1234"})
        assert answer.status_code == 202
        [queued] = answer.json()["messages"]
        assert queued["to"] == "+8613800138000" and queued["state"] == "queued"
        assert queued["parts"] == 1
        detail = client.get(f"/v1/messages/{queued['id']}").json()
    assert detail["text"] == "验证码 1234" and detail["state"] == "queued"
    assert detail["attempts"] == 0 and detail["parts"] == [] and detail["created_at"].endswith("Z")


def test_batch_is_all_or_nothing(api):
    with api.client() as client:
        bad = client.post("/v1/messages", json={"to": ["13800138000", "12", "13800138001"],
                                                "text": "hi"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert "row 2" in bad.json()["detail"]
        good = client.post("/v1/messages", json={"to": ["13800138000", "13800138001"], "text": "hi"})
        assert good.json()["count"] == 2
    with _spool(api) as spool:
        assert len(spool.list()) == 2  # nothing from the refused batch


def test_idempotency_key_and_client_id_return_the_same_messages(api):
    with api.client() as client:
        body = {"to": ["13800138000", "13800138001"], "text": "notice"}
        first = client.post("/v1/messages", json=body, headers={"Idempotency-Key": "order-7"}).json()
        again = client.post("/v1/messages", json=body, headers={"Idempotency-Key": "order-7"}).json()
        assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
        one = client.post("/v1/messages", json={"to": "13800138002", "text": "x", "client_id": "c1"})
        two = client.post("/v1/messages", json={"to": "13800138002", "text": "x", "client_id": "c1"})
        assert one.json()["messages"][0]["id"] == two.json()["messages"][0]["id"]
        assert client.get(f"/v1/messages/{one.json()['messages'][0]['id']}").json()["client_id"] == "c1"
    with api.client("root") as admin:  # another account's same key is its own
        other = admin.post("/v1/messages", json={"to": "13800138002", "text": "x", "client_id": "c1"})
        assert other.json()["messages"][0]["id"] != one.json()["messages"][0]["id"]


@both_engines
def test_another_accounts_message_is_not_found(api):
    with api.client("shop") as shop:
        message_id = shop.post("/v1/messages", json={"to": "13800138000", "text": "a"}).json()[
            "messages"][0]["id"]
    with api.client("branch") as branch:
        assert branch.get(f"/v1/messages/{message_id}").status_code == 404
        assert branch.post(f"/v1/messages/{message_id}/cancel").status_code == 404
        assert branch.get("/v1/messages").json()["messages"] == []
    with api.client("root") as root:  # an admin sees everything
        assert root.get(f"/v1/messages/{message_id}").status_code == 200
    with _spool(api) as spool:
        assert spool.get(message_id).state.value == "queued"


@both_engines
def test_roles_sims_and_quotas_are_the_librarys_rules(api):
    with api.client("audit") as viewer:
        refused = viewer.post("/v1/messages", json={"to": "13800138000", "text": "a"})
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
    with api.client("branch") as branch:
        wrong_sim = branch.post("/v1/messages", json={"to": "13800138000", "text": "a", "sims": ["m1"]})
        assert wrong_sim.status_code == 403 and "m1" in wrong_sim.json()["detail"]
        ok = branch.post("/v1/messages", json={"to": ["13800138000", "13800138001"], "text": "a"})
        assert ok.status_code == 202
        over = branch.post("/v1/messages", json={"to": ["13800138002", "13800138003"], "text": "a"})
        assert over.status_code == 429
        assert "per-minute quota is 3" in over.json()["detail"]
    with _spool(api) as spool:
        messages = spool.list()
        assert len(messages) == 2 and all(m.sims == ("m2",) for m in messages)


def test_blacklisted_number_refuses_the_send(api):
    from modempool.operator.optout import OptOutList

    with _spool(api) as spool:
        OptOutList(spool.db).add_to_blacklist(["13800138009"])
    with api.client() as client:
        answer = client.post("/v1/messages", json={"to": ["13800138000", "13800138009"], "text": "a"})
    assert answer.status_code == 422 and "blacklist" in answer.json()["detail"]
    with _spool(api) as spool:
        assert spool.list() == []


def test_bad_input_gets_a_problem_and_queues_nothing(api):
    with api.client() as client:
        malformed = client.post("/v1/messages", content=b'{"to": ', headers={"content-type": "application/json"})
        assert malformed.status_code == 400 and malformed.json()["title"] == "Malformed JSON"
        wrong_type = client.post("/v1/messages", json={"to": 13800138000, "text": ["x"]})
        assert wrong_type.status_code == 422
        fields = {e["field"] for e in wrong_type.json()["errors"]}
        assert {"to", "text"} <= fields
        unknown = client.post("/v1/messages", json={"to": "13800138000", "text": "a", "prio": 3})
        assert unknown.status_code == 422
        huge = client.post("/v1/messages", json={"to": "13800138000", "text": "x" * 10_000_000})
        assert huge.status_code == 413 and "max_body" in huge.json()["detail"]
        bad_number = client.post("/v1/messages", json={"to": "not a number", "text": "a"})
        assert bad_number.status_code == 422 and "not a number" in bad_number.json()["detail"]
        assert client.get("/v1/messages/abc").status_code == 422
        assert client.get("/v1/nothing-here").json()["status"] == 404
    with _spool(api) as spool:
        assert spool.list() == []


def test_list_pages_with_a_cursor_and_filters(api):
    with api.client() as client:
        client.post("/v1/messages", json={"to": [f"1380013800{i}" for i in range(5)], "text": "a"})
        page = client.get("/v1/messages", params={"limit": 2}).json()
        seen = [m["id"] for m in page["messages"]]
        while page["next_cursor"]:
            page = client.get("/v1/messages", params={"limit": 2, "cursor": page["next_cursor"]}).json()
            seen += [m["id"] for m in page["messages"]]
        assert seen == sorted(seen) and len(seen) == 5
        cancelled = client.post(f"/v1/messages/{seen[0]}/cancel").json()
        assert cancelled["state"] == "cancelled"
        assert [m["id"] for m in client.get("/v1/messages", params={"state": "cancelled"}).json()[
            "messages"]] == [seen[0]]
        assert client.post(f"/v1/messages/{seen[0]}/cancel").status_code == 409
        with _spool(api) as spool:   # the second one failed on m1
            assert spool.claim(seen[1], "m1", "t")
            spool.mark_failed(seen[1], "+CMS ERROR: 500", lease_owner="t")
        retried = client.post(f"/v1/messages/{seen[1]}/retry")
        assert retried.status_code == 200 and retried.json()["state"] == "queued", retried.text
        assert client.get(f"/v1/messages/{seen[1]}").json()["state"] == "queued"
        queued_again = client.post(f"/v1/messages/{seen[2]}/retry")   # never failed
        assert queued_again.status_code == 409, queued_again.text


def test_auth_failures_are_rate_limited_per_address(api):
    with httpx.Client(base_url=api.url) as anonymous:
        assert anonymous.get("/v1/messages").status_code == 401
        for _ in range(5):
            assert anonymous.get("/v1/messages", headers={"Authorization": "Bearer mpk_0_nope"}).status_code == 401
        throttled = anonymous.get("/v1/messages", headers={"Authorization": f"Bearer {api.keys['shop']}"})
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


@both_engines
def test_inbound_with_contact_name_and_sims(api):
    from modempool.operator.contacts import AddressBook

    with _spool(api) as spool:
        AddressBook(spool.db).upsert("13900000001", "张三")
        an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
        spool.store_inbound("+8613900000001", "收到", sim="m1", received_at=an_hour_ago)
        spool.store_inbound("+8613900000002", "hello", sim="m2", received_at=datetime.now(timezone.utc))
        sims_up(spool, m2=-71)
    with api.client() as client:
        rows = client.get("/v1/inbound").json()["messages"]
        assert [(r["from"], r["name"]) for r in rows] == [("+8613900000001", "张三"),
                                                          ("+8613900000002", None)]
        later = client.get("/v1/inbound", params={"cursor": rows[0]["id"]}).json()["messages"]
        assert [r["id"] for r in later] == [rows[1]["id"]]
        since = (an_hour_ago + timedelta(minutes=30)).isoformat()
        recent = client.get("/v1/inbound", params={"since": since}).json()["messages"]
        assert [r["from"] for r in recent] == ["+8613900000002"]
        bad = client.get("/v1/inbound", params={"since": "yesterday-ish"})
        assert bad.status_code == 422 and "since" in bad.text
        sims = {s["name"]: s for s in client.get("/v1/sims").json()["sims"]}
        assert sims["m2"]["state"] == "up" and sims["m2"]["signal"] == -71
        assert sims["m1"]["state"] == "unknown"
    with api.client("branch") as branch:  # bound to m2: sees what came in on m2
        assert [r["sim"] for r in branch.get("/v1/inbound").json()["messages"]] == ["m2"]
        answer = branch.get("/v1/sims")
        assert [s["name"] for s in answer.json()["sims"]] == ["m2"]
        assert branch.post("/v1/sims/m1/ussd", json={"code": "*100#"}).status_code == 403
    with _spool(api) as spool:   # the library's typed SIMs are the API's, byte for byte
        from modempool import Pool
        from modempool.accounts import Accounts

        branch_pool = Pool(api.config, spool=spool).for_account(Accounts(spool).get("branch"))
        expected = {"sims": [sim.to_dict() for sim in branch_pool.sims()]}
    assert answer.content == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()


def sent_then_delivered(spool: Spool) -> None:
    """A message sent on m1 whose delivery report came."""
    message = spool.enqueue("13800138000", "hi")
    assert spool.claim(message.id, "m1", "t")
    spool.mark_part_writing(message.id, 1, 1, lease_owner="t")
    spool.mark_many_sent([SentPart(message.id, 1, None, 7, lease_owner="t")])
    assert spool.store_delivery_report("m1", 7, message.to, 0).part_id is not None


@both_engines
def test_cost_health_readiness_and_metrics(api):
    with api.client("root") as root:
        no_daemon = root.post("/v1/sims/m1/ussd", json={"code": "*100#"})
        assert no_daemon.status_code == 503 and no_daemon.json()["title"] == "Daemon not running"
    with httpx.Client(base_url=api.url) as client:
        cost = client.get("/v1/cost", params={"text": "你好" * 40}).json()
        assert cost == {"parts": 2, "alphabet": "ucs2", "characters": 80, "chars_left": 54,
                        "units": 80, "units_per_part": 67}
        assert client.get("/healthz").json() == {"status": "ok"}
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503 and "no SIM is up" in not_ready.json()["detail"]
        with _spool(api) as spool:
            sims_up(spool, m1=-65)
            sent_then_delivered(spool)
        assert client.get("/readyz").json()["sims_up"] == 1
        text = client.get("/metrics").text
    # a counter only rises: the delivery left sent counted; what the message is now, a gauge
    assert 'modempool_sim_messages_total{sim="m1",state="sent"} 1.0' in text
    assert 'modempool_sim_messages_total{sim="m1",state="delivered"} 1.0' in text
    assert 'modempool_sim_messages_in_state{sim="m1",state="delivered"} 1.0' in text
    assert 'modempool_sim_messages_in_state{sim="m1",state="sent"}' not in text
    assert 'modempool_webhook_deliveries_total{state="pending"}' not in text
    assert "modempool_webhook_pending 0.0" in text
    assert 'modempool_queue_messages{state="queued"}' in text
    assert 'modempool_sim_up{sim="m1"} 1.0' in text
    assert 'modempool_sim_signal_dbm{sim="m1"} -65.0' in text
    assert "modempool_send_latency_seconds_bucket" in text
    assert 'modempool_http_requests_total{method="GET",route="/readyz",status="503"} 1.0' in text
    assert "openapi" in httpx.get(api.url + "/openapi.json").json()


@both_engines
def test_kannel_sendsms(api):
    with httpx.Client(base_url=api.url) as client:
        accepted = client.get("/cgi-bin/sendsms", params={
            "username": "shop", "password": api.keys["shop"], "to": "13800138000 13800138001",
            "text": "Zabbix: disk full"})
        assert (accepted.status_code, accepted.text) == (202, "0: Accepted for delivery")
        gbk = "告警：磁盘满".encode("gbk")
        query = (f"username=shop&password={api.keys['shop']}&to=13800138002&charset=GBK&text="
                 + "".join(f"%{b:02X}" for b in gbk))
        assert client.get("/cgi-bin/sendsms?" + query).status_code == 202
        posted = client.post("/cgi-bin/sendsms", data={
            "username": "shop", "password": api.keys["shop"], "to": "13800138003", "text": "POST"})
        assert posted.status_code == 202
        denied = client.get("/cgi-bin/sendsms", params={
            "username": "shop", "password": "wrong", "to": "13800138000", "text": "x"})
        assert (denied.status_code, denied.text) == (403, "Authorization failed for sendsms")
        binary = client.get("/cgi-bin/sendsms", params={
            "username": "shop", "password": api.keys["shop"], "to": "13800138000", "text": "x",
            "coding": "1"})
        assert binary.status_code == 400
        for hostile in ({"charset": "base64"}, {"charset": "rot13"},
                        {"dlr-url": "http://x:abc/"}, {"dlr-url": "http://[::1/"},
                        {"dlr-url": "file:///etc/passwd"}):
            refused = client.get("/cgi-bin/sendsms", params={
                "username": "shop", "password": api.keys["shop"], "to": "13800138000",
                "text": "x", **hostile})
            assert refused.status_code == 400, (hostile, refused.text)
    with _spool(api) as spool:
        texts = {m.to: m.text for m in spool.list()}
    assert texts == {"+8613800138000": "Zabbix: disk full", "+8613800138001": "Zabbix: disk full",
                     "+8613800138002": "告警：磁盘满", "+8613800138003": "POST"}


def test_kannel_refusals_are_plain_text_as_kannel_gives_them(api):
    """A Kannel client reads the answer's text: no refusal of sendsms comes as JSON."""
    sent = {"username": "shop", "password": api.keys["shop"], "to": "13800138000", "text": "x"}
    with httpx.Client(base_url=api.url) as client:
        for hostile, words in (({"coding": "x"}, "Rejected: coding must be 0 (GSM 7-bit) or 2"),
                               ({"charset": "gb\x002312"}, "Rejected: unknown charset 'gb2312'"),
                               ({"dlr-mask": "123456", "dlr-url": "http://example.com/"},
                                "Rejected: dlr-mask: String should have at most 4 characters")):
            refused = client.get("/cgi-bin/sendsms", params={**sent, **hostile})
            assert refused.status_code == 400 and refused.text.startswith(words), refused.text
            assert refused.headers["content-type"].startswith("text/plain")
        for _ in range(5):   # the test config's auth_failures_per_minute
            client.get("/cgi-bin/sendsms", params={**sent, "password": "wrong"})
        throttled = client.get("/cgi-bin/sendsms", params={**sent, "password": "wrong"})
        assert throttled.status_code == 429 and throttled.headers["retry-after"]
        assert throttled.text.startswith("Rejected: too many failed authentication attempts")
    with _spool(api) as spool:
        assert spool.list() == []


def test_a_large_batch_is_all_or_nothing(api):
    numbers = [f"13{i:09d}" for i in range(10_000)]
    with api.client() as client:
        spoiled = client.post("/v1/messages", json={"to": numbers + ["99"], "text": "通知"})
        assert spoiled.status_code == 422 and "row 10001" in spoiled.json()["detail"]
        answer = client.post("/v1/messages", json={"to": numbers, "text": "通知"})
    assert answer.status_code == 202 and answer.json()["count"] == 10_000
    with _spool(api) as spool:
        assert spool.counts()["queued"] == 10_000


@both_engines
def test_contacts_campaigns_and_optouts(api):
    with api.client("shop") as shop:
        put = shop.put("/v1/contacts/13800138001", json={"name": "李四", "groups": ["家长"],
                                                        "birthday": "1990年05月17日"})
        assert put.status_code == 200 and put.json()["number"] == "+8613800138001"
        assert put.json()["birthday"] == "1990-05-17"   # read by the library, as from the CLI
        csv = "姓名,手机\n王五,13800138002\n坏行,12\n".encode("utf-8")
        refused = shop.post("/v1/contacts/import", files={"file": ("c.csv", csv, "text/csv")})
        assert refused.status_code == 422 and "line 3" in refused.json()["detail"]
        imported = shop.post("/v1/contacts/import", params={"skip_rejected": "true", "group": "家长"},
                             files={"file": ("c.csv", csv, "text/csv")})
        assert imported.json()["imported"] == 1 and len(imported.json()["rejected"]) == 1
        assert "path" not in imported.json()   # the server's temporary file is none of its business
        names = {c["name"] for c in shop.get("/v1/contacts", params={"group": "家长"}).json()["contacts"]}
        assert names == {"李四", "王五"}
        assert shop.get("/v1/campaigns").json() == {"campaigns": []}   # its own only
        assert shop.delete("/v1/optouts/13800138002").status_code == 403   # an admin lifts it
    with api.client("audit") as viewer:
        assert viewer.put("/v1/contacts/13800138003", json={"name": "x"}).status_code == 403
        assert viewer.post("/v1/campaigns", json={"name": "x", "text": "y",
                                                  "to": ["13800138003"]}).status_code == 403
    with api.client("root") as root:
        assert root.post("/v1/optouts", json={"numbers": ["13800138002"]}).json() == {"added": 1}
        made = root.post("/v1/campaigns", json={"name": "期末通知", "kind": "notice",
                                                "text": "【实验小学】{name}家长您好", "groups": "家长"})
        assert made.status_code == 201
        campaign = made.json()["id"]
        preview = root.get(f"/v1/campaigns/{campaign}/preview").json()
        assert preview["recipients"] == 1 and preview["excluded_optout"] == ["+8613800138002"]
        assert preview["sample"][0]["text"] == "【实验小学】李四家长您好"
        started = root.post(f"/v1/campaigns/{campaign}/start")
        assert started.status_code == 200 and started.json() == {"started": {
            "campaign": campaign, "recipients": 1, "enqueued": 1, "already_enqueued": 0,
            "skipped_problems": 0, "opted_out_removed": 1}}     # CampaignStart.to_dict()
        assert root.get(f"/v1/campaigns/{campaign}").json()["progress"]["total"] == 1
    with api.client("shop") as shop:   # the admin's campaign is not the sender's
        assert shop.get(f"/v1/campaigns/{campaign}").status_code == 404
    with api.client("root") as root:
        assert root.post("/v1/blacklist", json={"numbers": ["13800138009"]}).json() == {"added": 1}
        assert [r["number"] for r in root.get("/v1/blacklist").json()["blacklist"]] == ["+8613800138009"]
        assert root.delete("/v1/blacklist/13800138009").status_code == 204


def test_opting_numbers_out_is_all_or_nothing(api):
    with api.client("root") as root:
        spoiled = root.post("/v1/optouts", json={"numbers": ["13800138000", "12", "13800138001"]})
        assert spoiled.status_code == 422 and "row 2" in spoiled.json()["detail"]
        assert "'12'" in spoiled.json()["detail"]
        assert root.get("/v1/optouts").json()["optouts"] == []   # not even the first number
        good = root.post("/v1/optouts", json={"numbers": ["13800138000", "+8613800138000",
                                                          "13800138001"]})
        assert good.json() == {"added": 2}
    with api.client("audit") as viewer:   # a viewer looks; senders and admins add
        assert viewer.post("/v1/optouts", json={"numbers": ["13800138002"]}).status_code == 403
        listed = viewer.get("/v1/optouts").json()["optouts"]
        assert len(listed) == 2
        with api.client("root") as root:
            root.post("/v1/blacklist", json={"numbers": ["13800138009"], "reason": "投诉"})
        blacklist = viewer.get("/v1/blacklist").json()["blacklist"]
        groups = viewer.get("/v1/groups").json()["groups"]
    from modempool import Pool

    with Pool(api.config) as pool:   # the account's lists are the typed results' to_dict()
        assert listed == [{**o.to_dict(), "name": ""} for o in pool.optout_list()]
        assert blacklist == [b.to_dict() for b in pool.blacklist()] and blacklist[0]["reason"] == "投诉"
        assert groups == [g.to_dict() for g in pool.groups()]


def test_x_forwarded_for_without_behind_proxy_is_said_once_in_the_log(api, caplog):
    with caplog.at_level("WARNING", logger="modempool.web"), httpx.Client(base_url=api.url) as client:
        for _ in range(3):
            answer = client.get("/v1/messages", headers={"Authorization": "Bearer mpk_0_nope",
                                                         "X-Forwarded-For": "198.51.100.7"})
            assert answer.status_code == 401
    said = [r.message for r in caplog.records if "X-Forwarded-For" in r.message]
    assert len(said) == 1 and "behind_proxy" in said[0]


def test_xlsx_import_then_a_campaign_paused_and_resumed(api):
    import io

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["姓名", "手机"])
    book.active.append(["赵六", "13800138006"])
    book.active.append(["钱七", "13800138007"])
    sheet = io.BytesIO()
    book.save(sheet)
    with api.client("root") as root:
        imported = root.post("/v1/contacts/import", params={"group": "教师"}, files={
            "file": ("名单.xlsx", sheet.getvalue(),
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")})
        assert imported.status_code == 200, imported.text
        assert imported.json()["imported"] == 2 and imported.json()["rejected"] == []
        names = {c["name"] for c in root.get("/v1/contacts", params={"group": "教师"}).json()["contacts"]}
        assert names == {"赵六", "钱七"}
        campaign = root.post("/v1/campaigns", json={"name": "开会", "kind": "notice",
                                                    "text": "{name}老师：三点开会", "groups": "教师"}
                             ).json()["id"]
        assert root.post(f"/v1/campaigns/{campaign}/start").json()["started"]["enqueued"] == 2
        paused = root.post(f"/v1/campaigns/{campaign}/pause")
        assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
        with _spool(api) as spool:   # its queued messages are held while it is paused
            held = spool.rows("SELECT held FROM messages WHERE state = 'queued'")
            assert [row[0] for row in held] == [1, 1]
        resumed = root.post(f"/v1/campaigns/{campaign}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "running", resumed.text
        with _spool(api) as spool:
            assert [row[0] for row in spool.rows("SELECT held FROM messages")] == [0, 0]
        assert root.post(f"/v1/campaigns/{campaign}/stop").status_code == 422


def test_quota_use_in_the_metrics(config_path):
    """`modempool_sim_quota_used_ratio`: a SIM's sends against its quota, per window."""
    from http_harness import ServerThread
    from modempool.config import load_config

    text = config_path.read_text(encoding="utf-8").replace(
        'name = "m1"\nport = "/dev/null"\n', 'name = "m1"\nport = "/dev/null"\nper_day = 4\n'
        'per_month = 100\n', 1)
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    with config.open_spool() as spool:
        sent_then_delivered(spool)
    server = ServerThread(config).start()
    try:
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert 'modempool_sim_quota_used_ratio{sim="m1",window="day"} 0.25' in metrics
    assert 'modempool_sim_quota_used_ratio{sim="m1",window="month"} 0.01' in metrics
    assert 'window="minute"' not in metrics and 'sim="m2",window=' not in metrics   # no quota set
