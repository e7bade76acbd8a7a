"""Campaigns: preview figures, idempotent start across restarts (断点续发), flags, pause/cancel, report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from modempool.operator import campaigns as campaigns_module
from modempool.operator.campaign_plan import preview
from modempool.operator.campaign_report import export_report, progress, report
from modempool.operator.campaigns import CampaignBlocked, Campaigns
from modempool.config import load_config
from modempool.operator.contacts import AddressBook, Selection
from modempool.errors import PoolError
from modempool.operator.optout import OptOutList

CONFIG = """
[spool]
path = "spool.db"
[signature]
text = "【蓝天学校】"
footer = "回T退订"
[sensitive]
words = ["贷款", "发票"]
"""


@pytest.fixture
def config(tmp_path, spool_target):
    """The config, its spool on each engine."""
    path = tmp_path / "modempool.toml"
    text = CONFIG if not str(spool_target).startswith("postgresql") else CONFIG.replace(
        'path = "spool.db"', f'url = "{spool_target}"')
    path.write_text(text, "utf-8")
    return load_config(path)


@pytest.fixture
def spool(config):
    spool = config.open_spool()
    yield spool
    spool.close()


def school(spool) -> AddressBook:
    book = AddressBook(spool.db)
    book.upsert("13800138000", "张三", fields={"班级": "一班"}, groups=["家长"])
    book.upsert("13900139000", "李四", fields={"班级": "二班"}, groups=["家长", "教师"])
    book.upsert("13700137000", "王五", fields={"班级": "三班"}, groups=["教师"])
    book.upsert("13600136000", "赵六", fields={"班级": "三班"}, groups=["家长", "毕业班"])
    book.upsert("13500135000", "钱七", fields={"班级": "一班"}, groups=["教师"])
    return book


def test_preview_counts_dedupes_optouts_parts_and_problems(spool, config, tmp_path):
    school(spool)
    OptOutList(spool.db).add("13500135000", keyword="TD")
    OptOutList(spool.db).add_to_blacklist(["13700137000"])
    sheet = tmp_path / "extra.csv"
    sheet.write_bytes("姓名,手机,班级\n孙八,13300133000,四班\n周九,13200132000,\n李四,13900139000,二班\n坏行,999,\n"
                      .encode("gbk"))
    campaign = Campaigns(spool, config).create(
        "家长会", "{name}家长您好：{班级}周五开会。", numbers=["13800138000", "1380013800"],
        groups=Selection(("家长", "教师"), ("毕业班",)), sheet=sheet)
    data = preview(spool.db, campaign, config, sample=2)
    # 家长+教师-毕业班 = 张三 李四 王五 钱七; + 孙八 周九 from the sheet; 张三 and 李四 twice
    assert data.duplicates_removed == 2
    assert data.opted_out_removed == 2          # 钱七 opted out, 王五 blacklisted
    assert data.recipients == 3                 # 张三 李四 孙八 (周九 lacks {班级})
    assert data.samples[0].to_dict() == {"to": "+8613800138000", "name": "张三", "parts": 1,
                                         "text": "【蓝天学校】张三家长您好：一班周五开会。回T退订"}
    assert data.problems == (
        "invalid: '1380013800' is not a valid number in region CN",
        "invalid: sheet line 5: invalid number: '999' is not a valid number in region CN",
        "missing field: +8613200132000 (sheet line 3): missing {班级}",
    )
    assert data.can_start is False and data.quiet_hours is True
    assert data.to_dict()["can_start"] is False and data.to_dict()["problems"] == list(data.problems)
    with pytest.raises(CampaignBlocked) as blocked:
        Campaigns(spool, config).start(campaign.id)
    assert blocked.value.problems == list(data.problems)
    assert spool.list(campaign_id=campaign.id) == []


def test_total_parts_counts_long_chinese_text(spool, config):
    text = "通知" * 40  # 80 UCS2 characters + signature and footer: 2 parts
    campaign = Campaigns(spool, config).create("长", text, numbers=["13800138000", "13900139000"],
                                               kind="notice")
    data = preview(spool.db, campaign, config)
    assert data.total_parts == 4 and data.samples[0].text == text  # notices: no signature
    assert data.quiet_hours is False


def test_sensitive_words_block_even_with_skip_problems(spool, config):
    campaign = Campaigns(spool, config).create("x", "低息贷款，{name}", numbers=["13800138000"])
    with pytest.raises(CampaignBlocked, match="sensitive") as blocked:
        Campaigns(spool, config).start(campaign.id, skip_problems=True)
    assert blocked.value.problems == ["sensitive words: 贷款"]


def test_start_is_idempotent_across_restart(spool, config):
    school(spool)
    campaign = Campaigns(spool, config).create("全体", "{name}您好", groups=Selection(("家长", "教师")))
    first = Campaigns(spool, config).start(campaign.id)
    again = Campaigns(spool, config).start(campaign.id)
    assert (first.enqueued, again.enqueued, again.already_enqueued) == (5, 0, 5)
    spool.close()
    reopened = config.open_spool()  # a restart: a new process opening the same file
    assert Campaigns(reopened, config).start(campaign.id).enqueued == 0
    messages = reopened.list(campaign_id=campaign.id)
    assert sorted(m.client_id for m in messages) == sorted(
        f"campaign:{campaign.id}:{n}" for n in ("+8613800138000", "+8613900139000", "+8613700137000",
                                                "+8613600136000", "+8613500135000"))
    reopened.close()


def test_crash_in_the_middle_of_enqueue_resumes_without_duplicates(spool, config, monkeypatch):
    numbers = [f"1380013{n:04d}" for n in range(2500)]
    campaigns = Campaigns(spool, config)
    campaign = campaigns.create("大群发", "通知：明天停水", numbers=numbers, kind="notice")
    monkeypatch.setattr(campaigns_module, "ENQUEUE_CHUNK", 1000)
    real = spool.messages.enqueue_fresh
    calls = []

    def crash_on_second_chunk(rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")
        return real(rows)

    monkeypatch.setattr(spool.messages, "enqueue_fresh", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        campaigns.start(campaign.id)
    assert len(spool.list(campaign_id=campaign.id)) == 1000
    monkeypatch.setattr(spool.messages, "enqueue_fresh", real)
    result = Campaigns(spool, config).start(campaign.id)
    assert (result.enqueued, result.already_enqueued) == (1500, 1000)
    messages = spool.list(campaign_id=campaign.id)
    assert len(messages) == 2500 == len({m.to for m in messages})


def test_flags_rate_spacing_sims_and_times(spool, config):
    start = datetime.now(timezone.utc) + timedelta(hours=2)
    end = start + timedelta(hours=5)
    campaigns = Campaigns(spool, config)
    marketing = campaigns.create("促销", "本周八折", numbers=["13800138000", "13900139000", "13700137000"],
                                 rate_per_minute=30, sims=["m1", "m2"], start_at=start, end_at=end)
    campaigns.start(marketing.id)
    messages = spool.list(campaign_id=marketing.id)
    assert all(m.quiet_hours for m in messages)
    assert all(m.sims == ("m1", "m2") and m.expires_at == end.replace(microsecond=end.microsecond // 1000 * 1000)
               for m in messages)
    gaps = [(b.not_before - a.not_before).total_seconds() for a, b in zip(messages, messages[1:])]
    assert gaps == [2.0, 2.0] and abs((messages[0].not_before - start).total_seconds()) < 0.001
    assert all(m.priority == -1 for m in messages)
    notice = campaigns.create("停水", "明天停水", numbers=["13800138000"], kind="notice")
    campaigns.start(notice.id)
    (message,) = spool.list(campaign_id=notice.id)
    assert not message.quiet_hours and message.not_before is None
    forced = campaigns.create("夜间", "x", numbers=["13800138000"], kind="notice", quiet_hours=True)
    campaigns.start(forced.id)
    assert spool.list(campaign_id=forced.id)[0].quiet_hours


def test_pause_resume_cancel(spool, config):
    campaigns = Campaigns(spool, config)
    campaign = campaigns.create("c", "hi", numbers=["13800138000", "13900139000"], kind="notice")
    with pytest.raises(PoolError, match="draft"):
        campaigns.pause(campaign.id)
    campaigns.start(campaign.id)
    assert campaigns.pause(campaign.id).state.value == "paused"
    assert all(m.held for m in spool.list(campaign_id=campaign.id))
    assert progress(spool, campaign.id).held == 2
    campaigns.start(campaign.id)  # re-start while paused adds nothing and keeps it paused
    assert campaigns.get(campaign.id).state.value == "paused"
    assert campaigns.resume(campaign.id).state.value == "running"
    assert not any(m.held for m in spool.list(campaign_id=campaign.id))
    assert campaigns.cancel(campaign.id) == 2
    assert {m.state.value for m in spool.list(campaign_id=campaign.id)} == {"cancelled"}
    with pytest.raises(PoolError, match="cancelled"):
        campaigns.start(campaign.id)
    rerun = campaigns.rerun(campaign.id)
    assert rerun.rerun_of == campaign.id and rerun.state.value == "draft"
    assert campaigns.start(rerun.id).enqueued == 2


def test_report_adds_up(spool, config, tmp_path):
    school(spool)
    campaigns = Campaigns(spool, config)
    campaign = campaigns.create("r", "{name}您好", groups=Selection(("家长",)), kind="notice")
    campaigns.start(campaign.id)
    first, second, third = spool.list(campaign_id=campaign.id)
    assert spool.claim(first.id, "m1", "test")
    spool.mark_sent(first.id, lease_owner="test")
    assert spool.claim(second.id, "m2", "test")
    spool.mark_failed(second.id, "+CMS ERROR: 38 network out of order", lease_owner="test")
    spool.store_inbound(first.to, "收到，谢谢", sim="m1")
    spool.store_inbound(first.to, "TD", sim="m1")
    OptOutList(spool.db).add(first.to, keyword="TD", source="reply")
    spool.store_inbound("13100131000", "unrelated", sim="m1")
    data = report(spool, campaign.id)
    summary = data.summary
    assert (summary.recipients, summary.sent, summary.failed, summary.queued) == (3, 1, 1, 1)
    assert summary.failure_reasons == {"+CMS ERROR: 38 network out of order": 1}
    assert (summary.replies, summary.repliers, summary.opt_outs) == (2, 1, 1)
    assert data.recipients[0].name == "张三" and data.recipients[0].opted_out
    assert data.recipients[0].replies == ("收到，谢谢", "TD") and data.campaign.id == campaign.id
    p = progress(spool, campaign.id)
    assert (p.total, p.pending, p.done, p.counts["sent"], p.counts["failed"]) == (3, 1, 2, 1, 1)
    # one sent less than a minute ago: a minute of sending, not the whole 5-minute window
    assert p.rate_per_minute == 1.0 and p.to_dict()["sent"] == 1
    for suffix in ("csv", "xlsx"):
        assert export_report(spool, campaign.id, tmp_path / f"report.{suffix}") == 3
    lines = (tmp_path / "report.csv").read_text("utf-8-sig").splitlines()
    assert lines[0].startswith("to,name,state,error") and "收到，谢谢 | TD" in lines[1]


def test_pause_while_start_is_enqueuing_holds_everything(spool, config, monkeypatch):
    campaigns = Campaigns(spool, config)
    campaign = campaigns.create("c", "hi", numbers=[f"1380013{n:04d}" for n in range(30)], kind="notice")
    monkeypatch.setattr(campaigns_module, "ENQUEUE_CHUNK", 10)
    real = spool.messages.enqueue_fresh

    def pause_after_first_chunk(rows):
        ids = real(rows)
        if len(spool.list(campaign_id=campaign.id)) == 10:
            Campaigns(spool, config).pause(campaign.id)  # the operator, from another terminal
        return ids

    monkeypatch.setattr(spool.messages, "enqueue_fresh", pause_after_first_chunk)
    assert campaigns.start(campaign.id).enqueued == 30
    assert all(m.held for m in spool.list(campaign_id=campaign.id))
