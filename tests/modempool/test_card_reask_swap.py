"""The reask (`dispatch/card_reask.ask_until_imsi`) of a modem serving by its ICCID alone, on a
simulated modem whose card is swapped with no SIM event or whose recording meets the
database's failure (rev22a R1-R3):
- an ask that reads another ICCID gives the card up even while AT+CIMI still fails (R3: the
  comparison came after the IMSI test, so the new card sent on the old card's counts);
- an ask that reads an IMSI and no ICCID is not paired with the session's ICCID unless the
  spool knows that pair (R2: the old card's ICCID was written beside the new card's IMSI);
- a database failure while the card is recorded is asked again later (R1: the old recording
  put the serving modem in stand-by for the rest of its session)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from modempool.dispatch.card_reask import ask_until_imsi
from modempool.spool.unavailable import SpoolUnavailable
from simulator import SimulatedBank
from tests.at_commands.at_helpers import opened

pytestmark = pytest.mark.timeout(60)

CARD, IMSI = "89860012345678901234", "460001234567890"
NEW_CARD, NEW_IMSI = "89860012345678909999", "460009999999999"
ASKS = 4   # asks before the test says the daemon stopped


@pytest.fixture
async def bank(tmp_path) -> AsyncIterator[SimulatedBank]:
    async with SimulatedBank(modems=1, directory=tmp_path, seed=46, iccids={"m1": CARD},
                             imsis={"m1": IMSI}) as bank:
        yield bank


class Reask:
    """One reask's callbacks and what they saw."""

    def __init__(self, known: list[str], *, name_fails: int = 0) -> None:
        self.known = known
        self.name_fails = name_fails
        self.lost, self.trouble = asyncio.Event(), asyncio.Event()
        self.named: list[tuple[str | None, str | None]] = []
        self.taken: list[list[str]] = []
        self.given_up: list[str] = []
        self.sleeps = 0

    async def run(self, modem, info) -> str | None:
        async def sleep(seconds: float) -> None:
            self.sleeps += 1

        async def name_card(again) -> None:
            if self.name_fails:
                self.name_fails -= 1
                raise SpoolUnavailable("recording the card", 5, "server closed the connection")
            self.named.append((again.iccid, again.imsi))

        async def take(keys: list[str]) -> bool:
            self.taken.append(keys)
            return True

        async def learn(again) -> None:
            return None

        async def imsis_of(iccid: str) -> list[str]:
            assert iccid == CARD
            return self.known

        def give_up(why: str) -> None:
            self.given_up.append(why)
            self.lost.set()

        return await ask_until_imsi(
            modem, info, self.lost, self.trouble, every=1.0, sleep=sleep, name_card=name_card,
            take=take, learn=learn, give_up=give_up, stopped=lambda: self.sleeps > ASKS,
            mlog=logging.getLogger("modempool.modem.s1"), imsis_of=imsis_of)


def _swap(bank: SimulatedBank) -> None:
    card = bank.modem("m1").sim
    card.iccid, card.imsi = NEW_CARD, NEW_IMSI   # no SIM event


async def test_a_swap_is_seen_while_the_imsi_still_fails(bank):
    bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=100000)
    async with opened(bank) as modem:
        info = await modem.identify()
        assert (info.iccid, info.imsi) == (CARD, None)
        _swap(bank)
        reask = Reask([IMSI])
        assert await reask.run(modem, info) is None
    assert reask.lost.is_set() and reask.sleeps == 1   # the first ask saw it
    assert reask.given_up == [f"its SIM card changed (it reads ICCID {NEW_CARD} now, not "
                              f"{CARD}): identifies it afresh"]
    assert reask.named == [] and reask.taken == []


async def test_an_imsi_read_without_the_iccid_is_not_paired_with_an_unknown_one(bank, caplog):
    bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=1)
    async with opened(bank) as modem:
        info = await modem.identify()
        assert (info.iccid, info.imsi) == (CARD, None)
        bank.set_fault("m1", "command_error", command="+CCID", code=500, count=100000)
        _swap(bank)
        reask = Reask([IMSI])   # the spool knows the old card's pair only
        with caplog.at_level(logging.INFO, logger="modempool.modem.s1"):
            assert await reask.run(modem, info) is None
    assert reask.named == [] and reask.taken == [] and not reask.lost.is_set()
    assert reask.sleeps == ASKS + 1   # asked again each time, until the daemon stopped
    assert (f"reads IMSI {NEW_IMSI} but not its SIM card's ICCID, a pair the spool does "
            "not know; asking again") in caplog.text


async def test_an_imsi_read_without_the_iccid_keeps_a_known_pair(bank):
    bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=1)
    async with opened(bank) as modem:
        info = await modem.identify()
        bank.set_fault("m1", "command_error", command="+CCID", code=500, count=100000)
        reask = Reask([IMSI])   # the same card, known with its IMSI
        assert await reask.run(modem, info) is None
    assert reask.named == [(CARD, IMSI)] and reask.taken == [[CARD, f"imsi:{IMSI}"]]
    assert not reask.lost.is_set() and not reask.trouble.is_set()


async def test_recording_the_card_that_the_database_fails_is_asked_again(bank, caplog):
    bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=1)
    async with opened(bank) as modem:
        info = await modem.identify()
        reask = Reask([IMSI], name_fails=1)
        with caplog.at_level(logging.INFO, logger="modempool.modem.s1"):
            assert await reask.run(modem, info) is None
    assert reask.sleeps == 2 and not reask.trouble.is_set() and not reask.lost.is_set()
    assert reask.named == [(CARD, IMSI)] and reask.taken == [[CARD, f"imsi:{IMSI}"]]
    assert "could not record its SIM card by its IMSI; asking again" in caplog.text
    assert "asking its SIM card's IMSI again failed" not in caplog.text
