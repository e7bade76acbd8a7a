"""What the reask (`dispatch/card_reask.ask_until_imsi`) does when a step after the modem's
answer fails, on a simulated modem whose AT+CIMI answers now: a failure that is no database's
(a bug) ends the modem's session with one ERROR line at once (audit22 L1: the old task died
unseen and the modem served by its ICCID alone, never asked again, until the session ended);
the database failing to read the card's counts once the card is taken gives the card up
(audit22 F1: a modem never sends on counts that are not its card's)."""

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


@pytest.fixture
async def modem(tmp_path) -> AsyncIterator[object]:
    async with SimulatedBank(modems=1, directory=tmp_path, seed=45, iccids={"m1": CARD},
                             imsis={"m1": IMSI}) as bank:
        async with opened(bank) as modem:
            yield modem


async def _ask(modem, *, take, learn, mlog: logging.Logger):
    """One reask of a modem that served by its ICCID alone: (what it returned, `lost`,
    `trouble`, the reasons it gave the card up for, the cards it named)."""
    info = await modem.identify()
    lost, trouble, given_up, named = asyncio.Event(), asyncio.Event(), [], []

    async def name_card(again) -> None:
        named.append((again.iccid, again.imsi))

    def give_up(why: str) -> None:
        given_up.append(why)
        lost.set()

    returned = await ask_until_imsi(
        modem, info, lost, trouble, every=1.0, sleep=lambda seconds: asyncio.sleep(0),
        name_card=name_card, take=take, learn=learn, give_up=give_up,
        stopped=lambda: False, mlog=mlog, imsis_of=_no_lookup)
    return returned, lost, trouble, given_up, named


async def _no_lookup(iccid: str) -> list[str]:
    raise AssertionError("the ask read both keys: nothing to look up")


async def test_a_bug_in_the_reask_ends_the_session_with_one_error_line(modem, caplog):
    async def take(keys: list[str]) -> bool:
        raise KeyError("s1")   # a bug, not the database's failure

    async def learn(again) -> None:
        raise AssertionError("no counts read after a failed take")

    mlog = logging.getLogger("modempool.modem.s1")
    with caplog.at_level(logging.DEBUG, logger="modempool.modem.s1"):
        returned, lost, trouble, given_up, _ = await _ask(modem, take=take, learn=learn,
                                                          mlog=mlog)
    assert returned == "asking its SIM card's IMSI again failed: 's1'"
    assert trouble.is_set() and not lost.is_set() and given_up == []
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        "asking its SIM card's IMSI again failed: 's1'; stops serving and reconnects"]
    assert errors[0].exc_info is None   # its traceback at DEBUG only
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)


async def test_counts_the_database_cannot_read_give_the_card_up(modem, caplog):
    taken: list[list[str]] = []

    async def take(keys: list[str]) -> bool:
        taken.append(keys)
        return True

    async def learn(again) -> None:
        raise SpoolUnavailable("reading the counts", 5, "server closed the connection")

    mlog = logging.getLogger("modempool.modem.s1")
    with caplog.at_level(logging.INFO, logger="modempool.modem.s1"):
        returned, lost, trouble, given_up, named = await _ask(modem, take=take, learn=learn,
                                                              mlog=mlog)
    assert returned is None and not trouble.is_set()
    assert taken == [[CARD, f"imsi:{IMSI}"]] and named == [(CARD, IMSI)]
    assert lost.is_set()
    assert given_up == ["waiting for the database to read the counts of its SIM card"]
    assert "reads the IMSI of its SIM card now" not in caplog.text
