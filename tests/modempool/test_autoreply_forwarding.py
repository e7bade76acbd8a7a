"""Forwarding: to numbers through the spool, and to a command (run_on_receive) in the background."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys

import pytest

from modempool.config import load_config
from modempool.operator.contacts import AddressBook
from modempool.operator.forwarding import drain, make_forward_handler


def write_config(tmp_path, spool: str, forward: str):
    path = tmp_path / "modempool.toml"
    path.write_text(f'[spool]\n{spool}\n[forward]\n' + forward, "utf-8")
    return load_config(path)


@pytest.fixture
def make(tmp_path, spool_setting):
    """make(forward settings) -> (spool, config), the spool on each engine (closed after)."""
    opened = []

    def make(forward: str):
        config = write_config(tmp_path, spool_setting, forward)
        opened.append(config.open_spool())
        return opened[-1], config
    yield make
    for spool in opened:
        spool.close()


def forward_log(spool):
    return [dict(zip(("target", "attempt", "outcome", "detail"), r)) for r in spool.db.execute(
        "SELECT target, attempt, outcome, detail FROM forward_log ORDER BY id").fetchall()]


async def test_forward_to_number_with_contact_name(make):
    spool, config = make('to = ["13900139000"]\n')
    AddressBook(spool.db).upsert("13800138000", "张三")
    handle = make_forward_handler(config)
    inbound = spool.store_inbound("13800138000", "明天见", sim="m1")
    assert await handle(spool, inbound) == []
    await handle(spool, inbound)  # handled twice (restart): still one forward
    (message,) = spool.list()
    assert (message.to, message.text) == ("+8613900139000", "[张三 +8613800138000] 明天见")
    # the forward target's own messages are not sent back to it
    await handle(spool, spool.store_inbound("13900139000", "ok", sim="m1"))
    assert len(spool.list()) == 1
    spool.close()


async def test_command_gets_json_on_stdin_and_gammu_variables(tmp_path, make):
    out = tmp_path / "got.json"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\n"
                      "data = json.load(sys.stdin)\n"
                      "data['env'] = [os.environ['SMS_1_NUMBER'], os.environ['SMS_1_TEXT']]\n"
                      f"open({str(out)!r}, 'w', encoding='utf-8').write(json.dumps(data))\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    spool, config = make(f"command = {json.dumps(command)}\n")
    AddressBook(spool.db).upsert("13800138000", "张三", groups=["家长"])
    handle = make_forward_handler(config)
    inbound = spool.store_inbound("13800138000", "收到 ✓", sim="m3")
    (task,) = await handle(spool, inbound)
    assert await asyncio.wait_for(task, 30) is True
    data = json.loads(out.read_text("utf-8"))
    assert {k: data[k] for k in ("id", "sender", "sim", "text", "name", "groups", "env")} == {
        "id": inbound.id, "sender": "+8613800138000", "sim": "m3", "text": "收到 ✓",
        "name": "张三", "groups": ["家长"], "env": ["+8613800138000", "收到 ✓"]}
    assert [r["outcome"] for r in forward_log(spool)] == ["ok"]
    spool.close()


async def test_failing_command_is_retried_then_given_up(make):
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.stderr.write(\"db down\"); sys.exit(3)'"
    spool, config = make(f"command = {json.dumps(command)}\nretries = 2\nretry_delay = 0.01\n")
    handle = make_forward_handler(config)
    (task,) = await handle(spool, spool.store_inbound("13800138000", "x", sim="m1"))
    assert await asyncio.wait_for(task, 30) is False
    log = forward_log(spool)
    assert [(r["attempt"], r["outcome"]) for r in log] == [(1, "failed"), (2, "failed"), (3, "failed"),
                                                           (3, "gave-up")]
    assert log[0]["detail"] == "exit status 3: db down"
    spool.close()


async def test_hanging_command_never_blocks_and_is_killed(make):
    spool, config = make('command = "sleep 60"\ntimeout = 0.3\nretries = 0\n')
    handle = make_forward_handler(config)
    (task,) = await handle(spool, spool.store_inbound("13800138000", "x", sim="m1"))
    assert not task.done()  # the handler returned while the command is still running
    await drain(timeout=30)
    assert task.done() and task.result() is False
    assert forward_log(spool)[0]["detail"] == "timed out after 0.3 s"
    spool.close()


async def test_missing_command_is_logged(make):
    spool, config = make('command = "/nonexistent/hook"\nretries = 0\n')
    handle = make_forward_handler(config)
    (task,) = await handle(spool, spool.store_inbound("13800138000", "x", sim="m1"))
    assert await task is False
    assert forward_log(spool)[0]["detail"].startswith("cannot start:")
    spool.close()


def test_bad_forward_number_is_a_config_error(tmp_path):
    from modempool.errors import ConfigError

    with pytest.raises(ConfigError, match=r"line 4: \[forward\] key 'to'"):
        write_config(tmp_path, 'path = "spool.db"', 'to = ["12"]\n')


def _noting_command(tmp_path, make):
    """(spool, config, file, command): a command that adds each SMS's text to the file, its
    spool's `forward_log` made."""
    from modempool.operator.db import ensure_schema
    from modempool.operator.forwarding import SCHEMA

    out = tmp_path / "seen.txt"
    script = tmp_path / "hook.py"
    script.write_text("import json, sys\n"
                      f"open({str(out)!r}, 'a', encoding='utf-8').write(json.load(sys.stdin)['text'] + '\\n')\n")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    spool, config = make(f"command = {json.dumps(command)}\n")
    ensure_schema(spool.db, SCHEMA)
    return spool, config, out, command


