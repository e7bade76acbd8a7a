"""The front door's typed results: each a frozen value read by its attributes, whose `to_dict()`
keeps the keys the CLI's `--json` and the HTTP API have always printed."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modempool import (AutoReplyEntry, BlacklistEntry, CampaignPreview, CampaignReport,
                       CampaignStart, ForwardTarget, Group, JobRun, OptOut, Pool)
from modempool.errors import NotFound, UnknownSim
from modempool.operator.campaigns import CampaignBlocked, CampaignState
from modempool.spool import MessageState

CONFIG = """\
[spool]
path = "pool.db"

[pool]
timezone = "Asia/Shanghai"

[signature]
text = "【蓝天】"

[sensitive]
words = ["贷款"]

[[modem]]
name = "m1"
port = "/dev/null"
"""


@pytest.fixture
def pool(tmp_path: Path):
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG, "utf-8")
    with Pool.open(path) as pool:
        pool.save_contact("13800138000", "张三", fields={"班级": "一班"}, groups=["家长"])
        pool.save_contact("13900139000", "李四", fields={"班级": "二班"}, groups=["家长"])
        pool.save_contact("13700137000", "王五", groups=["教师"])
        yield pool


def test_groups_and_their_edits(pool):
    pool.create_group("空组", "测试")
    assert pool.groups() == [Group("家长", "", 2), Group("教师", "", 1), Group("空组", "测试", 0)]
    assert pool.add_to_group("教师", ["13800138000"]) == 1
    assert pool.remove_from_group("教师", ["13800138000"]) == 1
    pool.rename_group("空组", "新组")
    [new] = [g for g in pool.groups() if g.description == "测试"]
    assert (new.name, new.members) == ("新组", 0)
    assert new.to_dict() == {"name": "新组", "description": "测试", "members": 0}
    pool.delete_group("新组")
    pool.remove_contact("13700137000")
    assert [g.name for g in pool.groups()] == ["家长", "教师"]
    assert [g.members for g in pool.groups()] == [2, 0]
    with pytest.raises(NotFound):
        pool.remove_contact("13700137000")
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.members = 3   # type: ignore[misc]


def test_optouts_and_blacklist_are_typed_with_times(pool, tmp_path):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert pool.add_optouts(["13800138000"], source="manual") == 1
    [optout] = pool.optout_list()
    assert isinstance(optout, OptOut)
    assert (optout.number, optout.source, optout.keyword, optout.inbound_id) == (
        "+8613800138000", "manual", "", None)
    assert optout.created_at >= before and optout.created_at.tzinfo is not None
    assert set(optout.to_dict()) == {"number", "keyword", "source", "inbound_id", "created_at"}
    assert optout.to_dict() == pool.optouts.optouts()[0]   # the dict the HTTP API returns

    assert pool.add_to_blacklist(["13600136000", "13500135000"], "complained") == 2
    entries = pool.blacklist()
    assert [(e.number, e.reason) for e in entries] == [("+8613500135000", "complained"),
                                                        ("+8613600136000", "complained")]
    assert all(isinstance(e, BlacklistEntry) and e.created_at >= before for e in entries)
    assert [e.to_dict() for e in entries] == pool.optouts.blacklist()
    assert pool.export_optouts(tmp_path / "b.csv", blacklist=True) == 2
    assert pool.export_optouts(tmp_path / "o.csv") == 1
    pool.remove_from_blacklist("13600136000")
    pool.remove_optout("13800138000")
    assert [e.number for e in pool.blacklist()] == ["+8613500135000"] and pool.optout_list() == []

    listed = tmp_path / "黑名单.txt"
    listed.write_text("13300133000\n13200132000\n", "utf-8")
    report = pool.import_blacklist(listed, reason="imported")
    assert report.imported == 2
    assert {e.reason for e in pool.blacklist()} == {"complained", "imported"}


def test_campaign_preview_start_and_report(pool, tmp_path):
    pool.add_optouts(["13900139000"])
    campaign = pool.create_campaign("家长会", "{name}家长您好：{班级}开会。", groups="家长",
                                    numbers=["13800138000", "12345"], sims=["m1"])
    preview = pool.preview_campaign(campaign.id, sample=5)
    assert isinstance(preview, CampaignPreview)
    assert (preview.campaign, preview.name, preview.recipients) == (campaign.id, "家长会", 1)
    assert (preview.duplicates_removed, preview.opted_out_removed) == (1, 1)
    assert preview.sims == ("m1",) and preview.quiet_hours is True and not preview.can_start
    [sample] = preview.samples
    assert (sample.to, sample.name, sample.parts) == ("+8613800138000", "张三", 1)
    assert sample.text.startswith("【蓝天】张三家长您好：一班开会。")
    assert preview.problems == ("invalid: '12345' is not a valid number in region CN",)
    assert list(preview.to_dict()) == [
        "campaign", "name", "recipients", "duplicates_removed", "opted_out_removed",
        "total_parts", "quiet_hours", "rate_per_minute", "sims", "samples", "problems",
        "can_start"]
    assert preview.to_dict()["sims"] == ["m1"] and preview.to_dict()["can_start"] is False

    with pytest.raises(CampaignBlocked):
        pool.start_campaign(campaign.id)
    started = pool.start_campaign(campaign.id, skip_problems=True)
    assert isinstance(started, CampaignStart)
    assert (started.campaign, started.recipients, started.enqueued, started.already_enqueued,
            started.skipped_problems, started.opted_out_removed) == (campaign.id, 1, 1, 0, 1, 1)
    again = pool.start_campaign(campaign.id, skip_problems=True)
    assert (again.enqueued, again.already_enqueued) == (0, 1)
    assert again.to_dict() == {"campaign": campaign.id, "recipients": 1, "enqueued": 0,
                               "already_enqueued": 1, "skipped_problems": 1,
                               "opted_out_removed": 1}

    [message] = pool.messages(campaign=campaign.id)
    assert pool.spool.claim(message.id, "m1", "test")
    pool.spool.mark_failed(message.id, "+CMS ERROR: 38 network out of order", lease_owner="test")
    pool.spool.store_inbound("13800138000", "收到", sim="m1")
    report = pool.campaign_report(campaign.id, export_to=tmp_path / "报告.csv")
    assert isinstance(report, CampaignReport)
    assert report.campaign.id == campaign.id and report.campaign.name == "家长会"
    summary = report.summary
    assert (summary.recipients, summary.failed, summary.went_out, summary.replies,
            summary.repliers, summary.opt_outs) == (1, 1, 0, 1, 1, 0)
    assert summary.failure_reasons == {"+CMS ERROR: 38 network out of order": 1}
    [outcome] = report.recipients
    assert (outcome.message_id, outcome.to, outcome.name, outcome.state, outcome.sim) == (
        message.id, "+8613800138000", "张三", "failed", "m1")
    assert outcome.replies == ("收到",) and outcome.opted_out is False
    assert outcome.sent_at is None and outcome.delivered_at is None
    assert (report.exported.path, report.exported.rows) == (str(tmp_path / "报告.csv"), 1)
    data = report.to_dict()
    assert list(data) == ["campaign", "summary", "recipients", "exported"]
    assert data["summary"]["failed"] == 1 and data["summary"]["went_out"] == 0
    assert data["recipients"][0]["sent_at"] == "" and data["recipients"][0]["replies"] == ["收到"]
    assert "exported" not in pool.campaign_report(campaign.id).to_dict()


def test_campaign_lifecycle_through_the_pool(pool):
    campaign = pool.create_campaign("通知", "明天停课", groups="家长", kind="notice")
    pool.start_campaign(campaign.id)
    assert pool.pause_campaign(campaign.id).state is CampaignState.PAUSED
    assert {m.held for m in pool.messages(campaign=campaign.id)} == {True}
    assert pool.resume_campaign(campaign.id).state is CampaignState.RUNNING
    copy = pool.rerun_campaign(campaign.id, "通知（再发）")
    assert (copy.name, copy.rerun_of, copy.state) == ("通知（再发）", campaign.id, CampaignState.DRAFT)
    assert copy.to_dict() == copy.as_dict() and copy.to_dict()["rerun_of"] == campaign.id
    assert pool.cancel_campaign(campaign.id) == 2
    assert {m.state for m in pool.messages(campaign=campaign.id)} == {MessageState.CANCELLED}


def test_due_jobs_and_the_autoreply_log(pool):
    pool.add_job("提醒", "daily", "{name}，{班级}明天开会", at="09:00", groups="家长+教师")
    pool.add_job("贷款", "daily", "低息贷款", at="09:00", numbers=["13700137000"])
    pool.spool.db.execute("UPDATE jobs SET last_run = '2000-01-01'")   # as if made long ago
    runs = pool.run_due_jobs(datetime(2026, 12, 1, 9, 30, tzinfo=pool.config.tz))
    assert all(isinstance(run, JobRun) for run in runs)
    assert [(r.name, r.enqueued, r.skipped, r.sensitive) for r in runs] == [
        ("提醒", 2, ("+8613700137000: missing 班级",), ()), ("贷款", 0, (), ("贷款",))]
    assert runs[1].to_dict() == {"job": runs[1].job, "name": "贷款", "enqueued": 0,
                                 "skipped": [], "sensitive": ["贷款"]}
    pool.remove_job(runs[1].job)
    assert [job.name for job in pool.jobs.list()] == ["提醒"]

    moment = datetime(2026, 12, 1, 1, 2, 3, 456000, tzinfo=timezone.utc)
    pool.autoreplies.record("+8613800138000", "db:1", 7, None, "cooldown", moment)
    pool.autoreplies.record("+8613800138000", "db:1", 8, 42, "replied", moment)
    newest, oldest = pool.autoreply_log(10)
    assert isinstance(newest, AutoReplyEntry)
    assert (newest.outcome, newest.message_id, newest.inbound_id) == ("replied", 42, 8)
    assert (oldest.outcome, oldest.sender, oldest.rule) == ("cooldown", "+8613800138000", "db:1")
    assert oldest.created_at == moment
    assert oldest.to_dict()["created_at"] == "2026-12-01T01:02:03.456Z"
    assert [e.id for e in pool.autoreply_log(1)] == [newest.id]


def test_templates_autoreplies_and_forwarding_through_the_pool(pool, tmp_path):
    saved = pool.add_template("家长会", "{name}家长您好：周五{时间}开会。")
    assert (saved.name, saved.kind, saved.fields) == ("家长会", "notice", ["name", "时间"])
    changed = pool.edit_template("家长会", rename="家长会通知", kind="marketing")
    assert (changed.id, changed.name, changed.text, changed.kind) == (
        saved.id, "家长会通知", saved.text, "marketing")   # what was not given stays
    assert pool.remove_template(str(saved.id)).name == "家长会通知"
    assert pool.templates.list() == []
    with pytest.raises(NotFound):
        pool.edit_template("家长会通知", text="x")

    with pytest.raises(UnknownSim, match="m9"):
        pool.add_autoreply("营业时间 9:00-18:00", keywords=["营业"], sim="m9")
    rule = pool.add_autoreply("营业时间 9:00-18:00", keywords=["营业"], sim="m1")
    assert (rule.keywords, rule.sim) == (("营业",), "m1")
    assert [r.name for r in pool.autoreply_rules()] == [rule.name]
    pool.remove_autoreply(int(rule.name.removeprefix("db:")))
    assert pool.autoreply_rules() == []

    config = tmp_path / "forward.toml"
    config.write_text(CONFIG + '\n[forward]\nto = ["13900139000"]\n', "utf-8")
    with Pool.open(config, spool_path=pool.spool.path) as forwarding:
        assert forwarding.add_forward_target("13800138000") == "+8613800138000"
        targets = forwarding.forward_targets()
        assert [(t.number, t.source) for t in targets] == [("+8613900139000", "config"),
                                                           ("+8613800138000", "spool")]
        assert isinstance(targets[0], ForwardTarget)
        assert targets[1].to_dict() == {"number": "+8613800138000", "from": "spool"}
        with pytest.raises(NotFound, match="config file"):
            forwarding.remove_forward_target("13900139000")
        assert forwarding.remove_forward_target("13800138000") == "+8613800138000"
        assert [t.source for t in forwarding.forward_targets()] == ["config"]


def test_every_type_the_library_doc_names_is_importable_from_modempool():
    import modempool
    from modempool.account_pool import AccountPool, Conversation, ConversationThread
    from modempool.dispatch.requests import UssdAnswer

    assert (modempool.UssdAnswer, modempool.CampaignBlocked, modempool.AccountPool,
            modempool.Conversation, modempool.ConversationThread) == (
        UssdAnswer, CampaignBlocked, AccountPool, Conversation, ConversationThread)
