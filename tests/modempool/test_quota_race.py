"""A sender's quota holds when its sends and campaign starts come at once, from several
processes' connections (threads with a `Pool` each, on a real spool of either engine): the
count and the enqueue are one transaction, taken in turns per account."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modempool import Pool
from modempool.accounts import Accounts, QuotaExceeded
from tests.modempool.conftest import ONE_MODEM_CONFIG


@pytest.fixture
def config(tmp_path, spool_target) -> tuple[Path, object]:
    path = tmp_path / "modempool.toml"
    path.write_text(ONE_MODEM_CONFIG, encoding="utf-8")
    with Pool.open(path, spool_path=spool_target) as pool:
        Accounts(pool.spool).add("branch", "sender", per_day=30)
        Accounts(pool.spool).add("desk", "sender", per_minute=5)
    return path, spool_target


def at_once(config, count: int, work) -> tuple[list, list[QuotaExceeded]]:
    """Run `work(pool)` in `count` threads, each with its own Pool (its own connection),
    released together; what they returned, and the quota refusals."""
    path, target = config
    ready = threading.Barrier(count)
    done, refused, failed = [], [], []

    def one(index: int) -> None:
        try:
            with Pool.open(path, spool_path=target) as pool:
                ready.wait(timeout=60)   # hang guard: BrokenBarrierError
                done.append(work(pool, index))
        except QuotaExceeded as exc:
            refused.append(exc)
        except BaseException as exc:   # the test fails on it
            failed.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed
    return done, refused


def owned(config, account: str) -> int:
    path, target = config
    with Pool.open(path, spool_path=target) as pool:
        return pool.spool.rows("SELECT count(*) FROM message_accounts WHERE account = ?",
                               (account,))[0][0]


def test_two_campaign_starts_at_once_never_pass_a_daily_quota(config):
    path, target = config
    with Pool.open(path, spool_path=target) as pool:
        desk = pool.for_account(Accounts(pool.spool).get("branch")).campaign_desk()
        made = [desk.create(f"通知{n}", "周五开会", kind="notice",
                            numbers=[f"137001{n}{i:04d}" for i in range(20)]).id
                for n in range(2)]

    def start(pool, index):
        account = Accounts(pool.spool).get("branch")
        return pool.for_account(account).campaign_desk().start(made[index])

    started, refused = at_once(config, 2, start)
    assert [r.enqueued for r in started] == [20]   # 20 + 20 would pass 30 a day
    [refusal] = refused
    assert refusal.code == "quota_per_day"
    assert "per-day quota is 30: 20 queued today, 20 more asked" in str(refusal)
    assert owned(config, "branch") == 20
    with Pool.open(path, spool_path=target) as pool:
        assert sum(pool.counts().values()) == 20   # the refused start queued nothing


def test_many_sends_at_once_never_pass_a_per_minute_quota(config):
    def send(pool, index):
        account = Accounts(pool.spool).get("desk")
        return pool.for_account(account).send([f"1370013{index:04d}"], "验证码 1234")

    sent, refused = at_once(config, 8, send)
    assert len(sent) == 5 and len(refused) == 3
    assert all(r.code == "quota_per_minute" and "per-minute quota is 5" in str(r)
               for r in refused)
    assert owned(config, "desk") == 5
