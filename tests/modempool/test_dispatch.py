"""The dispatcher in the real daemon (in-process here, for speed): strategies, destinations,
quiet hours, multipart failures and graceful shutdown, over simulated modems on ptys and a real
SQLite spool."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from modempool.config import parse_config
from modempool.dispatch.daemon import Daemon
from simulator import SimulatedBank
from tests.modempool.daemon_harness import eventually, network_messages

pytestmark = pytest.mark.timeout(60)

MOBILE, UNICOM, TELECOM = "+8613800138000", "+8613012345678", "+8618912345678"
DONE = ("sent", "delivered")


@contextlib.asynccontextmanager
async def pool(tmp_path: Path, modems: int = 3, toml: str = "", per_modem: dict | None = None,
               handlers: list | None = None, *, spool_setting: str | None = None,
               iccids: dict[str, str] | None = None):
    """A bank of `modems` (holding `iccids`), a config naming them, and the daemon running in
    this event loop; on `spool_setting` (the `[spool]` line) or an SQLite file in `tmp_path`."""
    async with SimulatedBank(modems=modems, directory=tmp_path / "bank", seed=3,
                             iccids=iccids) as bank:
        where = spool_setting or f'path = "{tmp_path / "spool.db"}"\nsynchronous = "normal"'
        text = f'[spool]\n{where}\n{toml}\n'
        for device in bank.devices:
            name = Path(device).name
            text += f'\n[[modem]]\nname = "{name}"\nport = "{device}"\n'
            text += (per_modem or {}).get(name, "")
        config = parse_config(text, tmp_path / "pool.toml")
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, handlers=handlers, install_signals=False)
        running = asyncio.create_task(daemon.run())
        await eventually(lambda: daemon.ready.is_set() or running.done())
        try:
            yield bank, spool, daemon
        finally:
            daemon.stop()
            await running


def state(spool, message) -> str:
    return spool.get(message.id).state.value


async def test_carrier_affinity_sends_from_a_sim_of_the_recipients_carrier(tmp_path):
    async with pool(tmp_path, toml='[pool]\nstrategy = "carrier-affinity"') as (bank, spool, _):
        operators = {info.name: info.operator for info in bank.modems}
        assert sorted(operators.values()) == ["China Mobile", "China Telecom", "China Unicom"]
        sent = [spool.enqueue(to, f"to {to}") for to in (MOBILE, UNICOM, TELECOM) * 3]
        await eventually(lambda: all(state(spool, m) in DONE for m in sent))
        for m in sent:
            carrier = {MOBILE: "China Mobile", UNICOM: "China Unicom", TELECOM: "China Telecom"}
            assert operators[spool.get(m.id).sim] == carrier[m.to]


async def test_sticky_keeps_each_recipient_on_one_sim(tmp_path):
    async with pool(tmp_path, toml='[pool]\nstrategy = "sticky"') as (_, spool, _daemon):
        people = [MOBILE, UNICOM, TELECOM, "+8613912345678"]
        sent = [spool.enqueue(to, f"hello {i}") for i in range(3) for to in people]
        await eventually(lambda: all(state(spool, m) in DONE for m in sent))
        sims = collections.defaultdict(set)
        for m in sent:
            sims[m.to].add(spool.get(m.id).sim)
        assert all(len(s) == 1 for s in sims.values()), sims
        assert len(set().union(*sims.values())) == 3       # and the load still spreads


async def test_round_robin_takes_turns(tmp_path):
    async with pool(tmp_path, toml='[pool]\nstrategy = "round-robin"') as (_, spool, _daemon):
        sent = [spool.enqueue(MOBILE, f"turn {i}") for i in range(9)]
        await eventually(lambda: all(state(spool, m) in DONE for m in sent))
        assert collections.Counter(spool.get(m.id).sim for m in sent) == {"m1": 3, "m2": 3, "m3": 3}


async def test_destination_rules_and_sim_restriction(tmp_path):
    rules = {"m1": 'allow_carriers = ["China Unicom"]\n', "m2": 'allow_prefixes = ["+86189"]\n'}
    async with pool(tmp_path, per_modem=rules) as (_, spool, _daemon):
        unicom = spool.enqueue(UNICOM, "unicom via m1", sims=["m1"])
        telecom = spool.enqueue(TELECOM, "telecom via m2", sims=["m2"])
        nowhere = spool.enqueue(MOBILE, "no SIM may carry this", sims=["m1", "m2"])
        ghost = spool.enqueue(UNICOM, "for a SIM that is not configured", sims=["m9"])
        anywhere = spool.enqueue(MOBILE, "m3 takes this")
        await eventually(lambda: all(state(spool, m) in DONE for m in (unicom, telecom, anywhere)))
        assert [spool.get(m.id).sim for m in (unicom, telecom, anywhere)] == ["m1", "m2", "m3"]
        # No SIM may ever carry these: failed with the reason, never sent the wrong way.
        await eventually(lambda: state(spool, nowhere) == state(spool, ghost) == "failed")
        assert spool.get(nowhere.id).error == (
            f"{MOBILE} is not an allowed destination of SIM m1, m2 (allowed prefixes/carriers)")
        assert spool.get(ghost.id).error == "no configured SIM is named m9 (configured: m1, m2, m3)"
        assert spool.get(nowhere.id).attempts == spool.get(ghost.id).attempts == 0


async def test_quiet_hours_hold_flagged_messages_only(tmp_path):
    now = datetime.now().astimezone()
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    toml = f'[quiet_hours]\nstart = "{start}"\nend = "{end}"\n'
    async with pool(tmp_path, modems=1, toml=toml) as (bank, spool, _daemon):
        marketing = spool.enqueue(MOBILE, "sale today 回T退订", quiet_hours=True)
        urgent = spool.enqueue(MOBILE, "your code is 1234")
        await eventually(lambda: state(spool, urgent) in DONE)
        follow_up = spool.enqueue(MOBILE, "after the flagged one")
        await eventually(lambda: state(spool, follow_up) in DONE)
        assert state(spool, marketing) == "queued"
        assert [e["text"] for e in network_messages(bank)] == ["your code is 1234",
                                                                "after the flagged one"]


LONG = "a long message that needs three parts " * 10


def parts_on_air(bank) -> list[tuple[str, int]]:
    """(modem, part number) of every part of LONG that reached the network, in order."""
    return [(e["modem"], e["concat"][2]) for e in bank.network_log()
            if e["kind"] == "part" and e["concat"]]


async def test_a_multipart_message_refused_midway_goes_on_from_the_same_sim(tmp_path):
    # Both SIMs have credit for one more SMS: whichever takes the message sends part 1 only.
    async with pool(tmp_path, modems=2, toml="[retry]\nbackoff = 1.0\n") as (bank, spool, _):
        for info in bank.modems:
            bank.set_fault(info.name, "balance", messages=1, code=21)
        long = spool.enqueue(MOBILE, LONG)
        await eventually(lambda: "partly sent (1/3 parts)" in (spool.get(long.id).error or ""))
        first = spool.get(long.id)
        assert first.state.value == "queued" and first.sims == (first.sim,)
        bank.clear_fault(first.sim, "balance")    # topped up; the other SIM is still short
        await eventually(lambda: state(spool, long) in DONE)
        assert parts_on_air(bank) == [(first.sim, 1), (first.sim, 2), (first.sim, 3)]
        [whole] = network_messages(bank)           # the network joined the three parts
        assert whole["text"] == LONG


async def test_a_multipart_message_refused_for_good_midway_is_failed_not_resent(tmp_path):
    async with pool(tmp_path, modems=1) as (bank, spool, _daemon):
        bank.set_fault("m1", "balance", messages=1, code=96)   # a permanent refusal of part 2
        long = spool.enqueue(MOBILE, LONG)
        await eventually(lambda: state(spool, long) == "failed")
        message = spool.get(long.id)
        assert message.attempts == 1 and "partly sent (1/3 parts)" in message.error
        assert parts_on_air(bank) == [("m1", 1)]              # part 1 only, never repeated
        assert [p["state"] for p in spool.parts(long.id)] == ["sent", "failed"]


async def test_a_multipart_message_fails_partly_sent_once_its_attempts_are_used(tmp_path):
    toml = "[retry]\nbackoff = 0.05\nmax_attempts = 2\n"
    async with pool(tmp_path, modems=2, toml=toml) as (bank, spool, _daemon):
        for info in bank.modems:
            bank.set_fault(info.name, "balance", messages=1, code=21)
        long = spool.enqueue(MOBILE, LONG)
        await eventually(lambda: state(spool, long) == "failed")
        message = spool.get(long.id)
        assert message.attempts == 2
        assert "partly sent (1/3 parts)" in message.error and "after 2 attempts" in message.error
        assert parts_on_air(bank) == [(message.sim, 1)]       # the other SIM never took over


async def test_graceful_stop_finishes_the_message_on_the_air_and_releases_the_rest(tmp_path):
    async with pool(tmp_path, modems=1) as (bank, spool, daemon):
        bank.set_fault("m1", "sms_latency", seconds=0.5)
        sent = [spool.enqueue(MOBILE, f"stop test {i}") for i in range(4)]
        await eventually(lambda: spool.parts(sent[0].id), what="first part writing")
        daemon.stop()
    final = [spool.get(m.id) for m in sent]
    assert final[0].state.value in DONE
    assert [m.state.value for m in final[1:]] == ["queued"] * 3
    assert [m.attempts for m in final[1:]] == [0, 0, 0]          # released, not counted
    assert all(m.lease_owner is None for m in final)
    assert [e["text"] for e in network_messages(bank)] == ["stop test 0"]


async def test_a_modem_silent_before_the_prompt_gives_the_message_back_uncounted(tmp_path):
    # m1 waits 1 s for its prompt (`[[modem]] timeouts`), not the table's 10 s
    async with pool(tmp_path, modems=2, per_modem={"m1": "timeouts = { send = 1 }\n"}) as (
            bank, spool, _daemon):
        bank.set_fault("m1", "hang")                       # m1 (first by name) takes it, then
        message = spool.enqueue(MOBILE, "through whichever modem answers")  # never prompts
        await eventually(lambda: state(spool, message) in DONE, timeout=40)
        final = spool.get(message.id)
        assert final.sim == "m2" and final.attempts == 1   # m1's silence was not its attempt
        requeued = spool.db.execute(
            "SELECT sim, detail FROM events WHERE kind = 'requeued' AND message_id = ?",
            (message.id,)).fetchall()
        assert [sim for sim, _ in requeued] == ["m1"] and "m1:" in requeued[0][1]
        assert [e["modem"] for e in bank.network_log() if e["kind"] == "part"] == ["m2"]


async def test_the_spool_read_on_the_loop_while_the_daemon_dispatches_never_hangs(tmp_path):
    # On SQLite the spool has one connection. A dispatch round whose transaction waited for
    # the loop (to choose the SIMs) while the loop waited for that connection (any read of the
    # spool on the loop: a status, a test's check) hung both for ever, now and then.
    async with pool(tmp_path) as (_, spool, _daemon):
        sent = [spool.enqueue(MOBILE, f"read while claiming {i}") for i in range(30)]
        reads = 0
        while not all(state(spool, m) in DONE for m in sent):
            reads += 1
            await asyncio.sleep(0)
        assert reads > 0
        assert {spool.get(m.id).sim for m in sent} == {"m1", "m2", "m3"}
