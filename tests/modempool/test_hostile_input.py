"""Issue 12: hostile and broken input. One bad message never stops the bank, opt-outs are honoured
at send time, and a remote sender's SMS (sent through the simulator, as the network would) cannot
kill a forward command."""

from __future__ import annotations

import csv
import json
import re
import shlex
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from modempool.config import Config, load_config, parse_config
from modempool.errors import ConfigError, PoolError, UnsendableText
from modempool.operator import history
from modempool.operator.contacts import AddressBook
from modempool.operator.history import Query
from modempool.operator.importers import export_contacts, read_table
from modempool.operator.spreadsheets import read_xlsx, write_table
from modempool.operator.campaign_report import report
from modempool.operator.campaigns import Campaigns
from modempool.operator.optout import OptOutList
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, eventually, modempool_cli,
                                            network_messages, write_config)
from tests.modempool.test_dispatch import MOBILE, TELECOM, UNICOM, pool, state

pytestmark = pytest.mark.timeout(60)

DONE = ("sent", "delivered")


# ---- 1. one over-long message ---------------------------------------------------------------

def test_enqueue_refuses_text_longer_than_max_parts(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_parts=3)
    spool.enqueue(MOBILE, "a" * 153 * 3)                         # exactly three parts
    with pytest.raises(UnsendableText, match=r"needs 4 SMS parts; at most 3 are allowed"):
        spool.enqueue(MOBILE, "a" * (153 * 3 + 1))
    with pytest.raises(UnsendableText, match="^message text cannot be sent: message needs 299 parts"):
        Spool(tmp_path / "other.db").enqueue(MOBILE, "长" * 20000)   # 299 parts: default cap 10
    with pytest.raises(UnsendableText, match="needs 12 SMS parts; at most 10 are allowed"):
        Spool(tmp_path / "other.db").enqueue(MOBILE, "长" * 800)
    with pytest.raises(UnsendableText, match="only blank space"):
        spool.enqueue(MOBILE, "   \t ")
    with pytest.raises(UnsendableText, match="lone surrogate"):
        spool.enqueue(MOBILE, "bad \ud800 half")
    assert len(spool.list()) == 1
    spool.close()


async def test_a_message_that_cannot_be_sent_fails_alone_and_the_queue_moves(tmp_path):
    async with pool(tmp_path, modems=1) as (bank, spool, daemon):
        before = spool.enqueue(MOBILE, "queued before the bad one")
        # Queued by an older version (or another tool writing the table): 299 parts, first in line.
        with sqlite3.connect(spool.path) as conn:
            bad = conn.execute(
                "INSERT INTO messages (to_number, text, state, priority, created_at, updated_at) "
                "VALUES (?, ?, 'queued', 100, '2026-01-01T00:00:00.000Z', "
                "'2026-01-01T00:00:00.000Z') RETURNING id", (MOBILE, "长" * 20000)).fetchone()[0]
        after = spool.enqueue(UNICOM, "queued after it")
        daemon.dispatcher.wake.set()
        await eventually(lambda: state(spool, before) in DONE and state(spool, after) in DONE,
                         what="the messages around the bad one sent")
        failed = spool.get(bad)
        assert failed.state.value == "failed"
        assert failed.error == ("cannot be sent: message needs 299 parts; at most 255 can be "
                                "concatenated")


# ---- 2. opt-outs at send time ---------------------------------------------------------------

OPTOUT_CONFIRM = '[optout]\nconfirm = true\nconfirm_text = "已退订"\n'


async def test_an_optout_reply_stops_the_campaign_message_already_queued(tmp_path):
    async with pool(tmp_path, modems=2, toml=OPTOUT_CONFIRM) as (bank, spool, daemon):
        campaigns = Campaigns(spool, daemon.config)
        campaign = campaigns.create("通知", "明天停业", numbers=[MOBILE, UNICOM], kind="notice")
        campaigns.start(campaign.id)      # queued, and (no await between) paused at once:
        campaigns.pause(campaign.id)      # a rate-limited or scheduled campaign waits like this
        await bank.inject("m1", MOBILE, "退订")
        await eventually(lambda: OptOutList(spool.db).is_opted_out(MOBILE), what="opt-out stored")
        campaigns.resume(campaign.id)
        await eventually(lambda: all(m.final for m in spool.list(campaign_id=campaign.id)),
                         what="the campaign settled")
        await eventually(lambda: any(m["text"] == "已退订" for m in network_messages(bank)),
                         what="the confirmation sent")
    by_number = {m.to: m for m in spool.list(campaign_id=campaign.id)}
    assert by_number[UNICOM].state.value in DONE
    assert by_number[MOBILE].state.value == "cancelled"
    assert by_number[MOBILE].error.startswith("opted out at 20")
    assert [m["to"] for m in network_messages(bank) if m["text"] == "明天停业"] == [UNICOM]
    summary = report(spool, campaign.id).summary
    assert (summary.cancelled, summary.stopped_at_send) == (1, 1)


