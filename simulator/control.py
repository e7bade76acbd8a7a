"""The control socket of a running bank (`DIR/control.sock`), its client, and the subprocess.

Protocol: one JSON object per line each way. Requests `{"op": ...}`:
`inject` (to, sender, text, out_of_order, parts_delay), `fault` (modem, fault, params),
`clear` (modem, fault|null), `unplug` / `replug` (modem), `signal` (modem, rssi), `info`, `wait` (n, timeout),
`log` (follow: bool). Answers `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`;
`log` answers with one log entry per line (and keeps streaming when following).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator.bank import ModemInfo, SimulatedBank

SOCKET_NAME = "control.sock"
READY_LINE = "simulator ready"


class ControlServer:
    """Serves one bank's control socket."""

    def __init__(self, bank: SimulatedBank) -> None:
        self.bank = bank
        self.path = bank.directory / SOCKET_NAME
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, 0o660)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if request.get("op") == "log":
                        await self._stream_log(writer, bool(request.get("follow")))
                        return
                    answer = {"ok": True, "result": await self._handle(request)}
                except (ValueError, KeyError, TypeError, TimeoutError) as error:
                    answer = {"ok": False, "error": str(error) or type(error).__name__}
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _handle(self, request: dict[str, Any]) -> Any:
        bank, op = self.bank, request["op"]
        if op == "inject":
            parts = await bank.inject(request["to"], request["sender"], request["text"],
                                      out_of_order=bool(request.get("out_of_order")),
                                      parts_delay=float(request.get("parts_delay", 0)))
            return {"parts": len(parts)}
        if op == "fault":
            bank.set_fault(request["modem"], request["fault"], **request.get("params", {}))
            return None
        if op == "clear":
            bank.clear_fault(request["modem"], request.get("fault"))
            return None
        if op == "unplug":
            await bank.unplug(request["modem"])
            return None
        if op == "replug":
            await bank.replug(request["modem"])
            return None
        if op == "signal":
            bank.set_signal(request["modem"], int(request["rssi"]))
            return None
        if op == "info":
            return [asdict(info) for info in bank.modems]
        if op == "wait":
            entries = await bank.wait_for_messages(int(request["n"]),
                                                   float(request.get("timeout", 10)))
            return len(entries)
        raise ValueError(f"unknown control operation {op!r}")

    async def _stream_log(self, writer: asyncio.StreamWriter, follow: bool) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        assert self.bank.network is not None
        stop_listening = self.bank.network.add_listener(queue.put_nowait)
        try:
            for entry in self.bank.network_log():
                writer.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
            while follow:
                entry = await queue.get()
                writer.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        finally:
            stop_listening()


# -- client ------------------------------------------------------------------------------
async def request(directory: str | os.PathLike[str], **message: Any) -> Any:
    """Send one control request to the bank running in `directory`; return its result."""
    path = Path(directory) / SOCKET_NAME
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise ConnectionError(f"no simulator is running in {directory} "
                              f"(start one with `modempool sim start --dir {directory}`)") from None
    try:
        writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())
    finally:
        writer.close()
    if not answer["ok"]:
        raise ValueError(answer["error"])
    return answer["result"]


async def read_log(directory: str | os.PathLike[str], *,
                   follow: bool = False) -> AsyncIterator[dict[str, Any]]:
    """The network log of a running bank; with `follow`, new entries as they come."""
    path = Path(directory) / SOCKET_NAME
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ConnectionError(f"no simulator is running in {directory}") from None
    try:
        writer.write(json.dumps({"op": "log", "follow": follow}).encode() + b"\n")
        await writer.drain()
        while line := await reader.readline():
            yield json.loads(line)
    finally:
        writer.close()


