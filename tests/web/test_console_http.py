"""The console's pages over real HTTP (uvicorn, httpx): sessions, CSRF, roles, escaping,
languages. The browser tests (test_console_browser.py) cover what needs a page's script."""

from __future__ import annotations

import re

import httpx

from modempool.auth_throttle import HOST

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
    for path in ("/campaigns", "/optouts", "/history", "/autoreplies"):
        assert shop.get(path).status_code == 200, path
    assert shop.get("/admin").status_code == 404 and 'href="/admin"' not in shop.get("/").text
    assert root.get("/admin").status_code == 200
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


def test_groups_are_made_renamed_filled_emptied_and_deleted_and_a_contact_deleted(api):
    client = signed_in(api, "shop")
    csrf = _csrf(client.get("/contacts"))
    for number, name in (("13700137001", "王芳"), ("13100131002", "<b>李强</b>")):
        assert client.post("/contacts", data={"csrf": csrf, "number": number, "name": name,
                                              "groups": ""}).status_code == 303
    blank = client.post("/groups", data={"csrf": csrf, "group_name": "  "})
    assert blank.status_code == 400 and 'id="e-group_name"' in blank.text
    made = client.post("/groups", data={"csrf": csrf, "group_name": "三年级"})
    assert made.headers["location"] == "/groups?name=%E4%B8%89%E5%B9%B4%E7%BA%A7"
    unknown = client.post("/groups/add", data={"csrf": csrf, "name": "三年级",
                                               "numbers": "13700137001\n13900139000"})
    assert unknown.status_code == 400 and 'id="e-numbers"' in unknown.text
    assert "no contact with number +8613900139000" in unknown.text
    assert "13700137001\n13900139000</textarea>" in unknown.text   # the input kept
    added = client.post("/groups/add", data={"csrf": csrf, "name": "三年级",
                                             "numbers": "13700137001，13100131002"})
    assert added.status_code == 303
    page = client.get("/groups", params={"name": "三年级"})
    assert "&lt;b&gt;李强&lt;/b&gt;" in page.text and page.text.count("data-number=") == 2
    client.post("/contacts", data={"csrf": csrf, "number": "13600136003", "name": "", "groups": "家长"})
    taken = client.post("/groups/rename", data={"csrf": csrf, "name": "三年级", "new_name": "家长"})
    assert taken.status_code == 400 and "already a group named" in taken.text
    assert 'id="e-new_name"' in taken.text and 'value="家长"' in taken.text
    renamed = client.post("/groups/rename", data={"csrf": csrf, "name": "三年级",
                                                  "new_name": "四年级"})
    assert renamed.headers["location"] == "/groups?name=%E5%9B%9B%E5%B9%B4%E7%BA%A7"
    assert client.get("/groups", params={"name": "三年级"}).status_code == 404
    client.post("/groups/drop", data={"csrf": csrf, "name": "四年级", "number": "+8613700137001"})
    assert client.get("/groups", params={"name": "四年级"}).text.count("data-number=") == 1
    unconfirmed = client.post("/groups/delete", data={"csrf": csrf, "name": "四年级"})
    assert unconfirmed.status_code == 400 and 'id="e-confirmed"' in unconfirmed.text
    assert client.post("/groups/delete", data={"csrf": csrf, "name": "四年级",
                                               "confirmed": "yes"}).status_code == 303
    assert client.get("/groups", params={"name": "四年级"}).status_code == 404

    asked = client.post("/contacts/delete", data={"csrf": csrf, "number": "+8613700137001"})
    assert asked.status_code == 200 and 'id="confirm-delete"' in asked.text
    assert 'data-number="+8613700137001"' in client.get("/contacts").text   # not yet
    client.post("/contacts/delete", data={"csrf": csrf, "number": "+8613700137001",
                                          "confirmed": "yes"})
    assert 'data-number="+8613700137001"' not in client.get("/contacts").text
    # a viewer sees contacts and groups but changes nothing: refused on the page, in words
    viewer = signed_in(api, "audit")
    assert viewer.get("/groups", params={"name": "家长"}).status_code == 200
    csrf = _csrf(viewer.get("/"))
    contacts_refused = "may look at contacts, not change them"   # the library's English
    groups_refused = "may look at groups, not change them"
    for path, data, words in (
            ("/groups/delete", {"name": "家长", "confirmed": "yes"}, groups_refused),
            ("/groups/add", {"name": "家长", "numbers": "13100131002"}, groups_refused),
            ("/groups", {"group_name": "五年级"}, groups_refused),
            ("/contacts/delete", {"number": "+8613100131002", "confirmed": "yes"}, contacts_refused),
            ("/contacts", {"number": "13500135000", "name": "钱七", "groups": ""}, contacts_refused)):
        refused = viewer.post(path, data={"csrf": csrf, **data})
        assert (refused.status_code, words in refused.text) == (403, True), path
    assert 'data-number="+8613100131002"' in client.get("/contacts").text
    assert "13500135000" not in client.get("/contacts").text
    assert "五年级" not in client.get("/contacts").text
    assert client.get("/groups", params={"name": "家长"}).text.count("data-number=") == 1
    viewer.cookies.set("mp_lang", "zh_CN")
    chinese = viewer.post("/groups", data={"csrf": csrf, "group_name": "五年级"})
    assert "您的账号只能查看分组，不能更改。" in chinese.text


