"""The spool commands through real `modempool` subprocesses on a real spool file."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from modempool.spool import Message, MessageState, Spool
from tests.modempool.conftest import ONE_MODEM_CONFIG
from tests.modempool.daemon_harness import modempool_cli as modempool
from tests.modempool.spool_driver import claim_next


def queue_json(config: Path) -> list[dict]:
    result = modempool("queue", "--json", config=config)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_send_then_queue_json(config):
    sent = modempool("send", "13800138000", "+86 139 0013 9000", "你好，世界", config=config)
    assert sent.returncode == 0, sent.stderr
    rows = queue_json(config)
    assert [(r["to"], r["text"], r["state"], r["sim"], r["attempts"]) for r in rows] == [
        ("+8613800138000", "你好，世界", "queued", None, 0),
        ("+8613900139000", "你好，世界", "queued", None, 0),
    ]
    assert all(isinstance(r["id"], int) for r in rows)
    assert (config.parent / "pool.db").exists()  # path relative to the config file


def test_send_json_priority_schedule_and_client_id(config):
    args = ["send", "13800138000", "hello", "--json", "--priority", "5", "--at", "+1h",
            "--client-id", "abc-1"]
    first = modempool(*args, config=config)
    assert first.returncode == 0, first.stderr
    [message] = json.loads(first.stdout)
    assert message["priority"] == 5 and message["not_before"] and message["client_id"] == "abc-1"
    again = modempool(*args, config=config)
    assert json.loads(again.stdout)[0]["id"] == message["id"]
    assert len(queue_json(config)) == 1


def test_text_from_stdin_and_file(config, tmp_path):
    assert modempool("send", "13800138000", "-", config=config, stdin="来自标准输入\n").returncode == 0
    text_file = tmp_path / "text.txt"
    text_file.write_text("line one\nline two", encoding="utf-8")
    assert modempool("send", "13800138001", "--file", str(text_file), config=config).returncode == 0
    assert [r["text"] for r in queue_json(config)] == ["来自标准输入", "line one\nline two"]


def test_bad_number_fails_and_queues_nothing(config):
    result = modempool("send", "13800138000", "12345", "hi", config=config)
    assert result.returncode != 0
    assert "12345" in result.stderr and "nothing was queued" in result.stderr
    assert queue_json(config) == []


def test_bad_config_names_file_line_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(ONE_MODEM_CONFIG + 'per_day = "many"\n', encoding="utf-8")
    result = modempool("queue", config=path)
    assert result.returncode != 0
    assert str(path) in result.stderr and "line 7" in result.stderr and "per_day" in result.stderr


def test_cancel_and_retry(config):
    with Spool(config.parent / "pool.db") as spool:
        first, second = spool.enqueue_many([{"to": "13800138000", "text": "x"},
                                            {"to": "13800138001", "text": "y"}])
    cancelled = modempool("cancel", str(first), config=config)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    again = modempool("cancel", str(first), "999", config=config)
    assert again.returncode != 0  # already cancelled, and no such message
    assert "only queued" in again.stderr and "999" in again.stderr
    assert modempool("retry", str(second), config=config).returncode != 0  # still queued
    with Spool(config.parent / "pool.db") as spool:
        claim_next(spool, "m1", "test", 60)
        spool.mark_ambiguous(second, "modem went silent")
    retried = modempool("retry", str(second), config=config)
    assert retried.returncode == 0, retried.stderr
    assert "sent again" in retried.stderr  # the user is told what retrying an ambiguous one means
    with Spool(config.parent / "pool.db") as spool:
        assert [m.state for m in spool.list()] == [MessageState.CANCELLED, MessageState.QUEUED]


def test_queue_state_filter_and_table(config):
    with Spool(config.parent / "pool.db") as spool:
        spool.enqueue_many([{"to": "13800138000", "text": "x"}, {"to": "13800138001", "text": "y"}])
        spool.cancel(1)
    assert [r["id"] for r in queue_json_state(config, "cancelled")] == [1]
    table = modempool("queue", config=config)
    assert table.returncode == 0 and "+8613800138001" in table.stdout and "cancelled" in table.stdout


def queue_json_state(config: Path, state: str) -> list[dict]:
    result = modempool("queue", "--state", state, "--json", config=config)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def send_while_a_dispatcher_settles(config: Path, settle: Callable[[Spool, Message], None],
                                    *args: str) -> subprocess.CompletedProcess:
    """`modempool send ARGS` while a thread stands in for the daemon: it claims the message and
    lets `settle` decide how it ends."""
    spool_path = config.parent / "pool.db"
    Spool(spool_path).close()  # create the file so the thread can poll it
    stop = threading.Event()

    def fake_dispatcher() -> None:
        with Spool(spool_path) as spool:
            while not stop.is_set():
                message = claim_next(spool, "m1", "test", 60)
                if message is not None:
                    settle(spool, message)
                    return
                stop.wait(0.02)

    worker = threading.Thread(target=fake_dispatcher)
    worker.start()
    try:
        return modempool("send", *args, config=config)
    finally:
        stop.set()
        worker.join()


def test_send_wait_reports_the_final_state(config):
    def fail(spool: Spool, message: Message) -> None:
        spool.mark_failed(message.id, "+CMS ERROR: 21 (short message transfer rejected)")

    result = send_while_a_dispatcher_settles(config, fail, "13800138000", "hi", "--wait",
                                             "--timeout", "50")
    assert result.returncode == 1
    assert "failed" in result.stdout and "CMS ERROR: 21" in result.stdout


def test_send_wait_succeeds_when_sent(config):
    def send(spool: Spool, message: Message) -> None:
        spool.mark_part_writing(message.id, 1, 1)
        spool.mark_part_sent(message.id, 1, None, 12)
        spool.mark_sent(message.id)

    result = send_while_a_dispatcher_settles(config, send, "13800138000", "hi", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["state"] == "sent"


def test_send_wait_times_out(config):
    result = modempool("send", "13800138000", "hi", "--wait", "--timeout", "0.2", config=config)
    assert result.returncode == 3 and "timed out" in result.stderr
    assert queue_json(config)[0]["state"] == "queued"  # nothing lost


def test_time_options_are_read_as_local_time():
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from modempool.when import InvalidTime, parse_when

    now = datetime.now().astimezone()
    in_ten = parse_when("+10m")
    assert timedelta(minutes=9) < in_ten - now < timedelta(minutes=11)
    clock = parse_when("07:30")
    assert (clock.hour, clock.minute) == (7, 30) and now < clock <= now + timedelta(days=1)
    last = parse_when("07:30", past=True)
    assert now - timedelta(days=1) <= last <= now and (last.hour, last.minute) == (7, 30)
    exact = parse_when("2030-01-02 03:04")
    assert exact.tzinfo is not None and (exact.year, exact.hour, exact.minute) == (2030, 3, 4)
    shanghai = parse_when("2030-01-02 03:04", ZoneInfo("Asia/Shanghai"))   # [pool] timezone
    assert shanghai.utcoffset() == timedelta(hours=8)
    with pytest.raises(InvalidTime):
        parse_when("tomorrowish")


def test_bad_time_option_is_a_usage_error(config):
    result = modempool("send", "13800138000", "hi", "--at", "soon", config=config)
    assert result.returncode == 2 and "--at" in result.stderr
    assert queue_json(config) == []


def test_inbox_and_status(config):
    with Spool(config.parent / "pool.db") as spool:
        spool.store_inbound("13800138000", "回复 TD", sim="m1")
        spool.upsert_sim("m1", operator="China Mobile", state="up", signal=-70)
        spool.count_sent("m1", 3)
        spool.enqueue("13900139000", "waiting")
    inbox = modempool("inbox", "--json", config=config)
    assert inbox.returncode == 0, inbox.stderr
    [row] = json.loads(inbox.stdout)
    assert (row["sender"], row["text"], row["sim"]) == ("+8613800138000", "回复 TD", "m1")
    table = modempool("inbox", "--since", "-1h", "--from", "138 0013 8000", config=config).stdout
    assert "回复 TD" in table
    assert "回复 TD" not in modempool("inbox", "--from", "13900139000", config=config).stdout
    status = modempool("status", "--json", config=config)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["queue_depth"] == 1
    [sim] = data["sims"]
    assert (sim["name"], sim["operator"], sim["sent_today"]) == ("m1", "China Mobile", 3)
    assert (sim["state"], sim["last_state"]) == ("unknown", "up")  # no daemon runs: not news
    assert "China Mobile" in modempool("status", config=config).stdout


def test_init_writes_a_config_the_other_commands_accept(tmp_path):
    target = tmp_path / "etc" / "modempool.toml"
    written = modempool("init", config=target)
    assert written.returncode == 0, written.stderr
    assert "[[modem]]" in target.read_text(encoding="utf-8")
    assert modempool("init", config=target).returncode != 0  # no silent overwrite
    assert modempool("init", "--force", config=target).returncode == 0
    assert modempool("send", "13800138000", "hi", config=target).returncode == 0
    assert MessageState(queue_json(target)[0]["state"]) is MessageState.QUEUED
    assert (tmp_path / "etc" / "modempool.db").exists()