async def test_retries_cut_short_by_a_crash_resume_after_restart(tmp_path, make):
    spool, config, out, command = _noting_command(tmp_path, make)
    before = spool.store_inbound("13800138000", "before the crash", sim="m1")
    done = spool.store_inbound("13800138000", "already forwarded", sim="m1")
    spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, created_at)"
                     " VALUES (?, ?, 1, 'failed', 'x'), (?, ?, 1, 'ok', 'x')",
                     [before.id, command, done.id, command])
    handle = make_forward_handler(config)  # a new daemon process
    tasks = await handle(spool, spool.store_inbound("13900139000", "after the restart", sim="m1"))
    assert len(tasks) == 2 and all(await asyncio.gather(*tasks))
    assert sorted(out.read_text("utf-8").splitlines()) == ["after the restart", "before the crash"]
    assert len(await handle(spool, spool.store_inbound("13900139000", "next", sim="m1"))) == 1
    await drain(timeout=30)
    spool.close()


async def test_no_daemon_handler_runs_a_leftover_command_of_a_shared_spool(tmp_path, make):
    """The daemon's forward handler (`command=False`: the command is the SMS's own step)
    starts no command, for its SMS or for one cut short: two daemon runs on one spool, each
    at its first SMS after a start, ran a leftover without a mark (its last attempt failed:
    cut short before schema 15, or its step passed after a bug) both at once (audit20 L1).
    The durable step alone runs a command (test_forward_command_durable.py)."""
    spool, config, out, command = _noting_command(tmp_path, make)
    other, _ = make(f"command = {json.dumps(command)}\n")   # a second daemon, same spool
    old = spool.store_inbound("13800138000", "cut short before 15", sim="m1")
    marked = spool.store_inbound("13800138000", "cut short, its step pending", sim="m1",
                                 hooks_by="box:7:place-run")
    spool.db.execute("INSERT INTO forward_log (inbound_id, target, attempt, outcome, created_at)"
                     " VALUES (?, ?, 1, 'failed', 'x'), (?, ?, 1, 'failed', 'x')",
                     [old.id, command, marked.id, command])
    started = []
    for daemon in (spool, other):
        handle = make_forward_handler(config, command=False)   # each daemon's own
        started += await handle(daemon, daemon.store_inbound("13900139000", "the daemon's step",
                                                             sim="m1"))
    await drain(timeout=30)
    assert (started, out.read_text("utf-8").splitlines() if out.exists() else []) == ([], [])
    assert [r["outcome"] for r in forward_log(spool)] == ["failed", "failed"]


async def test_targets_added_while_running_are_forwarded_to_and_removed_ones_are_not(make):
    from modempool import Pool
    from modempool.errors import InvalidNumber, NotFound, PoolError

    spool, config = make('to = ["13900139000"]\n')
    pool = Pool(config, spool=spool)
    handle = make_forward_handler(config)   # made once, as the daemon does
    assert pool.forwarding.add("137 0013 7000") == "+8613700137000"
    with pytest.raises(PoolError, match="already a forwarding target") as twice:
        pool.forwarding.add("+8613900139000")   # the config's
    assert twice.value.code == "forward_exists"
    with pytest.raises(InvalidNumber):
        pool.forwarding.add("12ab")
    assert pool.forwarding.all() == ["+8613900139000", "+8613700137000"]
    await handle(spool, spool.store_inbound("13800138000", "第一条", sim="m1"))
    assert sorted(m.to for m in spool.list()) == ["+8613700137000", "+8613900139000"]
    pool.forwarding.remove("13700137000")
    with pytest.raises(NotFound, match="in the config file"):
        pool.forwarding.remove("13900139000")
    await handle(spool, spool.store_inbound("13800138000", "第二条", sim="m1"))
    assert [m.to for m in spool.list() if "第二条" in m.text] == ["+8613900139000"]
    spool.close()


async def test_a_commands_outcome_is_recorded_in_the_daemons_inbound_lane(tmp_path, pg_cluster):
    """On a database server the forward command's outcome is written by the daemon's inbound
    lane (its bounded threads, drained at shutdown), not by threads of asyncio's own."""
    import threading

    from modempool.config import load_config
    from modempool.dispatch.inbound import InboundStore
    from modempool.dispatch.spool_lane import INBOUND_THREADS, SpoolLane

    path = tmp_path / "modempool.toml"
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.stdin.read()'"
    path.write_text(f'[spool]\nurl = "{pg_cluster.new_schema()}"\n[forward]\n'
                    f"command = {json.dumps(command)}\n", "utf-8")
    config = load_config(path)
    spool = config.open_spool()
    lane = SpoolLane(threads=INBOUND_THREADS)
    store = InboundStore(spool, config, lane=lane)
    before = {thread.name for thread in threading.enumerate()}
    await store.run_hooks(spool.store_inbound("13800138000", "转发我", sim="m1"))
    await drain(timeout=30)
    await lane.drain()
    assert [entry["outcome"] for entry in forward_log(spool)] == ["ok"]
    others = {t.name for t in threading.enumerate()} - before
    assert not [name for name in others if not name.startswith("spool")], others
    lane.close()
    spool.close()


async def test_the_command_line_is_not_copied_into_the_spool(make):
    """A secret on the command line (`curl -u user:password ...`) is not stored: forward_log
    names the command by a digest, so every reader of the spool does not see the line."""
    secret = "s3cret-Pa55"
    command = f"{shlex.quote(sys.executable)} -c 'import sys' --user=admin:{secret}"
    spool, config = make(f"command = {json.dumps(command)}\n")
    handle = make_forward_handler(config)
    (task,) = await handle(spool, spool.store_inbound("13800138000", "hi", sim="m1"))
    assert await asyncio.wait_for(task, 30) is True
    (row,) = forward_log(spool)
    assert row["outcome"] == "ok"
    assert secret not in row["target"] and row["target"].startswith("command sha256:")
    spool.close()
