"""A systemd unit for the daemon (`modempool systemd-unit [--install]`).

Type=notify: the daemon says READY=1 when its modems are up and pings WATCHDOG=1 from its loop,
so systemd restarts a daemon that hangs, not only one that dies. It runs as its own user in
group dialout, with the file system read-only but for the spool's directory and the lock
directory, and only serial devices allowed. TimeoutStopSec leaves room for the message in flight
(the send timeout) before systemd kills the daemon.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNIT_NAME = "modempool.service"
UNIT_DIR = Path("/etc/systemd/system")
WATCHDOG_SEC = 60


@dataclass(frozen=True, slots=True)
class UnitSettings:
    """What the unit needs to know about this box."""

    exec_start: str
    config_path: Path
    writable: tuple[str, ...]          # the spool's directory, the lock directory, the log's
    user: str = "modempool"
    stop_timeout: int = 90


def settings_for(config: Any, *, user: str = "modempool", program: str | None = None) -> UnitSettings:
    """The unit's settings for a loaded config (the config file must be given by path)."""
    from modempool.box.ports import DEFAULT_LOCK_DIR

    config_path = Path(config.path).resolve()
    program = program or shutil.which("modempool") or f"{sys.executable} -m cli"
    writable = [str(Path(config.spool_path).resolve().parent), config.lock_dir or DEFAULT_LOCK_DIR]  # not this shell's
    if config.log_file:
        writable.append(str(Path(config.log_file).resolve().parent))
    # The message in flight gets the send timeout, then leases are released: a margin on top.
    stop_timeout = int(config.retry.send_timeout) + 30
    return UnitSettings(f"{program} run --config {shlex.quote(str(config_path))}", config_path,
                        tuple(dict.fromkeys(writable)), user, stop_timeout)


def unit(settings: UnitSettings) -> str:
    """The text of modempool.service."""
    writable = " ".join(shlex.quote(path) for path in settings.writable)
    return f"""\
# modempool: the daemon that drives a GSM modem bank (written by `modempool systemd-unit`).
# Before starting it, create its user (in group dialout, for the serial ports):
#   sudo useradd --system --home-dir /var/lib/modempool --groups dialout {settings.user}
#   sudo chown -R {settings.user}: {settings.writable[0]}
[Unit]
Description=modempool SMS modem bank daemon
Documentation=https://github.com/modempool/modempool/blob/main/docs/deploy.md
After=network-online.target systemd-udev-settle.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={settings.exec_start}
Restart=on-failure
RestartSec=5
WatchdogSec={WATCHDOG_SEC}
TimeoutStopSec={settings.stop_timeout}
KillMode=mixed
User={settings.user}
Group={settings.user}
SupplementaryGroups=dialout

# Hardening: nothing but the spool, the port locks and the serial devices.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={writable}
PrivateTmp=yes
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
DevicePolicy=closed
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyS rw

[Install]
WantedBy=multi-user.target
"""


def verify(path: Path) -> tuple[bool, str]:
    """`systemd-analyze verify` on a unit file: (ok, what it said). No running systemd needed."""
    program = shutil.which("systemd-analyze")
    if program is None:
        raise FileNotFoundError("systemd-analyze")
    result = subprocess.run([program, "verify", str(path)], capture_output=True, text=True)
    said = (result.stderr + result.stdout).strip()
    return result.returncode == 0 and not said, said  # it warns of unknown keys, yet exits 0


def install(text: str, *, unit_dir: Path = UNIT_DIR, reload: bool = True) -> list[str]:
    """Write the unit and tell systemd about it; returns what was done."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    target = unit_dir / UNIT_NAME
    target.write_text(text, encoding="utf-8")
    done = [f"wrote {target}"]
    systemctl = shutil.which("systemctl") if reload else None
    if systemctl:
        result = subprocess.run([systemctl, "daemon-reload"], capture_output=True, text=True)
        done.append("systemctl daemon-reload" if result.returncode == 0 else
                    f"systemctl daemon-reload failed: {result.stderr.strip()}")
    done.append(f"next: create the user (see the top of {target}), then "
                f"`sudo systemctl enable --now modempool`")
    return done
