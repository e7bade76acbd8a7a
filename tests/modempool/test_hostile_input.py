"""Issue 12: hostile and broken input. One bad message never stops the bank, opt-outs are honoured
at send time, and a remote sender's SMS (sent through the simulator, as the network would) cannot
kill a forward command."""

from __future__ import annotations

import json
import shlex
import sqlite3
import sys

import pytest

from modempool.errors import UnsendableText
from modempool.operator.campaign_report import report
from modempool.operator.campaigns import Campaigns
from modempool.operator.optout import OptOutList
from modempool.spool import Spool
from tests.modempool.daemon_harness import eventually, network_messages
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
    summary = report(spool, campaign.id)["summary"]
    assert (summary["cancelled"], summary["stopped_at_send"]) == (1, 1)


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
    data = json.loads(out.read_text("utf-8"))
    assert (data["text"], data["env"]) == ("a\x00b 你好", "a\ufffdb 你好")
    assert spool.db.execute("SELECT outcome FROM forward_log").fetchall() == [("ok",)]