def test_campaign_templates_are_saved_edited_used_and_deleted_by_an_admin_only(api):
    root, shop = signed_in(api, "root"), signed_in(api, "shop")
    csrf = _csrf(root.get("/campaigns"))
    bad = root.post("/campaigns/templates", data={"csrf": csrf, "tname": "<i>家长会</i>",
                                                  "ttext": "{name家长您好", "kind": "notice"})
    assert bad.status_code == 400 and 'id="e-ttext"' in bad.text
    assert 'value="&lt;i&gt;家长会&lt;/i&gt;"' in bad.text and "{name家长您好</textarea>" in bad.text
    saved = root.post("/campaigns/templates", data={"csrf": csrf, "tname": "<i>家长会</i>",
                                                    "ttext": "{name}家长您好：{班级}周五开会。",
                                                    "kind": "notice"})
    assert saved.status_code == 303
    page = root.get("/campaigns")
    template_id = int(re.search(r'data-template="(\d+)"', page.text).group(1))
    assert "&lt;i&gt;家长会&lt;/i&gt;" in page.text and "{name} {班级}" in page.text
    use = root.get("/campaigns", params={"use": template_id})
    assert 'id="chosen-template"' in use.text and "{name}, {班级}" in use.text
    assert "{name}家长您好：{班级}周五开会。</textarea>" in use.text
    again = root.post("/campaigns/templates", data={"csrf": csrf, "tname": "<i>家长会</i>",
                                                    "ttext": "x", "kind": "notice"})
    assert again.status_code == 400 and 'id="e-tname"' in again.text
    edited = root.post(f"/campaigns/templates/{template_id}",
                       data={"csrf": csrf, "tname": "家长会", "ttext": "{name}家长：明天开会。",
                             "kind": "marketing"})
    assert edited.status_code == 303
    assert "{name}家长：明天开会。</textarea>" in root.get(f"/campaigns/templates/{template_id}").text
    # the bank's templates, as its campaigns: not there for a sender
    assert shop.get(f"/campaigns/templates/{template_id}").status_code == 404
    assert shop.post("/campaigns/templates", data={"csrf": _csrf(shop.get("/")), "tname": "x",
                                                   "ttext": "y"}).status_code == 404
    root.post(f"/campaigns/templates/{template_id}", data={"csrf": csrf, "delete": "yes"})
    assert root.get(f"/campaigns/templates/{template_id}").status_code == 404
    assert "data-template=" not in root.get("/campaigns").text