# -- running in the foreground -----------------------------------------------------------
async def serve(bank: SimulatedBank, say: Callable[[str], None] = print) -> None:
    """Run `bank` with its control socket until SIGINT or SIGTERM, then clean up."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with bank:
        control = ControlServer(bank)
        await control.start()
        try:
            for info in bank.modems:
                say(f"{info.name}  {info.device}  {info.msisdn}  {info.operator}  "
                    f"{info.personality}  IMEI {info.imei}")
            say(f"{READY_LINE}: {bank.directory / 'bank.json'} (Ctrl-C to stop)")
            await stopping.wait()
        finally:
            await control.stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)


def parse_fault_options(options: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """`m2:cms_error:code=500,count=2` -> {"m2": {"cms_error": {"code": 500, "count": 2}}}."""
    faults: dict[str, dict[str, dict[str, Any]]] = {}
    for option in options:
        modem, _, rest = option.partition(":")
        kind, _, params_text = rest.partition(":")
        if not modem or not kind:
            raise ValueError(f"bad fault {option!r}; write MODEM:FAULT[:key=value,...]")
        faults.setdefault(modem, {})[kind] = parse_params(
            params_text.split(",") if params_text else [])
    return faults


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """["code=500", "delivered=false"] -> {"code": 500, "delivered": False}."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"bad fault parameter {pair!r}; write key=value")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


# -- as a subprocess, for tests ----------------------------------------------------------
class SimulatorProcess:
    """`python -m simulator` in a subprocess; ready when it has written bank.json."""

    def __init__(self, directory: str | os.PathLike[str], modems: int = 2, *,
                 personality: str = "simcom", seed: int | None = None, latency: float = 0.0,
                 realistic: bool = False, faults: Sequence[str] = (),
                 startup_timeout: float = 20.0) -> None:
        self.directory = Path(directory)
        self.argv = [sys.executable, "-m", "simulator", "--modems", str(modems),
                     "--dir", str(self.directory), "--personality", personality,
                     "--latency", str(latency)]
        if seed is not None:
            self.argv += ["--seed", str(seed)]
        if realistic:
            self.argv.append("--realistic")
        for fault in faults:
            self.argv += ["--fault", fault]
        self.startup_timeout = startup_timeout
        self.process: asyncio.subprocess.Process | None = None
        self.modems: list[ModemInfo] = []
        self.output: list[str] = []

    @property
    def devices(self) -> list[str]:
        return [info.device for info in self.modems]

    async def __aenter__(self) -> SimulatorProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(self.startup_timeout):
                while True:
                    line = (await self.process.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError("simulator exited during startup:\n"
                                           + "".join(self.output))
                    self.output.append(line)
                    if line.startswith(READY_LINE):
                        break
        except BaseException:
            await self.stop()
            raise
        document = json.loads((self.directory / "bank.json").read_text(encoding="utf-8"))
        self.modems = [ModemInfo(**entry) for entry in document["modems"]]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL after 10 s); returns the exit status."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                rest = await self.process.stdout.read() if self.process.stdout else b""
                self.output.append(rest.decode(errors="replace"))
                return await self.process.wait()
        self.process.kill()
        return await self.process.wait()

    async def inject(self, to: str, sender: str, text: str, **options: Any) -> Any:
        return await request(self.directory, op="inject", to=to, sender=sender, text=text,
                             **options)

    async def set_fault(self, modem: str, fault: str, **params: Any) -> None:
        await request(self.directory, op="fault", modem=modem, fault=fault, params=params)

    async def clear_fault(self, modem: str, fault: str | None = None) -> None:
        await request(self.directory, op="clear", modem=modem, fault=fault)

    async def unplug(self, modem: str) -> None:
        await request(self.directory, op="unplug", modem=modem)

    async def replug(self, modem: str) -> None:
        await request(self.directory, op="replug", modem=modem)

    def network_log(self) -> list[dict[str, Any]]:
        """The entries of DIR/network.jsonl so far (the file is flushed line by line)."""
        path = self.directory / "network.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    async def wait_for_messages(self, n: int, timeout: float = 10.0) -> int:
        return await request(self.directory, op="wait", n=n, timeout=timeout)
