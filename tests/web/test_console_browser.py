"""The web console in a real headless Chromium (Debian's `chromium` + `chromium-driver`)
against a simulated bank: the real daemon, simulated modems over ptys, the real HTTP server.

One bank and one browser for the whole module; each test signs in as the account it needs.
Screenshots go to docs/img/ (the README and docs/console.md show them)."""

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
def browser():
    driver = start_chromium()
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
    error = browser.find_element(By.CSS_SELECTOR, "#e-key").text
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


def test_a_viewer_cannot_send(bank, browser):
    from selenium.webdriver.common.by import By

    sign_in(browser, bank, "audit")
    assert not browser.find_elements(By.CSS_SELECTOR, "nav a[href='/send']")
    browser.get(f"{bank.url}/send")
    browser.find_element(By.NAME, "to").send_keys("13800138000")
    browser.find_element(By.NAME, "text").send_keys("not allowed")
    browser.find_element(By.CSS_SELECTOR, "form[action='/send'] button[type=submit]").click()
    assert "may look but not send" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    spool = bank.config.open_spool()
    try:
        assert not spool.rows("SELECT 1 FROM messages WHERE text = 'not allowed'")
    finally:
        spool.close()
