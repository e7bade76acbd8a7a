"""Recurring jobs: birthday greetings and weekly notices, idempotent per day."""

from __future__ import annotations

from datetime import datetime

import pytest

from modempool.config import load_config
from modempool.operator.contacts import AddressBook, Selection
from modempool.errors import PoolError
from modempool.operator.optout import OptOutList
from modempool.operator.recurring import Jobs, run_due_jobs


def local(*args) -> datetime:
    return datetime(*args).astimezone()


@pytest.fixture
def setup(tmp_path, spool_setting):
    """The spool (on each engine) and its config, with four contacts, one opted out."""
    path = tmp_path / "modempool.toml"
    path.write_text(f'[spool]\n{spool_setting}\n[signature]\ntext = "【蓝天】"\n', "utf-8")
    config = load_config(path)
    spool = config.open_spool()
    book = AddressBook(spool.db)
    book.upsert("13800138000", "张三", birthday="1990-11-25", groups=["员工"])
    book.upsert("13900139000", "李四", birthday="11-25", groups=["员工"])
    book.upsert("13700137000", "王五", birthday="02-29", groups=["员工"])
    book.upsert("13600136000", "赵六", birthday="11-26")
    OptOutList(spool.db).add("13900139000")
    yield spool, config
    spool.close()


def test_birthday_greetings_once_a_day(setup):
    spool, config = setup
    jobs = Jobs(spool.db)
    job = jobs.add("生日", "birthday", "{name}，祝您生日快乐！", at="09:00", now=local(2026, 11, 24, 8, 0))
    assert run_due_jobs(spool, config, local(2026, 11, 25, 8, 59)) == []          # not yet
    (result,) = run_due_jobs(spool, config, local(2026, 11, 25, 9, 0))
    assert result.enqueued == 1                          # 李四 opted out, 赵六 tomorrow
    (message,) = spool.list()
    assert (message.to, message.text, message.quiet_hours) == ("+8613800138000", "【蓝天】张三，祝您生日快乐！", True)
    assert message.client_id == f"job:{job.id}:2026-11-25:+8613800138000"
    assert run_due_jobs(spool, config, local(2026, 11, 25, 15, 0)) == []         # once per day
    # a crash before last_run was saved: running again queues nothing new
    spool.db.execute("UPDATE jobs SET last_run = NULL")
    assert run_due_jobs(spool, config, local(2026, 11, 25, 15, 0))[0].enqueued == 1
    assert len(spool.list()) == 1
    assert run_due_jobs(spool, config, local(2026, 11, 26, 9, 30))[0].enqueued == 1
    assert spool.list()[-1].to == "+8613600136000"


def test_feb_29_birthdays_in_common_years(setup):
    spool, config = setup
    Jobs(spool.db).add("生日", "birthday", "{name}生日快乐", groups=Selection(("员工",)),
                       now=local(2027, 2, 1, 8, 0))
    assert run_due_jobs(spool, config, local(2027, 2, 28, 10, 0))[0].enqueued == 1
    assert spool.list()[0].to == "+8613700137000"


def test_weekly_notice_on_its_weekday_and_job_created_late_waits(setup):
    spool, config = setup
    jobs = Jobs(spool.db)
    # created on Friday 2026-11-27 at 18:00, after its 17:00 time: first run next Friday
    job = jobs.add("周报", "weekly", "请提交本周周报", at="17:00", weekday="fri",
                   groups=Selection(("员工",)), numbers=("13500135000",), now=local(2026, 11, 27, 18, 0))
    assert run_due_jobs(spool, config, local(2026, 11, 27, 18, 1)) == []
    assert run_due_jobs(spool, config, local(2026, 12, 3, 17, 0)) == []           # Thursday
    (result,) = run_due_jobs(spool, config, local(2026, 12, 4, 17, 0))
    assert result.enqueued == 3                 # 张三 王五 + 13500135000; 李四 opted out
    assert {m.text for m in spool.list()} == {"请提交本周周报"}                   # not marketing
    assert jobs.get(job.id).last_run == "2026-12-04"


def test_job_validation(setup):
    spool, _ = setup
    jobs = Jobs(spool.db)
    with pytest.raises(PoolError, match="weekday"):
        jobs.add("x", "weekly", "t", groups=Selection(("员工",)))
    with pytest.raises(PoolError, match="needs numbers or groups"):
        jobs.add("x", "daily", "t")
    with pytest.raises(PoolError, match="09:00"):
        jobs.add("x", "birthday", "t", at="nine")


def test_a_job_with_a_sensitive_word_queues_nothing_as_a_campaign_would(tmp_path, spool_setting):
    """The campaigns' compliance rule holds for recurring jobs run through the Pool: a word of
    [sensitive] in the template, or in what it renders to for someone, sends that day's run
    to nobody, and the result names the word."""
    from modempool import Pool

    path = tmp_path / "modempool.toml"
    path.write_text(f'[spool]\n{spool_setting}\n[sensitive]\nwords = ["贷款"]\n', "utf-8")
    with Pool.open(path) as pool:
        pool.contacts.upsert("13800138000", "张三", groups=["客户"])
        pool.contacts.upsert("13900139000", "低息贷款王", groups=["客户"])   # rendered by {name}
        in_template = pool.jobs.add("促销", "daily", "{name}您好，低息贷款", numbers=("13600136000",),
                                    at="09:00", marketing=True, now=local(2026, 11, 24, 8, 0))
        in_a_name = pool.jobs.add("问候", "daily", "{name}您好", groups=Selection(("客户",)),
                                  at="09:00", marketing=True, now=local(2026, 11, 24, 8, 0))
        clean = pool.jobs.add("提醒", "daily", "明天开会", numbers=("13600136000",),
                              at="09:00", now=local(2026, 11, 24, 8, 0))
        results = {r.job: r for r in pool.run_due_jobs(local(2026, 11, 25, 9, 0))}
        assert (results[in_template.id].enqueued, results[in_template.id].sensitive) == (0, ("贷款",))
        assert (results[in_a_name.id].enqueued, results[in_a_name.id].sensitive) == (0, ("贷款",))
        assert (results[clean.id].enqueued, results[clean.id].sensitive) == (1, ())
        assert results[clean.id].to_dict()["sensitive"] == [] and results[clean.id].name == "提醒"
        assert [m.text for m in pool.messages()] == ["明天开会"]


def test_a_birthday_that_is_no_date_skips_that_contact_not_the_job(setup, caplog):
    spool, config = setup
    # stored raw by a version before the address book read birthdays
    AddressBook(spool.db).upsert("13500135000", "钱七")
    AddressBook(spool.db).upsert("13400134000", "孙八")
    spool.db.execute("UPDATE contacts SET birthday = 'garbage' WHERE number = '+8613500135000'")
    spool.db.execute("UPDATE contacts SET birthday = '11月25日' WHERE number = '+8613400134000'")
    Jobs(spool.db).add("生日", "birthday", "{name}生日快乐", now=local(2026, 11, 24, 8, 0))
    with caplog.at_level("WARNING", logger="modempool.operator.recurring"):
        (result,) = run_due_jobs(spool, config, local(2026, 11, 25, 9, 0))
    assert result.enqueued == 2                          # 张三, and 孙八 read as 11-25
    assert sorted(m.to for m in spool.list()) == ["+8613400134000", "+8613800138000"]
    [warning] = [r.getMessage() for r in caplog.records if "not a date" in r.getMessage()]
    assert "+8613500135000 ('garbage')" in warning
