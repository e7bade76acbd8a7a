"""A pyserial client on a simulated modem's real pty, for the simulator's tests.

pyserial blocks, and the bank answers from the same event loop, so every serial call runs in a
worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import re
import time

import serial


FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n|\r\n> ")


class AtPort:
    """A client on one simulated modem's device, as a program would open it."""

    def __init__(self, device: str) -> None:
        self.serial = serial.Serial(device, 115200, timeout=0.02)
        self.pending = b""  # read but not yet consumed (URCs that came early)

    def close(self) -> None:
        self.serial.close()

    def _read_until(self, pattern: re.Pattern[bytes], timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        data = self.pending
        while not pattern.search(data):
            if time.monotonic() > deadline:
                self.pending = b""
                raise TimeoutError(f"no {pattern.pattern!r} within {timeout} s; got {data!r}")
            data += self.serial.read(4096)
        match = pattern.search(data)
        assert match is not None
        self.pending = data[match.end():]
        return data[:match.end()]

    async def send(self, data: bytes, until: bytes | re.Pattern[bytes] = FINAL,
                   timeout: float = 5.0) -> bytes:
        """Write raw bytes, then read up to and including `until`."""
        pattern = until if isinstance(until, re.Pattern) else re.compile(re.escape(until))

        def work() -> bytes:
            self.serial.write(data)
            return self._read_until(pattern, timeout)
        return await asyncio.to_thread(work)

    async def command(self, line: str, timeout: float = 5.0) -> bytes:
        """One command line; returns everything up to its final result (or the prompt)."""
        return await self.send(line.encode() + b"\r", FINAL, timeout)

    async def expect(self, pattern: bytes, timeout: float = 5.0) -> bytes:
        """Wait for output (an unsolicited code) matching the regex `pattern`."""
        return await asyncio.to_thread(self._read_until, re.compile(pattern), timeout)

    async def silence(self, seconds: float) -> bytes:
        """Everything the modem says within `seconds` (to check it says nothing)."""
        def work() -> bytes:
            end, data = time.monotonic() + seconds, self.pending
            while time.monotonic() < end:
                data += self.serial.read(4096)
            self.pending = b""
            return data
        return await asyncio.to_thread(work)


def info_lines(reply: bytes) -> list[str]:
    """The non-empty lines of a reply without the final result and the echo."""
    lines = [line for line in reply.decode("latin-1").split("\r\n") if line]
    return lines[:-1]
