"""`modempool discover`: which serial ports answer AT, which modem and SIM is behind each, and
a config (and udev rules) for them.

Ports come from /dev/serial/by-path (the physical USB slot, stable across reboots), then any
ttyUSB/ttyACM without such a name, or from a glob (`--ports '/tmp/bank/m*'` for a simulated
bank). Each port is probed briefly and safely, all at once: a port another process holds (its
UUCP lock, or open in /proc) is left alone, a silent port is given up after a few seconds, and a
PIN is never entered. A stick with several ports shows one modem (one IMEI): the first port
that answers is its AT port, the others are listed as its other ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modempool.box.ports import busy_message, lock_holder, other_holders

ATTENTION_WAIT = 2.5   # seconds for each of two `AT`s: a slow modem (1.5 s) still answers
PORT_PATTERNS = ("/dev/ttyUSB*", "/dev/ttyACM*")
BY_PATH = Path("/dev/serial/by-path")


@dataclass(frozen=True, slots=True)
class FoundPort:
    """One serial port and what answered on it."""

    port: str                         # the stable name (by-path link) where there is one
    device: str                       # what it points to (/dev/ttyUSB3)
    usb_path: str | None = None       # udev ID_PATH: the physical slot
    role: str = "silent"              # "at" | "other" (another port of a modem) | "silent" | "busy"
    busy_by: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    imei: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    operator: str | None = None
    msisdn: str | None = None
    sim: str | None = None            # "ready" | "pin" | "puk" | "absent" | None (no answer)
    profile: str | None = None
    name: str = ""                    # the name proposed for its [[modem]] table

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Discovery:
    """Every port looked at; `modems` are the AT ports, one per modem."""

    ports: list[FoundPort] = field(default_factory=list)

    @property
    def modems(self) -> list[FoundPort]:
        return [p for p in self.ports if p.role == "at"]

    def to_dict(self) -> dict[str, Any]:
        return {"modems": [p.to_dict() for p in self.modems],
                "ports": [p.to_dict() for p in self.ports]}


def candidate_ports(pattern: str | None = None, *, by_path: Path = BY_PATH,
                    patterns: tuple[str, ...] = PORT_PATTERNS) -> list[tuple[str, str, str | None]]:
    """(port, device, usb_path) of every port to look at, each device once, stable names first."""
    found: dict[str, tuple[str, str, str | None]] = {}
    if pattern is not None:
        for port in sorted(glob.glob(pattern)):
            if os.path.isdir(port) or not _is_char_device(port):
                continue
            found.setdefault(os.path.realpath(port), (port, os.path.realpath(port), None))
        return list(found.values())
    if by_path.is_dir():
        for link in sorted(by_path.iterdir()):
            device = os.path.realpath(link)
            found.setdefault(device, (str(link), device, usb_path_of(link.name)))
    for pattern_ in patterns:
        for port in sorted(glob.glob(pattern_), key=_natural):
            found.setdefault(os.path.realpath(port), (port, os.path.realpath(port), None))
    return list(found.values())


def usb_path_of(by_path_name: str) -> str:
    """udev's ID_PATH from a /dev/serial/by-path name (`...-port0` for ttyUSB ports)."""
    return re.sub(r"-port\d+$", "", by_path_name)


def modem_name(port: str, usb_path: str | None, taken: set[str]) -> str:
    """A short stable name: `usb-1.2` from the USB port chain of the slot, else the port's
    basename (`m1` for a simulated modem); made unique against `taken`."""
    base = Path(port).name
    if usb_path:
        chain = re.search(r"usb-\d+:([\d.]+):", usb_path + ":")
        base = f"usb-{chain.group(1)}" if chain else usb_path
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-") or "modem"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


async def discover(pattern: str | None = None, *, lock_dir: str | None = None,
                   wait: float = ATTENTION_WAIT, by_path: Path = BY_PATH) -> Discovery:
    """Look at every candidate port at once and say what is behind each."""
    candidates = candidate_ports(pattern, by_path=by_path)
    results = await asyncio.gather(*(_look(port, device, usb, lock_dir, wait)
                                     for port, device, usb in candidates))
    return Discovery(assign_roles(results))


def assign_roles(results: list[FoundPort]) -> list[FoundPort]:
    """One AT port per modem (IMEI): the first port of a stick that answers; the others of the
    same stick become "other"; each AT port gets its proposed name."""
    seen_imei: set[str] = set()
    taken: set[str] = set()
    ports = []
    for found in results:
        if found.role == "at":
            if found.imei and found.imei in seen_imei:   # another port of a modem already seen
                found = dataclasses.replace(found, role="other")
            else:
                if found.imei:
                    seen_imei.add(found.imei)
                found = dataclasses.replace(found, name=modem_name(found.port, found.usb_path, taken))
        ports.append(found)
    return ports


