"""Saved campaign templates (`pool.templates`), on both spool engines."""

from __future__ import annotations

import pytest

from modempool.errors import NotFound, PoolError
from modempool.operator.templates import CampaignTemplates
from modempool.spool import Spool


@pytest.fixture
def templates(spool_target):
    spool = Spool(spool_target)
    yield CampaignTemplates(spool.db)
    spool.close()


def test_save_edit_list_and_delete(templates):
    notice = templates.add(" 家长会 ", "{name}家长您好：周五{时间}开家长会。")
    assert (notice.name, notice.kind, notice.fields) == ("家长会", "notice", ["name", "时间"])
    sale = templates.add("促销", "{name}您好，本周全场八折。回T退订", kind="marketing")
    assert [t.name for t in templates.list()] == ["促销", "家长会"]
    changed = templates.update(notice.id, "家长会通知", "{name}家长：{班级}周五开会。")
    assert changed.fields == ["name", "班级"] and templates.get(notice.id).name == "家长会通知"
    with pytest.raises(PoolError, match="already a template named '促销'") as taken:
        templates.update(notice.id, "促销", "x")
    assert taken.value.code == "template_exists" and taken.value.params == {"name": "促销"}
    templates.remove(sale.id)
    with pytest.raises(NotFound) as gone:
        templates.get(sale.id)
    assert gone.value.code == "template_not_found"
    with pytest.raises(NotFound):
        templates.remove(sale.id)
    assert [t.name for t in templates.list()] == ["家长会通知"]


@pytest.mark.parametrize("name, text, kind, code", [
    ("", "text", "notice", "template_name_missing"),
    ("a", "  ", "notice", "template_missing"),
    ("a", "{name", "notice", "template_malformed"),
    ("a", "您好 {}", "notice", "template_unnamed_field"),
    ("a", "text", "spam", "campaign_kind"),
])
def test_a_bad_template_is_refused_with_its_code_and_nothing_saved(templates, name, text, kind,
                                                                    code):
    with pytest.raises(PoolError) as refused:
        templates.add(name, text, kind)
    assert refused.value.code == code
    assert templates.list() == []
