"""Set-up alone: a `Setup` over a `Channel` (no `Modem`) against a simulated modem: a known
state, the vendor profile detected, the PIN entered once, a refusal never retried, identity."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from at_commands import Channel, PinError, get_profile
from at_commands.setup import Setup
from simulator import SimulatedBank

PIN_FAULT = {"m1": {"pin_locked": {"pin": "1234"}}}


@contextlib.asynccontextmanager
async def generic_channel(bank: SimulatedBank) -> AsyncIterator[Channel]:
    """A channel that starts with the generic profile, as a `Modem` without one does."""
    channel = Channel(bank.devices[0], name="m1", profile=get_profile(None))
    await channel.open()
    try:
        yield channel
    finally:
        channel.close()


async def test_prepare_brings_the_modem_to_a_known_state_and_detects_its_vendor(bank) -> None:
    virtual = bank.modem("m1")
    async with generic_channel(bank) as channel:
        await channel.execute("AT+CMGF=1")             # left in text mode by someone else
        await Setup(channel).prepare()
        assert channel.profile.name == "simcom"
        assert channel.read_store == channel.profile.stores[0]
    assert (virtual.settings.cmee, virtual.settings.cmgf) == (1, 0)
    assert virtual.settings.cnmi[:2] == (2, 1)          # new messages announced by +CMTI


async def test_a_fixed_profile_is_kept(bank) -> None:
    async with generic_channel(bank) as channel:
        await Setup(channel, detect_profile=False).prepare()
        assert channel.profile.name == "generic"


async def test_identify_reads_who_the_modem_and_its_sim_are(bank) -> None:
    expected = bank.modems[0]
    async with generic_channel(bank) as channel:
        setup = Setup(channel)
        await setup.prepare()
        info = await setup.identify()
    assert (info.imei, info.imsi, info.iccid, info.msisdn) == (
        expected.imei, expected.imsi, expected.iccid, expected.msisdn)
    assert info.registered and setup.info is info


async def test_the_right_pin_unlocks_the_sim(tmp_path) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=PIN_FAULT) as bank:
        async with generic_channel(bank) as channel:
            setup = Setup(channel, pin="1234")
            await setup.prepare()
        assert setup.pin_error is None and bank.modem("m1").sim.pin_attempts == 3


async def test_a_refused_pin_is_entered_once_and_never_again_on_that_port(tmp_path) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=PIN_FAULT) as bank:
        sim = bank.modem("m1").sim
        async with generic_channel(bank) as channel:
            setup = Setup(channel, pin="9876")
            with pytest.raises(PinError, match="attempt"):
                await setup.prepare()
            assert setup.pin_error is not None and sim.pin_attempts == 2
            with pytest.raises(PinError):
                await setup.prepare()                   # asked again: refuses without trying
            again = Setup(channel, pin="9876")          # a new object on the same port
            with pytest.raises(PinError, match="refused"):
                await again.prepare()
        assert sim.pin_attempts == 2


async def test_a_missing_pin_is_not_a_lock_out(tmp_path) -> None:
    async with SimulatedBank(modems=1, directory=tmp_path, seed=1, faults=PIN_FAULT) as bank:
        async with generic_channel(bank) as channel:
            setup = Setup(channel)
            with pytest.raises(PinError, match="none is configured"):
                await setup.prepare()
    assert setup.pin_error is None                      # a PIN added to the config may be tried


class DictPinMemory:
    """A `PinMemory` in a dict, with plain methods (as a script might write one)."""

    def __init__(self) -> None:
        self.refused: dict[tuple[str, str], str] = {}

    def pin_refused(self, sim_key: str, pin: str) -> str | None:
        return self.refused.get((sim_key, pin))

    def pin_was_refused(self, sim_key: str, pin: str, reason: str, attempts_left: int | None) -> None:
        self.refused[(sim_key, pin)] = reason

    def pin_accepted(self, sim_key: str) -> None:
        self.refused = {key: why for key, why in self.refused.items() if key[0] != sim_key}


class AsyncDictPinMemory(DictPinMemory):
    """The same with coroutines (as the pool's, which waits for its database)."""

    async def pin_refused(self, sim_key: str, pin: str) -> str | None:
        return super().pin_refused(sim_key, pin)

    async def pin_was_refused(self, sim_key: str, pin: str, reason: str,
                              attempts_left: int | None) -> None:
        super().pin_was_refused(sim_key, pin, reason, attempts_left)

    async def pin_accepted(self, sim_key: str) -> None:
        super().pin_accepted(sim_key)


@pytest.mark.parametrize("memory_type", [DictPinMemory, AsyncDictPinMemory])
async def test_a_pin_memory_may_be_plain_functions_or_coroutines(tmp_path, memory_type) -> None:
    memory = memory_type()
    async with SimulatedBank(modems=1, directory=tmp_path / "1", seed=1, faults=PIN_FAULT) as bank:
        async with generic_channel(bank) as channel:
            with pytest.raises(PinError, match="attempt"):
                await Setup(channel, pin="9876", pin_memory=memory).prepare()
        assert bank.modem("m1").sim.pin_attempts == 2 and len(memory.refused) == 1
    # the same SIM on another port (another process, say): refused from the memory, not tried
    async with SimulatedBank(modems=1, directory=tmp_path / "2", seed=1, faults=PIN_FAULT) as bank:
        async with generic_channel(bank) as channel:
            with pytest.raises(PinError, match="refused the configured PIN before"):
                await Setup(channel, pin="9876", pin_memory=memory).prepare()
            assert bank.modem("m1").sim.pin_attempts == 3
            await Setup(channel, pin="1234", pin_memory=memory).prepare()   # the right one
        assert memory.refused == {}
