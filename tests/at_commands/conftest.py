"""Fixtures: a simulated bank of two SIMCom modems on real ptys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator import SimulatedBank


@pytest.fixture
async def bank(tmp_path) -> AsyncIterator[SimulatedBank]:
    async with SimulatedBank(modems=2, directory=tmp_path, personality="simcom", seed=1) as bank:
        yield bank
