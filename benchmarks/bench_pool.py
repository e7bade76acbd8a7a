"""Pool benchmark: throughput against the modem-limited ideal, CPU per message, enqueue speed.

    python benchmarks/bench_pool.py                  # 64 modems at 1 s and at 0 s, 1k/100k spool
    python benchmarks/bench_pool.py --modems 16 --latency 0.5 --rounds 5 --rows 1000000

The bank of simulated modems runs in this process (pseudo-terminals); the daemon runs as
`modempool run --config FILE` in a subprocess, as in production. Throughput is measured on the
simulator's network log: from the moment the first SMS started until the last one reached the
network. The ideal is `modems / latency` SMS per second. CPU is the daemon process's user+system
time divided by the messages it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modempool.spool import Spool  # noqa: E402
from simulator import SimulatedBank  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
# BENCH_PROFILE=FILE runs the daemon under cProfile, its statistics written to FILE.
PROFILE = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def write_config(directory: Path, devices: list[str]) -> Path:
    lines = ["[spool]", f'path = "{directory / "spool.db"}"', 'synchronous = "normal"', ""]
    for device in devices:
        lines += ["[[modem]]", f'name = "{Path(device).name}"', f'port = "{device}"', ""]
    path = directory / "bench.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def run_pool(modems: int, latency: float, rounds: int, history: int = 0) -> dict[str, float]:
    """Send modems*rounds messages through the daemon; return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        directory = Path(tmp)
        async with SimulatedBank(modems=modems, directory=directory / "bank", seed=1) as bank:
            for info in bank.modems:
                bank.set_fault(info.name, "sms_latency", seconds=latency)
            config = write_config(directory, bank.devices)
            spool = Spool(directory / "spool.db", synchronous="normal")
            if history:  # old, delivered messages the spool has to live with
                spool.enqueue_many({"to": "+8613800138000", "text": f"old {i}"}
                                   for i in range(history))
                spool.db.execute("UPDATE messages SET state = 'delivered'")
            total = modems * rounds
            log_path = directory / "daemon.log"
            log = open(log_path, "wb")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *PROFILE, "-m", "cli", "run", "--config", str(config), cwd=ROOT,
                stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL)
            try:
                while b"pool ready" not in log_path.read_bytes():
                    if proc.returncode is not None:
                        raise SystemExit(log_path.read_text())
                    await asyncio.sleep(0.05)
                idle_cpu = cpu_seconds(proc.pid)   # start-up (imports, modem set-up) not counted
                bank_cpu = time.process_time()
                spool.enqueue_many({"to": "+8613800138000", "text": f"bench {i}"}
                                   for i in range(total))
                await bank.wait_for_messages(total, timeout=120 + total * max(latency, 0.01))
                cpu = cpu_seconds(proc.pid) - idle_cpu
                bank_cpu = time.process_time() - bank_cpu
            finally:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
                log.close()
            entries = bank.network_log()
        parts = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "part"]
        done = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "message"]
        # The first SMS started `latency` before it reached the network.
        elapsed = (max(done) - min(parts)).total_seconds() + latency
        rate = total / elapsed
        breakdown = where_time_went(entries, latency)
        return {**breakdown, "messages": total, "elapsed": elapsed, "rate": rate,
                "ideal": modems / latency if latency else float("nan"),
                "fraction": (modems / latency and rate / (modems / latency)) if latency else float("nan"),
                "cpu_per_message_ms": 1000 * cpu / total,
                "bank_cpu_per_message_ms": 1000 * bank_cpu / total}


