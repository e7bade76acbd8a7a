"""A modem's waits as its user sets them (`at_commands.Timing`): the defaults are the waits the
driver always had; a user's timeout wins over the vendor profile's and the table's; a channel
given short ones times out on them."""

from __future__ import annotations

import logging

import pytest

from at_commands import AtTimeout, Timing
from at_commands.pace import Pace
from at_commands.profiles import get_profile

from at_helpers import channel_on


def test_the_default_waits_are_the_drivers_own():
    timing = Timing()
    assert timing.attention_waits() == (1.0, 3.0, 10.0)
    assert (timing.resync_wait(0.5), timing.resync_wait(2.0), timing.resync_wait(20.0)) == (
        1.0, 2.0, 3.0)
    pace = Pace(logging.getLogger("test"), margin=timing.answer_wait)
    pace.learn(0.5)
    assert pace.patience(2.0) == 3.0                    # 4 x 0.5 s + 1 s


def test_every_wait_scales_with_the_answer_wait():
    timing = Timing(answer_wait=0.2)
    assert timing.attention_waits() == pytest.approx((0.2, 0.6, 2.0))
    assert timing.resync_wait(0.0) == 0.2 and timing.resync_wait(5.0) == pytest.approx(0.6)


def test_the_users_timeout_wins_over_the_profiles_and_the_tables():
    quectel = get_profile("quectel")                     # its own send_result: 120 s
    assert Timing().timeout("send_result", quectel, 60.0) == 120.0
    assert Timing().timeout("list", quectel, 20.0) == 20.0
    mine = Timing(timeouts={"send_result": 200.0, "list": 60.0})
    assert mine.timeout("send_result", quectel, 60.0) == 200.0
    assert mine.timeout("list", quectel, 20.0) == 60.0


@pytest.mark.parametrize("bad", [
    {"answer_wait": 0}, {"timeouts": {"list": -1}},
    {"answer_wait": float("nan")}, {"answer_wait": float("inf")},   # a wait must end (rev24 F1)
    {"timeouts": {"send": float("nan")}}, {"timeouts": {"list": float("inf")}},
])
def test_waits_of_no_time_are_refused(bad):
    with pytest.raises(ValueError, match="more than 0"):
        Timing(**bad)


async def test_a_channel_times_out_on_its_users_wait(bank) -> None:
    async with channel_on(bank, timing=Timing(timeouts={"signal": 0.1})) as channel:
        bank.set_fault("m1", "latency", seconds=0.5)
        with pytest.raises(AtTimeout, match="within 0.1 s"):
            await channel.query("signal")
        assert (await channel.query("registration"))[1] == "1"   # the table's 5 s: answered