def test_library_refusals_are_worded_in_chinese_on_the_chinese_console(api):
    from modempool.operator.optout import OptOutList

    spool = api.config.open_spool()
    try:
        OptOutList(spool.db, api.config.region).add_to_blacklist(["13900139000"], "complaint")
    finally:
        spool.close()
    client = signed_in(api, "branch")   # SIM m2 only, 3 messages a minute
    zh = {"Accept-Language": "zh-CN"}
    page = client.get("/send", headers=zh)

    def send(to: str, **extra: str) -> httpx.Response:
        return client.post("/send", headers=zh, data={"to": to, "text": "通知", "csrf": _csrf(page),
                                                      **extra})

    assert "12345 不是有效的电话号码。" in send("12345").text
    refused = send("13900139000")
    assert refused.status_code == 400 and "+8613900139000 在黑名单中" in refused.text
    assert 'id="e-to"' in refused.text
    assert "您的账号不能通过 m1 发送（可用的 SIM 卡：m2）" in send("13800138000", sim="m1").text
    quota = send("13800138000, 13700137000, 13600136000, 13500135000")
    assert quota.status_code == 429 and "您的账号每分钟最多发送 3 条" in quota.text
    # English stays the library's own words
    english = client.post("/send", data={"to": "12345", "text": "x", "csrf": _csrf(page)},
                          headers={"Accept-Language": "en"})
    assert "&#39;12345&#39; is not a valid number in region CN" in english.text
    # an import's rejected rows, with their reasons in Chinese
    root = signed_in(api, "root")
    form = root.get("/contacts/import", headers=zh)
    preview = root.post("/contacts/import", headers=zh, data={"csrf": _csrf(form)}, files={
        "file": ("家长.csv", "姓名,手机\n王芳,13700137001\n李强,13700137001\n坏号码,12345\n,\n"
                 "无号码,\n".encode(), "text/csv")})
    assert "与第 2 行号码相同（+8613700137001）" in preview.text
    assert "号码无效：12345 不是有效的电话号码。" in preview.text
    assert "没有电话号码" in preview.text
    wrong = root.post("/contacts/import", headers=zh, data={"csrf": _csrf(form)},
                      files={"file": ("a.xlsx", b"name,number\n", "application/octet-stream")})
    assert "a.xlsx：不是 Excel .xlsx 工作簿" in wrong.text
    # a campaign's problems in its preview
    made = root.post("/campaigns", headers=zh, data={
        "csrf": _csrf(form), "name": "通知", "template": "{name}：{班级}开会", "kind": "notice",
        "numbers": "12345, 13600136000"})
    preview = root.get(made.headers["location"], headers=zh)
    assert "12345 不是有效的电话号码。" in preview.text
    assert "+8613600136000 缺少 {name}, {班级}" in preview.text
    # an admin's forms: auto-replies and accounts
    page = root.get("/autoreplies", headers=zh)
    hours = root.post("/autoreplies", headers=zh, data={"csrf": _csrf(page), "keywords": "地址",
                                                        "reply": "人民路1号", "hours": "9点到6点"})
    assert hours.status_code == 400 and 'id="e-hours"' in hours.text
    assert "9点到6点：时间段请写成 09:00-18:00。" in hours.text
    taken = root.post("/admin/add", headers=zh, data={"csrf": _csrf(page), "name": "shop",
                                                      "role": "viewer"})
    assert "已有名为 shop 的账号" in taken.text
    assert "不能删除您当前登录的账号。" in root.post("/admin/remove", headers=zh, data={
        "csrf": _csrf(page), "name": "root"}).text
    # webhooks
    hook = root.post("/admin/webhook", headers=zh, data={"csrf": _csrf(page), "url": "ftp://x",
                                                         "events": "sms.received"})
    assert hook.status_code == 400 and "ftp://x：请填写带主机名的 http:// 或 https:// 地址。" in hook.text
    assert "请至少选择一个事件。" in root.post("/admin/webhook", headers=zh, data={
        "csrf": _csrf(page), "url": "https://crm.example/hook"}).text
    assert "没有 Webhook wh_gone。" in root.post("/admin/unhook", headers=zh, data={
        "csrf": _csrf(page), "id": "wh_gone"}).text
    # spreadsheets that cannot be read: named as uploaded, never by where the server keeps them
    for name, data, words in (
            ("名单.xlsx", b"PK\x03\x04 not a workbook", "名单.xlsx 无法作为 Excel .xlsx 工作簿读取"),
            ("名单.csv", "姓名,班级\n王芳,三年级\n".encode(),
             "找不到电话号码列（现有列：姓名, 班级）")):
        unread = root.post("/contacts/import", headers=zh, data={"csrf": _csrf(form)},
                           files={"file": (name, data, "application/octet-stream")})
        assert unread.status_code == 400 and words in unread.text, unread.text
        assert "modempool-console-uploads" not in unread.text
    assert "请选择要上传的文件。" in root.post("/contacts/import", headers=zh,
                                          data={"csrf": _csrf(form)}).text


