"""End to end: messy imports, a campaign through `modempool run` on simulated SIMs, a kill -9 in the
middle, restart, exactly-once in the network log, opt-out by reply, auto-reply cooldown, quiet hours."""

from __future__ import annotations

import collections
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook

from modempool.operator.autoreply import AutoReplies
from modempool.operator.campaign_plan import preview
from modempool.operator.campaign_report import progress, report
from modempool.operator.campaigns import Campaigns
from modempool.config import load_config
from modempool.operator.contacts import AddressBook, Selection
from modempool.operator.importers import ImportRejected, import_contacts
from modempool.operator.optout import OptOutList
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, network_messages, write_config

pytestmark = pytest.mark.timeout(200)

CSV_COUNT, XLSX_COUNT = 400, 200


def number(i: int) -> str:
    return f"+861395{i:07d}"


@pytest.fixture
async def bank(tmp_path: Path):
    async with SimulatedBank(modems=3, directory=tmp_path / "bank", seed=7) as bank:
        yield bank


def messy_files(tmp_path: Path) -> tuple[Path, Path]:
    rows = ["姓名,手机号码,门店"] + [f"客户{i},{number(i)[3:]},朝阳店" for i in range(CSV_COUNT)]
    rows.insert(101, "坏号码,12345,朝阳店")           # line 101
    rows.insert(201, f"重复,{number(5)},朝阳店")       # line 201
    csv_path = tmp_path / "客户.csv"
    csv_path.write_bytes("\r\n".join(rows).encode("gbk"))
    wb = Workbook()
    wb.active.append(["手机", "姓名", "门店"])
    for i in range(CSV_COUNT, CSV_COUNT + XLSX_COUNT):
        wb.active.append([int(number(i)[3:]), f"客户{i}", "海淀店"])
    wb.active.append(["138", "短号", "海淀店"])          # row 202
    xlsx_path = tmp_path / "客户.xlsx"
    wb.save(xlsx_path)
    return csv_path, xlsx_path


@pytest.fixture
async def daemons():
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:  # a failed assertion must not leave a daemon running
        await daemon.kill()


async def test_campaign_survives_kill_and_honours_optout_autoreply_quiet_hours(tmp_path, bank, daemons):
    now = datetime.now().astimezone()
    quiet = (f"[quiet_hours]\nstart = \"{(now - timedelta(hours=1)):%H:%M}\"\n"
             f"end = \"{(now + timedelta(hours=1)):%H:%M}\"\n")
    extra = (quiet + "[[autoreply]]\nkeywords = [\"营业时间\"]\nreply = \"营业时间 9-18 点\"\n"
             "cooldown = 3600\n")
    config_path = write_config(tmp_path / "pool.toml", bank.devices, extra="\n" + extra)
    config = load_config(config_path)
    spool = config.open_spool()
    book = AddressBook(spool.db)
    csv_path, xlsx_path = messy_files(tmp_path)
    with pytest.raises(ImportRejected) as caught:
        import_contacts(book, csv_path, groups=["客户"])
    assert [(r.line, r.reason[:20]) for r in caught.value.report.rejected] == [
        (102, "invalid number: '123"), (202, "duplicate of line 7 ")]
    assert import_contacts(book, csv_path, groups=["客户"], skip_rejected=True).imported == CSV_COUNT
    xlsx = import_contacts(book, xlsx_path, groups=["客户"], skip_rejected=True)
    assert (xlsx.imported, [r.line for r in xlsx.rejected]) == (XLSX_COUNT, [202])
    total = CSV_COUNT + XLSX_COUNT

    campaigns = Campaigns(spool, config)
    notice = campaigns.create("通知", "{name}您好，{门店}明天停业一天。", groups=Selection(("客户",)),
                              kind="notice")
    night = campaigns.create("促销", "{name}您好，新品上市", numbers=[number(0), number(1)])
    assert preview(spool.db, notice, config).recipients == total
    daemon = await DaemonProcess(config_path).start()
    daemons.append(daemon)
    campaigns.start(notice.id)
    campaigns.start(night.id)                   # marketing: quiet hours on, and now is quiet
    await eventually(lambda: len(network_messages(bank)) >= total // 4, timeout=60, what="a quarter sent")
    await daemon.kill()                          # kill -9 in the middle of the campaign
    again = Campaigns(config.open_spool(), config).start(notice.id)   # the operator starts it again
    assert (again.enqueued, again.already_enqueued) == (0, total)
    daemon = await DaemonProcess(config_path).start()
    daemons.append(daemon)
    await eventually(lambda: progress(spool, notice.id).pending == 0, timeout=90, what="campaign done")

    sent = collections.Counter(m["to"] for m in network_messages(bank) if "停业" in m["text"])
    assert max(sent.values()) == 1                                      # nobody got it twice
    data = report(spool, notice.id)
    summary = data.summary
    assert summary.recipients == total
    assert summary.went_out + summary.ambiguous + summary.failed == total
    went_out = {r.to for r in data.recipients if r.state in ("sent", "delivered")}
    assert went_out <= set(sent) and len(sent) <= total
    assert len(went_out) >= total - 3            # a kill can leave at most one message per SIM ambiguous
    texts = {m["to"]: m["text"] for m in network_messages(bank) if "停业" in m["text"]}
    assert texts[number(450)] == "客户450您好，海淀店明天停业一天。"
    assert {m.state.value for m in spool.list(campaign_id=night.id)} == {"queued"}   # quiet hours

    # an opt-out reply stops later campaigns to that number
    await bank.inject("m1", number(3), "退订")
    await eventually(lambda: OptOutList(spool.db).is_opted_out(number(3)), what="opt-out stored")
    later = campaigns.create("再通知", "{name}：后天恢复营业", groups=Selection(("客户",)), kind="notice")
    assert preview(spool.db, later, config).opted_out_removed == 1
    campaigns.start(later.id)
    assert number(3) not in {m.to for m in spool.list(campaign_id=later.id)}

    # auto-reply: two questions in a row, one answer
    await bank.inject("m2", number(7), "请问营业时间？")
    await bank.inject("m2", number(7), "营业时间是几点")
    await eventually(lambda: len(AutoReplies(spool.db).log()) == 2, timeout=20,
                     what="both questions handled")
    await eventually(lambda: any(m["text"] == "营业时间 9-18 点" for m in network_messages(bank)),
                     what="the auto-reply sent")
    assert [r.outcome for r in reversed(AutoReplies(spool.db).log())] == ["replied", "cooldown"]
    assert await daemon.stop() == 0
    assert [m["to"] for m in network_messages(bank) if m["text"] == "营业时间 9-18 点"] == [number(7)]
    spool.close()
