"""`modempool doctor`: what goes wrong on real boxes, checked, each with what to do about it.

Every check reads the machine through an `Environment` (the /proc tree, /etc/group, the udev
rule directories, the user, the clock), so the tests run each one against a fake machine.
A finding that blocks sending makes `doctor` exit non-zero.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from modempool.box.ports import Holder, command_of, lock_holder, other_holders, port_holders

CLOCK_SKEW = 600.0            # seconds between our clock and the network's that is "far off"
DISK_LOW = 500 * 1024 ** 2    # bytes free below which the spool's disk is nearly full
DISK_FULL = 50 * 1024 ** 2    # ... and below which writes will soon fail


class Level(str, Enum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"       # blocks sending (on at least one SIM)


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result; `fix` says what to do."""

    check: str
    level: Level
    message: str
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.level is Level.PROBLEM

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level.value, "message": self.message,
                "fix": self.fix}


@dataclass(slots=True)
class Environment:
    """The machine as the checks see it (real by default; tests give fakes)."""

    proc: Path = Path("/proc")
    group_file: Path = Path("/etc/group")
    rules_dirs: tuple[Path, ...] = (Path("/etc/udev/rules.d"), Path("/run/udev/rules.d"),
                                    Path("/lib/udev/rules.d"), Path("/usr/lib/udev/rules.d"))
    localtime: Path = Path("/etc/localtime")
    user: str = field(default_factory=lambda: pwd.getpwuid(os.getuid()).pw_name)
    uid: int = field(default_factory=os.getuid)
    group_ids: tuple[int, ...] = field(default_factory=lambda: tuple(os.getgroups()))
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    disk_free: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free
    can_open: Callable[[str], bool] = lambda port: os.access(port, os.R_OK | os.W_OK)
    lock_dir: str | None = None

    def groups_of_user(self) -> set[str]:
        """Names of the groups the user belongs to (from the group file and this process)."""
        names = set()
        try:
            for line in self.group_file.read_text(encoding="utf-8").splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and self.user in fields[3].split(","):
                    names.add(fields[0])
        except OSError:
            pass
        for gid in self.group_ids:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                pass
        return names

    def processes(self) -> list[Holder]:
        out = []
        try:
            entries = [e for e in os.listdir(self.proc) if e.isdigit()]
        except OSError:
            return out
        for entry in entries:
            try:
                name = (self.proc / entry / "comm").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            out.append(Holder(int(entry), command_of(int(entry), self.proc) or name))
        return out


def diagnose(config: Any, env: Environment | None = None, spool: Any = None) -> list[Finding]:
    """Every check, in the order a person fixes them."""
    env = env or Environment()
    ports = [] if config.simulator else [m.port for m in config.modems]
    findings = [
        *_ports_exist(config, ports),
        _modemmanager(env, ports),
        _dialout(env, ports),
        *_held_ports(env, ports),
        _udev_rules(env),
        *_spool_disk(config, env),
        *_clock(config, env, spool),
        *_pins(spool),
    ]
    return findings


def _ports_exist(config: Any, ports: list[str]) -> list[Finding]:
    if config.simulator:
        return [Finding("ports", Level.OK, f"a simulated bank of {config.simulator} modems")]
    if not ports:
        return [Finding("ports", Level.PROBLEM, "the config names no modem",
                        "run `modempool discover --write-config modempool.toml`")]
    missing = [m for m in config.modems if not os.path.exists(m.port)]
    if not missing:
        return [Finding("ports", Level.OK, f"every configured port exists ({len(ports)})")]
    return [Finding("ports", Level.PROBLEM, f"modem {m.name}: port {m.port} does not exist",
                    "is the modem plugged in? `modempool discover` lists the ports that answer; "
                    "fix the port in the config") for m in missing]


def _modemmanager(env: Environment, ports: list[str]) -> Finding:
    managers = [p for p in env.processes() if "ModemManager" in p.command]
    if not managers:
        return Finding("modemmanager", Level.OK, "ModemManager is not running")
    held = [port for port in ports
            if any(h.pid == managers[0].pid for h in port_holders(port, env.proc))]
    fix = ("`sudo modempool udev --install` (tags the ports ID_MM_DEVICE_IGNORE), or "
           "`sudo systemctl disable --now ModemManager` if this box needs no mobile data")
    if held:
        return Finding("modemmanager", Level.PROBLEM,
                       f"ModemManager ({managers[0]}) holds {', '.join(held)}", fix)
    return Finding("modemmanager", Level.WARNING,
                   f"ModemManager is running ({managers[0]}); it probes new serial ports", fix)


def _dialout(env: Environment, ports: list[str]) -> Finding:
    if env.uid == 0:
        return Finding("dialout", Level.OK, "running as root (a service should have its own "
                       "user in group dialout: `modempool systemd-unit`)")
    if "dialout" in env.groups_of_user():
        return Finding("dialout", Level.OK, f"user {env.user} is in group dialout")
    denied = [p for p in ports if os.path.exists(p) and not env.can_open(p)]
    fix = f"`sudo usermod -aG dialout {env.user}`, then log in again"
    if denied:
        return Finding("dialout", Level.PROBLEM, f"user {env.user} is not in group dialout and "
                       f"may not open {', '.join(denied)} (permission denied)", fix)
    return Finding("dialout", Level.WARNING, f"user {env.user} is not in group dialout", fix)


