"""How fast a bank of simulated modems starts, what it costs idle, a round trip, and the CPU
one SMS costs the bank and the AT driver that sends it.

    python benchmarks/bench_simulator.py [--modems 64] [--idle 5] [--sms 20]

`--sms N`: N one-part messages from each of 16 modems, with their delivery reports (+CDS)
acknowledged, sent by `at_commands.Modem`s in a child process (no spool, no database): the
CPU time per SMS of this process (the simulated bank: ptys, AT interpreter, PDU decoding,
network log, reports) and of the child (the event-loop side of a daemon's send).

Prints numbers; asserts nothing (speed is measured here, not in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator import SimulatedBank  # noqa: E402


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


async def drive(devices: list[str], messages: int) -> None:
    """The child: send `messages` SMS from each device, acknowledging their reports; prints
    its CPU seconds for the sends (after opening and initialising)."""
    import pdu
    from at_commands import Modem, StatusReport

    modems = [Modem(device, name=f"m{i}", poll_interval=3600, sweep_interval=3600)
              for i, device in enumerate(devices)]
    for modem in modems:
        await modem.open()
        await modem.initialise()
    parts = pdu.encode_submit("+8613800138000", "benchmark message", status_report=True)

    async def one(modem: Modem) -> None:
        reports = 0
        events = modem.events()

        async def acknowledge() -> None:
            nonlocal reports
            async for event in events:
                if isinstance(event, StatusReport):
                    await modem.acknowledge(event)
                    reports += 1
                    if reports == messages:
                        return
        acknowledging = asyncio.create_task(acknowledge())
        for _ in range(messages):
            await modem.send(parts)
        await acknowledging

    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    async with asyncio.TaskGroup() as group:
        for modem in modems:
            group.create_task(one(modem))
    print(time.process_time() - cpu, flush=True)
    for modem in modems:
        await modem.close()


async def sms_cost(modems: int, messages: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with SimulatedBank(modems, directory, seed=1) as bank:
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--drive", str(messages), *bank.devices,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            assert child.stdin is not None and child.stdout is not None
            await child.stdout.readline()                 # ready: opened and initialised
            cpu, wall = time.process_time(), time.perf_counter()
            child.stdin.write(b"go\n")
            driver = float(await child.stdout.readline())
            bank_cpu, elapsed = time.process_time() - cpu, time.perf_counter() - wall
            await child.wait()
            reports = sum(1 for e in bank.network_log() if e["kind"] == "report")
    total = modems * messages
    print(f"{total} SMS from {modems} modems with their reports ({reports}) in {elapsed:.2f} s: "
          f"CPU per SMS: the bank {1000 * bank_cpu / total:.3f} ms, the AT driver "
          f"{1000 * driver / total:.3f} ms (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:
        asyncio.run(drive(sys.argv[3:], int(sys.argv[2])))
        sys.exit()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--sms", type=int, default=0, metavar="N",
                        help="only the CPU per SMS: N messages from each of 16 modems")
    arguments = parser.parse_args()
    if arguments.sms:
        asyncio.run(sms_cost(16, arguments.sms))
    else:
        asyncio.run(main(arguments.modems, arguments.idle))
