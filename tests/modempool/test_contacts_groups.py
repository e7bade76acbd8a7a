"""Address book: upsert by E.164, groups, and A + B − C selection without duplicates."""

from __future__ import annotations

import pytest

from modempool.operator.contacts import AddressBook, Selection, parse_selection
from modempool.errors import InvalidNumber, NotFound
from modempool.spool import Spool


@pytest.fixture
def book(spool_target):
    spool = Spool(spool_target)
    yield AddressBook(spool.db)
    spool.close()


def test_upsert_normalises_and_merges(book):
    first = book.upsert("138-0013-8000", "张三", fields={"班级": "一班"}, groups=["家长"])
    again = book.upsert("+86 13800138000", "", fields={"座位": "3"}, notes="班长", groups=["VIP"])
    assert first.id == again.id and again.number == "+8613800138000"
    assert again.name == "张三"  # an empty name does not erase
    assert again.fields == {"班级": "一班", "座位": "3"}
    assert again.groups == ("VIP", "家长") and again.notes == "班长"
    with pytest.raises(InvalidNumber):
        book.upsert("12345", "bad")
    assert len(book.list()) == 1


def test_group_arithmetic_dedupes(book):
    for number, groups in [("13800138000", ["家长", "教师"]), ("13900139000", ["家长"]),
                           ("13700137000", ["教师", "毕业班"]), ("13600136000", ["毕业班"])]:
        book.upsert(number, groups=groups)
    chosen = book.select(parse_selection("家长+教师-毕业班"))
    assert [c.number for c in chosen] == ["+8613800138000", "+8613900139000"]
    assert parse_selection(" 家长 + 教师 - 毕业班 ") == Selection(("家长", "教师"), ("毕业班",))
    with pytest.raises(NotFound, match="no group named '校友'"):
        book.select(Selection(("校友",)))


def test_group_membership_and_removal(book):
    book.upsert("13800138000", "张三")
    book.upsert("13900139000", "李四")
    assert book.add_to_group("员工", ["13800138000", "13900139000"]) == 2
    assert book.groups() == [{"name": "员工", "description": "", "members": 2}]
    book.remove_from_group("员工", ["13900139000"])
    assert [c.name for c in book.list(group="员工")] == ["张三"]
    book.remove("13800138000")
    assert book.groups()[0]["members"] == 0
    assert book.find("13800138000") is None and book.find("not a number") is None
    assert [c.name for c in book.list(search="李")] == ["李四"]
    book.delete_group("员工")
    assert book.groups() == []


def test_a_group_is_renamed_with_its_members_and_a_taken_name_is_refused(book):
    from modempool.errors import PoolError

    book.upsert("13800138000", "张三", groups=["三年级", "家长"])
    book.rename_group("三年级", " 四年级 ")
    assert book.get("13800138000").groups == ("四年级", "家长")
    with pytest.raises(PoolError, match="already a group named '家长'") as taken:
        book.rename_group("四年级", "家长")
    assert taken.value.code == "group_exists"
    with pytest.raises(NotFound) as missing:
        book.rename_group("三年级", "五年级")
    assert (missing.value.code, missing.value.params) == ("group_not_found", {"name": "三年级"})
    with pytest.raises(PoolError) as blank:
        book.rename_group("四年级", "  ")
    assert blank.value.code == "group_name_missing"
    assert [g["name"] for g in book.groups()] == ["四年级", "家长"]