async def test_a_blacklisted_number_gets_no_optout_confirmation_and_nothing_queued(tmp_path):
    async with pool(tmp_path, modems=1, toml=OPTOUT_CONFIRM) as (bank, spool, daemon):
        OptOutList(spool.db).add_to_blacklist([TELECOM], "abuse")
        await bank.inject("m1", TELECOM, "退订")
        await eventually(lambda: OptOutList(spool.db).is_opted_out(TELECOM), what="opt-out stored")
        direct = spool.enqueue(TELECOM, "queued by a tool that skipped the checks")
        marker = spool.enqueue(MOBILE, "after")
        await eventually(lambda: state(spool, marker) in DONE and spool.get(direct.id).final)
    assert [m.to for m in spool.list()] == [TELECOM, MOBILE]          # no confirmation queued
    assert spool.get(direct.id).state.value == "cancelled"
    assert spool.get(direct.id).error.startswith("on the blacklist since")
    assert TELECOM not in {m["to"] for m in network_messages(bank)}


# ---- 4. U+0000 from a remote sender ---------------------------------------------------------

async def test_an_sms_with_nul_still_runs_the_forward_command_and_records_it(tmp_path):
    out = tmp_path / "got.json"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\n"
                      "data = json.load(sys.stdin)\n"
                      "data['env'] = os.environ['SMS_1_TEXT']\n"
                      f"open({str(out)!r}, 'w', encoding='utf-8').write(json.dumps(data))\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    toml = f"[forward]\ncommand = {json.dumps(command)}\nretries = 0\n"
    async with pool(tmp_path, modems=1, toml=toml) as (bank, spool, _daemon):
        await bank.inject("m1", MOBILE, "a\x00b 你好")
        await eventually(lambda: out.exists() and spool.db.execute(
            "SELECT outcome FROM forward_log").fetchall(), what="the command's outcome")
        await eventually(lambda: not bank.modem("m1").stores["SM"].slots,
                         what="the SMS deleted from the modem once stored")
    data = json.loads(out.read_text("utf-8"))
    # stored with U+FFFD, as PostgreSQL must (it cannot hold U+0000): the same on both engines
    assert (data["text"], data["env"]) == ("a\ufffdb 你好", "a\ufffdb 你好")
    assert [row["text"] for row in spool.inbound()] == ["a\ufffdb 你好"]
    assert spool.db.execute("SELECT outcome FROM forward_log").fetchall() == [("ok",)]


# ---- 3. formula injection in exports --------------------------------------------------------

PLANTED = "=cmd|' /C calc'!A0"


async def test_a_planted_formula_and_control_characters_export_as_inert_text(tmp_path):
    async with pool(tmp_path, modems=1) as (bank, spool, _daemon):
        await bank.inject("m1", MOBILE, PLANTED)
        await bank.inject("m1", UNICOM, "bell\x07 and \x01 inside")
        await eventually(lambda: len(spool.inbound()) == 2, what="both SMS stored")
    AddressBook(spool.db).upsert(TELECOM, "@SUM(1+1)*cmd")
    inbound = Query(direction="in")
    assert history.export(spool, inbound, tmp_path / "h.csv") == 2
    with open(tmp_path / "h.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = {row["number"]: row["text"] for row in rows}
    assert texts[MOBILE] == "'" + PLANTED                      # OWASP: a leading quote
    assert texts[UNICOM] == "bell\x07 and \x01 inside"         # CSV keeps the text as it came
    assert history.export(spool, inbound, tmp_path / "h.xlsx") == 2   # failed before
    sheet = load_workbook(tmp_path / "h.xlsx").active
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value]
    assert all(cell.data_type != "f" for cell in cells)              # no formula at all
    values = {cell.value for cell in cells}
    assert PLANTED in values and "bell\ufffd and \ufffd inside" in values
    export_contacts(AddressBook(spool.db), tmp_path / "c.csv")
    contact = (tmp_path / "c.csv").read_text("utf-8-sig").splitlines()[1]
    assert contact.startswith(f"{TELECOM},'@SUM(1+1)*cmd,")       # the number itself untouched


def test_exports_refuse_unknown_extension_missing_directory_and_leave_no_partial_file(tmp_path):
    rows = [["+8613800138000", "好 😀"]]
    with pytest.raises(PoolError, match=r"must end in \.csv or \.xlsx"):
        write_table(tmp_path / "out.json", ["number", "text"], rows)
    with pytest.raises(PoolError, match="directory .*nowhere does not exist"):
        write_table(tmp_path / "nowhere" / "out.csv", ["number", "text"], rows)
    with pytest.raises(PoolError, match=r"in gbk: '😀' has no code there"):
        write_table(tmp_path / "out.csv", ["number", "text"], [["+86138", "ok"]] * 50 + rows,
                    encoding="gbk")
    with pytest.raises(PoolError, match="unknown encoding 'bogus'"):
        write_table(tmp_path / "out.csv", ["number", "text"], rows, encoding="bogus")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---- 7. a forged XLSX -----------------------------------------------------------------------

