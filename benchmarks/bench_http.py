"""HTTP API benchmark: POSTs per second and latency, one 100,000-recipient POST, and what a
steady API load costs the modems.

    python benchmarks/bench_http.py                     # everything
    python benchmarks/bench_http.py --skip-sending      # the API alone

1. `modempool serve` (uvicorn, as in production) over a fresh spool; 32 keep-alive connections
   each POST one message after another for --seconds; POST/s and p50/p99 latency, the server's
   CPU per POST, and the client's (http_load.py: raw HTTP/1.1 in a process of its own, so that
   the client takes little of the CPU the server is measured on).
2. One POST with 100,000 recipients (streamed to the spool in one transaction) to a fresh
   server: its time and CPU, and the server's peak resident memory above what it held before
   (VmHWM, reset with clear_refs just before). `--batch-tree DIR` (repeatable) runs it against
   other checkouts in turn, for an A/B: `--batch-only --batches 2 --batch-tree /tmp/old
   --batch-tree .`.
3. 64 simulated modems at 1 s per SMS driven by `modempool run --http` (the API in its sidecar):
   the sending rate with the API idle, then while another process POSTs at --rate per second
   (messages scheduled for tomorrow, so the modems' work is the same in both runs); --pairs
   runs both in turn several times, as the load of a shared machine drifts. Each run also says
   how long the daemon's event loop and its spool threads waited for the spool's write lock
   and how long the sidecar held it (spool_probe/sitecustomize.py times every transaction of
   both processes), and the sidecar's CPU per POST.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402

import http_load  # noqa: E402
from bench_pool import cpu_seconds, write_config  # noqa: E402

LOAD = ROOT / "benchmarks" / "http_load.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_account(config: Path, tree: Path = ROOT) -> str:
    made = subprocess.run([sys.executable, "-m", "cli", "accounts", "add", "bench", "--role", "admin",
                           "--json", "--config", str(config)], capture_output=True, text=True,
                          cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
    return json.loads(made.stdout)["key"]


async def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def post_flat_out(url: str, key: str, clients: int, seconds: float,
                        processes: int) -> dict[str, float]:
    """`clients` connections spread over `processes` load processes (http_load.py), each
    POSTing one message after the other for `seconds`."""
    share = [clients // processes + (i < clients % processes) for i in range(processes)]
    firsts = [sum(share[:i]) for i in range(processes)]
    loads = [await asyncio.create_subprocess_exec(
        sys.executable, str(LOAD), "flat", url, key, str(n), str(seconds), str(first),
        stdout=asyncio.subprocess.PIPE) for n, first in zip(share, firsts) if n]
    results = []
    for load in loads:
        out, _ = await load.communicate()
        results.append(json.loads(out))
    return http_load.summary(results)


async def bench_api(seconds: float, clients: int, processes: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        config = write_config(Path(tmp), [])
        key = make_account(config)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--listen",
                                   f"127.0.0.1:{port}", "--config", str(config)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_up(url)
            await post_flat_out(url, key, clients, 1.0, processes)  # warm-up
            for _ in range(repeat):
                load_average = os.getloadavg()[0]
                cpu = cpu_seconds(server.pid)
                figures = await post_flat_out(url, key, clients, seconds, processes)
                cpu = cpu_seconds(server.pid) - cpu
                print(f"single-message POSTs, {clients} clients, {seconds:.0f} s: "
                      f"{figures['rate']:.0f} POST/s, p50 {figures['p50_ms']:.1f} ms, "
                      f"p99 {figures['p99_ms']:.1f} ms ({figures['posts']} POSTs, "
                      f"{figures['errors']} not 202; load average {load_average:.2f} before)")
                print(f"  server CPU per POST: {1000 * cpu / figures['posts']:.2f} ms "
                      f"(= {figures['posts'] / cpu:.0f} POST/s on one core of its own); "
                      f"client CPU per POST: {1000 * figures['cpu'] / figures['posts']:.3f} ms "
                      f"({processes} load process{'es' if processes > 1 else ''})")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


def memory_kb(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` figure in kB (VmRSS: resident now; VmHWM: the peak since start or
    since the last reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Start the server's VmHWM over from its resident size now (`clear_refs` 5); False where
    the kernel refuses (then the peak counts from the server's start)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def healthz_latencies(url: str, done: asyncio.Event) -> list[float]:
    """GET /healthz every 10 ms until `done`: how long the server's event loop kept other
    requests waiting meanwhile (the route touches no database)."""
    waits = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not done.is_set():
            started = time.perf_counter()
            await client.get("/healthz")
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
    return waits


async def bench_batch(tree: Path, spool_url: str | None = None) -> None:
    """One POST of 100,000 recipients to a fresh `serve` of `tree` (this checkout, or another
    for an A/B): its time, the server's CPU, and how far the server's resident memory rose
    above what it held before (the peak, VmHWM, reset just before the POST). `spool_url`: a
    PostgreSQL spool (a fresh schema) instead of an SQLite file."""
    body = json.dumps({"to": [f"13{i:09d}" for i in range(100_000)],
                       "text": "【商城】双十二活动今晚开始，回T退订", "at": "2099-01-01T00:00:00Z"},
                      ensure_ascii=False).encode()
    warm = json.dumps({"to": [f"15{i:09d}" for i in range(5_000)], "text": "预热",
                       "at": "2099-01-01T00:00:00Z"}, ensure_ascii=False).encode()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory(prefix="bench-http-batch-") as tmp:
        config = write_config(Path(tmp), [])
        if spool_url is not None:
            config.write_text(f'[spool]\nurl = "{spool_url}"\n', encoding="utf-8")
        key = make_account(config, tree)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--listen",
                                   f"127.0.0.1:{port}", "--config", str(config)], cwd=tree,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_up(url)
            async with httpx.AsyncClient(base_url=url, timeout=300, headers={
                    "Authorization": f"Bearer {key}",
                    "content-type": "application/json"}) as client:
                await client.post("/v1/messages", content=warm)   # imports, caches, pools
                reset = reset_peak(server.pid)
                resident = memory_kb(server.pid, "VmRSS")
                load_average = os.getloadavg()[0]
                started, cpu = time.perf_counter(), cpu_seconds(server.pid)
                answer = await client.post("/v1/messages", content=body)
                elapsed, cpu = time.perf_counter() - started, cpu_seconds(server.pid) - cpu
                peak, after = memory_kb(server.pid, "VmHWM"), memory_kb(server.pid, "VmRSS")
                # A second batch, other numbers, while a prober asks for /healthz every 10 ms
                # (apart from the figures above: its requests cost the server CPU too)
                done = asyncio.Event()
                prober = asyncio.create_task(healthz_latencies(url, done))
                second = await client.post("/v1/messages", content=body.replace(b'"13', b'"18'))
                done.set()
                waits = sorted(await prober)
            engine = "PostgreSQL" if spool_url else "SQLite"
            print(f"one POST of 100,000 recipients ({tree.name}, {engine}): {elapsed:.2f} s, server CPU "
                  f"{cpu:.2f} s (status {answer.status_code}, {answer.json().get('count')} "
                  f"queued, {len(body) / 1e6:.1f} MB body, {len(answer.content) / 1e6:.1f} MB "
                  f"answer); server memory: peak {(peak - resident) / 1024:.1f} MB above the "
                  f"{resident / 1024:.1f} MB it held before"
                  f"{'' if reset else ' (peak since start: clear_refs refused)'}, "
                  f"{(after - resident) / 1024:+.1f} MB kept after; load average "
                  f"{load_average:.2f} before")
            print(f"  during a second such POST, GET /healthz every 10 ms (the server's event "
                  f"loop; {len(waits)} answers; status {second.status_code}): p50 {1000 * waits[len(waits) // 2]:.1f} ms, p99 "
                  f"{1000 * waits[int(len(waits) * 0.99)]:.1f} ms, longest {1000 * waits[-1]:.1f} ms")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)


async def sending_rate(modems: int, latency: float, rounds: int, load_rate: float) -> dict:
    """Send modems*rounds messages through `run --http`; with load_rate, a separate process
    POSTs to the API meanwhile. Returns the sending rate measured on the network log."""
    from datetime import datetime

    from modempool.spool import Spool
    from simulator import SimulatedBank

    with tempfile.TemporaryDirectory(prefix="bench-http-send-") as tmp:
        directory = Path(tmp)
        async with SimulatedBank(modems=modems, directory=directory / "bank", seed=1) as bank:
            for info in bank.modems:
                bank.set_fault(info.name, "sms_latency", seconds=latency)
            config = write_config(directory, bank.devices)
            key = make_account(config)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log_path = directory / "daemon.log"
            log = open(log_path, "wb")
            probes = directory / "probes"
            probes.mkdir()
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "run", "--config", str(config), "--http",
                f"127.0.0.1:{port}", cwd=ROOT, stdout=log, stderr=log,
                stdin=asyncio.subprocess.DEVNULL, env=probed_env(probes))
            load = None
            try:
                while b"pool ready" not in log_path.read_bytes():
                    if daemon.returncode is not None:
                        raise SystemExit(log_path.read_text())
                    await asyncio.sleep(0.05)
                await wait_up(url)
                total = modems * rounds
                if load_rate:
                    load = await asyncio.create_subprocess_exec(
                        sys.executable, str(LOAD), "rate", url, key, str(load_rate),
                        str(rounds * latency + 60), stdout=asyncio.subprocess.PIPE)
                    await asyncio.sleep(3)  # the load is steady before the sending starts
                load_average = os.getloadavg()[0]
                sidecar = _children(daemon.pid)
                cpu = [cpu_seconds(pid) for pid in (daemon.pid, *sidecar)]
                waited = run_queue_seconds(daemon.pid)
                window = time.monotonic()
                spool = Spool(directory / "spool.db")
                spool.enqueue_many({"to": "+8613800138000", "text": f"bench {i}"} for i in range(total))
                await bank.wait_for_messages(total, timeout=120 + total * latency)
                cpu = [cpu_seconds(pid) - before for pid, before in zip((daemon.pid, *sidecar), cpu)]
                waited = run_queue_seconds(daemon.pid) - waited
                window = time.monotonic() - window
                load_figures = None
                if load is not None:
                    load.send_signal(signal.SIGINT)
                    out, _ = await load.communicate()
                    load_figures = json.loads(out.decode().strip().splitlines()[-1])
            finally:
                daemon.send_signal(signal.SIGTERM)
                await daemon.wait()
                log.close()
                lines = log_path.read_text(errors="replace").splitlines()
                first = next((i for i, line in enumerate(lines) if "ERROR" in line), None)
                if first is not None:  # the first error with its traceback, and how many
                    print(f"  the daemon's log has {sum('ERROR' in x for x in lines)} errors; "
                          "the first:\n  " + "\n  ".join(lines[first:first + 40]))
            entries = bank.network_log()
            lock = lock_figures(probes, daemon.pid)
    parts = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "part"]
    done = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "message"]
    elapsed = (max(done) - min(parts)).total_seconds() + latency
    return {"rate": total / elapsed, "messages": total, "elapsed": elapsed, "load": load_figures,
            "daemon_cpu": cpu[0], "sidecar_cpu": sum(cpu[1:]), "load_average": load_average,
            "daemon_waited": waited, "window": window, **lock}


def probed_env(directory: Path) -> dict[str, str]:
    """The environment of a daemon whose processes time their spool transactions
    (spool_probe/sitecustomize.py) into `directory`."""
    paths = [str(ROOT / "benchmarks" / "spool_probe"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "MODEMPOOL_SPOOL_PROBE": str(directory)}


def lock_figures(directory: Path, daemon_pid: int) -> dict[str, float]:
    """The daemon's event loop's waits for the spool's write lock (seconds, longest), and how
    long the sidecar held it; zeros where a process left no figures."""
    loop, sidecar = {}, {"held": 0.0, "transactions": 0}
    workers = {"waited": 0.0, "longest_wait": 0.0}
    for found in directory.glob("*.json"):
        threads = json.loads(found.read_text())["threads"]
        if found.stem == str(daemon_pid):
            loop = threads.get("MainThread", {})
            for name, row in threads.items():
                if name != "MainThread":
                    workers["waited"] += row["waited"]
                    workers["longest_wait"] = max(workers["longest_wait"], row["longest_wait"])
        else:
            for row in threads.values():
                sidecar["held"] += row["held"]
                sidecar["transactions"] += row["transactions"]
    return {"loop_lock_waited": loop.get("waited", 0.0), "loop_lock_longest": loop.get("longest_wait", 0.0),
            "loop_transactions": loop.get("transactions", 0), "loop_held": loop.get("held", 0.0),
            "workers_lock_waited": workers["waited"], "workers_lock_longest": workers["longest_wait"],
            "sidecar_held": sidecar["held"], "sidecar_transactions": sidecar["transactions"]}


def run_queue_seconds(pid: int) -> float:
    """How long the threads of `pid` have waited for a CPU while runnable (schedstat): the
    daemon's share of a crowded machine, as opposed to waiting for its modems or the spool."""
    return sum(int((task / "schedstat").read_text().split()[1])
               for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (the daemon's sidecar)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def lock_line(run: dict, post_rate: float) -> str:
    """The spool's write lock in a sending run (whole run, start-up included), and the
    sidecar's CPU per POST over the sending window."""
    line = (f"  write lock: the daemon's loop waited {run['loop_lock_waited']:.2f} s for it in "
            f"{run['loop_transactions']} transactions (longest {1000 * run['loop_lock_longest']:.1f} ms) "
            f"and held it {run['loop_held']:.2f} s; its spool threads waited {run['workers_lock_waited']:.2f} s "
            f"(longest {1000 * run['workers_lock_longest']:.1f} ms); the sidecar held it {run['sidecar_held']:.2f} s "
            f"in {run['sidecar_transactions']} commits")
    if post_rate:
        line += (f"; sidecar CPU per POST {1000 * run['sidecar_cpu'] / (post_rate * run['window']):.2f} ms")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--modems", type=int, default=64)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=20, help="messages per modem")
    parser.add_argument("--rate", type=float, default=500.0, help="POST/s during the loaded run")
    parser.add_argument("--processes", type=int, default=1,
                        help="load processes sharing the clients (they share the CPU too)")
    parser.add_argument("--repeat", type=int, default=1, help="POST/s measurements in a row")
    parser.add_argument("--pairs", type=int, default=1, help="idle/loaded sending runs in turn")
    parser.add_argument("--batches", type=int, default=1, help="100,000-recipient POSTs, each "
                        "to a fresh server")
    parser.add_argument("--batch-tree", type=Path, action="append", default=[],
                        help="run the 100,000-recipient POST against this checkout instead "
                        "(repeatable: the trees take turns, for an A/B)")
    parser.add_argument("--batch-only", action="store_true", help="only the 100,000-recipient POST")
    parser.add_argument("--batch-engine", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the spool of the 100,000-recipient POST (postgresql: a throwaway "
                        "cluster, tests/pg_cluster.py)")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-sending", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start "
          "(shared: other work may run meanwhile)")
    if not args.skip_api and not args.batch_only:
        asyncio.run(bench_api(args.seconds, args.clients, args.processes, args.repeat))
    if not args.skip_api:
        from tests.pg_cluster import throwaway_cluster

        with throwaway_cluster(args.batch_engine == "postgresql") as cluster:
            for _ in range(args.batches):   # the trees in turn: the machine's load drifts
                for tree in args.batch_tree or [ROOT]:
                    asyncio.run(bench_batch(tree.resolve(),
                                            cluster.new_schema() if cluster else None))
    if not args.skip_sending and not args.batch_only:
        changes = []
        for _ in range(args.pairs):   # idle and loaded in turn: the machine's load drifts
            idle = asyncio.run(sending_rate(args.modems, args.latency, args.rounds, 0))
            print(f"sending, {args.modems} modems at {args.latency} s/SMS, API idle: "
                  f"{idle['rate']:.2f} SMS/s ({idle['messages']} in {idle['elapsed']:.1f} s; "
                  f"ideal {args.modems / args.latency:.0f}; daemon CPU {idle['daemon_cpu']:.1f} s, "
                  f"waited for a CPU {idle['daemon_waited']:.1f} s, "
                  f"sidecar {idle['sidecar_cpu']:.1f} s; load average {idle['load_average']:.2f})")
            print(lock_line(idle, 0.0))
            loaded = asyncio.run(sending_rate(args.modems, args.latency, args.rounds, args.rate))
            load = loaded["load"] or {}
            changes.append(100 * (loaded['rate'] - idle['rate']) / idle['rate'])
            print(f"sending, same, API under {args.rate:.0f} POST/s (achieved {load.get('rate', 0):.0f}/s, "
                  f"{load.get('errors', 0)} not 202 {load.get('why') or ''}): {loaded['rate']:.2f} SMS/s "
                  f"({loaded['messages']} in {loaded['elapsed']:.1f} s; daemon CPU "
                  f"{loaded['daemon_cpu']:.1f} s, waited for a CPU {loaded['daemon_waited']:.1f} s, "
                  f"sidecar {loaded['sidecar_cpu']:.1f} s, "
                  f"load generator {load.get('cpu', 0):.1f} s; load average "
                  f"{loaded['load_average']:.2f}); change {changes[-1]:+.1f} %")
            print(lock_line(loaded, load.get("rate", 0.0)))
        if len(changes) > 1:
            print(f"sending change under load, {len(changes)} pairs: "
                  f"{', '.join(f'{c:+.1f} %' for c in changes)}")


if __name__ == "__main__":
    main()
