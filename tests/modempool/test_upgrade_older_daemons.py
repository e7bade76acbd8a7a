"""An upgrade across a step that older daemons cannot survive (15: the hooks' marks leave
`inbound`'s columns) is refused while a daemon of the older version still runs on the spool:
one line naming it, the spool left at its version; `modempool spool upgrade
--despite-older-daemons` goes on; with the daemon stopped, any open upgrades. Both engines (a
real SQLite file, a real PostgreSQL cluster), through the CLI in subprocesses."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modempool.spool import Spool
from modempool.spool.daemons import run_owner, this_place
from modempool.spool.schema import SCHEMA_VERSION
from modempool.spool.upgrade_guard import OlderDaemonsRunning
from tests.modempool.daemon_harness import modempool_cli
from tests.modempool.spool_driver import as_version_14, as_version_19
from tests.modempool.test_inbound_hooks_table import _raw

SENDER = "+8613912345678"
#: A daemon on another host (another place): alive while its heartbeat is recent.
OLD_BOX = run_owner("old-box", 4242, "0e1sewhe", "a1b2c3")


def _version_14_with_daemons(target, now: datetime | None = None) -> int:
    """A spool at version 14 with one SMS pending and the daemon runs: OLD_BOX alive (beat 5 s
    before `now`), one stopped, one killed here (its pid gone), one silent elsewhere (beat 10
    min before). Returns the pending SMS's id."""
    now = now or datetime.now(timezone.utc)
    with Spool(target) as spool:
        pending = spool.store_inbound(SENDER, "退订", sim="m1", hooks_by=OLD_BOX)
        beats = {OLD_BOX: 5, run_owner("stopped-box", 11, "0e1sewhe", "000001"): 5,
                 run_owner("here", 4_000_000, this_place(), "000002"): 5,
                 run_owner("silent-box", 12, "0e1sewhe", "000003"): 600}
        for owner, age in beats.items():
            host, pid = owner.split(":")[:2]
            spool.daemons.beat(owner, host=host, pid=int(pid), started_at=now,
                               now=now - timedelta(seconds=age))
        spool.daemons.stopped(run_owner("stopped-box", 11, "0e1sewhe", "000001"))
        with spool.transaction() as conn:
            as_version_14(conn)
            conn.execute("PRAGMA user_version = 14" if spool.engine.name == "sqlite"
                         else "UPDATE modempool_schema SET version = 14")
    return pending.id


def _version(target) -> int:
    return _raw(target, "PRAGMA user_version" if not str(target).startswith("postgresql")
                else "SELECT version FROM modempool_schema")[0][0]


def _config(tmp_path: Path, target) -> Path:
    path = tmp_path / "modempool.toml"
    where = (f"url = {str(target)!r}" if str(target).startswith("postgresql")
             else f'path = "{target}"')
    path.write_text(f'[spool]\n{where}\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
                    encoding="utf-8")
    return path


def test_a_live_older_daemon_makes_the_upgrade_refuse_until_stopped_or_overridden(
        tmp_path, spool_target):
    """Opening refuses (the library's error; `status` and `spool upgrade` one line naming only
    the live run), the spool stays at 14 with its marks in `inbound`; `spool upgrade
    --despite-older-daemons` upgrades it, the mark carried over. The old code upgraded at the
    first open, breaking the older daemon."""
    now = datetime.now(timezone.utc)
    pending = _version_14_with_daemons(spool_target, now)
    with pytest.raises(OlderDaemonsRunning) as refused:
        Spool(spool_target)
    message = str(refused.value)
    # The beat's time exactly, and its age at least the 5 s set (more when the open comes late).
    beat = now - timedelta(seconds=5)
    assert f"old-box:4242 (last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC, " in message
    [age] = re.findall(r", (\d+) s ago\)", message)
    assert int(age) >= 5 and "\n" not in message
    assert not {"stopped-box", "here:", "silent-box"} & set(message.split())
    assert "Stop them first" in message and "--despite-older-daemons" in message
    config = _config(tmp_path, spool_target)
    for command in (("status",), ("spool", "upgrade")):
        shown = modempool_cli(*command, config=config)
        assert shown.returncode != 0 and "Traceback" not in shown.stderr
        [line] = shown.stderr.strip().splitlines()
        assert "old-box:4242" in line and "Stop them first" in line
    assert _version(spool_target) == 14
    assert _raw(spool_target, "SELECT id, hooks_next, hooks_owner FROM inbound") == [
        (pending, 0, OLD_BOX)]

    upgraded = modempool_cli("spool", "upgrade", "--despite-older-daemons", "--json",
                             config=config)
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["schema_version"] == SCHEMA_VERSION
    assert _version(spool_target) == SCHEMA_VERSION
    with Spool(spool_target) as spool:
        assert [(r["inbound_id"], r["owner"]) for r in spool.inbound_hooks.waiting()] == [
            (pending, OLD_BOX)]


