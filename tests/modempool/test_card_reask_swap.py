"""The reask (`dispatch/card_reask.ask_until_imsi`) of a modem serving by its ICCID alone, on a
simulated modem whose card is swapped with no SIM event or whose recording meets the
database's failure (rev22a R1-R3):
- an ask that reads another ICCID gives the card up even while AT+CIMI still fails (R3: the
  comparison came after the IMSI test, so the new card sent on the old card's counts);
- an ask that reads an IMSI and no ICCID is not paired with the session's ICCID unless the
  spool knows that pair (R2: the old card's ICCID was written beside the new card's IMSI);
- a database failure while the card is recorded is asked again later (R1: the old recording
  put the serving modem in stand-by for the rest of its session).
The last test runs R2 through the daemon's own wiring (`ModemTask._ask_card_again`, its spool
calls on the dispatcher's lane), in this event loop, on each engine (audit23 L1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from modempool.config import parse_config
from modempool.dispatch.card_reask import ask_until_imsi
from modempool.dispatch.daemon import Daemon
from modempool.spool.unavailable import SpoolUnavailable
from simulator import SimulatedBank
from tests.at_commands.at_helpers import opened
from tests.modempool.daemon_harness import eventually

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


class Said(logging.Handler):
    """An event per line a modem's logger says (by its start), each set when the line is
    said, and what to do at once on a line (in the daemon's own turn, before its next ask)."""

    def __init__(self, *starts: str, at: dict[str, Callable[[], None]] | None = None) -> None:
        super().__init__(logging.INFO)
        self.events = {start: asyncio.Event() for start in starts}
        self.at = at or {}

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        for start, event in self.events.items():
            if line.startswith(start) and not event.is_set():
                event.set()
                if start in self.at:
                    self.at[start]()

    async def first(self, *starts: str) -> str:
        """Which of `starts` is said first (or was already)."""
        waits = {asyncio.ensure_future(self.events[start].wait()): start for start in starts}
        done, pending = await asyncio.wait(waits, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
        assert done, f"none of {starts} said in 30 s"
        return min((waits[wait] for wait in done), key=starts.index)


async def test_the_daemon_pairs_an_imsi_read_alone_only_as_its_spool_knows(tmp_path,
                                                                          spool_setting, caplog):
    """s1 serves by its ICCID alone (AT+CIMI answering ERROR), then its asks read the IMSI and
    no ICCID (AT+CCID answering ERROR from the moment it says so). The spool knows no IMSI for
    the card: nothing is named or taken, it asks again. Once the spool knows the pair (the
    card read with both keys elsewhere), the next ask takes the card by both."""
    async with SimulatedBank(modems=1, directory=tmp_path / "bank", seed=47,
                             iccids={"m1": CARD}, imsis={"m1": IMSI}) as bank:
        bank.set_fault("m1", "command_error", command="+CIMI", code=500, count=100000)
        config = parse_config(
            f'[spool]\n{spool_setting}\n\n[pool]\nsilent_after = 1.2\n\n'
            f'[[modem]]\nname = "s1"\nport = "{bank.devices[0]}"\n', tmp_path / "pool.toml")
        said = Said("serves by its ICCID alone", "reads IMSI", "reads the IMSI of its SIM card",
                    at={"serves by its ICCID alone": lambda: bank.set_fault(
                        "m1", "command_error", command="+CCID", code=500, count=100000)})
        mlog = logging.getLogger("modempool.modem.s1")
        caplog.set_level(logging.INFO, logger=mlog.name)
        mlog.addHandler(said)
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run())
        try:
            # the old code (rev22a R2) took the new IMSI beside the session's ICCID here
            assert await said.first("reads IMSI", "reads the IMSI of its SIM card") == (
                "reads IMSI")
            assert (f"reads IMSI {IMSI} but not its SIM card's ICCID, a pair the spool does "
                    "not know; asking again") in caplog.messages
            assert [h["iccid"] for h in spool.card_holders()] == [CARD]
            assert spool.rows("SELECT iccid, imsi FROM sims WHERE name = 's1'") == [
                (CARD, None)]
            assert not said.events["reads the IMSI of its SIM card"].is_set()
            spool.name_sim_card("s9", CARD, IMSI)   # the pair, read elsewhere
            assert await said.first("reads the IMSI of its SIM card") == (
                "reads the IMSI of its SIM card")
            await eventually(lambda: sorted(h["iccid"] for h in spool.card_holders())
                             == [CARD, f"imsi:{IMSI}"], what="the card held by both keys")
            assert spool.rows("SELECT iccid, imsi FROM sims WHERE name = 's1'") == [
                (CARD, IMSI)]
        finally:
            mlog.removeHandler(said)
            daemon.stop()
            await running
            spool.close()
