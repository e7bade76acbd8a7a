"""One time format in every command: local time of `[pool] timezone` in tables and lines, ISO
8601 with that zone's offset in JSON, and times people type read in that zone. The commands run
as real `modempool` subprocesses whose own time zone (TZ=UTC) differs from the pool's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from modempool.spool import Spool

REPO = Path(__file__).resolve().parents[2]
MOMENT = datetime(2026, 12, 1, 1, 30, tzinfo=timezone.utc)   # 09:30 in Shanghai


def modempool(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TZ": "UTC"}   # the process's zone is not the pool's
    result = subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(site / "modempool.toml")],
                            capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    return result


def as_json(site: Path, *args: str):
    return json.loads(modempool(site, *args, "--json").stdout)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "modempool.toml").write_text(
        '[pool]\ntimezone = "Asia/Shanghai"\n[spool]\npath = "pool.db"\n'
        '[[modem]]\nname = "m1"\nport = "/dev/null"\n', encoding="utf-8")
    with Spool(tmp_path / "pool.db") as spool:
        spool.store_inbound("13800138000", "几点开会？", sim="m1", received_at=MOMENT)
        spool.enqueue("13900139000", "明早见", not_before=MOMENT)
    return tmp_path


def test_inbox_and_queue_show_pool_local_time_and_offset_json(site):
    assert "2026-12-01 09:30:00" in modempool(site, "inbox").stdout
    [received] = as_json(site, "inbox")
    assert received["received_at"] == "2026-12-01T09:30:00.000+08:00"
    assert "2026-12-01 09:30:00" in modempool(site, "queue").stdout
    [queued] = as_json(site, "queue")
    assert queued["not_before"] == "2026-12-01T09:30:00.000+08:00"
    assert queued["created_at"].endswith("+08:00")


def test_typed_times_are_read_in_the_pool_timezone(site):
    [message] = as_json(site, "send", "13700137000", "圣诞快乐", "--at", "2026-12-24 18:00")
    assert message["not_before"] == "2026-12-24T18:00:00.000+08:00"
    assert "not before 2026-12-24 18:00:00" in modempool(
        site, "send", "13700137001", "圣诞快乐", "--at", "2026-12-24 18:00").stdout
    later = as_json(site, "inbox", "--since", "2026-12-01 09:31")
    assert later == []
    assert len(as_json(site, "inbox", "--since", "2026-12-01 09:30")) == 1


def test_status_and_accounts_json_carry_the_offset(site):
    with Spool(site / "pool.db") as spool:
        spool.upsert_sim("m1", operator="China Mobile", state="up")
    status = as_json(site, "status")
    assert status["sims"][0]["updated_at"].endswith("+08:00")
    modempool(site, "accounts", "add", "erp", "--role", "sender")
    [account] = as_json(site, "accounts", "list")
    assert account["created_at"].endswith("+08:00")


def test_operator_commands_read_and_show_pool_time(site):
    found = as_json(site, "history", "search", "--since", "2026-12-01 09:30", "--direction", "in")
    assert [(row["direction"], row["time"]) for row in found] == [
        ("in", "2026-12-01T09:30:00.000+08:00")]
    assert as_json(site, "history", "search", "--since", "2026-12-01 09:31",
                   "--direction", "in") == []
    assert "2026-12-01 09:30:00" in modempool(site, "history", "search", "--direction", "in").stdout
    campaign = as_json(site, "campaign", "create", "会议", "--to", "13800138000,13900139000",
                       "--text", "明早开会", "--start", "2026-12-02 09:00", "--end", "2026-12-02 18:00")
    assert (campaign["start_at"], campaign["end_at"]) == (
        "2026-12-02T09:00:00.000+08:00", "2026-12-02T18:00:00.000+08:00")
    modempool(site, "optout", "add", "13700137000")
    [optout] = as_json(site, "optout", "list")
    assert optout["created_at"].endswith("+08:00")
    assert "+08:00" not in modempool(site, "optout", "list").stdout   # tables: local, no offset


def test_a_bad_time_is_a_usage_error_naming_the_option(site):
    result = subprocess.run([sys.executable, "-m", "cli", "campaign", "create", "x", "--to",
                             "13800138000", "--text", "hi", "--start", "next tuesday",
                             "--config", str(site / "modempool.toml")],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and "--start" in result.stderr
    assert "Traceback" not in result.stderr