def test_with_the_older_daemon_stopped_any_open_upgrades(spool_target):
    """The refusal lasts only while the older daemon runs: stopped (its stop recorded), the
    next open upgrades as before."""
    _version_14_with_daemons(spool_target)
    with pytest.raises(OlderDaemonsRunning):
        Spool(spool_target)
    stopped = datetime.now(timezone.utc).isoformat()
    if str(spool_target).startswith("postgresql"):
        import psycopg

        with psycopg.connect(str(spool_target)) as conn:
            conn.execute("UPDATE daemons SET stopped_at = %s WHERE owner = %s",
                         (stopped, OLD_BOX))
    else:
        import sqlite3

        conn = sqlite3.connect(spool_target)
        with conn:
            conn.execute("UPDATE daemons SET stopped_at = ? WHERE owner = ?", (stopped, OLD_BOX))
        conn.close()
    with Spool(spool_target) as spool:
        assert [w.count for w in spool.inbound_hooks.summary(3)] == [1, 0]
    assert _version(spool_target) == SCHEMA_VERSION


def test_a_live_version_19_daemon_makes_step_20_refuse(tmp_path, spool_target):
    """Step 20 (each write's card): a version-19 daemon still running would mark parts with no
    card (a new attempt keeping the earlier one's), which the ambiguity rule reads as another
    card's writes. The upgrade is refused in one line saying so, the spool left at 19 without
    the column; `--despite-older-daemons` upgrades it. The old code (only step 15 guarded)
    upgraded at the first open (rev21a M1)."""
    now = datetime.now(timezone.utc)
    sqlite = not str(spool_target).startswith("postgresql")
    with Spool(spool_target) as spool:
        spool.daemons.beat(OLD_BOX, host="old-box", pid=4242, started_at=now,
                           now=now - timedelta(seconds=5))
        with spool.transaction() as conn:
            as_version_19(conn, sqlite)
            conn.execute("PRAGMA user_version = 19" if sqlite
                         else "UPDATE modempool_schema SET version = 19")
    with pytest.raises(OlderDaemonsRunning) as refused:
        Spool(spool_target)
    message = str(refused.value)
    assert "(step 20)" in message and "old-box:4242" in message and "\n" not in message
    assert "write no card" in message and "can store no SMS" not in message
    assert _version(spool_target) == 19
    columns = ("SELECT name FROM pragma_table_info('parts')" if sqlite else
               "SELECT column_name FROM information_schema.columns WHERE table_name = 'parts' "
               "AND table_schema = current_schema()")
    assert "card" not in {row[0] for row in _raw(spool_target, columns)}
    config = _config(tmp_path, spool_target)
    shown = modempool_cli("spool", "upgrade", config=config)
    assert shown.returncode != 0 and "Traceback" not in shown.stderr
    [line] = shown.stderr.strip().splitlines()
    assert "(step 20)" in line and "write no card" in line
    upgraded = modempool_cli("spool", "upgrade", "--despite-older-daemons", "--json",
                             config=config)
    assert upgraded.returncode == 0, upgraded.stderr
    assert _version(spool_target) == SCHEMA_VERSION
    assert "card" in {row[0] for row in _raw(spool_target, columns)}