def _held_ports(env: Environment, ports: list[str]) -> list[Finding]:
    findings = []
    for port in ports:
        if not os.path.exists(port):
            continue
        holders = other_holders(port, env.proc)
        locked = lock_holder(port, env.lock_dir)
        if locked is not None and all(h.pid != locked.pid for h in holders):
            holders.append(locked)
        others = [h for h in holders if not h.is_modempool and "ModemManager" not in h.command]
        if others:
            findings.append(Finding("held", Level.PROBLEM,
                                    f"{port} is held by {', '.join(map(str, others))}",
                                    f"close that program (`kill {others[0].pid}`)"))
        elif any(h.is_daemon for h in holders):
            findings.append(Finding("held", Level.OK, f"{port} is driven by the modempool daemon"))
    if not findings and ports:
        findings.append(Finding("held", Level.OK, "no other program holds a configured port"))
    return findings


def _udev_rules(env: Environment) -> Finding:
    for directory in env.rules_dirs:
        try:
            files = sorted(directory.glob("*.rules"))
        except OSError:
            continue
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "modempool" in text and "ID_MM_DEVICE_IGNORE" in text:
                return Finding("udev", Level.OK, f"udev rules in {path}")
    return Finding("udev", Level.WARNING, "no modempool udev rules: port names change across "
                   "reboots and ModemManager may grab the modems",
                   "`sudo modempool udev --install`")


def _spool_disk(config: Any, env: Environment) -> list[Finding]:
    directory = Path(config.spool_path).parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    target = Path(config.spool_path)
    writable = os.access(target if target.exists() else directory, os.W_OK)
    findings = [Finding("spool", Level.OK, f"spool {target} is writable") if writable else
                Finding("spool", Level.PROBLEM, f"the spool {target} is not writable by {env.user}",
                        f"`sudo chown {env.user} {target if target.exists() else directory}`")]
    free = env.disk_free(directory)
    mib = free // 1024 ** 2
    if free < DISK_FULL:
        findings.append(Finding("disk", Level.PROBLEM, f"the spool's disk is full ({mib} MiB free)",
                                "free some space (old logs?); `modempool backup` first"))
    elif free < DISK_LOW:
        findings.append(Finding("disk", Level.WARNING, f"the spool's disk is nearly full "
                                f"({mib} MiB free)", "free some space soon"))
    else:
        findings.append(Finding("disk", Level.OK, f"{mib} MiB free beside the spool"))
    return findings


def _clock(config: Any, env: Environment, spool: Any) -> list[Finding]:
    findings = []
    if config.timezone or env.environ.get("TZ") or env.localtime.exists():
        findings.append(Finding("timezone", Level.OK, "a time zone is set"))
    else:
        findings.append(Finding("timezone", Level.WARNING, "no time zone set: daily and monthly "
                                "quotas and quiet hours follow UTC",
                                "`sudo timedatectl set-timezone Asia/Shanghai`, or [pool] timezone "
                                "in the config"))
    skew = _network_skew(spool)
    if skew is None:
        return findings
    if abs(skew) > CLOCK_SKEW:
        findings.append(Finding("clock", Level.WARNING, f"the clock is {abs(skew) / 60:.0f} min "
                                f"{'ahead of' if skew > 0 else 'behind'} the network's (last SMS "
                                "received)", "enable time sync: `sudo timedatectl set-ntp true`"))
    else:
        findings.append(Finding("clock", Level.OK, "the clock agrees with the network's"))
    return findings


def _network_skew(spool: Any) -> float | None:
    """Our clock minus the network's, from the last SMS stored (its service centre time stamp
    against when we stored it)."""
    if spool is None:
        return None
    stamps = spool.inbound.last_stamps()
    if stamps is None:
        return None
    try:
        received = datetime.fromisoformat(stamps[0])
        stored = datetime.fromisoformat(stamps[1])
    except (TypeError, ValueError):
        return None
    if received.tzinfo is None:
        received = received.replace(tzinfo=timezone.utc)
    return (stored - received).total_seconds()


def _pins(spool: Any) -> list[Finding]:
    """SIMs that refused their configured PIN (the spool remembers each refusal, so the daemon
    never enters it again), and SIMs that now want their PUK."""
    if spool is None:
        return []
    findings = []
    refused_sims = set()
    for refusal in spool.refused_pins.every():
        name = refusal.get("sim") or refusal["sim_key"]
        refused_sims.add(name)
        left = refusal.get("attempts_left")
        attempts = f", {left} attempt(s) left" if left is not None else ""
        findings.append(Finding(
            "pin", Level.PROBLEM,
            f"SIM {name} refused its configured PIN at {refusal['refused_at']}{attempts}: "
            f"{refusal.get('reason') or 'no reason given'}",
            "fix `pin` in its [[modem]] table; modempool never tries a refused PIN again, and "
            "enters the new one at the next start"))
    for row in spool.sims():
        error = row.get("last_error") or ""
        if row["name"] not in refused_sims and "PUK" in error:
            findings.append(Finding("pin", Level.PROBLEM, f"SIM {row['name']}: {error}",
                                    "a SIM asking for its PUK must be unblocked in a phone"))
    return findings
