"""How fast the AT layer goes: the sans-I/O core alone, and one driver against a simulated modem.

    python benchmarks/bench_at_driver.py

Prints numbers; asserts nothing (speed is not a test).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from at_commands import AtConnection, Modem  # noqa: E402

PDU = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD06"


def bench_core(rounds: int = 20000) -> None:
    reply = (b"\r\n+CMGL: 1,0,,24\r\n" + PDU.encode() + b"\r\n\r\n+CMTI: \"SM\",3\r\n"
             b"\r\n^RSSI:17\r\n\r\nOK\r\n")
    core = AtConnection()
    started = time.perf_counter()
    for _ in range(rounds):
        core.send_command("AT+CMGL=4", prefixes=("+CMGL",))
        core.receive_data(reply)
        core.events()
    elapsed = time.perf_counter() - started
    print(f"core: {rounds / elapsed:,.0f} exchanges/s "
          f"({len(reply) * rounds / elapsed / 1e6:.1f} MB/s of modem output, 5 lines each)")


async def bench_driver(messages: int = 200) -> None:
    import pdu
    from simulator import SimulatedBank

    async with SimulatedBank(modems=2, directory=tempfile.mkdtemp(), seed=1) as bank:
        modem = Modem(bank.devices[0], name="m1", poll_interval=3600, sweep_interval=3600)
        await modem.open()
        started = time.perf_counter()
        await modem.initialise()
        await modem.identify()
        print(f"driver: open+initialise+identify {1000 * (time.perf_counter() - started):.0f} ms")
        parts = pdu.encode_submit(bank.modems[1].msisdn, "benchmark message")
        started = time.perf_counter()
        for _ in range(messages):
            await modem.send(parts)
        elapsed = time.perf_counter() - started
        print(f"driver: {messages / elapsed:,.0f} single-part sends/s on one modem that answers "
              f"at once ({1000 * elapsed / messages:.2f} ms of overhead per message)")
        started = time.perf_counter()
        for _ in range(messages):
            await modem.query("signal")
        elapsed = time.perf_counter() - started
        print(f"driver: {1000 * elapsed / messages:.2f} ms per AT round trip (AT+CSQ over a pty)")
        await modem.close()


if __name__ == "__main__":
    bench_core()
    asyncio.run(bench_driver())
