"""The real daemon as a subprocess, against a simulated bank served by the test's event loop.

The bank's modems are pseudo-terminals: the daemon process opens them with pyserial exactly as it
would open `/dev/ttyUSB*`. Tests drive faults and inbound SMS through the bank object and read the
outcome from the daemon's SQLite spool and the simulator's network log.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modempool.spool import Spool

REPO = Path(__file__).resolve().parents[2]
_LIVE: set[asyncio.subprocess.Process] = set()


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process goes away (no orphaned daemons)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def kill_leftovers() -> None:
    """Kill daemons a failed test left running (call from a fixture's teardown)."""
    for proc in list(_LIVE):
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        _LIVE.discard(proc)


def modempool_cli(*args: str, config: Path | None = None, stdin: str | None = None,
                  cwd: Path | None = None, timeout: float = 60,
                  umask: int = -1) -> subprocess.CompletedProcess:
    """`modempool ARGS [--config FILE]` in a subprocess, as a user runs it (with `umask`, that
    one; else this process's)."""
    command = [sys.executable, "-m", "cli", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, umask=umask)


#: How long a wait for another process may take before the test calls it a hang: generous,
#: since a loaded machine (a shared CI runner, six suites on two cores) is slow, not stuck.
HANG = 120.0


async def eventually(condition: Callable[[], Any], timeout: float = HANG, what: str = "", *,
                     progress: Callable[[], Any] | None = None) -> Any:
    """Poll `condition` until it returns something true (no event crosses the process
    boundary). It fails after `timeout` seconds; with `progress` (whose value changes while
    the work goes on, such as a count of settled messages) only after `timeout` seconds
    without a change, so that a long drain on a slow machine is not taken for a hang."""
    deadline = time.monotonic() + timeout
    seen = progress() if progress is not None else None
    while True:
        value = condition()
        if value:
            return value
        if progress is not None and (now := progress()) != seen:
            seen, deadline = now, time.monotonic() + timeout
        if time.monotonic() > deadline:
            stalled = " without progress" if progress is not None else ""
            raise AssertionError(f"timed out after {timeout} s{stalled} waiting for "
                                 f"{what or condition}")
        await asyncio.sleep(0.05)


#: A message in either state has no outcome yet (and may move between them: a retry).
UNSETTLED = ("queued", "sending")


async def outcomes(spool: Any, ids: list[int], what: str = "each message with an outcome"
                   ) -> list[str]:
    """The states of messages `ids` once none is queued or sending. Each poll reads them all in
    one statement (one moment): read one at a time, or one twice, a message claimed between
    two reads (queued, then sending) passed for one with an outcome. It fails at once if a
    message seen with an outcome is seen queued or sending again (a state going backwards)."""
    last: dict[int, str] = {}

    def settled() -> list[str] | None:
        states = [message.state.value for message in spool.get_many(ids)]
        for message_id, state in zip(ids, states):
            before = last.get(message_id)
            assert before in UNSETTLED or before is None or state not in UNSETTLED, (
                f"message {message_id} went back from {before} to {state}")
            last[message_id] = state
        return None if any(state in UNSETTLED for state in states) else states

    return await eventually(settled, what=what)


def sent_or_delivered_count(spool: Any) -> int:
    """How many messages are sent or delivered, from one read of the counts (two reads may
    straddle a delivery report: its message counted as sent and again as delivered)."""
    counts = spool.counts()
    return counts["sent"] + counts["delivered"]


async def drained(spool: Any) -> None:
    """Wait until `spool` has nothing queued or being sent (the daemons' work is done)."""
    def left() -> int:
        counts = spool.counts()
        return counts["queued"] + counts["sending"]

    await eventually(lambda: left() == 0, progress=left, what="the queue drained")


def write_config(path: Path, devices: list[str], *, modems: dict[str, dict[str, Any]] | None = None,
                 retry: dict[str, Any] | None = None, pool: dict[str, Any] | None = None,
                 extra: str = "") -> Path:
    """A config naming each simulated modem m1..mN by its pty symlink."""
    lines = ["[spool]", f'path = "{path.parent / "spool.db"}"', 'synchronous = "normal"', ""]
    if pool:
        lines += ["[pool]", *(f"{k} = {_toml(v)}" for k, v in pool.items()), ""]
    retry = {"backoff": 0.2, "backoff_max": 1.0, **(retry or {})}
    lines += ["[retry]", *(f"{k} = {_toml(v)}" for k, v in retry.items()), ""]
    for device in devices:
        name = Path(device).name
        lines += ["[[modem]]", f'name = "{name}"', f'port = "{device}"']
        lines += [f"{k} = {_toml(v)}" for k, v in (modems or {}).get(name, {}).items()]
        lines.append("")
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value) + '"'


class DaemonProcess:
    """`modempool run --config FILE` in a subprocess, its log in a file."""

    def __init__(self, config: Path | None, log: Path | None = None, *, args: tuple[str, ...] = (),
                 cwd: Path = REPO, env: dict[str, str] | None = None,
                 wrapper: tuple[str, ...] = ()) -> None:
        self.config = config
        self.wrapper = wrapper  # a command the daemon runs under (`unshare ...`)
        assert config is not None or log is not None
        self.log = log or config.with_suffix(".log")  # type: ignore[union-attr]
        self.args = (*(("--config", str(config)) if config else ()), *args)
        self.cwd = cwd
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self._log_start = 0

    async def start(self, wait_ready: bool = True) -> DaemonProcess:
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **self.env}
        with open(self.log, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.wrapper, sys.executable, "-m", "cli", "run", *self.args,
                *(["-vv"] if os.environ.get("MODEMPOOL_TEST_DEBUG") else []),
                stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL, cwd=self.cwd, env=env,
                preexec_fn=_die_with_parent)
        _LIVE.add(self.proc)
        if wait_ready:
            await self.wait_for_log("pool ready")
        return self

    def output(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return text[self._log_start:]

    async def wait_for_log(self, needle: str, timeout: float = HANG) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.output()}")
            return needle in self.output()

        await eventually(seen, timeout, f"{needle!r} in the daemon log")

    async def stop(self, timeout: float = HANG) -> int:
        """SIGTERM, then wait: a graceful stop."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


def network_messages(bank: Any) -> list[dict[str, Any]]:
    return [e for e in bank.network_log() if e["kind"] == "message"]


def states(spool: Spool) -> dict[int, str]:
    return {m.id: m.state.value for m in spool.list()}


class NotifySocket:
    """The socket systemd would hold for a Type=notify unit: what the daemon sent, line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.setblocking(False)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NotifySocket:
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        self._socket.close()

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self._socket, 4096)
            self.received.extend(data.decode().splitlines())
