"""What a daemon's run serves: its modems (the config's, or a simulated bank's) and a SIM slot
for each, which starts from what the spool counts for it.

The daemon (`daemon.py`) asks these once at its start; `stored_counters` again when a modem
takes its card (`modem_task.py`): the card's counts follow it from whichever modem or host it
sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modempool.config import Config, ModemConfig
from modempool.dispatch.limits import Counters, Limits, window_keys
from modempool.dispatch.sim_slot import SimSlot

log = logging.getLogger("modempool.dispatch.daemon")


async def modem_specs(config: Config, simulate: int | None,
                      stack: contextlib.AsyncExitStack) -> tuple[list[ModemConfig], Any]:
    """The modems to serve, and the simulated bank (None without `simulate`): with
    `simulate`, that many simulated modems, started in `stack` (which stops them), each with
    the limits of the configured modem in its place, if any."""
    if not simulate:
        return list(config.modems), None
    from simulator import SimulatedBank  # only here: the pool needs no simulator otherwise

    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="modempool-sim-"))
    options = config.simulation
    bank = await stack.enter_async_context(SimulatedBank(
        modems=int(simulate), directory=directory, personality=options.personality,
        latency=options.latency, seed=options.seed, realistic=options.realistic,
        chatter=options.chatter))
    log.info("simulated bank of %d modems in %s", int(simulate), directory)
    limits = list(config.modems)
    specs = []
    for index, (name, port) in enumerate(_devices(bank)):
        base = limits[index] if index < len(limits) else None
        specs.append(dataclasses.replace(base, port=port) if base
                     else ModemConfig(name=name, port=port))
    return specs, bank


def make_slots(spool: Any, config: Config, specs: list[ModemConfig]) -> list[SimSlot]:
    """A slot per modem, each with what the spool counts for it (asked once for all)."""
    counted = spool.sent_counts_of([spec.name for spec in specs])
    slots = []
    for spec in specs:
        slot = SimSlot(spec.name, Limits(spec.per_minute, spec.per_day, spec.per_month),
                       spec.allow_prefixes, spec.allow_carriers, spec.priority)
        slot.counters = _counters(config, *counted[spec.name])
        slots.append(slot)
    return slots


def stored_counters(spool: Any, config: Config, sim: str) -> Counters:
    """What the spool counts for `sim`: its modem's last minute, and the day and month of the
    SIM card in it (by ICCID: sent from whichever modem or host it was in)."""
    return _counters(config, *spool.sent_counts(sim))


def _counters(config: Config, minute: int, today: int, month: int) -> Counters:
    keys = window_keys(datetime.now(config.tz or timezone.utc))
    return Counters(keys[0], minute, keys[1], today, keys[2], month)


def _devices(bank: Any) -> list[tuple[str, str]]:
    """(name, port) of each simulated modem, whatever shape `bank.devices` has."""
    devices = bank.devices
    if isinstance(devices, dict):
        return [(str(name), str(port)) for name, port in devices.items()]
    out = []
    for index, device in enumerate(devices):
        if isinstance(device, (tuple, list)):
            out.append((str(device[0]), str(device[1])))
        elif hasattr(device, "name") and hasattr(device, "port"):
            out.append((str(device.name), str(device.port)))
        else:
            out.append((Path(str(device)).name or f"sim{index + 1}", str(device)))
    return out
