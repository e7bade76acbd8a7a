"""History search by number, contact, group, text, time range, state, campaign; CSV/XLSX export."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from modempool.operator.campaigns import Campaigns
from modempool.operator.contacts import AddressBook
from modempool.operator.history import Query, export, search
from modempool.spool import Spool


@pytest.fixture
def spool(spool_target):
    spool = Spool(spool_target)
    book = AddressBook(spool.db)
    book.upsert("13800138000", "张三", groups=["家长"])
    book.upsert("13900139000", "李四", groups=["教师"])
    spool.enqueue("13800138000", "明天开家长会")
    failed = spool.enqueue("13900139000", "请提交教案")
    assert spool.claim(failed.id, "m1", "t")
    spool.mark_failed(failed.id, "+CMS ERROR: 500", lease_owner="t")
    campaign = Campaigns(spool).create("c", "周末愉快", numbers=["13700137000"], kind="notice")
    Campaigns(spool).start(campaign.id)
    spool.store_inbound("13800138000", "收到，会准时参加", sim="m1",
                        received_at=datetime.now(timezone.utc) - timedelta(days=3))
    spool.store_inbound("10086", "您的余额为 5 元", sim="m2")
    yield spool
    spool.close()


def texts(rows):
    out = [r.text for r in rows]
    assert len(out) == len(set(out))
    return set(out)


def test_search_criteria(spool):
    db = spool
    assert texts(search(db, Query(number="138 0013 8000"))) == {"明天开家长会", "收到，会准时参加"}
    assert texts(search(db, Query(contact="李"))) == {"请提交教案"}
    assert texts(search(db, Query(contact="家长", direction="in"))) == {"收到，会准时参加"}
    assert texts(search(db, Query(text="余额"))) == {"您的余额为 5 元"}
    assert texts(search(db, Query(number="10086"))) == {"您的余额为 5 元"}
    assert texts(search(db, Query(state="failed"))) == {"请提交教案"}
    assert texts(search(db, Query(state="received"))) == {"您的余额为 5 元", "收到，会准时参加"}
    assert texts(search(db, Query(campaign=1))) == {"周末愉快"}
    since = datetime.now(timezone.utc) - timedelta(days=1)
    assert "收到，会准时参加" not in texts(search(db, Query(since=since)))
    assert texts(search(db, Query(until=since))) == {"收到，会准时参加"}
    rows = search(db, Query(number="13800138000", direction="out"))
    assert [(r.name, r.direction, r.state) for r in rows] == [("张三", "out", "queued")]
    assert len(search(db, Query(limit=2))) == 2


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_export(spool, tmp_path, suffix):
    path = tmp_path / f"history.{suffix}"
    assert export(spool, Query(contact="张三"), path) == 2
    if suffix == "csv":
        lines = path.read_text("utf-8-sig").splitlines()
        assert lines[0] == "direction,id,time,number,name,text,state,sim,campaign_id,error"
        assert all(",张三," in line for line in lines[1:])
    else:
        rows = list(load_workbook(path).active.iter_rows(values_only=True))
        assert rows[0][:4] == ("direction", "id", "time", "number") and len(rows) == 3
        assert {r[5] for r in rows[1:]} == {"明天开家长会", "收到，会准时参加"}


def test_threads_label_numbers_with_contacts_and_count_unread(spool):
    from modempool.operator.history import threads

    rows = {r.number: r for r in threads(spool)}
    zhang = rows["+8613800138000"]
    assert (zhang.name, zhang.groups, zhang.unread, zhang.messages) == ("张三", ("家长",), 1, 2)
    assert zhang.last_received == "收到，会准时参加"
    assert zhang.to_dict()["groups"] == ["家长"]   # the CLI's --json keeps its list
    assert rows["10086"].name == "" and rows["+8613900139000"].unread == 0
    spool.mark_read([r["id"] for r in spool.inbound()])
    assert threads(spool, unread_only=True) == []
