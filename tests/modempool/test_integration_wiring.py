"""The wiring between the pool and the operator features, through real subprocesses:
the daemon runs recurring jobs and lets forward commands finish at shutdown, a message no SIM may
carry fails with its reason, `send` honours the blacklist/opt-outs, `inbox` names the senders and
`status` shows campaigns."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from modempool.operator.campaigns import Campaigns
from modempool.config import load_config
from modempool.operator.contacts import AddressBook, Selection
from modempool.operator.optout import OptOutList
from modempool.operator.recurring import Jobs
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (REPO, DaemonProcess, eventually, modempool_cli,
                                            network_messages, write_config)

pytestmark = pytest.mark.timeout(90)

FORWARD_SCRIPT = """\
import json, pathlib, sys, time
message = json.load(sys.stdin)
out = pathlib.Path(sys.argv[1])
(out / f"started-{message['id']}").write_text(message["text"])
time.sleep(2)   # a slow CRM: still running when the daemon is told to stop
(out / f"done-{message['id']}").write_text(message["text"])
"""


async def acli(*args: str, config: Path) -> tuple[int, str, str]:
    """The CLI without blocking the event loop that serves the simulated bank."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args, "--config", str(config), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_daemon_runs_jobs_fails_unroutable_and_drains_forwards(tmp_path):
    script = tmp_path / "crm.py"
    script.write_text(FORWARD_SCRIPT, encoding="utf-8")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(tmp_path))}"
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=5) as bank:
        config_path = write_config(
            tmp_path / "pool.toml", bank.devices,
            modems={"m2": {"allow_prefixes": ["+86138"]}},
            extra=f"\n[forward]\ncommand = {json.dumps(command)}\nretries = 0\n")
        spool = load_config(config_path).open_spool()
        AddressBook(spool.db).upsert("+8613800138000", "张三")
        # A daily job due since midnight that has not run today: the daemon queues it at start.
        yesterday = datetime.now().astimezone() - timedelta(days=1)
        job = Jobs(spool.db).add("值班提醒", "daily", "{name}，今天由您值班", at="00:00",
                                 numbers=("13800138000",), now=yesterday)
        daemon = await DaemonProcess(config_path).start()
        try:
            greeting = f"job:{job.id}:{date.today().isoformat()}:+8613800138000"
            await eventually(lambda: (m := spool.get_by_client_id(greeting)) is not None
                             and m.state.value in ("sent", "delivered"), what="the job's message")
            assert [(m["to"], m["text"]) for m in network_messages(bank)] == [
                ("+8613800138000", "张三，今天由您值班")]
            assert Jobs(spool.db).get(job.id).last_run == date.today().isoformat()
            assert spool.db.execute("SELECT COUNT(*) FROM events WHERE kind = 'sim-up'").fetchone()[0] == 2

            # A SIM that is not in the config: refused at once, nothing queued.
            code, out, err = await acli("send", "--wait", "--timeout", "30", "--sim", "m9",
                                        "13800138000", "去哪儿", config=config_path)
            assert code == 1, out + err
            assert "no modem named m9 in" in err and "(configured: m1, m2)" in err
            assert "nothing was queued" in err
            assert not [m for m in spool.list() if m.text == "去哪儿"]
            # No SIM may carry this one: `send --wait` says why and exits 1, nothing goes out.
            code, out, _ = await acli("send", "--wait", "--timeout", "30", "--sim", "m2",
                                      "13012345678", "联通号码", config=config_path)
            assert code == 1
            assert "failed (+8613012345678 is not an allowed destination of SIM m2" in out
            assert len(network_messages(bank)) == 1

            # A received SMS starts the slow forward command; a stop waits for it to finish.
            await bank.inject("m1", "+8613900139000", "请回电")
            await eventually(lambda: list(tmp_path.glob("started-*")), what="the command")
            assert await daemon.stop() == 0
            outcomes = spool.db.execute("SELECT outcome FROM forward_log").fetchall()
            assert [r[0] for r in outcomes] == ["ok"]
            assert [p.read_text() for p in tmp_path.glob("done-*")] == ["请回电"]
        finally:
            await daemon.kill()
            spool.close()


@pytest.fixture
def config(config: Path) -> Path:
    """The shared one-modem config, with `send` refusing opted-out numbers too."""
    config.write_text(config.read_text("utf-8") + "\n[optout]\nblock_direct = true\n", "utf-8")
    return config


def test_send_refuses_blacklisted_and_opted_out_numbers(config):
    spool = load_config(config).open_spool()
    OptOutList(spool.db).add("13800138000", keyword="退订")
    OptOutList(spool.db).add_to_blacklist(["13900139000"], "complained")
    refused = modempool_cli("send", "13700137000", "13800138000", "13900139000", "通知", config=config)
    assert refused.returncode == 1
    assert ("+8613800138000: number has opted out and [optout] block_direct is set" in refused.stderr
            and "13900139000: number is on the blacklist; nothing was queued" in refused.stderr)
    assert spool.list() == []                       # not even the allowed number
    assert modempool_cli("send", "--to-opted-out", "13800138000", "航班变更通知", config=config).returncode == 0
    blacklisted = modempool_cli("send", "--to-opted-out", "13900139000", "通知", config=config)
    assert blacklisted.returncode == 1 and "blacklist" in blacklisted.stderr
    assert [(m.to, m.text) for m in spool.list()] == [("+8613800138000", "航班变更通知")]
    spool.close()


def test_inbox_names_senders_and_status_shows_campaigns(config):
    spool = load_config(config).open_spool()
    book = AddressBook(spool.db)
    book.upsert("13800138000", "张三", groups=["家长", "教师"])
    book.upsert("13700137000", "李四", fields={"班级": "一班"}, groups=["家长"])
    spool.store_inbound("+8613800138000", "收到", sim="m1")
    spool.store_inbound("+8613600136000", "你是谁", sim="m1")
    campaigns = Campaigns(spool)
    created = campaigns.create("家长会", "{name}您好", groups=Selection(("家长",)), kind="notice")
    campaigns.start(created.id)
    spool.close()

    inbox = json.loads(modempool_cli("inbox", "--json", config=config).stdout)
    assert [(r["sender"], r["name"], r["groups"]) for r in inbox] == [
        ("+8613800138000", "张三", ["家长", "教师"]), ("+8613600136000", "", [])]
    table = modempool_cli("inbox", config=config).stdout
    assert "张三" in table and "家长, 教师" in table

    status = json.loads(modempool_cli("status", "--json", config=config).stdout)
    [progress] = status["campaigns"]
    assert (progress["name"], progress["state"], progress["total"], progress["pending"]) == (
        "家长会", "running", 2, 2)
    human = modempool_cli("status", config=config).stdout
    assert "1 campaign(s) running or paused" in human and "家长会" in human and "0/2" in human
