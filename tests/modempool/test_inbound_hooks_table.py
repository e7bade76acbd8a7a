"""The inbound hooks' marks in a table of their own (schema 15): the upgrade from version 14
carries each pending mark over (its step and its run) and leaves `inbound` without the old
columns, on both engines; `status` counts the SMS whose hooks wait and the oldest's age."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

from modempool.spool import Spool
from modempool.spool.schema import SCHEMA_VERSION
from tests.modempool.spool_driver import as_version_14

SENDER = "+8613912345678"
OTHER = "+8613812345678"


def _version(spool: Spool) -> int:
    return spool.rows("PRAGMA user_version" if spool.engine.name == "sqlite"
                      else "SELECT version FROM modempool_schema")[0][0]


def _columns(spool: Spool) -> set[str]:
    if spool.engine.name == "sqlite":
        return {row[1] for row in spool.rows("PRAGMA table_info(inbound)")}
    return {row[0] for row in spool.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'inbound' "
        "AND table_schema = current_schema()")}


def _raw(target, sql: str) -> list[tuple]:
    """Rows read without modempool (which would upgrade the spool first)."""
    if str(target).startswith("postgresql://"):
        import psycopg

        with psycopg.connect(str(target)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    conn = sqlite3.connect(target)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_version_14_spool_keeps_its_pending_hooks_through_the_upgrade(spool_target):
    with Spool(spool_target) as spool:
        done = spool.store_inbound(SENDER, "你好", sim="m1", hooks_by="box:7:place-run")
        opt_out = spool.store_inbound(SENDER, "退订", sim="m1", hooks_by="box:7:place-run")
        halfway = spool.store_inbound(OTHER, "营业时间", sim="m2", hooks_by="box:8:place-run")
        spool.store_inbound(OTHER, "no daemon's", sim="m2")
        with spool.transaction() as conn:
            assert spool.inbound_hooks.advance(conn, done.id, 0, 3, 3, "box:7:place-run")
            assert spool.inbound_hooks.advance(conn, halfway.id, 0, 2, 3, "box:8:place-run")
            as_version_14(conn)
            conn.execute("PRAGMA user_version = 14" if spool.engine.name == "sqlite"
                         else "UPDATE modempool_schema SET version = 14")
    assert _raw(spool_target, "SELECT id, hooks_next, hooks_owner FROM inbound "
                "WHERE hooks_next IS NOT NULL ORDER BY id") == [
        (opt_out.id, 0, "box:7:place-run"), (halfway.id, 2, "box:8:place-run")]
    # opened by this modempool: upgraded by step 15
    with Spool(spool_target) as spool:
        assert _version(spool) == SCHEMA_VERSION >= 15
        assert not {"hooks_next", "hooks_owner"} & _columns(spool)
        assert spool.inbound_hooks.waiting() == [
            {"inbound_id": opt_out.id, "sender": SENDER, "next_hook": 0,
             "owner": "box:7:place-run"},
            {"inbound_id": halfway.id, "sender": OTHER, "next_hook": 2,
             "owner": "box:8:place-run"}]
        [pending] = spool.inbound_hooks.pending("box:8:place-run", OTHER)
        assert (pending.id, pending.text, pending.hooks_next) == (halfway.id, "营业时间", 2)
        assert [m.hooks_next for m in spool.inbound.messages()] == [None] * 4
        assert len(spool.inbound.messages()) == 4


def test_the_summary_counts_the_sms_waiting_and_the_oldest_s_age(spool_target):
    """The SMS at their handlers and those at their forward command (past `handlers` steps)
    apart, each with the oldest's time of storing."""
    with Spool(spool_target) as spool:
        empty, no_command = spool.inbound_hooks.summary(3)
        assert (empty.count, empty.oldest_stored_at) == (0, None) == (
            no_command.count, no_command.oldest_stored_at)
        assert empty.age(datetime.now(timezone.utc)) is None
        first = spool.store_inbound(SENDER, "一", sim="m1", hooks_by="run-a")
        spool.store_inbound(OTHER, "二", sim="m1", hooks_by="run-b")
        spool.store_inbound(OTHER, "三", sim="m1")   # no hooks pending
        summary, commands = spool.inbound_hooks.summary(3)
        [stored_at] = [row[0] for row in spool.rows(
            "SELECT stored_at FROM inbound WHERE id = ?", (first.id,))]
        assert summary.count == 2 and summary.oldest_stored_at.isoformat().startswith(
            stored_at[:19])
        assert commands.count == 0
        later = summary.oldest_stored_at + timedelta(seconds=90)
        assert summary.age(later) == 90.0
        with spool.transaction() as conn:   # its handlers done: at its forward command
            assert spool.inbound_hooks.advance(conn, first.id, 0, 3, 4, "run-a")
        summary, commands = spool.inbound_hooks.summary(3)
        assert summary.count == 1 and commands.count == 1
        assert commands.oldest_stored_at.isoformat().startswith(stored_at[:19])
        with spool.transaction() as conn:
            assert spool.inbound_hooks.advance(conn, first.id, 3, 4, 4, "run-a")
        assert [w.count for w in spool.inbound_hooks.summary(3)] == [1, 0]


