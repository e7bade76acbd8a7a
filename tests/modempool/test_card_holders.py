"""A SIM card (ICCID) is served by one live daemon, and in it by one modem, at a time (issue 18:
"two hosts cannot together exceed a SIM's daily quota"). The quota a daemon decides in its
memory is then the card's whole day: what it read when it took the card, and what it sent since.

The spool's rule on both engines; then real daemons (subprocesses) on simulated banks whose
modems report one ICCID (a cloned card): two daemons sharing a real PostgreSQL cluster, and two
modems of one daemon on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import (REPO, DaemonProcess, eventually, kill_leftovers,
                                            sent_or_delivered_count)
from tests.modempool.spool_driver import before_process_start, schema_version, set_schema_version

pytestmark = pytest.mark.timeout(300)

CARD = "89860012345678901234"
IMSI = "460001234567890"
A, B = "box-a:101:0000aaaa-r1", "box-b:202:0000bbbb-r2"


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def test_a_card_is_held_by_one_daemon_until_it_is_dead_or_lets_go(spool_target):
    alive = lambda owner: False  # noqa: E731
    with Spool(spool_target) as spool:
        holders = spool.card_holders
        assert holders.take(CARD, A, "a1", alive) is None          # free: a's now
        held = holders.take(CARD, B, "b1", alive)                  # a lives: refused
        assert (held.owner, held.modem, held.shown) == (A, "a1", "box-a:101")
        assert holders.take(CARD, A, "a1", alive) is None          # a's already
        assert holders.take(CARD, B, "b1", lambda owner: owner == A) is None  # a dead: b's
        assert holders.holders([CARD, "other"])[CARD].owner == B
        taken = [e for e in spool.events() if e["kind"] == "sim-card-taken-over"]
        assert [(e["sim"], json.loads(e["detail"])) for e in taken] == [
            ("b1", {"iccid": CARD, "from": "box-a:101", "modem": "a1"})]
        assert holders.take(CARD, A, "a1", alive).owner == B       # and never back while b lives
        assert holders.take(CARD, B, "b2", alive) is None          # b's own other modem: b knows
        assert holders.let_go(A) == 0
        assert holders.let_go(B, CARD) == 1
        assert holders.take(CARD, A, "a1", alive) is None          # let go: free again
        assert holders.let_go(A) == 1 and holders() == []


def test_a_version_15_spool_is_upgraded_with_no_card_held(spool_target):
    """Schema step 16 on a version 15 spool (both engines): the holders' table, empty."""
    from modempool.spool.schema import SCHEMA_VERSION

    with Spool(spool_target) as spool:
        with spool.engine.tx() as conn:
            conn.execute("DROP TABLE sim_holders")
            before_process_start(conn)   # and step 17
            set_schema_version(spool, conn, 15)
    with Spool(spool_target) as spool:
        assert schema_version(spool) == SCHEMA_VERSION >= 16
        assert spool.card_holders() == []
        assert spool.card_holders.take(CARD, A, "a1", lambda owner: False) is None


