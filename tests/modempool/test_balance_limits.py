"""A balance query by SMS is an SMS like any other for the SIM's limits: the daemon's balance
tracker counts it in the in-memory limiter the dispatcher uses (not only in the spool), keeps
the per-minute pace, and does not send it at all when the SIM has no room left.
Real parts: a simulated modem on a pty, the driver, an SQLite spool."""

from __future__ import annotations

import asyncio

import pytest

from modempool.config import parse_config
from modempool.dispatch.balance import BalanceTracker
from modempool.dispatch.limits import Counters, Limits, count
from modempool.dispatch.requests import RequestDesk
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.spool import Spool
from modempool.spool.model import utcnow
from simulator import SimulatedBank
from tests.at_commands.at_helpers import opened
from tests.modempool.daemon_harness import eventually, network_messages

pytestmark = pytest.mark.timeout(60)

RULE = ('[[balance]]\nsms_to = "10086"\nsms_text = "CXYE"\npattern = "余额([0-9.]+)元"\n'
        'reply_timeout = 30\n')


def tracker_for(tmp_path, modem, per_minute: int, per_day: int) -> tuple[BalanceTracker, SimSlot]:
    config = parse_config(RULE, tmp_path / "pool.toml")
    spool = Spool(tmp_path / "spool.db")
    slot = SimSlot("m1", limits=Limits(per_minute=per_minute, per_day=per_day), state=SimState.UP)
    desk = RequestDesk(spool, "test:1", [slot])
    desk.modems["m1"] = modem
    return BalanceTracker(spool, config, [slot], desk), slot


async def test_the_query_counts_in_the_sims_limiter_and_pace(tmp_path):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=9) as bank:
        async with opened(bank) as modem:
            tracker, slot = tracker_for(tmp_path, modem, per_minute=2, per_day=10)
            asking = asyncio.create_task(tracker.check("m1"))
            await eventually(lambda: [m for m in network_messages(bank) if m["text"] == "CXYE"],
                             what="the CXYE query on the network")
            tracker.spool.store_inbound("10086", "您的余额12.50元。", sim="m1")
            assert await asking == 12.5
    assert (slot.counters.sent_minute, slot.counters.sent_today) == (1, 1)
    assert slot.next_send_at > 0                       # the next SMS keeps the pace
    assert tracker.spool.sent_counts("m1")[1] == 1     # and the spool counts it too


async def test_no_query_from_a_sim_at_its_limit(tmp_path):
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=9) as bank:
        async with opened(bank) as modem:
            tracker, slot = tracker_for(tmp_path, modem, per_minute=5, per_day=3)
            slot.counters = count(Counters(), utcnow(), 3)   # today's three already sent
            with pytest.raises(RuntimeError, match="at its sending limit"):
                await tracker.check("m1")
            assert [m for m in network_messages(bank) if m["text"] == "CXYE"] == []
    assert slot.counters.sent_today == 3
