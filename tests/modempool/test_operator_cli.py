"""The operator commands, run as real `modempool` subprocesses against a real spool (an
SQLite file, or a PostgreSQL schema)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from openpyxl import Workbook

from modempool.operator.autoreply import AutoReplies
from modempool.operator.campaign_report import progress
from modempool.operator.contacts import AddressBook
from modempool.operator.optout import OptOutList
from modempool.spool import Spool


def run(tmp_path, *args, ok=True):
    result = subprocess.run([sys.executable, "-m", "cli", *args,
                             "--config", str(tmp_path / "modempool.toml")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=_env())
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def _env():
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def as_json(tmp_path, *args):
    return json.loads(run(tmp_path, *args, "--json").stdout)


@pytest.fixture
def site(tmp_path, spool_setting):
    """A directory with the config (its spool on each engine) and a GBK contacts file."""
    (tmp_path / "modempool.toml").write_text(
        f'[spool]\n{spool_setting}\n[signature]\ntext = "【蓝天学校】"\nfooter = "回T退订"\n',
        "utf-8")
    (tmp_path / "家长.csv").write_bytes(
        "姓名,手机,班级\n张三,13800138000,一班\n李四,13900139000,二班\n王五,1390013,三班\n"
        "赵六,13800138000,一班\n".encode("gbk"))
    return tmp_path


def test_import_rejects_whole_file_with_line_reasons_then_skip_bad(site, spool_target):
    bad = run(site, "contacts", "import", "家长.csv", "--group", "家长", ok=False)
    assert bad.returncode == 1
    assert "2 row(s) rejected, nothing imported" in bad.stderr
    assert "line 4: invalid number: '1390013' is not a valid number in region CN" in bad.stderr
    assert "line 5: duplicate of line 2 (+8613800138000)" in bad.stderr
    with Spool(spool_target) as spool:
        assert AddressBook(spool.db).list() == []
    report = as_json(site, "contacts", "import", "家长.csv", "--group", "家长", "--skip-bad")
    assert (report["imported"], report["encoding"], [r["line"] for r in report["rejected"]]) == (
        2, "gb18030", [4, 5])
    contacts = as_json(site, "contacts", "list", "--group", "家长")
    assert [(c["name"], c["groups"], c["fields"]) for c in contacts] == [
        ("张三", ["家长"], {"班级": "一班"}), ("李四", ["家长"], {"班级": "二班"})]
    human = run(site, "contacts", "list").stdout
    assert "张三" in human and "+8613900139000" in human


def test_xlsx_campaign_preview_start_twice_report_and_export(site, spool_target):
    wb = Workbook()
    wb.active.append(["手机号", "姓名", "门店"])
    wb.active.append([13700137000, "王五", "朝阳店"])
    wb.active.append([13600136000, "赵六", "海淀店"])
    wb.save(site / "客户.xlsx")
    run(site, "contacts", "import", "家长.csv", "--group", "家长", "--skip-bad")
    created = as_json(site, "campaign", "create", "促销", "--sheet", "客户.xlsx",
                      "--text", "{name}您好，{门店}本周八折", "--rate", "60", "--sim", "m1")
    assert (created["id"], created["quiet_hours"], created["sheet_rows"]) == (1, True, 2)
    preview = as_json(site, "campaign", "preview", "1")
    assert (preview["recipients"], preview["total_parts"], preview["problems"]) == (2, 2, [])
    assert preview["samples"][0]["text"] == "【蓝天学校】王五您好，朝阳店本周八折回T退订"
    first = as_json(site, "campaign", "start", "1")
    second = as_json(site, "campaign", "start", "1")
    assert (first["enqueued"], second["enqueued"], second["already_enqueued"]) == (2, 0, 2)
    spool = Spool(spool_target)
    assert [m.sims for m in spool.list(campaign_id=1)] == [("m1",), ("m1",)]
    assert as_json(site, "campaign", "pause", "1")["state"] == "paused"
    assert progress(spool, 1).held == 2
    assert as_json(site, "campaign", "resume", "1")["state"] == "running"
    report = as_json(site, "campaign", "report", "1", "--export", "报告.xlsx")
    assert report["summary"]["queued"] == 2 and report["exported"]["rows"] == 2
    assert (site / "报告.xlsx").exists()
    assert as_json(site, "campaign", "cancel", "1")["cancelled"] == 2
    assert progress(spool, 1).counts["cancelled"] == 2
    spool.close()


def test_campaign_with_problems_needs_skip_and_groups_arithmetic(site):
    run(site, "contacts", "import", "家长.csv", "--group", "家长", "--skip-bad")
    run(site, "contacts", "add", "13500135000", "--name", "钱七", "--group", "教师", "--group", "家长")
    shown = as_json(site, "groups", "show", "家长-教师")
    assert [c["name"] for c in shown] == ["张三", "李四"]
    run(site, "campaign", "create", "会", "--group", "家长+教师", "--to", "13300133000,12",
        "--text", "{name}：周五开会", "--kind", "notice")
    blocked = run(site, "campaign", "start", "1", ok=False)
    assert blocked.returncode == 1
    assert "invalid: '12' is not a valid number" in blocked.stderr
    assert "missing field: +8613300133000 (number): missing {name}" in blocked.stderr
    started = as_json(site, "campaign", "start", "1", "--skip-problems")
    assert (started["enqueued"], started["skipped_problems"]) == (3, 2)


def test_optout_autoreply_history_backup(site, spool_target):
    run(site, "optout", "add", "13800138000")
    (site / "黑名单.txt").write_text("13900139000\n", "utf-8")
    assert as_json(site, "optout", "blacklist", "import", "黑名单.txt")["imported"] == 1
    run(site, "optout", "blacklist", "export", "bl.csv")
    assert "+8613900139000" in (site / "bl.csv").read_text("utf-8-sig")
    rule = as_json(site, "autoreply", "add", "--keyword", "营业时间", "--reply", "9:00-18:00")
    assert rule["rule"] == "db:1"
    run(site, "send", "13700137000", "你好，王五")
    rows = as_json(site, "history", "search", "--text", "王五")
    assert [(r["number"], r["direction"]) for r in rows] == [("+8613700137000", "out")]
    assert as_json(site, "history", "export", "h.csv")["rows"] == 1
    if str(spool_target).startswith("postgresql"):   # the server's tools back it up
        refused = run(site, "backup", "copy.db", ok=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "back it up with pg_dump" in refused.stderr and len(
            refused.stderr.strip().splitlines()) == 1, refused.stderr
    else:
        backup = as_json(site, "backup", "copy.db")
        assert backup["tables"]["messages"] == 1 and backup["tables"]["optouts"] == 1
    job = as_json(site, "jobs", "add", "生日", "--kind", "birthday", "--text", "{name}生日快乐")
    assert (job["kind"], job["at"]) == ("birthday", "09:00")
    spool = Spool(spool_target)
    assert OptOutList(spool.db).is_opted_out("13800138000")
    assert [r.reply for r in AutoReplies(spool.db).rules()] == ["9:00-18:00"]
    spool.close()


def test_help_texts_have_chinese_examples():
    for group, example in [("contacts", "家长.xlsx"), ("campaign", "断点续发"), ("optout", "退订"),
                           ("jobs", "生日快乐")]:
        result = subprocess.run([sys.executable, "-m", "cli", group, "--help"], capture_output=True,
                                text=True, timeout=60, env=_env())
        assert result.returncode == 0 and example in result.stdout, (group, result.stdout)


def test_saved_templates_forwarding_numbers_and_group_rename_from_the_command_line(site):
    run(site, "contacts", "import", str(site / "家长.csv"), "--group", "三年级", "--skip-bad")
    run(site, "groups", "rename", "三年级", "四年级")
    assert [g["name"] for g in as_json(site, "groups", "list")] == ["四年级"]
    run(site, "campaign", "templates", "add", "家长会", "--text", "{name}家长：{班级}周五开会。")
    [saved] = as_json(site, "campaign", "templates", "list")
    assert (saved["kind"], saved["fields"]) == ("notice", ["name", "班级"])
    made = as_json(site, "campaign", "create", "周五", "--from-template", "家长会",
                   "--group", "四年级")
    assert made["template"] == "{name}家长：{班级}周五开会。" and made["kind"] == "notice"
    run(site, "campaign", "templates", "edit", "家长会", "--text", "{name}家长：改到周六。")
    assert as_json(site, "campaign", "templates", "list")[0]["text"] == "{name}家长：改到周六。"
    missing = run(site, "campaign", "create", "x", "--from-template", "毕业典礼", "--to",
                  "13800138000", ok=False)
    assert missing.returncode == 1 and "no saved template named '毕业典礼'" in missing.stderr
    assert "Traceback" not in missing.stderr
    run(site, "campaign", "templates", "remove", "家长会")
    assert as_json(site, "campaign", "templates", "list") == []
    run(site, "forward", "add", "139 0013 9000")
    assert as_json(site, "forward", "list") == [{"number": "+8613900139000", "from": "spool"}]
    again = run(site, "forward", "add", "13900139000", ok=False)
    assert again.returncode == 1 and "already a forwarding target" in again.stderr
    run(site, "forward", "remove", "13900139000")
    assert as_json(site, "forward", "list") == []


def test_bad_filters_limits_and_numbers_are_one_line_refusals(site):
    """A state or number that can match nothing, a negative limit or sample: a one-line error
    (exit 2 for a bad option, 1 for the library's refusal), never an empty table."""
    run(site, "send", "13700137000", "你好")
    for args, words in (
            (("history", "search", "--state", "bogus"), "'bogus' is not one of"),
            (("history", "search", "--number", "abc"), "'abc' is not a phone number"),
            (("history", "search", "--limit", "-1"), "-1 is not in the range x>=0"),
            (("history", "threads", "--limit", "-1"), "-1 is not in the range x>=0"),
            (("autoreply", "log", "--limit", "-1"), "-1 is not in the range x>=0"),
            (("campaign", "preview", "1", "--sample", "-3"), "-3 is not in the range x>=0"),
            (("optout", "add", "13800138000", "abc"), "argument 2: 'abc' is not a phone number"),
            (("optout", "blacklist", "add", "abc", "13800138000"),
             "argument 1: 'abc' is not a phone number")):
        result = run(site, *args, ok=False)
        assert result.returncode in (1, 2) and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == "", (args, result.stdout)
    # nothing was opted out or blacklisted by the refused batches; a short code still searches
    assert as_json(site, "optout", "list") == [] and as_json(site, "optout", "blacklist", "list") == []
    assert as_json(site, "history", "search", "--number", "10086") == []
    assert len(as_json(site, "history", "search", "--state", "queued")) == 1