def _config(path: Path, spool: str, prefix: str, devices: list[str], per_day: int | None,
            ) -> Path:
    lines = ["[spool]", spool, "", "[pool]", "lease_seconds = 2", "silent_after = 3", "",
             "[retry]", "backoff = 0.2", "backoff_max = 1.0", ""]
    for device in devices:
        lines += ["[[modem]]", f'name = "{prefix}{Path(device).name[1:]}"', f'port = "{device}"']
        if per_day is not None:
            lines.append(f"per_day = {per_day}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _parts(bank: SimulatedBank, modem: str) -> list[dict]:
    return [e for e in bank.network_log() if e["kind"] == "part" and e["modem"] == modem]


async def _status(config: Path) -> dict[str, dict]:
    """`modempool status --json`'s SIMs by name (a subprocess: the banks keep turning)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "status", "--json", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"})
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return {sim["name"]: sim for sim in json.loads(out)["sims"]}


@contextlib.asynccontextmanager
async def banks_sharing_a_card(tmp_path: Path, url: str, *, modems_b: int, per_day: int | None,
                               seed: int) -> AsyncIterator[tuple[Any, ...]]:
    """Bank a (one modem) and bank b, whose first modem holds a clone of a's card, with a
    config for a daemon on each sharing `url`: (bank_a, bank_b, config_a, config_b, card)."""
    async with SimulatedBank(modems=1, directory=tmp_path / "a", seed=seed) as bank_a:
        card = bank_a.modems[0].iccid
        async with SimulatedBank(modems=modems_b, directory=tmp_path / "b", seed=seed + 1,
                                 iccids={"m1": card}) as bank_b:
            yield (bank_a, bank_b,
                   _config(tmp_path / "a.toml", f'url = "{url}"', "a", bank_a.devices, per_day),
                   _config(tmp_path / "b.toml", f'url = "{url}"', "b", bank_b.devices, per_day),
                   card)


async def a_sends_two_then_stalls(bank_a: SimulatedBank) -> None:
    """Bank a's modem seen sending (two parts out), then each send it starts takes minutes:
    however slowly the machine then brings daemon b up and reads its status, a has used at
    most four parts of the card's day when it is killed (the two, one already on its way, one
    held), leaving b the rest. At 1 s a part alone, a loaded machine let a spend the whole day
    first (6 < 6 failed; or its last part, on its way at the kill, filled the day and b never
    sent)."""
    await eventually(lambda: len(_parts(bank_a, "m1")) >= 2, what="a1 sending")
    bank_a.set_fault("m1", "sms_latency", seconds=600.0)


async def b_takes_the_rest_of_the_day(first: DaemonProcess, second: DaemonProcess,
                                      bank_a: SimulatedBank, bank_b: SimulatedBank,
                                      spool: Spool, quota: int) -> int:
    """Daemon a (`first`) killed with SIGKILL having sent less than the card's day: b's
    modem b1 takes the card over and sends until the day is spent, then b stops cleanly.
    The messages left queued."""
    await first.kill()
    assert len(_parts(bank_a, "m1")) < quota          # a left b some of the day
    await eventually(lambda: _parts(bank_b, "m1"), what="b1 sending after the kill")
    await eventually(lambda: spool.sent_counts("b1")[1] >= quota, what="the card's day spent")
    await eventually(lambda: spool.counts()["sending"] == 0, what="b1 done")
    assert await second.stop() == 0
    return spool.counts()["queued"]


async def test_one_card_in_two_live_daemons_is_served_by_one_and_its_quota_holds_across_both(
        tmp_path, pg_cluster):
    """Bank b's first modem holds a clone of bank a's first card. While daemon a lives, b1
    sends nothing and says why (in its log and in `status`); a killed with SIGKILL, b takes
    the card over and sends only what the card's day has left."""
    quota = 8
    url = pg_cluster.new_schema()
    async with banks_sharing_a_card(tmp_path, url, modems_b=2, per_day=quota,
                                    seed=31) as (bank_a, bank_b, config_a, config_b, card):
        bank_a.set_fault("m1", "sms_latency", seconds=1.0)  # slow, then stalled (below)
        for name in ("m1", "m2"):
            bank_b.set_fault(name, "sms_latency", seconds=0.3)
        with Spool(url) as spool:
            first = await DaemonProcess(config_a).start()
            second = await DaemonProcess(config_b).start()
            spool.enqueue_many({"to": "+8613800138000", "text": f"card {i}",
                                "sims": ["a1", "b1"]} for i in range(2 * quota))
            spool.enqueue("+8613800138000", "b2 sends meanwhile", sims=["b2"])
            await a_sends_two_then_stalls(bank_a)
            await eventually(lambda: _parts(bank_b, "m2"), what="b2 sending")
            assert _parts(bank_b, "m1") == []      # one card, one daemon: a's
            line = (f"b1: sends nothing: its SIM card {card} is served by another live "
                    f"daemon, {os.uname().nodename}:{first.proc.pid} (its modem a1)")
            await second.wait_for_log(line)
            status = await _status(config_b)
            assert status["b1"]["state"] == "standby", status
            assert line.split(": ", 2)[2] == status["b1"]["last_error"], status
            queued = await b_takes_the_rest_of_the_day(first, second, bank_a, bank_b, spool,
                                                       quota)
            holders = spool.card_holders()
    sent = len(_parts(bank_a, "m1")) + len(_parts(bank_b, "m1"))
    assert sent <= quota, (sent, quota)   # the day's quota held across both daemons
    assert queued >= quota                # what the card's day had no room for waits
    assert holders == []                  # b let go at its clean stop (a's taken over)


