"""A bank of simulated modems on pseudo-terminals, run in the caller's event loop.

Each modem is a pty pair from `os.openpty()` (its port: `simulator/modem_port.py`): the master
is read with `loop.add_reader` (no thread or busy task per modem: an idle bank uses no CPU), the
slave is put in raw mode and kept open by the bank so the pty survives clients coming and going,
and `DIR/<name>` is a symlink to the slave (`/dev/pts/N`), group `dialout`, mode 0660. A
client's exclusive mode (`TIOCEXCL`) is undone as soon as it closes the port
(`simulator/pty_watch.py`). The bank makes the network, SIMs and modems, writes `bank.json`,
and lets a test inject messages, set faults, unplug and replug modems.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulator.chatter import Chatter
from simulator.faults import Fault, fault_params
from simulator.modem import VirtualModem
from simulator.modem_port import ModemPort
from simulator.network import Network, make_imei, make_sim
from simulator.personalities import PERSONALITIES, personality
from simulator.pty_watch import CloseWatcher
from simulator.sms_commands import TABLE

log = logging.getLogger("modempool.simulator")
_EXCLUSIVITY_CHECK = 2.0  # without inotify: seconds between clearing TIOCEXCL left behind


@dataclass(frozen=True, slots=True)
class ModemInfo:
    """What `bank.json` says about one modem."""

    name: str
    device: str  # the symlink path
    imei: str
    imsi: str
    iccid: str
    msisdn: str
    operator: str
    personality: str


def _personality_names(choice: str | Sequence[str], count: int) -> list[str]:
    if isinstance(choice, str):
        names = list(PERSONALITIES) if choice == "mixed" else [choice]
    else:
        names = list(choice)
    for name in names:
        personality(name)
    return [names[i % len(names)] for i in range(count)]


class SimulatedBank:
    """N simulated modems on ptys, joined by a virtual network; an async context manager."""

    def __init__(self, modems: int = 2, directory: str | os.PathLike[str] | None = None, *,
                 personality: str | Sequence[str] = "simcom", seed: int | None = None,
                 latency: float = 0.0, realistic: bool = False,
                 faults: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
                 chatter: float = 1.0, iccids: Mapping[str, str | None] | None = None,
                 imsis: Mapping[str, str] | None = None) -> None:
        if modems < 1:
            raise ValueError("a bank needs at least one modem")
        self.count = modems
        self._own_directory = directory is None  # a temporary one, removed at stop
        self.directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="sim-"))
        self.personalities = _personality_names(personality, modems)
        self.seed = seed
        self.latency = latency
        self.realistic = realistic
        self.start_faults = {name: dict(kinds) for name, kinds in (faults or {}).items()}
        self.chatter = chatter  # scales the vendors' periodic URCs (0: none)
        # a card's ICCID by modem name, instead of the seeded one: a cloned card (two modems
        # with one ICCID), or the card of another bank; None: the modem reads none (firmware
        # with no ICCID command: every one answers ERROR)
        self.iccids = dict(iccids or {})
        # a card's IMSI by modem name, instead of the seeded one (a clone of a card whose
        # ICCID its modem cannot read)
        self.imsis = dict(imsis or {})
        self._chatters: list[Chatter] = []
        self._watcher: CloseWatcher | None = None
        self.network: Network | None = None
        self._modems: dict[str, VirtualModem] = {}
        self._ports: dict[str, ModemPort] = {}
        self._replug_timers: dict[str, asyncio.TimerHandle] = {}
        self._housekeeping: asyncio.TimerHandle | None = None
        self.modems: list[ModemInfo] = []

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> SimulatedBank:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "bank.json").unlink(missing_ok=True)
        rng = random.Random(self.seed)
        self.network = Network(self.directory / "network.jsonl", seed=self.seed)
        self._watcher = CloseWatcher.available()
        if self._watcher:
            loop.add_reader(self._watcher.fd, self._watcher.readable)
        for index in range(1, self.count + 1):
            name = f"m{index}"
            vendor = personality(self.personalities[index - 1])
            sim = make_sim(index, rng, vendor.stores.get("SM", 50))
            sim.iccid = self.iccids.get(name, sim.iccid) or ""
            sim.imsi = self.imsis.get(name, sim.imsi)
            modem = VirtualModem(name, vendor, sim, self.network, imei=make_imei(vendor.imei_tac, rng),
                                 rng=random.Random(rng.random()), latency=self.latency,
                                 realistic=self.realistic, table=TABLE.commands)
            self._modems[name] = modem
            self.network.attach(sim, modem)
            self._ports[name] = ModemPort(modem, self.directory / name, loop, self._watcher)
            self._chatters.append(Chatter(modem, loop, self.chatter))
        unknown = set(self.start_faults) - set(self._modems)
        if unknown:
            await self.stop()
            raise ValueError(f"faults given for unknown modem(s) {sorted(unknown)}")
        for given, what in ((self.iccids, "ICCIDs"), (self.imsis, "IMSIs")):
            if set(given) - set(self._modems):
                await self.stop()
                raise ValueError(f"{what} given for unknown modem(s) "
                                 f"{sorted(set(given) - set(self._modems))}")
        for name, port in self._ports.items():
            port.open()
            for kind, params in self.start_faults.get(name, {}).items():
                self.set_fault(name, kind, **params)
            for line in self._modems[name].power_on_urcs():
                self._modems[name].urc(line)
        for chatter in self._chatters:
            chatter.start()
        self.modems = [self._info(name) for name in self._modems]
        self._write_bank_json()
        if self._watcher is None:
            self._housekeeping = loop.call_later(_EXCLUSIVITY_CHECK, self._clear_exclusivity)
        log.info("simulated bank of %d modems in %s", self.count, self.directory)

    async def stop(self) -> None:
        if self._housekeeping:
            self._housekeeping.cancel()
        for timer in self._replug_timers.values():
            timer.cancel()
        for chatter in self._chatters:
            chatter.stop()
        for port in self._ports.values():
            port.close()
        if self._watcher:
            asyncio.get_running_loop().remove_reader(self._watcher.fd)
            self._watcher.close()
            self._watcher = None
        (self.directory / "bank.json").unlink(missing_ok=True)
        if self.network:
            self.network.close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _clear_exclusivity(self) -> None:
        for port in self._ports.values():
            port.clear_exclusive()
        self._housekeeping = asyncio.get_running_loop().call_later(
            _EXCLUSIVITY_CHECK, self._clear_exclusivity)

    def _info(self, name: str) -> ModemInfo:
        modem = self._modems[name]
        return ModemInfo(name=name, device=str(self.directory / name), imei=modem.imei,
                         imsi=modem.sim.imsi, iccid=modem.sim.iccid, msisdn=modem.sim.msisdn,
                         operator=modem.sim.operator.name, personality=modem.personality.name)

    def _write_bank_json(self) -> None:
        path = self.directory / "bank.json"
        temporary = path.with_suffix(".json.new")
        document = {"modems": [asdict(info) for info in self.modems],
                    "control": str(self.directory / "control.sock"),
                    "network_log": str(self.directory / "network.jsonl")}
        temporary.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")
        os.replace(temporary, path)

    # -- what tests and the control socket use --------------------------------------------
    @property
    def devices(self) -> list[str]:
        return [info.device for info in self.modems]

    def modem(self, name: str) -> VirtualModem:
        """The interpreter of one modem, for tests that look inside."""
        try:
            return self._modems[name]
        except KeyError:
            raise ValueError(f"no modem {name!r}; have {', '.join(self._modems)}") from None

    async def inject(self, to: str, sender: str, text: str, *, out_of_order: bool = False,
                     parts_delay: float = 0.0, alphabet: Any = None) -> list[str]:
        """An SMS from outside to a SIM (by MSISDN or modem name); returns the DELIVER PDUs."""
        assert self.network is not None
        return await self.network.inject(to, sender, text, out_of_order=out_of_order,
                                         parts_delay=parts_delay, alphabet=alphabet)

    def set_fault(self, name: str, kind: Fault | str, **params: Any) -> None:
        fault, merged = fault_params(kind, params)
        modem = self.modem(name)
        if fault is Fault.UNPLUG:
            modem.faults[fault] = merged
            self._unplug(name)
            if merged["duration"] is not None:
                self._replug_timers[name] = asyncio.get_running_loop().call_later(
                    float(merged["duration"]), self._replug, name)
            return
        modem.set_fault(fault, **params)

    def clear_fault(self, name: str, kind: Fault | str | None = None) -> None:
        modem = self.modem(name)
        if (kind is None or Fault(kind) is Fault.UNPLUG) and not self._ports[name].is_open:
            self._replug(name)
        modem.clear_fault(kind)

    async def unplug(self, name: str) -> None:
        """The modem disappears: its pty closes and its symlink goes away."""
        self.modem(name)
        self._unplug(name)

    async def replug(self, name: str) -> None:
        """The modem comes back on a new pty; the symlink is re-pointed to it."""
        self.modem(name)
        self._replug(name)

    def _unplug(self, name: str) -> None:
        self._ports[name].close()
        log.info("%s unplugged", name)

    def _replug(self, name: str) -> None:
        timer = self._replug_timers.pop(name, None)
        if timer:
            timer.cancel()
        port, modem = self._ports[name], self._modems[name]
        modem.faults.pop(Fault.UNPLUG, None)
        if port.is_open:
            return
        port.open()
        modem.reboot()
        assert self.network is not None
        self.network.retry_pending(modem.sim.msisdn)
        log.info("%s back on %s", name, port.pts)

    def set_signal(self, name: str, rssi: int) -> None:
        """Change a modem's signal level (0-31), as +CSQ reports it."""
        self.modem(name).set_signal(rssi)

    def network_log(self) -> list[dict[str, Any]]:
        assert self.network is not None
        return list(self.network.entries)

    async def wait_for_messages(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `n` completed messages have reached the network; returns them all."""
        assert self.network is not None
        return await self.network.wait_for_messages(n, timeout)