def test_an_auto_reply_rule_for_a_sim_the_bank_has_not_is_refused_and_not_stored(api):
    """The console's rule form goes through Pool.add_autoreply, which checks the SIM name."""
    root = signed_in(api, "root")
    page = root.get("/autoreplies")
    for language, words in (("zh-CN", "没有名为 zz 的 SIM 卡（现有：m1, m2）。"),
                            ("en", "no modem named zz in")):
        refused = root.post("/autoreplies", headers={"Accept-Language": language},
                            data={"csrf": _csrf(page), "keywords": "地址", "reply": "人民路1号",
                                  "sim": "zz"})
        assert refused.status_code == 400 and words in refused.text, refused.text
        assert 'id="e-sim"' in refused.text
    assert "人民路1号" not in root.get("/autoreplies").text
    made = root.post("/autoreplies", data={"csrf": _csrf(page), "keywords": "地址",
                                           "reply": "人民路1号", "sim": "m2"})
    assert made.status_code == 303 and "人民路1号" in root.get("/autoreplies").text


def test_a_history_number_that_is_no_phone_number_is_said_beside_the_number_field(api):
    root = signed_in(api, "root")
    page = root.get("/history", params={"number": "abc"}, headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200
    assert re.search(r'id="e-number"[^>]*>abc 不是电话号码', page.text), page.text
    assert root.get("/history", params={"number": "10086"}).status_code == 200   # a short code
    export = root.get("/history/export", params={"number": "abc"},
                      headers={"Accept-Language": "zh-CN"})
    assert export.status_code == 400
    assert re.search(r'id="e-number"[^>]*>abc 不是电话号码', export.text), export.text


def test_forwarding_numbers_are_added_and_removed_on_the_auto_replies_page(api):
    root, shop = signed_in(api, "root"), signed_in(api, "shop")
    csrf = _csrf(root.get("/autoreplies"))
    bad = root.post("/forwarding/add", data={"csrf": csrf, "forward_to": "<b>12ab"})
    assert bad.status_code == 400 and 'id="e-forward_to"' in bad.text
    assert 'value="&lt;b&gt;12ab"' in bad.text
    assert root.post("/forwarding/add", data={"csrf": csrf, "forward_to": "139 0013 9000"}
                     ).status_code == 303
    again = root.post("/forwarding/add", data={"csrf": csrf, "forward_to": "13900139000"})
    assert again.status_code == 400 and "already a forwarding target" in again.text
    assert 'data-target="+8613900139000"' in root.get("/autoreplies").text
    assert shop.post("/forwarding/add", data={"csrf": _csrf(shop.get("/")),
                                              "forward_to": "13700137000"}).status_code == 404
    spool = api.config.open_spool()
    try:
        from modempool import Pool

        assert Pool(api.config, spool=spool).forwarding.all() == ["+8613900139000"]
    finally:
        spool.close()
    root.post("/forwarding/remove", data={"csrf": csrf, "forward_to": "+8613900139000"})
    assert 'data-target="+8613900139000"' not in root.get("/autoreplies").text


def test_each_role_looks_at_and_changes_what_the_library_lets_it(api):
    root, branch, shop, audit = (signed_in(api, n) for n in ("root", "branch", "shop", "audit"))
    csrf = {n: _csrf(c.get("/")) for n, c in (("root", root), ("branch", branch),
                                              ("shop", shop), ("audit", audit))}
    # a sender's campaign: its own, through its SIM (m2)
    made = branch.post("/campaigns", data={"csrf": csrf["branch"], "name": "分店通知",
                                           "template": "周五停业一天", "numbers": "13700137001",
                                           "kind": "notice"})
    assert made.status_code == 303
    path = made.headers["location"]
    assert shop.get(path).status_code == 404 and "分店通知" not in shop.get("/campaigns").text
    assert "分店通知" in root.get("/campaigns").text
    looked = audit.get(path)   # a viewer looks, with nothing to press
    assert looked.status_code == 200 and "/start" not in looked.text
    # ... and a change it forges anyway is refused on the page it sees, in words (not 404)
    refused = audit.post(path + "/start", data={"csrf": csrf["audit"]})
    assert refused.status_code == 403 and "may look at campaign" in refused.text
    assert 'action="/campaigns"' not in audit.get("/campaigns").text   # no new-campaign form
    refused = audit.post("/campaigns", data={"csrf": csrf["audit"], "name": "查看者的群发",
                                             "template": "x", "numbers": "13700137001"})
    assert refused.status_code == 403 and "may not send" in refused.text
    assert "查看者的群发" not in root.get("/campaigns").text
    assert shop.post(path + "/start", data={"csrf": csrf["shop"]}).status_code == 404  # unseen
    assert branch.post(path + "/start", data={"csrf": csrf["branch"]}).status_code == 303
    assert "周五停业一天" in branch.get("/messages").text
    assert "周五停业一天" in branch.get("/history", params={"text": "停业"}).text
    assert "周五停业一天" not in shop.get("/history", params={"text": "停业"}).text
    # opt-outs: everyone looks, senders add, admins remove; a refusal is said on the page
    refused = audit.post("/optouts/add", data={"csrf": csrf["audit"], "number": "13900139000"})
    assert refused.status_code == 403 and 'id="e-form"' in refused.text
    assert "may look at opt-outs and the blacklist, not change them" in refused.text
    assert shop.post("/optouts/add", data={"csrf": csrf["shop"], "number": "13900139000"}
                     ).status_code == 303
    page = audit.get("/optouts")
    assert 'data-number="+8613900139000"' in page.text and 'action="/optouts/' not in page.text
    for which in ("remove", "unblacklist"):
        refused = shop.post(f"/optouts/{which}", data={"csrf": csrf["shop"],
                                                       "number": "13900139000"})
        assert refused.status_code == 403 and "not lift them (an admin does)" in refused.text
    assert 'data-number="+8613900139000"' in audit.get("/optouts").text   # still opted out
    audit.cookies.set("mp_lang", "zh_CN")
    shop.cookies.set("mp_lang", "zh_CN")
    assert "您的账号只能查看退订和黑名单，不能更改。" in audit.post(
        "/optouts/blacklist", data={"csrf": csrf["audit"], "number": "13900139000"}).text
    assert "您的账号可以添加退订和黑名单号码，但不能移除" in shop.post(
        "/optouts/remove", data={"csrf": csrf["shop"], "number": "13900139000"}).text
    assert "您的账号可以查看群发活动" in audit.post(path + "/pause",
                                            data={"csrf": csrf["audit"]}).text
    audit.cookies.set("mp_lang", "en")
    shop.cookies.set("mp_lang", "en")
    assert root.post("/optouts/remove", data={"csrf": csrf["root"], "number": "13900139000"}
                     ).status_code == 303
    # auto-replies: everyone looks at the rules; the log and forwarding are the admin's
    root.post("/autoreplies", data={"csrf": csrf["root"], "keywords": "地址", "reply": "人民路1号"})
    rules = audit.get("/autoreplies").text
    assert "人民路1号" in rules and 'action="/autoreplies"' not in rules and "h-forward" not in rules
    refused = audit.post("/autoreplies", data={"csrf": csrf["audit"], "keywords": "x",
                                               "reply": "y"})
    assert refused.status_code == 403 and 'id="e-form"' in refused.text
    assert "may look at auto-reply rules, not change them" in refused.text
    rule = re.search(r'action="/autoreplies/(\d+)/remove"', root.get("/autoreplies").text)[1]
    shop.cookies.set("mp_lang", "zh_CN")
    refused = shop.post(f"/autoreplies/{rule}/remove", data={"csrf": csrf["shop"]})
    assert refused.status_code == 403 and "您的账号只能查看自动回复规则，不能更改" in refused.text
    assert "人民路1号" in audit.get("/autoreplies").text   # still there
    assert root.post("/autoreplies/999/remove", data={"csrf": csrf["root"]}).status_code == 404


def _dashboard_numbers(page: str) -> tuple[dict[str, int], dict[str, str]]:
    """The queue by state and each SIM's 'today' as the dashboard shows them."""
    queue = {state: int(n) for state, n in re.findall(
        r'data-state="(\w+)".*?<a href="/messages\?state=\w+">(\d+)</a>', page)}
    today = dict(re.findall(r'data-sim="(\w+)".*?<dd>([^<]*)</dd>', page, re.S))
    return queue, today


@both_engines
def test_the_dashboard_counts_what_the_spool_holds(api):
    """The queue by state (kept counts) and each SIM's day (its sent counts, the whole bank
    read at once) as an admin and a sender see them, after sends, a cancel and a part sent."""
    with api.client("shop") as shop:
        ids = [shop.post("/v1/messages", json={"to": f"1380013800{i}", "text": "hi"}).json()[
            "messages"][0]["id"] for i in range(3)]
    spool = api.config.open_spool()
    try:
        spool.enqueue("13800138009", "the admin's own")
        spool.cancel(ids[0])
        assert spool.claim(ids[1], "m1", "test:1/m1", 60)
        spool.mark_part_writing(ids[1], 1, 1, lease_owner="test:1/m1")
        spool.mark_part_sent(ids[1], 1, None, 7)
        spool.mark_sent(ids[1], lease_owner="test:1/m1")
    finally:
        spool.close()
    admin, sender = signed_in(api, "root"), signed_in(api, "shop")
    for path in ("/", "/fragments/dashboard"):
        queue, today = _dashboard_numbers(admin.get(path).text)
        assert (queue["queued"], queue["sent"], queue["cancelled"], queue["failed"]) == (2, 1, 1, 0)
        assert today == {"m1": "1", "m2": "0"}
        queue, _ = _dashboard_numbers(sender.get(path).text)
        assert (queue["queued"], queue["sent"], queue["cancelled"]) == (1, 1, 1)


def test_a_standby_sim_is_worded_on_the_chinese_dashboard(api):
    """A SIM standing by (its card served by another live daemon), with a daemon running: the
    Chinese dashboard shows the state in Chinese, with its note (the old code showed the
    English word in a Chinese page)."""
    import os
    import socket

    from modempool.box.ports import process_start
    from modempool.dispatch.liveness import new_run_owner
    from modempool.spool.model import utcnow

    note = ("its SIM card 89860012345678901234 is served by another live daemon, box-a:4242 "
            "(its modem a1)")
    spool = api.config.open_spool()
    try:   # this process stands for the running daemon
        spool.beat(new_run_owner(), host=socket.gethostname(), pid=os.getpid(),
                   started_at=utcnow(), process_started=process_start(os.getpid()))
        spool.upsert_sim("m1", state="standby", last_error=note)
    finally:
        spool.close()
    admin = signed_in(api, "root")
    admin.cookies.set("mp_lang", "zh_CN")
    for path in ("/", "/fragments/dashboard"):
        page = admin.get(path).text
        sim = re.search(r'<li class="sim st-standby" data-sim="m1">(.*?)</li>', page, re.S)
        assert sim is not None, page
        assert 'data-state="standby">待命</span>' in sim.group(1)
        assert note in sim.group(1)


def test_the_admin_s_dashboard_shows_received_sms_whose_hooks_wait(api):
    """An SMS whose handlers a daemon has still to run (`inbound_hooks`), for 10 minutes: the
    admin's dashboard says how many and for how long, in its language, as a problem; a
    sender's (the SMS may have come in on any SIM) says nothing of it, and a sender's status
    has no such field (not theirs to see; the old code gave them 0: "none waiting"). Just
    stored, no line: a healthy bank's handlers take milliseconds."""
    from datetime import datetime, timedelta, timezone

    from modempool import Pool
    from modempool.accounts import Accounts

    spool = api.config.open_spool()
    try:
        waiting = spool.store_inbound("13800138000", "退订", sim="m1", hooks_by="box:7:place-run")
        admin, sender = signed_in(api, "root"), signed_in(api, "shop")
        assert "data-hooks-pending" not in admin.get("/").text
        ten_minutes_ago = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
        with spool.transaction() as conn:
            conn.execute("UPDATE inbound SET stored_at = ? WHERE id = ?",
                         (ten_minutes_ago, waiting.id))
        for path in ("/", "/fragments/dashboard"):
            assert 'data-hooks-pending="1"' in admin.get(path).text
            assert "data-hooks-pending" not in sender.get(path).text
        admin.cookies.set("mp_lang", "zh_CN")
        assert "1 条收到的短信还在等待退订、自动回复或转发处理" in admin.get("/").text
        pool = Pool(api.config, spool=spool)
        shown = pool.for_account(Accounts(spool).get("shop")).status().to_dict()
        assert not {"hooks_pending", "hooks_oldest_age", "commands_pending"} & set(shown)
        assert pool.for_account(Accounts(spool).get("root")).status().to_dict()[
            "hooks_pending"] == 1
    finally:
        spool.close()


def test_a_forward_command_running_is_no_alarm_on_the_admin_s_dashboard(api):
    """An SMS whose handlers ran and whose forward command has run or retried for 10 minutes:
    one plain line on the admin's dashboard, not the red one of hooks held up. The old code
    showed it as hooks pending, in red."""
    from datetime import datetime, timedelta, timezone

    spool = api.config.open_spool()
    try:
        sms = spool.store_inbound("13800138000", "转发我", sim="m1", hooks_by="box:7:place-run")
        ten_minutes_ago = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
        with spool.transaction() as conn:
            assert spool.inbound_hooks.advance(conn, sms.id, 0, 3, 4, "box:7:place-run")
            conn.execute("UPDATE inbound SET stored_at = ? WHERE id = ?",
                         (ten_minutes_ago, sms.id))
    finally:
        spool.close()
    page = signed_in(api, "root").get("/").text
    assert "data-hooks-pending" not in page and 'data-commands-running="1"' in page
    assert "The forward command runs or retries for 1 received SMS" in page


def test_wrong_sign_ins_and_wrong_api_keys_count_together_in_the_spool(api):
    """The console's failed sign-ins go to the same per-address count as bad API keys, kept
    in the spool for every server on it (auth_throttle.py): 5 a minute in the tests' config."""
    client = httpx.Client(base_url=api.url, timeout=30)
    for _ in range(3):
        wrong = client.post("/login", data={"account": "shop", "key": "not the key",
                                            "csrf": _csrf(client.get("/login"))})
        assert wrong.status_code == 401
    for _ in range(2):
        assert client.get("/v1/messages", headers={"Authorization": "Bearer mpk_0_nope"}
                          ).status_code == 401
    refused = client.post("/login", data={"account": "shop", "key": api.keys["shop"],
                                          "csrf": _csrf(client.get("/login"))})
    assert refused.status_code == 429    # even the right key, from this address
    # the real wait: 5 a minute, so 12 s until one more attempt (less the test's own time)
    waits = re.findall(r"try again in (\d+) seconds", refused.text)
    assert len(waits) == 1 and 0 < int(waits[0]) <= 12
    client.cookies.set("mp_lang", "zh_CN")
    refused = client.post("/login", data={"account": "shop", "key": api.keys["shop"],
                                          "csrf": _csrf(client.get("/login"))})
    assert refused.status_code == 429
    assert re.search(r"失败次数过多，请 \d+ 秒后再试", refused.text)
    spool = api.config.open_spool()
    try:
        # loopback is another machine on every box: counted with this host's name
        assert [r[0] for r in spool.rows("SELECT client FROM auth_failures")] == [
            f"127.0.0.1@{HOST}"]
    finally:
        spool.close()
