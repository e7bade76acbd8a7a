"""How fast a bank of simulated modems starts, what it costs idle, and a round trip.

    python benchmarks/bench_simulator.py [--modems 64] [--idle 5]

Prints numbers; asserts nothing (speed is measured here, not in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from simulator import SimulatedBank


async def at_round_trips(device: str, count: int) -> float:
    """Seconds per `AT` round trip from an asyncio client on the same event loop."""
    loop = asyncio.get_running_loop()
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    received = asyncio.Queue()
    loop.add_reader(fd, lambda: received.put_nowait(os.read(fd, 4096)))
    try:
        os.write(fd, b"ATE0\r")
        data = b""
        while b"OK\r\n" not in data:
            data += await received.get()
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, b"AT\r")
            data = b""
            while b"OK\r\n" not in data:
                data += await received.get()
        return (time.perf_counter() - start) / count
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def main(modems: int, idle: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        bank = SimulatedBank(modems, directory, personality="mixed", seed=1)
        await bank.start()
        started = time.perf_counter() - wall0
        print(f"{modems} modems started in {started * 1000:.1f} ms "
              f"({(time.process_time() - cpu0) * 1000:.1f} ms CPU)")
        try:
            cpu1 = time.process_time()
            await asyncio.sleep(idle)
            used = time.process_time() - cpu1
            print(f"idle for {idle:.1f} s: {used * 1000:.1f} ms CPU "
                  f"({used / idle * 100:.3f} % of one core)")
            per = await at_round_trips(bank.devices[0], 500)
            print(f"AT round trip through the pty: {per * 1e6:.0f} µs")
        finally:
            await bank.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--idle", type=float, default=5.0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.modems, arguments.idle))
