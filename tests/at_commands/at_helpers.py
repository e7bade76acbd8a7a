"""Helpers for the driver tests: modems opened on a simulated bank, waiting for events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

from at_commands import Channel, Modem, get_profile
from simulator import SimulatedBank


def profile(name: str = "simcom", **changes: Any):
    """A vendor profile with some fields changed (timeouts given as a plain dict)."""
    if "timeouts" in changes:
        changes["timeouts"] = MappingProxyType(changes["timeouts"])
    return dataclasses.replace(get_profile(name), **changes)


@contextlib.asynccontextmanager
async def opened(bank: SimulatedBank, index: int = 0, *, initialise: bool = True,
                 **options: Any) -> AsyncIterator[Modem]:
    """A `Modem` on modem `index` of `bank`, open (and initialised), closed afterwards."""
    options.setdefault("poll_interval", 300.0)
    options.setdefault("sweep_interval", 300.0)
    options.setdefault("reconnect_delays", (0.05, 0.1, 0.2))
    modem = Modem(bank.devices[index], name=bank.modems[index].name, **options)
    await modem.open()
    try:
        if initialise:
            await modem.initialise()
        yield modem
    finally:
        await modem.close()


@contextlib.asynccontextmanager
async def channel_on(bank: SimulatedBank, *, setup: tuple[str, ...] = (), profile_changes:
                     dict[str, Any] | None = None, **callbacks: Any) -> AsyncIterator[Channel]:
    """A bare `Channel` (no `Modem` around it) on modem 0 of `bank`, open, with the `setup`
    commands run (e.g. ``pdu_mode``); closed afterwards."""
    channel = Channel(bank.devices[0], name=bank.modems[0].name,
                      profile=profile("simcom", **(profile_changes or {})), **callbacks)
    await channel.open()
    try:
        for command in setup:
            await channel.execute(command)
        yield channel
    finally:
        channel.close()


async def next_event(modem: Modem, kind: type, timeout: float = 10.0) -> Any:
    """The next event of type `kind` (others are skipped)."""
    async with asyncio.timeout(timeout):
        async for event in modem.events():
            if isinstance(event, kind):
                return event
    raise AssertionError("events() ended")


async def until(condition, timeout: float = 10.0) -> None:
    """Poll a condition that has no event of its own, with a bound."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
