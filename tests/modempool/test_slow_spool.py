"""A database that stops answering without failing (a COMMIT waiting for a synchronous standby
that does not exist) is said in the daemon's log, and its answer after it (issue 18)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from modempool.dispatch.slow_spool import SAY_AGAIN_EVERY, SlowSpoolWatch
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool import Spool
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers

pytestmark = pytest.mark.timeout(300)  # a hang guard; the waits below fail sooner


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


async def test_a_call_unanswered_past_the_limit_is_said_then_its_answer(caplog):
    """Times are given to `look`: what is asserted is what the watch says of them, not how
    fast anything ran."""
    lane = SpoolLane(threads=1)
    release = threading.Event()
    watch = SlowSpoolWatch([lane, SpoolLane(threads=1)], "postgresql://pool@db1:5432/x",
                           after=10.0)
    caplog.set_level(logging.INFO, logger="modempool.dispatch.daemon")
    try:
        assert lane.oldest_pending() is None
        waiting = lane.submit(release.wait)
        start = lane.oldest_pending()
        assert start is not None
        watch.look(start + 9.0)
        assert not caplog.records  # not yet 10 s
        watch.look(start + 11.0)
        watch.look(start + 30.0)   # said once, not again within the minute
        watch.look(start + 12.0 + SAY_AGAIN_EVERY)
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 2, said
        assert said[0].startswith("the database at postgresql://pool@db1:5432/x has not "
                                  "answered for 11 s (a commit waiting for synchronous "
                                  "replication?"), said
        assert "has not answered for 72 s" in said[1], said
        release.set()
        await waiting
        assert lane.oldest_pending() is None
        watch.look(start + 80.0)
        watch.look(start + 81.0)   # the answer said once
        said = [r.getMessage() for r in caplog.records]
        assert said[2:] == ["the database at postgresql://pool@db1:5432/x answers again, "
                            "after 80 s"], said
        assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "INFO"]
    finally:
        release.set()
        lane.close()


def _set_standbys(cluster, names: str | None) -> None:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        if names is None:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        else:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        conn.execute("SELECT pg_reload_conf()")


async def test_a_commit_waiting_for_a_missing_standby_is_logged_and_its_end_too(
        tmp_path: Path, pg_cluster):
    """`synchronous_standby_names` names a standby that never connects: every COMMIT of the
    daemon's sessions (synchronous_commit on) waits, as on a promoted node that kept the
    setting. The daemon says so within `[spool] slow_after`, and when the setting is cleared
    the commits end, the daemon says the database answers again and sends what was queued."""
    plain = pg_cluster.new_schema()
    url = plain + quote(" -csynchronous_commit=on")  # the suite's cluster has it off
    config = tmp_path / "slow.toml"
    config.write_text("\n".join([
        "[spool]", f'url = "{url}"', "slow_after = 0.5", "",
        "[pool]", "silent_after = 1", "",   # a heartbeat (a commit) every sixth of a second
        "[simulator]", "modems = 1", ""]), encoding="utf-8")
    daemon = await DaemonProcess(config).start()
    try:
        _set_standbys(pg_cluster, "nobody")
        await daemon.wait_for_log("has not answered for")
        with Spool(plain) as spool:   # its commits do not wait
            [message] = spool.enqueue_many([{"to": "+8613800138000", "text": "after the wait"}])
            assert spool.get(message).state.value == "queued"
            _set_standbys(pg_cluster, None)
            await daemon.wait_for_log("answers again, after")
            await eventually(lambda: spool.get(message).state.value in ("sent", "delivered"),
                             what="the message queued meanwhile sent")
    finally:
        _set_standbys(pg_cluster, None)
    assert await daemon.stop() == 0
    output = daemon.output()
    assert "(a commit waiting for synchronous replication?" in output, output
    assert "Traceback" not in output, output