def where_time_went(entries: list[dict], latency: float) -> dict[str, float]:
    """Where the run lost time against the ideal: modems starting late, the gap between one SMS
    and the next on a modem (beyond `latency`), and modems that carried more messages than others."""
    by_modem: dict[str, list[datetime]] = {}
    for e in entries:
        if e["kind"] == "part":
            by_modem.setdefault(e["modem"], []).append(datetime.fromisoformat(e["time"]))
    if not by_modem:
        return {}
    first = min(times[0] for times in by_modem.values())
    starts = [(times[0] - first).total_seconds() for times in by_modem.values()]
    gaps = [(b - a).total_seconds() - latency
            for times in by_modem.values() for a, b in zip(times, times[1:])]
    counts = [len(times) for times in by_modem.values()]
    gaps.sort()
    # The modem that finished last sets the elapsed time: its start, then its gaps.
    last = max(by_modem.values(), key=lambda times: times[-1])
    return {"last_start_ms": 1000 * (last[0] - first).total_seconds(),
            "last_gaps_ms": 1000 * ((last[-1] - last[0]).total_seconds()
                                    - latency * (len(last) - 1)),
            "start_spread_ms": 1000 * max(starts), "start_mean_ms": 1000 * sum(starts) / len(starts),
            "gap_mean_ms": 1000 * sum(gaps) / max(1, len(gaps)),
            "gap_p50_ms": 1000 * gaps[len(gaps) // 2] if gaps else 0.0,
            "gap_p99_ms": 1000 * gaps[int(len(gaps) * 0.99)] if gaps else 0.0,
            "parts_min": min(counts), "parts_max": max(counts)}


def bench_enqueue(rows: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp:
        spool = Spool(Path(tmp) / "spool.db", synchronous="normal")
        start = time.perf_counter()
        spool.enqueue_many({"to": f"+86138{i % 100000000:08d}", "text": f"message {i}"}
                           for i in range(rows))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--latency", type=float, default=1.0)
    # Throughput is what a bank sustains: 30 messages per modem (half a minute at 1 s) make the
    # start (all modems claiming and sending at the same instant) a small part of the run;
    # `where the time went` shows that part on its own. With --rounds 10 the start weighs 3x more.
    parser.add_argument("--rounds", type=int, default=30, help="messages per modem")
    parser.add_argument("--zero-rounds", type=int, default=20, help="messages per modem at 0 s")
    parser.add_argument("--enqueue", type=int, default=100_000)
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000, 100_000],
                        help="spool sizes (old rows) for the CPU-per-message comparison")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the run at --latency (best of --repeat)")
    parser.add_argument("--repeat", type=int, default=1, help="runs at --latency; the best counts")
    args = parser.parse_args()

    print(f"pool benchmark: {args.modems} simulated modems, daemon in a subprocess")
    runs = [asyncio.run(run_pool(args.modems, args.latency, args.rounds))
            for _ in range(max(1, args.repeat))]
    if len(runs) > 1:
        print("  runs: " + ", ".join(f"{100 * r['fraction']:.2f} %" for r in runs))
    slow = max(runs, key=lambda r: r["fraction"])
    print(f"  at {args.latency:g} s per SMS: {slow['messages']} messages in {slow['elapsed']:.2f} s"
          f" = {slow['rate']:.1f}/s, ideal {slow['ideal']:.1f}/s -> {100 * slow['fraction']:.1f} %"
          f" of ideal; daemon CPU {slow['cpu_per_message_ms']:.2f} ms/message"
          f" (simulated bank: {slow['bank_cpu_per_message_ms']:.2f} ms/message)")
    print(f"  where the time went: modems started within {slow['start_spread_ms']:.0f} ms"
          f" (mean {slow['start_mean_ms']:.0f} ms); between two SMS a modem waited"
          f" {slow['gap_mean_ms']:.1f} ms on average (median {slow['gap_p50_ms']:.1f},"
          f" p99 {slow['gap_p99_ms']:.1f}); {slow['parts_min']}-{slow['parts_max']} SMS per modem")
    if args.latency_only:
        return
    fast = asyncio.run(run_pool(args.modems, 0.0, args.zero_rounds))
    print(f"  at 0 s per SMS: {fast['messages']} messages in {fast['elapsed']:.2f} s"
          f" = {fast['rate']:.0f}/s (overhead-bound); daemon CPU "
          f"{fast['cpu_per_message_ms']:.2f} ms/message")
    for rows in args.rows:
        grown = asyncio.run(run_pool(args.modems, 0.0, args.zero_rounds, history=rows))
        print(f"  with {rows:,} other rows in the spool: {grown['rate']:.0f}/s, daemon CPU "
              f"{grown['cpu_per_message_ms']:.2f} ms/message")
    seconds = bench_enqueue(args.enqueue)
    print(f"  enqueue {args.enqueue:,} messages: {seconds:.2f} s ({args.enqueue / seconds:,.0f}/s)")


if __name__ == "__main__":
    main()