def forged_xlsx(path, rows: int, dimension: str):
    """A real XLSX whose sheet declares `dimension` (openpyxl pads each row to its width)."""
    book = Workbook()
    for i in range(rows):
        book.active.append([f"1380013{i:04d}", f"客户{i}"])
    book.save(path)
    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    items[sheet] = re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(),
                          items[sheet])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in items.items():
            target.writestr(name, data)
    return path


def test_a_forged_xlsx_dimension_is_ignored(tmp_path):
    path = forged_xlsx(tmp_path / "forged.xlsx", 50, "A1:XFD60")   # small: old code padded it
    table = read_table(path)
    assert len(table.rows) == 50
    assert max(len(cells) for _, cells in table.rows) == 2        # never 16384 padded cells


def test_xlsx_over_the_caps_or_broken_is_refused_in_one_line(tmp_path):
    wide = Workbook()
    wide.active.append(["13800138000"] + ["x"] * 300)
    wide.save(tmp_path / "wide.xlsx")
    with pytest.raises(PoolError, match="row 1 has a cell in column 301; at most 256 columns"):
        read_table(tmp_path / "wide.xlsx")
    many = forged_xlsx(tmp_path / "many.xlsx", 30, "A1:B30")
    with pytest.raises(PoolError, match="has more than 20 rows"):
        list(read_xlsx(many, max_rows=20))
    with pytest.raises(PoolError, match="has no sheet named 'nope' \\(sheets: Sheet\\)"):
        read_table(many, sheet="nope")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PoolError, match="cannot read .*broken.xlsx as an XLSX file"):
        read_table(tmp_path / "broken.xlsx")
    (tmp_path / "zh.csv").write_text("姓名,手机\n张三,13800138000\n", encoding="utf-8")
    with pytest.raises(PoolError, match="zh.csv is not ascii: byte 0 cannot be read"):
        read_table(tmp_path / "zh.csv", encoding="ascii")
    with pytest.raises(PoolError, match="unknown encoding 'bogus'"):
        read_table(tmp_path / "zh.csv", encoding="bogus")


# ---- 10. smaller gaps -----------------------------------------------------------------------

def test_search_wildcards_are_literal(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    book = AddressBook(spool.db)
    book.upsert(MOBILE, "张三")
    book.upsert(UNICOM, "100% 李四")
    assert [c.name for c in book.list(search="%")] == ["100% 李四"]
    assert book.list(search="_") == []
    spool.store_inbound(MOBILE, "打折 50%", sim="m1")
    spool.store_inbound(UNICOM, "hello", sim="m1")
    assert [r.text for r in history.search(spool, Query(text="%"))] == ["打折 50%"]
    spool.close()


# ---- 5. the one-daemon lock -----------------------------------------------------------------

async def test_a_second_daemon_through_a_symlinked_spool_is_refused(tmp_path):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=5) as bank:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = write_config(tmp_path / "a" / "pool.toml", bank.devices)
        (tmp_path / "b" / "spool.db").symlink_to(tmp_path / "a" / "spool.db")
        second = write_config(tmp_path / "b" / "pool.toml", bank.devices)
        daemon = await DaemonProcess(first).start()
        try:
            result = modempool_cli("run", config=second, timeout=60)
        finally:
            assert await daemon.stop() == 0
    assert result.returncode == 1
    assert "another modempool daemon is running" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---- 6. one port, two modems ----------------------------------------------------------------

def test_the_same_device_under_two_names_is_refused_in_the_config(tmp_path):
    device = tmp_path / "ttyUSB0"
    device.touch()
    (tmp_path / "by-id").symlink_to(device)
    path = tmp_path / "pool.toml"
    path.write_text(f'[[modem]]\nname = "m1"\nport = "{device}"\n\n'
                    f'[[modem]]\nname = "m2"\nport = "{tmp_path / "by-id"}"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}, line 7: [[modem]] #2 key 'port': '{tmp_path / 'by-id'}' is the same device as "
        f"the port of modem 'm1' ({device}); each modem needs its own port")


def test_the_claim_time_rule_for_each_kind_of_message(tmp_path):
    from dataclasses import replace

    from modempool.operator.optout import send_time_check

    spool = Spool(tmp_path / "spool.db")
    book = OptOutList(spool.db)
    direct_before = spool.enqueue(MOBILE, "queued before the opt-out")
    recurring = spool.enqueue(MOBILE, "生日快乐", client_id=f"job:1:2026-12-06:{MOBILE}")
    book.add(MOBILE, keyword="TD", source="reply")
    direct_after = replace(direct_before, created_at=direct_before.created_at.replace(year=2099))
    lenient = send_time_check(spool.db, Config.default())
    strict = send_time_check(spool.db, parse_config("[optout]\nblock_direct = true\n", Path("modempool.toml")))
    assert lenient(direct_before) is None                       # transactional: still goes out
    assert strict(direct_before).startswith("opted out at")     # block_direct: stopped
    assert strict(direct_after) is None                         # queued after: seen (or overridden)
    assert lenient(recurring).startswith("opted out at")        # recurring: never
    book.add_to_blacklist([MOBILE])
    assert lenient(direct_after).startswith("on the blacklist since")
    spool.close()
