"""The web console in a real headless Chromium (Debian's `chromium` + `chromium-driver`)
against a simulated bank: the real daemon, simulated modems over ptys, the real HTTP server.

One bank and one browser for the whole module; each test signs in as the account it needs.
Screenshots go to $MODEMPOOL_SCREENSHOTS (default /tmp/modempool-screenshots); a few of
them are in docs/img/, shown by the README and docs/console.md."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from console_harness import SCREENSHOTS, Bank, start_chromium

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from modempool.accounts import Accounts
    from modempool.sessions import Sessions

    bank = Bank(tmp_path_factory.mktemp("console")).start()
    spool = bank.config.open_spool()
    accounts = Accounts(spool)
    bank.keys = {"root": accounts.add("root", "admin")[1],
                 "shop": accounts.add("shop", "sender")[1],
                 "audit": accounts.add("audit", "viewer")[1]}
    Sessions(spool, accounts).set_password("shop", "correct horse battery")
    spool.close()
    yield bank
    bank.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll the page until `condition` holds (the page changes on its own, by its script)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the element is being replaced by a refresh  # noqa: BLE001
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def sign_in(browser, bank, account: str, secret: str | None = None, lang: str = "en") -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{bank.url}/lang/{lang}?next=/login")
    browser.find_element(By.NAME, "account").send_keys(account)
    browser.find_element(By.NAME, "key").send_keys(secret or bank.keys[account])
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    until(lambda: browser.current_url.rstrip("/") == bank.url, what="the dashboard after sign-in")


def shot(browser, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"console-{name}.png"))


def test_sign_in_with_a_password_then_send_a_message_and_see_it_sent(bank, browser):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{bank.url}/lang/en?next=/messages")
    assert "/login" in browser.current_url
    browser.find_element(By.NAME, "account").send_keys("shop")
    browser.find_element(By.NAME, "key").send_keys("wrong password")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    error = until(lambda: browser.find_element(By.CSS_SELECTOR, "#e-key").text,
                  what="the error beside the key")
    assert "wrong key or password" in error
    assert browser.find_element(By.NAME, "account").get_attribute("value") == "shop"
    sign_in(browser, bank, "shop", "correct horse battery")
    cookie = browser.get_cookie("mp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    browser.get(f"{bank.url}/send")
    browser.find_element(By.NAME, "to").send_keys("13800138000")
    browser.find_element(By.NAME, "text").send_keys("您好，明天上午十点开会 <b>请准时</b>")
    until(lambda: "part" in browser.find_element(By.ID, "cost").text, what="the live counter")
    assert "UCS2" in browser.find_element(By.ID, "cost").text.upper()
    shot(browser, "send")
    browser.find_element(By.CSS_SELECTOR, "form[action='/send'] button[type=submit]").click()
    until(lambda: "/messages?ids=" in browser.current_url, what="the queued messages page")
    # the page refreshes its rows by itself until the bank has sent the message
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#rows [data-state]").get_attribute(
        "data-state") in ("sent", "delivered"), what="the message to be sent")
    text = browser.find_element(By.CSS_SELECTOR, "#rows td.text").text
    assert "<b>请准时</b>" in text   # shown as text, not markup
    shot(browser, "messages")


def test_dashboard_shows_the_sims_and_updates_itself(bank, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, bank, "root", lang="zh_CN")
    sims = browser.find_elements(By.CSS_SELECTOR, "li.sim")
    assert len(sims) == 2
    assert all(s.find_element(By.CSS_SELECTOR, "[data-state]").get_attribute("data-state") == "up"
               for s in sims)
    # the simulated SIMs report CSQ 20 (-73 dBm): four bars lit, not an empty meter
    assert [len(s.find_elements(By.CSS_SELECTOR, ".bars i.on")) for s in sims] == [4, 4]
    assert "仪表盘" in browser.title
    before = browser.find_element(By.CSS_SELECTOR, "#h-tp").text
    root_pool = bank.config.open_spool()
    try:
        from modempool.pool import Pool

        Pool(bank.config, spool=root_pool).send("13912345678", "dashboard update")
    finally:
        root_pool.close()
    until(lambda: browser.find_element(By.CSS_SELECTOR, "#h-tp").text != before,
          what="the throughput to change without a reload")
    shot(browser, "dashboard-zh")
    browser.set_window_size(390, 844)   # a phone: everything fits the width, nothing to scroll sideways
    try:
        for path in ("/", "/messages", "/send"):
            browser.get(bank.url + path)
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        browser.get(bank.url + "/")
        shot(browser, "dashboard-phone")
    finally:
        browser.set_window_size(1280, 900)


def test_a_viewer_cannot_send(bank, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, bank, "audit")
    assert not browser.find_elements(By.CSS_SELECTOR, "nav a[href='/send']")
    browser.get(f"{bank.url}/send")
    browser.find_element(By.NAME, "to").send_keys("13800138000")
    browser.find_element(By.NAME, "text").send_keys("not allowed")
    browser.find_element(By.CSS_SELECTOR, "form[action='/send'] button[type=submit]").click()
    [error] = until(lambda: browser.find_elements(By.CSS_SELECTOR, "p.error"),
                    what="the refusal beside the form")
    assert "may look but not send" in error.text
    spool = bank.config.open_spool()
    try:
        assert not spool.rows("SELECT 1 FROM messages WHERE text = 'not allowed'")
    finally:
        spool.close()


def test_import_contacts_with_a_bad_row(bank, browser, tmp_path):
    from selenium.webdriver.common.by import By

    sheet = tmp_path / "家长.csv"
    sheet.write_text("姓名,手机,分组,班级\n王芳,13700137001,家长,三年级一班\n"
                     "<b>李强</b>,13100131002,家长,三年级二班\n坏号码,12345,家长,四年级一班\n",
                     encoding="utf-8")
    sign_in(browser, bank, "root")
    browser.get(f"{bank.url}/contacts/import")
    browser.find_element(By.NAME, "file").send_keys(str(sheet))
    browser.find_element(By.CSS_SELECTOR, "form[action='/contacts/import'] button").click()
    rejected = until(lambda: browser.find_elements(By.CSS_SELECTOR, "table.rejected tr[data-line]"),
                     what="the preview")
    assert [r.get_attribute("data-line") for r in rejected] == ["4"]
    assert "invalid number" in rejected[0].text
    shot(browser, "import-preview")
    browser.find_element(By.CSS_SELECTOR, "input[name=skip_rejected]").click()
    browser.find_element(By.CSS_SELECTOR, "form[action='/contacts/import/confirm'] button").click()
    done = until(lambda: browser.find_element(By.ID, "import-done").text, what="the import")
    assert done.startswith("2 contact(s) imported")
    browser.get(f"{bank.url}/contacts?group=家长")
    cells = browser.find_element(By.CSS_SELECTOR, "table.list tbody").text
    assert "<b>李强</b>" in cells and "王芳" in cells and "坏号码" not in cells

    # a file that is not what it claims: a clear error and nothing imported
    fake = tmp_path / "contacts.xlsx"
    fake.write_bytes(b"name,number\nx,13800138000\n")
    browser.get(f"{bank.url}/contacts/import")
    browser.find_element(By.NAME, "file").send_keys(str(fake))
    browser.find_element(By.CSS_SELECTOR, "form[action='/contacts/import'] button").click()
    error = until(lambda: browser.find_element(By.ID, "import-error").text, what="the error")
    assert "not an Excel .xlsx workbook" in error


def test_a_campaign_runs_to_completion_and_a_reply_of_tuiding_is_an_opt_out(bank, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from modempool.operator.contacts import AddressBook

    spool = bank.config.open_spool()
    try:   # the parents of the import test, or the same ones if it ran elsewhere
        book = AddressBook(spool.db, bank.config.region)
        book.upsert("13700137001", "王芳", fields={"班级": "三年级一班"}, groups=["家长"])
        book.upsert("13100131002", "<b>李强</b>", fields={"班级": "三年级二班"}, groups=["家长"])
    finally:
        spool.close()
    sign_in(browser, bank, "root")
    browser.get(f"{bank.url}/campaigns")
    # a saved template (短信模板) with fields, then a campaign made from it
    saving = browser.find_element(By.CSS_SELECTOR, "form[action='/campaigns/templates']")
    saving.find_element(By.NAME, "tname").send_keys("家长会")
    saving.find_element(By.NAME, "ttext").send_keys("{name}家长您好：周五下午3点在{班级}开家长会。")
    Select(saving.find_element(By.NAME, "kind")).select_by_value("notice")
    saving.find_element(By.TAG_NAME, "button").click()
    use = until(lambda: browser.find_element(By.CSS_SELECTOR, "tr[data-template] a[href*='use=']"),
                what="the saved template")
    use.click()
    chosen = until(lambda: browser.find_element(By.ID, "chosen-template").text, what="the template")
    assert "{name}, {班级}" in chosen
    shot(browser, "campaign-templates")
    browser.find_element(By.NAME, "name").send_keys("家长会通知")
    browser.find_element(By.NAME, "groups").send_keys("家长")
    browser.find_element(By.CSS_SELECTOR, "form[action='/campaigns'] button").click()
    preview = until(lambda: browser.find_element(By.ID, "h-preview"), what="the preview")
    assert preview
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "2 recipient(s)" in page and "王芳家长您好：周五下午3点在三年级一班开家长会。" in page
    shot(browser, "campaign-preview")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/start'] button").click()
    until(lambda: browser.find_element(By.CSS_SELECTOR, "[data-campaign-state]").get_attribute(
        "data-campaign-state") == "finished", timeout=60, what="the campaign to finish")
    sent = int(browser.find_element(By.CSS_SELECTOR, "[data-count=sent]").text)
    delivered = int(browser.find_element(By.CSS_SELECTOR, "[data-count=delivered]").text)
    assert sent + delivered == 2

    spool = bank.config.open_spool()
    try:
        [message] = spool.rows("SELECT sim FROM messages WHERE to_number = '+8613100131002' "
                               "AND campaign_id IS NOT NULL")
    finally:
        spool.close()
    bank.inject(message["sim"], "+8613100131002", "退订")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "[data-opted-out='+8613100131002']"),
          timeout=30, what="the opt-out in the report, without a reload")
    assert "退订" in browser.find_element(By.ID, "progress").text
    shot(browser, "campaign-report")
    browser.get(f"{bank.url}/optouts")
    row = browser.find_element(By.CSS_SELECTOR, "table.optouts tr[data-number='+8613100131002']")
    assert "退订" in row.text and "<b>李强</b>" in row.text
    browser.get(f"{bank.url}/conversations/%2B8613100131002")
    assert "Opted out by this reply" in browser.find_element(By.CSS_SELECTOR, ".optout").text


def test_a_group_is_made_filled_renamed_and_deleted_with_the_keyboard(bank, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    spool = bank.config.open_spool()
    try:
        from modempool.operator.contacts import AddressBook

        book = AddressBook(spool.db, bank.config.region)
        book.upsert("13600136001", "赵敏")
        book.upsert("13600136002", "<i>钱多</i>")
    finally:
        spool.close()
    sign_in(browser, bank, "shop", "correct horse battery", lang="zh_CN")
    browser.get(f"{bank.url}/contacts")
    browser.find_element(By.NAME, "group_name").send_keys("舞蹈班", Keys.ENTER)
    numbers = until(lambda: browser.find_element(By.NAME, "numbers"), what="the group's page")
    numbers.send_keys("13600136001\n13600136002\n13900139999")
    browser.find_element(By.CSS_SELECTOR, "form[action='/groups/add'] button").click()
    error = until(lambda: browser.find_element(By.ID, "e-numbers").text, what="the error")
    assert "通讯录中没有号码为 +8613900139999 的联系人" in error   # in Chinese, beside the field
    numbers = browser.find_element(By.NAME, "numbers")
    assert numbers.get_attribute("value") == "13600136001\n13600136002\n13900139999"
    numbers.clear()
    numbers.send_keys("13600136001，13600136002")
    numbers.send_keys(Keys.TAB, Keys.ENTER)   # the form's button, from the keyboard
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.members tr[data-number]")) == 2,
          what="two members")
    assert "<i>钱多</i>" in browser.find_element(By.CSS_SELECTOR, "table.members").text
    browser.find_element(By.NAME, "new_name").send_keys("舞蹈队", Keys.ENTER)
    until(lambda: browser.find_element(By.CSS_SELECTOR, ".group-name").text == "舞蹈队",
          what="the new name")
    browser.find_element(By.CSS_SELECTOR,
                         "tr[data-number='+8613600136001'] form[action='/groups/drop'] button").click()
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.members tr[data-number]")) == 1,
          what="one member left")
    shot(browser, "group")
    browser.find_element(By.CSS_SELECTOR, "form[action='/groups/delete'] button").click()
    assert "请勾选以确认" in until(lambda: browser.find_element(By.ID, "e-confirmed").text,
                               what="the confirmation asked")
    browser.find_element(By.ID, "f-confirmed").send_keys(Keys.SPACE)
    browser.find_element(By.CSS_SELECTOR, "form[action='/groups/delete'] button").click()
    until(lambda: browser.current_url.endswith("/contacts"), what="back to the contacts")
    assert "舞蹈队" not in browser.find_element(By.CSS_SELECTOR, "ul.groups").text
    assert "赵敏" in browser.find_element(By.CSS_SELECTOR, "table.contacts").text   # contacts stay