async def _look(port: str, device: str, usb_path: str | None, lock_dir: str | None,
                wait: float) -> FoundPort:
    holder = lock_holder(port, lock_dir)
    others = other_holders(port)
    if holder is not None or others:
        who = holder or others[0]
        return FoundPort(port, device, usb_path, role="busy", busy_by=busy_message(port, who))
    try:
        return await _probe(port, device, usb_path, wait)
    except Exception as exc:   # a port that cannot be opened or misbehaves: say so, go on
        return FoundPort(port, device, usb_path, role="silent", busy_by=str(exc) or None)


async def _probe(port: str, device: str, usb_path: str | None, wait: float) -> FoundPort:
    from at_commands import AtError, AtTimeout, Modem, detect_profile

    modem = Modem(port, name="discover", pin=None, poll_interval=3600, sweep_interval=3600,
                  reconnect_delays=())
    modem.log.setLevel(logging.ERROR)  # a silent port is a finding in the table, not a warning
    await modem.open()
    try:
        answered = False
        for _ in range(2):   # the first answer may be a half-finished command's
            try:
                result = await modem.execute("attention", timeout=wait, check=False)
            except AtTimeout:
                continue
            if result.ok:
                answered = True
                break
        if not answered:
            return FoundPort(port, device, usb_path, role="silent")
        await modem.execute("echo_off", check=False)
        await modem.execute("verbose_errors", check=False)
        try:
            manufacturer = await modem.query("manufacturer")
        except AtError:
            manufacturer = ""
        modem.profile = detect_profile(manufacturer or "")
        sim = await _sim_state(modem)
        info = await modem.identify()   # never enters a PIN: IMSI and number stay unknown then
        return FoundPort(port, device, usb_path, role="at", manufacturer=info.manufacturer,
                         model=info.model, imei=info.imei, iccid=info.iccid, imsi=info.imsi,
                         operator=info.operator, msisdn=info.msisdn, sim=sim,
                         profile=modem.profile.name)
    finally:
        await modem.close()


async def _sim_state(modem: Any) -> str | None:
    from at_commands import AtError, CmeError

    try:
        answer = str(await modem.query("pin_status") or "").upper()
    except CmeError as exc:
        return "absent" if getattr(exc, "code", None) in (10, 13) else None
    except AtError:
        return None
    return {"READY": "ready", "SIM PIN": "pin", "SIM PUK": "puk"}.get(answer.strip(), answer.lower() or None)


def _is_char_device(path: str) -> bool:
    import stat

    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass(frozen=True, slots=True)
class ConfigProposal:
    """What `--write-config` changes: modems to add, configured ones not found, the new text."""

    path: Path
    added: tuple[FoundPort, ...]
    missing: tuple[str, ...]          # names of configured modems whose port was not found
    text: str
    created: bool                     # the file did not exist

    @property
    def changed(self) -> bool:
        return self.created or bool(self.added)


def propose_config(discovery: Discovery, path: Path) -> ConfigProposal:
    """The config for the modems found: a new file, or, for an existing one, only the modems it
    lacks appended (its own text, comments and settings untouched)."""
    from modempool.config import load_config

    path = Path(path)
    if not path.exists():
        body = "".join(_modem_table(found) for found in discovery.modems)
        return ConfigProposal(path, tuple(discovery.modems), (), _NEW_CONFIG + body, True)
    config = load_config(path)
    configured = {os.path.realpath(m.port): m for m in config.modems}
    taken = {m.name for m in config.modems}
    added = []
    for found in discovery.modems:
        if found.device in configured or os.path.realpath(found.port) in configured:
            continue
        if found.name in taken:
            found = dataclasses.replace(found, name=modem_name(found.port, found.usb_path, taken))
        taken.add(found.name)
        added.append(found)
    seen = {p.device for p in discovery.ports}
    missing = tuple(m.name for device, m in configured.items() if device not in seen)
    text = path.read_text(encoding="utf-8")
    if added:
        text = text.rstrip("\n") + "\n" + "".join(_modem_table(found) for found in added)
    return ConfigProposal(path, tuple(added), missing, text, False)


_NEW_CONFIG = """\
# modempool configuration written by `modempool discover --write-config`.
# `modempool init` writes a file with every setting explained; copy what you need from it.

[spool]
path = "modempool.db"
"""


def _modem_table(found: FoundPort) -> str:
    who = " ".join(x for x in (found.manufacturer, found.model) if x) or "modem"
    sim = ", ".join(x for x in (found.operator, found.msisdn) if x)
    lines = ["", "[[modem]]",
             f"# {who}, IMEI {found.imei or '?'}; SIM {found.iccid or '?'}" + (f" ({sim})" if sim else ""),
             f'name = "{found.name}"', f'port = "{found.port}"']
    if found.sim == "pin":
        lines.append('# pin = "...."                     # this SIM asks for its PIN: give it here')
    elif found.sim == "puk":
        lines.append("# this SIM is blocked (PUK): unblock it in a phone first")
    return "\n".join(lines) + "\n"
