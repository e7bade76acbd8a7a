"""U+0000 (NUL) in any text a person gives that the spool would keep is refused by the library
with one line naming the field, on both engines (PostgreSQL's text cannot hold it; SQLite
would keep it and a migration then fail), and nothing is stored."""

from __future__ import annotations

import pytest

from modempool import Pool
from modempool.config import load_config
from modempool.errors import InvalidText
from modempool.operator.history import Query
from modempool.spool import Spool

NUMBER = "13800138000"

# (the field named in the refusal, what a front end would call)
CASES = [
    ("the campaign name", lambda p: p.create_campaign("春\x00节", "您好", numbers=[NUMBER])),
    ("the campaign text", lambda p: p.create_campaign("春节", "您\x00好", numbers=[NUMBER])),
    ("the campaign's numbers", lambda p: p.create_campaign("春节", "您好", numbers=["1380013\x008000"])),
    ("the campaign's groups", lambda p: p.create_campaign("春节", "您好", groups="家\x00长")),
    ("the campaign name", lambda p: p.rerun_campaign(
        p.create_campaign("春节", "您好", numbers=[NUMBER]).id, "再\x00发")),
    ("the template name", lambda p: p.add_template("通\x00知", "您好")),
    ("the template text", lambda p: p.add_template("通知", "您\x00好")),
    ("the template text", lambda p: p.edit_template(p.add_template("通知", "您好").id,
                                                    text="新\x00文")),
    ("the auto-reply's reply", lambda p: p.add_autoreply("营业\x00时间", keywords=["时间"])),
    ("the auto-reply's keywords", lambda p: p.add_autoreply("九点", keywords=["时\x00间"])),
    ("the auto-reply's pattern", lambda p: p.add_autoreply("九点", pattern="a\x00b")),
    ("the job's name", lambda p: p.add_job("早\x00安", "daily", "早安", numbers=[NUMBER])),
    ("the job's text", lambda p: p.add_job("早安", "daily", "早\x00安", numbers=[NUMBER])),
    ("the job's groups", lambda p: p.add_job("早安", "daily", "早安", groups="员\x00工")),
    ("the blacklist reason", lambda p: p.add_to_blacklist([NUMBER], "骚\x00扰")),
    ("the opt-out's source", lambda p: p.add_optouts([NUMBER], source="api\x00")),
    ("the history search's text", lambda p: p.history(Query(text="验\x00证"))),
    ("the history search's contact", lambda p: p.history(Query(contact="张\x00"))),
    ("the webhook URL", lambda p: __import__("modempool.webhooks", fromlist=["Webhooks"])
     .Webhooks(p.spool).add("https://crm.example.com/\x00", ["message.sent"])),
]


@pytest.fixture
def pool(spool_target, config):
    spool = Spool(spool_target)
    with Pool(load_config(config), spool=spool) as pool:
        yield pool


def _stored(pool: Pool) -> tuple:
    return (len(pool.campaigns.list()), len(pool.templates.list()), len(pool.autoreply_rules()),
            len(pool.jobs.list()), len(pool.blacklist()), len(pool.optout_list()),
            len(pool.messages()))


@pytest.mark.parametrize("field, call", CASES, ids=[f"{i}:{c[0]}" for i, c in enumerate(CASES)])
def test_nul_is_refused_naming_the_field(pool, field, call):
    before = _stored(pool)
    with pytest.raises(InvalidText) as refused:
        call(pool)
    assert refused.value.params["field"] == field
    assert str(refused.value).startswith(field) and "U+0000" in str(refused.value)
    assert "\n" not in str(refused.value)
    after = _stored(pool)
    # a case that first makes something (a campaign to re-run, a template to edit) keeps that
    assert all(a - b in (0, 1) for a, b in zip(after, before))
    assert not [c for c in pool.campaigns.list() if "\x00" in c.name + c.template]
    assert not [t for t in pool.templates.list() if "\x00" in t.name + t.text]


def test_a_spreadsheet_cell_with_nul_rejects_its_row_naming_the_column(pool, tmp_path):
    sheet = tmp_path / "parents.csv"
    sheet.write_text("number,name,班级\n13800138000,张三,三\x00班\n13800138001,李四,四班\n",
                     encoding="utf-8")
    report = pool.import_contacts(sheet, skip_rejected=True)
    [rejected] = report.rejected
    assert (rejected.line, rejected.code, rejected.params) == (2, "text_nul", {"field": "班级"})
    assert "班级 contains the NUL character" in rejected.reason
    assert [c.name for c in pool.contacts.list()] == ["李四"]
    campaign = pool.create_campaign("家长会", "{name}家长您好", sheet=sheet)
    preview = pool.preview_campaign(campaign.id)
    assert preview.recipients == 1
    assert [p for p in preview.problems if "line 2" in p and "班级 contains the NUL" in p]
