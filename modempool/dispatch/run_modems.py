"""What a daemon's run serves: its modems (the config's, or a simulated bank's) and a SIM slot
for each, which starts from what the spool counts for it.

The daemon (`daemon.py`) asks these once at its start (it starts a simulated bank itself: the
one module of the daemon that may import the simulator); `stored_counters` again when a modem
takes its card (`modem_task.py`): the card's counts follow it from whichever modem or host it
sent.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modempool.config import Config, ModemConfig
from modempool.dispatch.limits import Counters, Limits, window_keys
from modempool.dispatch.sim_slot import SimSlot


def bank_specs(config: Config, bank: Any) -> list[ModemConfig]:
    """The modems of a simulated `bank`, each with the limits of the configured modem in its
    place, if any."""
    limits = list(config.modems)
    specs = []
    for index, (name, port) in enumerate(_devices(bank)):
        base = limits[index] if index < len(limits) else None
        specs.append(dataclasses.replace(base, port=port) if base
                     else ModemConfig(name=name, port=port))
    return specs


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
