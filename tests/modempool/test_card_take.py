"""A modem sends only once its SIM card is its own and the card's counts are read (issue 18: a
card's day quota holds across boxes). Until then it stands by: it says why in `status`, it does
not hold the daemon's READY back, and it still stores what it receives.

Real daemons (subprocesses) on simulated banks; the database failures are real: a DBA's session
holding a table lock while the daemon's role has a `lock_timeout` (a common setting).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from modempool.dispatch.liveness import new_run_owner
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (DaemonProcess, NotifySocket, eventually,
                                            kill_leftovers)

pytestmark = pytest.mark.timeout(300)

CARD = "89860012345678909999"
QUOTA = 3
TO = "+8613800138000"


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def _impatient(url: str) -> str:
    """`url` (a test schema's) for a role whose statements wait at most 1 s for a lock."""
    schema = url.rsplit("search_path%3D", 1)[1]
    return url.rsplit("&options=", 1)[0] + "&options=" + quote(
        f"-csearch_path={schema} -clock_timeout=1000")


def _config(path: Path, url: str, devices: list[str], per_day: dict[str, int]) -> Path:
    # a heartbeat (and a standing-by modem's next try) every second, not every 5 s: one
    # daemon on its own schema, whose liveness nobody else judges
    lines = ["[spool]", f'url = "{url}"', "", "[pool]", "silent_after = 6", ""]
    for index, device in enumerate(devices, 1):
        lines += ["[[modem]]", f'name = "b{index}"', f'port = "{device}"']
        if f"b{index}" in per_day:
            lines.append(f"per_day = {per_day[f'b{index}']}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Blocker:
    """A DBA's session holding a lock (`statement`, `{schema}` the spool's) until `release`."""

    def __init__(self, url: str, statement: str, params: tuple = ()) -> None:
        schema = url.rsplit("search_path%3D", 1)[1]
        self.conn = psycopg.connect(url)
        self.conn.execute(statement.format(schema=schema), params)

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def _dead_run() -> str:
    """The owner of a daemon run of this host whose process is gone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return new_run_owner(pid=gone.pid)


async def test_a_card_whose_counts_cannot_be_read_at_its_take_waits_and_keeps_its_day(
        tmp_path, pg_cluster):
    """Card X spent its day on another box. The database cannot write `sims` when b1 comes
    up, so b1 can neither record X in its row (which comes first since rev20b H1: the inbound
    dedupe keys by it) nor read X's counts: b1 stands by, and once the counts are read it
    sends nothing past the day. (On the old code b1 went up with the counts of
    its modem name, 0, and sent the three: the card's day 6 of 3.) The proof that b1 passed
    its messages by: b2's message, queued after them, is sent while they stay queued."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:
        spool.upsert_sim("other-box-x1", iccid=CARD)
        spool.count_sent("other-box-x1", QUOTA)
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=41,
                             iccids={"m1": CARD}) as bank:
        config = _config(tmp_path / "b.toml", _impatient(url), bank.devices, {"b1": QUOTA})
        lock = Blocker(url, "LOCK TABLE {schema}.sims IN SHARE ROW EXCLUSIVE MODE")
        try:
            daemon = await DaemonProcess(config).start(wait_ready=False)
            await daemon.wait_for_log("b1: could not record its SIM card; nothing it "
                                      "received is stored until it can; asking again")
        finally:
            lock.release()
        await daemon.wait_for_log("b1: up:")
        await daemon.wait_for_log("b2: up:")
        with Spool(url) as spool:
            over = spool.enqueue_many(
                [*({"to": TO, "text": f"over the day {i}", "sims": ["b1"]} for i in range(QUOTA)),
                 {"to": TO, "text": "behind them", "sims": ["b2"]}])
            behind = over.pop()
            await eventually(lambda: spool.get(behind).state.value in ("sent", "delivered"),
                             what="b2's message sent")
            left = [spool.get(m).state.value for m in over]
            card_day = spool.sent_counts("b1")[1]
        assert await daemon.stop() == 0
    assert [e for e in bank.network_log() if e["kind"] == "part" and e["modem"] == "m1"] == []
    assert left == ["queued"] * QUOTA
    assert card_day == QUOTA


async def test_a_database_that_cannot_take_a_card_stands_its_modem_by_and_the_daemon_is_ready(
        tmp_path, pg_cluster):
    """The card's take fails (its holder's row locked past the role's lock_timeout): the
    modem stands by with a note in `status` and systemd is told READY=1 (the unit is killed
    after 90 s of no READY, and restarted in a loop, otherwise). Once the database answers,
    the modem takes its card and sends."""
    url = pg_cluster.new_schema()
    with Spool(url) as spool:   # the card was a dead run's
        spool.card_holders.take(CARD, _dead_run(), "b1", lambda owner: True)
    async with (SimulatedBank(modems=1, directory=tmp_path / "bank", seed=42,
                              iccids={"m1": CARD}) as bank,
                NotifySocket(tmp_path / "notify.sock") as sock):
        config = _config(tmp_path / "b.toml", _impatient(url), bank.devices, {})
        lock = Blocker(url, "SELECT 1 FROM {schema}.sim_holders WHERE iccid = %s FOR UPDATE",
                       (CARD,))
        try:
            daemon = await DaemonProcess(config, env={"NOTIFY_SOCKET": str(sock.path)}).start(
                wait_ready=False)
            await eventually(lambda: "READY=1" in sock.received, what="READY=1")
            with Spool(url) as spool:
                sim = await eventually(lambda: (s := spool.sim("b1")) and s["state"] == "standby"
                                       and s, what="b1 standing by in the spool")
        finally:
            lock.release()
        assert "STATUS=pool ready: 0 of 1 modems up" in sock.received
        assert sim["last_error"] == "waiting for the database to take its SIM card"
        await daemon.wait_for_log("b1: up:")
        with Spool(url) as spool:
            message = spool.enqueue(TO, "once the card is taken")
            await eventually(lambda: spool.get(message.id).state.value in ("sent", "delivered"),
                             what="sent once the card is taken")
        assert await daemon.stop() == 0


async def test_a_modem_standing_by_stores_what_it_receives(tmp_path):
    """Two modems of one daemon report one ICCID: the one standing by stores an SMS sent to it
    (with a cloned card the network delivers to either clone: a 退订 there is honoured, not
    held in memory until the other modem lets the card go)."""
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=43,
                             iccids={"m1": CARD, "m2": CARD}) as bank:
        spool_path = tmp_path / "spool.db"
        config = tmp_path / "one.toml"
        config.write_text(f'[spool]\npath = "{spool_path}"\n\n' + "".join(
            f'[[modem]]\nname = "s{i}"\nport = "{device}"\n\n'
            for i, device in enumerate(bank.devices, 1)), encoding="utf-8")
        daemon = await DaemonProcess(config).start()
        standing = await eventually(
            lambda: re.search(r"modem\.(s\d): sends nothing: its SIM card", daemon.output()),
            what="one modem standing by")
        name = standing.group(1)
        await bank.inject("m" + name[1:], "+8613900139000", "退订")
        with Spool(spool_path) as spool:
            stored = await eventually(lambda: spool.inbound(), what="the SMS stored")
        assert await daemon.stop() == 0
    assert [(m["sim"], m["sender"], m["text"]) for m in stored] == [
        (name, "+8613900139000", "退订")]
