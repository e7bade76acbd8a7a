"""A cheap HTTP load generator for bench_http.py: raw keep-alive HTTP/1.1 over asyncio streams,
in a process of its own, so that the figures measure the server rather than the client.

An httpx client spends more CPU per request than the server it measures (about 1.5 ms), and
on a 2-core machine that CPU is taken from the server. Here each request is a few bytes
formatted by hand and each answer is read by its Content-Length: tens of microseconds.

    python benchmarks/http_load.py flat URL KEY CLIENTS SECONDS     # as fast as answered
    python benchmarks/http_load.py rate URL KEY RATE SECONDS        # steady rate; SIGINT stops

Each prints one JSON line: posts, rate, errors, latencies (flat), and the client's own CPU.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import signal
import statistics
import sys
import time
from urllib.parse import urlsplit


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Connection:
    """One keep-alive connection that POSTs JSON bodies to one path and reads the status."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                     "Content-Length: ")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """The answer's status; a kept-alive connection the server has closed meanwhile
        (uvicorn closes idle ones after 5 s) is opened again, once."""
        reused = self.writer is not None
        try:
            return await self._post(body)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
            return await self._post(body)

    async def _post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"{self.head}{len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _body(to: str, text: str) -> bytes:
    return json.dumps({"to": to, "text": text, "at": "2099-01-01T00:00:00+08:00"},
                      ensure_ascii=False).encode()


async def flat_out(url: str, key: str, clients: int, seconds: float, first: int = 0) -> dict:
    """`clients` connections, each POSTing one message after the other for `seconds`."""
    host, port = _address(url)
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + seconds

    async def one_client(index: int) -> None:
        nonlocal errors
        connection, n = Connection(host, port, key), 0
        try:
            while time.monotonic() < end:
                n += 1
                body = _body(f"138{index:04d}{n % 10000:04d}", "验证码 123456")
                started = time.perf_counter()
                status = await connection.post(body)
                latencies.append(time.perf_counter() - started)
                errors += status != 202
        finally:
            connection.close()

    cpu, started = cpu_seconds(), time.monotonic()
    await asyncio.gather(*(one_client(first + i) for i in range(clients)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return {"posts": len(latencies), "elapsed": elapsed, "errors": errors, "cpu": cpu,
            "latencies": latencies}


async def at_rate(url: str, key: str, rate: float, seconds: float, stop: asyncio.Event) -> dict:
    """POST at a steady `rate` per second over at most 64 connections for `seconds` or until
    `stop`; a tick that finds every connection busy is skipped (the server is behind)."""
    host, port = _address(url)
    idle = collections.deque(Connection(host, port, key) for _ in range(64))  # used in turn
    sent = errors = skipped = 0
    why: collections.Counter[str] = collections.Counter()   # status or exception -> count
    tasks: set[asyncio.Task] = set()

    async def one(connection: Connection, n: int) -> None:
        nonlocal sent, errors
        try:
            status = await connection.post(_body(f"139{n % 100_000_000:08d}", "load"))
            sent += 1
            if status != 202:
                errors += 1
                why[str(status)] += 1
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            errors += 1
            why[type(exc).__name__] += 1
        finally:
            idle.append(connection)

    cpu, started, n = cpu_seconds(), time.monotonic(), 0
    while (now := time.monotonic()) - started < seconds and not stop.is_set():
        while n < int((now - started) * rate):
            n += 1
            if not idle:
                skipped += 1
                continue
            task = asyncio.create_task(one(idle.popleft(), n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    for connection in idle:
        connection.close()
    return {"posts": sent, "rate": sent / elapsed, "errors": errors, "why": dict(why),
            "skipped": skipped,
            "cpu": cpu_seconds() - cpu, "elapsed": elapsed}


def summary(results: list[dict]) -> dict:
    """One figure set from several flat-out processes' results."""
    latencies = sorted(x for r in results for x in r["latencies"])
    posts = len(latencies)
    elapsed = max(r["elapsed"] for r in results)
    return {"posts": posts, "rate": posts / elapsed, "errors": sum(r["errors"] for r in results),
            "cpu": sum(r["cpu"] for r in results),
            "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
            "p99_ms": 1000 * latencies[int(0.99 * (posts - 1))] if latencies else 0.0}


def main(argv: list[str]) -> None:
    mode, url, key, amount, seconds = argv[:5]
    first = int(argv[5]) if len(argv) > 5 else 0
    if mode == "flat":
        figures = asyncio.run(flat_out(url, key, int(amount), float(seconds), first))
    else:
        async def steady() -> dict:
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            return await at_rate(url, key, float(amount), float(seconds), stop)
        figures = asyncio.run(steady())
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