#: One card in two modems of a bank: by its ICCID; or, where the modems read no ICCID (they
#: answer ERROR to every ICCID command), by its IMSI.
CLONES = {
    "iccid": ({"iccids": {"m1": CARD, "m2": CARD}}, CARD, "ICCID"),
    "imsi": ({"iccids": {"m1": None, "m2": None}, "imsis": {"m1": IMSI, "m2": IMSI}},
             f"IMSI {IMSI}", "IMSI"),
}


@contextlib.asynccontextmanager
async def six_sent_by_one_daemon(tmp_path: Path, cards: dict[str, Any],
                                 ) -> AsyncIterator[tuple[Any, DaemonProcess, Spool, Path]]:
    """A daemon (SQLite) on a bank of two modems with `cards`, once it sent six messages."""
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=33, **cards) as bank:
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        daemon = await DaemonProcess(config).start()
        with Spool(tmp_path / "spool.db") as spool:
            spool.enqueue_many({"to": "+8613800138000", "text": f"one card {i}"}
                               for i in range(6))
            await eventually(lambda: sent_or_delivered_count(spool) == 6, what="all six sent")
            yield bank, daemon, spool, config


@pytest.mark.parametrize("named_by", list(CLONES))
async def test_two_modems_of_one_daemon_with_one_card_one_sends(tmp_path, named_by):
    """Two modems report one card in one daemon (SQLite): the second to come up is refused
    with one line naming the first, sends nothing, and `status` says why. A card whose ICCID
    the modems cannot read is known by its IMSI (on the old code both modems sent)."""
    cards, shown, what = CLONES[named_by]
    async with six_sent_by_one_daemon(tmp_path, cards) as (bank, daemon, spool, config):
        states = {name: (spool.sim(name) or {}).get("state") for name in ("s1", "s2")}
        held = [h["iccid"] for h in spool.card_holders()]
        senders = {e["modem"] for e in bank.network_log() if e["kind"] == "part"}
        assert len(senders) == 1, senders
        serving = "s" + senders.pop()[1:]
        other = "s2" if serving == "s1" else "s1"
        await daemon.wait_for_log(f"{other}: sends nothing: its SIM card {shown} is already "
                                  f"served by modem {serving} of this daemon (two modems report "
                                  f"one {what}: a cloned card, or one device configured twice)")
        status = await _status(config)
        assert await daemon.stop() == 0
    assert states == {serving: "up", other: "standby"}
    # by its ICCID and the IMSI of the first modem up, or by the IMSI alone
    assert [key for key in held if key in (CARD, f"imsi:{IMSI}")] == [
        CARD if named_by == "iccid" else f"imsi:{IMSI}"]
    assert len(held) == (2 if named_by == "iccid" else 1)
    assert f"already served by modem {serving} of this daemon" in status[other]["last_error"]
    with Spool(tmp_path / "spool.db") as spool:
        assert spool.card_holders() == []     # let go at the clean stop


async def test_a_daemon_whose_card_was_taken_over_stops_sending_on_it_at_its_next_heartbeat(
        tmp_path):
    """A daemon judged dead while it lived (cut off from the database for longer than the
    silent window) finds, with its next heartbeat, that another daemon took its card over: its
    modem stops sending and stands by. Here the other daemon's take is its row in the spool;
    on SQLite (one daemon per spool) a hold of another run is a dead one's, so the modem then
    takes its card back, and says so in the events."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=34,
                             iccids={"m1": CARD}) as bank:
        config = _config(tmp_path / "one.toml", f'path = "{tmp_path / "spool.db"}"', "s",
                         bank.devices, None)
        daemon = await DaemonProcess(config).start()
        with Spool(tmp_path / "spool.db") as spool:
            assert {h["modem"] for h in spool.card_holders()} == {"s1"}   # ICCID and IMSI
            with spool.engine.tx() as conn:
                conn.execute("UPDATE sim_holders SET owner = ?, modem = 'b1'", (B,))
            await daemon.wait_for_log(f"s1: stops sending: its SIM card {CARD} was taken over "
                                      "by another daemon, box-b:202 (its modem b1), which judged "
                                      "this one dead")

            def taken_back() -> bool:
                return any(e["kind"] == "sim-card-taken-over" and "box-b:202" in e["detail"]
                           for e in spool.events())

            await eventually(taken_back, what="the card taken back from the dead run")
            spool.enqueue("+8613800138000", "after the card came back")
            await eventually(lambda: sent_or_delivered_count(spool) == 1,
                             what="sent once the card is back")
        assert await daemon.stop() == 0