def test_the_daemon_s_handlers_are_the_steps_status_counts_as_hooks(config):
    from modempool.config import load_config
    from modempool.operator.hooks import HANDLER_STEPS, inbound_handlers

    assert len(inbound_handlers(load_config(config), command=False)) == HANDLER_STEPS


def _backdated(spool: Spool, inbound_id: int, minutes: int) -> None:
    moment = (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()
    with spool.transaction() as conn:
        conn.execute("UPDATE inbound SET stored_at = ? WHERE id = ?", (moment, inbound_id))


def test_status_shows_the_sms_whose_hooks_wait_at_the_front_door_and_in_the_cli(config):
    """`Pool.status` (the front door) counts them with the oldest's age; `modempool status`
    prints one line, and its JSON both fields. No line while none waits."""
    from modempool import Pool
    from tests.modempool.daemon_harness import modempool_cli

    assert "hooks pending" not in modempool_cli("status", config=config).stdout
    with Spool(config.parent / "pool.db") as spool:
        old = spool.store_inbound(SENDER, "退订", sim="m1", hooks_by="box:7:place-run")
        spool.store_inbound(OTHER, "营业时间", sim="m1", hooks_by="box:7:place-run")
        spool.store_inbound(OTHER, "done", sim="m1")
        _backdated(spool, old.id, 10)
    with Pool.open(config) as pool:
        status = pool.status()
    assert status.hooks_pending == 2 and 600 <= status.hooks_oldest_age < 900
    assert status.to_dict()["hooks_pending"] == 2
    shown = modempool_cli("status", config=config)
    assert shown.returncode == 0, shown.stderr
    assert ("hooks pending for 2 received SMS (opt-out, auto-reply, forwarding), the oldest "
            "stored 10 min ago") in shown.stdout
    data = json.loads(modempool_cli("status", "--json", config=config).stdout)
    assert data["hooks_pending"] == 2 and 600 <= data["hooks_oldest_age"] < 900
    assert data["commands_pending"] == 0 and data["commands_oldest_age"] is None


def test_status_tells_forward_commands_running_from_hooks_held_up(config):
    """A healthy bank: one SMS at its forward command for 10 minutes (a slow endpoint,
    retrying), one just stored at its handlers. `status` reports no hooks held up (no
    alarm), one line on the command; JSON both counts. The old code counted both as hooks
    pending and printed the alarm line."""
    from modempool import Pool
    from tests.modempool.daemon_harness import modempool_cli

    with Spool(config.parent / "pool.db") as spool:
        forwarding = spool.store_inbound(SENDER, "转发我", sim="m1", hooks_by="box:7:place-run")
        with spool.transaction() as conn:
            assert spool.inbound_hooks.advance(conn, forwarding.id, 0, 3, 4, "box:7:place-run")
        _backdated(spool, forwarding.id, 10)
        spool.store_inbound(OTHER, "营业时间", sim="m1", hooks_by="box:7:place-run")
    with Pool.open(config) as pool:
        status = pool.status()
    assert (status.hooks_pending, status.commands_pending) == (1, 1)
    assert not status.hooks_late and status.commands_late
    shown = modempool_cli("status", config=config)
    assert shown.returncode == 0, shown.stderr
    assert "hooks pending" not in shown.stdout
    assert ("forward command running or retrying for 1 received SMS, the oldest stored 10 min "
            "ago") in shown.stdout
    data = json.loads(modempool_cli("status", "--json", config=config).stdout)
    assert (data["hooks_pending"], data["commands_pending"]) == (1, 1)
    assert 600 <= data["commands_oldest_age"] < 900 and data["hooks_oldest_age"] < 600
