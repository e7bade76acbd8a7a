"""Fixtures: a simulated bank in the test's event loop and pyserial clients on its ptys."""

from __future__ import annotations

import pytest
from sim_client import AtPort

from simulator import SimulatedBank


@pytest.fixture
async def bank(tmp_path):
    async with SimulatedBank(modems=2, directory=tmp_path, personality="simcom", seed=1) as bank:
        yield bank


@pytest.fixture
async def ports(bank):
    opened = [AtPort(device) for device in bank.devices]
    for port in opened:
        await port.command("ATE0")
    yield opened
    for port in opened:
        port.close()
