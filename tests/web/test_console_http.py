"""The console's pages over real HTTP (uvicorn, httpx): sessions, CSRF, roles, escaping,
languages. The browser tests (test_console_browser.py) cover what needs a page's script."""

from __future__ import annotations

import re

import httpx

from tests.modempool.daemon_harness import modempool_cli
from http_harness import both_engines


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def signed_in(api, account: str, secret: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=api.url, timeout=30)
    page = client.get("/login")
    answer = client.post("/login", data={"account": account, "key": secret or api.keys[account],
                                         "csrf": _csrf(page)})
    assert answer.status_code == 303, answer.text
    return client


@both_engines
def test_pages_need_a_session_and_the_cookie_is_httponly_strict(api):
    with httpx.Client(base_url=api.url) as anonymous:
        answer = anonymous.get("/messages?state=queued")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Fmessages%3Fstate%3Dqueued"
    client = httpx.Client(base_url=api.url)
    page = client.get("/login")
    answer = client.post("/login", data={"account": "shop", "key": api.keys["shop"],
                                         "csrf": _csrf(page), "next": "//evil.example/"})
    assert answer.headers["location"] == "/"   # never off-site
    cookie = answer.headers["set-cookie"]
    assert "mp_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=" in cookie
    assert client.get("/").status_code == 200
    # sign out: the same cookie no longer works
    token = client.cookies["mp_session"]
    client.post("/logout", data={"csrf": _csrf(client.get("/"))})
    with httpx.Client(base_url=api.url, cookies={"mp_session": token}) as stale:
        assert stale.get("/").status_code == 303


def test_a_form_without_its_csrf_token_changes_nothing(api):
    client = signed_in(api, "shop")
    answer = client.post("/send", data={"to": "13800138000", "text": "forged"})
    assert answer.status_code == 403
    answer = client.post("/login", data={"account": "shop", "key": api.keys["shop"]})
    assert answer.status_code == 403
    spool = api.config.open_spool()
    try:
        assert not spool.rows("SELECT 1 FROM messages WHERE text = 'forged'")
    finally:
        spool.close()


def test_another_accounts_message_is_not_found_and_html_is_shown_as_text(api):
    shop, branch = signed_in(api, "shop"), signed_in(api, "branch")
    form = shop.get("/send")
    answer = shop.post("/send", data={"to": "13800138000", "text": "<script>alert(1)</script>",
                                      "csrf": _csrf(form)})
    assert answer.status_code == 303
    message_id = int(answer.headers["location"].split("=")[1])
    mine = shop.get(f"/messages/{message_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mine.text and "<script>alert" not in mine.text
    assert branch.get(f"/messages/{message_id}").status_code == 404
    assert str(message_id) not in branch.get("/messages").text.split("<tbody>")[1]
    answer = branch.post(f"/messages/{message_id}/cancel",
                         data={"csrf": _csrf(branch.get("/")), "confirmed": "yes"})
    assert answer.status_code == 404


def test_a_refused_send_shows_the_input_again_with_the_error_beside_the_field(api):
    client = signed_in(api, "branch")   # SIM m2 only
    page = client.get("/send")
    answer = client.post("/send", data={"to": "13800138000, 朋友", "text": "你好 & <b>",
                                        "csrf": _csrf(page), "sim": "m1"})
    assert answer.status_code == 400
    assert 'id="e-to"' in answer.text and "朋友: no contact with this name" in answer.text
    assert "你好 &amp; &lt;b&gt;</textarea>" in answer.text


def test_language_from_accept_language_and_the_switch(api):
    client = signed_in(api, "audit")
    assert "<title>仪表盘" in client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "<title>Dashboard" in client.get("/", headers={"Accept-Language": "en-GB"}).text
    client.get("/lang/zh_CN?next=/")
    page = client.get("/", headers={"Accept-Language": "en-GB"})
    assert "<title>仪表盘" in page.text and 'lang="zh-CN"' in page.text


def test_accounts_passwd_sets_a_password_the_console_takes(api, config_path):
    done = modempool_cli("accounts", "passwd", "audit", "--password-stdin",
                         config=config_path, stdin="long enough secret\n")
    assert done.returncode == 0, done.stderr
    assert "long enough secret" not in done.stdout + done.stderr
    signed_in(api, "audit", "long enough secret")
    short = modempool_cli("accounts", "passwd", "audit", "--password-stdin",
                          config=config_path, stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    assert "Traceback" not in short.stderr
    spool = api.config.open_spool()
    try:
        stored = spool.rows("SELECT hash FROM account_passwords WHERE name = 'audit'")[0]["hash"]
        assert stored.startswith("scrypt$") and "long enough" not in stored
    finally:
        spool.close()


@both_engines
def test_admin_pages_answer_404_to_others_and_history_finds_chinese_text(api):
    shop, root = signed_in(api, "shop"), signed_in(api, "root")
    for path in ("/campaigns", "/optouts", "/history", "/autoreplies", "/admin"):
        assert shop.get(path).status_code == 404, path
        assert root.get(path).status_code == 200, path
    answer = shop.post("/admin/add", data={"csrf": _csrf(shop.get("/")), "name": "x", "role": "admin"})
    assert answer.status_code == 404
    form = shop.get("/send")
    shop.post("/send", data={"to": "13800138000", "text": "本周五下午三点开家长会", "csrf": _csrf(form)})
    found = root.get("/history", params={"text": "家长会"})
    assert "本周五下午三点开家长会" in found.text
    assert "本周五" not in root.get("/history", params={"text": "毕业典礼"}).text.split("<tbody>")[1]
    export = root.get("/history/export", params={"text": "家长会"})
    assert export.status_code == 200 and "本周五下午三点开家长会" in export.content.decode("utf-8-sig")


def test_admin_makes_an_account_whose_key_is_shown_once_and_works(api):
    root = signed_in(api, "root")
    answer = root.post("/admin/add", data={"csrf": _csrf(root.get("/admin")), "name": "clinic",
                                           "role": "viewer"})
    key = re.search(r"<code>(mpk_[^<]+)</code>", answer.text).group(1)
    assert "mpk_" not in root.get("/admin").text   # not shown again
    viewer = signed_in(api, "clinic", key)
    assert viewer.get("/send").status_code == 200 and 'href="/send"' not in viewer.get("/").text


def test_an_expired_session_sends_back_to_sign_in(api):
    client = signed_in(api, "audit")
    assert client.get("/").status_code == 200
    spool = api.config.open_spool()
    try:
        with spool.transaction() as conn:
            conn.execute("UPDATE console_sessions SET expires_at = '2000-01-01T00:00:00.000Z'")
    finally:
        spool.close()
    answer = client.get("/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_contacts_are_added_with_the_error_beside_the_field_and_exported(api):
    client = signed_in(api, "shop")
    page = client.get("/contacts")
    bad = client.post("/contacts", data={"csrf": _csrf(page), "number": "12ab", "name": "<i>王</i>",
                                         "groups": "家长"})
    assert bad.status_code == 400 and 'id="e-number"' in bad.text
    assert 'value="&lt;i&gt;王&lt;/i&gt;"' in bad.text   # kept, escaped
    good = client.post("/contacts", data={"csrf": _csrf(page), "number": "13700137001",
                                          "name": "<i>王</i>", "groups": "家长, 三年级"})
    assert good.status_code == 303
    export = client.get("/contacts/export", params={"group": "家长"})
    assert export.status_code == 200
    body = export.content.decode("utf-8-sig")
    assert "+8613700137001" in body and "<i>王</i>" in body
