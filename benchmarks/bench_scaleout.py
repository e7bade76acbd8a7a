"""Scale-out benchmark: the spool on PostgreSQL against SQLite, and several daemons on one queue.

    python benchmarks/bench_scaleout.py                     # everything, small sizes
    python benchmarks/bench_scaleout.py --url postgresql://bench@db/bench --backlogs 1000 1000000
    python benchmarks/bench_scaleout.py --only spool        # or: cost, daemons, ideal
    python benchmarks/bench_scaleout.py --only cost --million   # up to a spool of 1,000,000
    python benchmarks/bench_scaleout.py --only cost --explain   # and the plans, per size

Without --url a throwaway cluster is made with initdb/pg_ctl in a temporary directory (Debian's
`postgresql` package), fsync off: the figures are the database's CPU cost, not a disk's
(`--durable`: fsync, synchronous_commit and full_page_writes on, as in production, each commit
then waits for its WAL to reach the disk). Figures:
- enqueue and claim throughput per engine (claim = claim + part marker + confirmation, a
  one-part message's commits; half the messages claimed one at a time, half in a daemon's
  dispatch rounds of 8), with a backlog of 1k up to 1M messages;
- the database cost of one message on PostgreSQL (enqueue + claim + marker + sent, as the API and
  a daemon make them) in a spool of 1k, 10k, 100k (and with --million 1M) messages of history:
  wall-clock ms per step, and CPU ms per message of the database (every process of the
  throwaway cluster) and of this client, and what the history takes on disk; `--explain` adds
  each statement's plan per size;
- 1, 2 and 4 daemons at 0 s per SMS (each with its own simulated bank), messages per second in
  total: each run printed (--repeats, 3 by default) with the CPU a message of the database
  (every process of a local cluster) and of the daemons, then their median;
- 2 daemons x 32 simulated modems at 1 s per SMS, as a fraction of the modem-limited ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import json
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pool import where_time_went  # noqa: E402
from modempool.spool import Spool  # noqa: E402
from modempool.spool.postgres_counts import STATE_COUNTS  # noqa: E402
from simulator import SimulatedBank  # noqa: E402


def profile(daemon: int) -> list[str]:
    """BENCH_PROFILE=FILE runs each daemon under cProfile, its statistics in FILE.<daemon>."""
    where = os.environ.get("BENCH_PROFILE")
    return ["-m", "cProfile", "-o", f"{where}.{daemon}"] if where else []


def fresh_target(kind: str, cluster, directory: Path, name: str, url: str | None) -> str | Path:
    if kind == "sqlite":
        return directory / f"{name}.db"
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {name}")
        from urllib.parse import quote

        return url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={name}")
    return cluster.new_schema()


def drop_schema(target: str, cluster) -> None:
    """Drop a throwaway cluster's schema (`cluster.new_schema`) once measured."""
    if cluster is None:
        return
    import psycopg

    schema = unquote(target).rsplit("search_path=", 1)[1]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def claim_round(spool: Spool, owner: str, take: int = 8) -> list[Any]:
    """One dispatch round as a daemon makes it: in one transaction, up to 24 due messages read
    with the claim lock (SKIP LOCKED on PostgreSQL) and `take` of them claimed, in one
    statement where the spool has `claim_many` (a daemon's round since d081e1d; one by one
    on an older spool, so the benchmark runs on older commits for an A/B)."""
    with spool.batch():
        due = list(spool.dispatchable(limit=24, lock=True))[:take]
        if hasattr(spool, "claim_many"):
            claimed = spool.claim_many([(m.id, "m1", owner) for m in due], 60)
        else:
            claimed = [spool.claim(m.id, "m1", owner, 60) for m in due]
    return [message for message in claimed if message is not None]


def bench_spool(target, messages: int, backlog: int) -> dict[str, float]:
    """Enqueue `backlog` (held) + `messages` rows, then claim, mark and confirm the `messages`:
    the first half one at a time (a read of the head and a claim, each its own commit), the
    second half in a daemon's dispatch rounds of 8 (`claim_round`); each message then its
    part marker and its confirmation, a commit each."""
    owner = "bench:1/m1"

    def marked(message) -> None:
        spool.mark_part_writing(message.id, 1, 1, lease_owner=owner)
        spool.mark_last_part_sent(message.id, 1, None, message.id % 256, lease_owner=owner)

    with Spool(target) as spool:
        start = time.perf_counter()
        for first in range(0, backlog, 50_000):
            spool.enqueue_many({"to": f"+86138{i % 100000000:08d}", "text": f"old {i}",
                                "held": True}
                               for i in range(first, min(backlog, first + 50_000)))
        spool.enqueue_many({"to": f"+86139{i:08d}", "text": f"bench {i}"}
                           for i in range(messages))
        enqueue_s = time.perf_counter() - start
        alone = messages // 2
        start = time.perf_counter()
        for _ in range(alone):
            marked(spool.claim(next(spool.dispatchable(limit=1)).id, "m1", owner, 60))
        alone_s = time.perf_counter() - start
        done, start = 0, time.perf_counter()
        while done < messages - alone:
            claimed = claim_round(spool, owner)
            for message in claimed:
                marked(message)
            done += len(claimed)
        rounds_s = time.perf_counter() - start
    return {"enqueue_per_s": (backlog + messages) / enqueue_s,
            "claim_per_s": alone / alone_s, "claim_ms": 1000 * alone_s / alone,
            "round_per_s": done / rounds_s, "round_ms": 1000 * rounds_s / done}


TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_fields(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cluster_cpu(cluster) -> float | None:
    """CPU seconds used so far by a local cluster: its postmaster, the children it reaped
    (their time is added to its own when they end: autovacuum workers, closed backends) and
    its live children (backends, checkpointer, WAL writer). None without a local cluster."""
    if cluster is None:
        return None
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    fields = _cpu_fields(postmaster)
    total = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _cpu_fields(entry.name)
            except OSError:   # gone meanwhile (its time went to the postmaster's)
                continue
            if int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
    return total / TICKS


#: Every queued message of a spool made history: sent, delivered, one part each (either engine).
DELIVERED_HISTORY = (
    "INSERT INTO parts (message_id, seq, total, attempt, sim, state, message_reference, "
    "writing_at, sent_at, status) SELECT id, 1, 1, 1, 'm' || (id % 32), 'delivered', id % 256, "
    "created_at, created_at, 0 FROM messages",
    "UPDATE messages SET state = 'delivered', attempts = 1, sim = 'm' || (id % 32), "
    "sent_at = created_at, delivered_at = created_at",
)


def load_history(spool: Spool, size: int) -> None:
    """`size` messages of history, delivered, a part each, then what autovacuum and the
    checkpointer would do after such a load in the end (not while the benchmark measures)."""
    for first in range(0, size, 50_000):
        spool.enqueue_many({"to": f"+86138{i % 100000000:08d}", "text": f"old {i}"}
                           for i in range(first, min(size, first + 50_000)))
    with spool.engine.tx() as conn:  # history: sent, delivered, one part each
        for statement in DELIVERED_HISTORY:
            conn.execute(statement)
    spool.engine.counts.fold()   # the update's million -1/+1 rows, then vacuumed
    # The history was queued, then updated in one go: the claim index would otherwise walk a
    # million dead 'queued' entries until autovacuum comes by.
    with spool.engine.pool.connection() as raw:
        raw.execute("VACUUM ANALYZE")
        try:
            raw.execute("CHECKPOINT")   # the load's dirty pages written now, not meanwhile
        except Exception:   # not a superuser (--url): the checkpointer does it in its time
            pass


#: The spool's tables on disk, largest first (in its schema): the table's own pages, its indexes.
ON_DISK = (
    "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
    "AND n.nspname = current_schema() ORDER BY pg_total_relation_size(c.oid) DESC")


def on_disk(spool: Spool) -> str:
    """What the spool takes on disk, in a line: its largest tables (data + indexes) and the
    schema's total, in MB."""
    with spool.engine.pool.connection() as raw:
        rows = raw.execute(ON_DISK).fetchall()
    mb = 1024 * 1024
    total = sum(data + indexes for _, data, indexes in rows) / mb
    top = ", ".join(f"{name} {data / mb:.0f} + {indexes / mb:.0f}"
                    for name, data, indexes in rows[:3])
    return f"on disk {total:.0f} MB (table + indexes, MB: {top})"


def bench_cost(target, size: int, messages: int, cluster=None) -> dict[str, Any]:
    """The database cost of one message in a spool of `size`: `size` messages of history
    (delivered, a part each) first, then `messages` more, each enqueued alone (as an API call
    does), claimed in dispatch rounds of 8 (read with the claim lock, then claimed), marked
    writing and recorded sent, as a daemon does. Milliseconds per message for each step (wall
    clock), and the CPU time per message of the database server (every process of a local
    cluster) and of this process (the client's side: Python, psycopg)."""
    from modempool.spool.records import SentPart

    with Spool(target) as spool:
        load_history(spool, size)
        disk = on_disk(spool)
        times = {"enqueue": 0.0, "claim": 0.0, "marker": 0.0, "sent": 0.0}
        clock = time.perf_counter
        server, client = cluster_cpu(cluster), time.process_time()
        start = clock()
        for i in range(messages):
            spool.enqueue(f"+86139{i:08d}", f"bench {i}")
        times["enqueue"] = clock() - start
        done = 0
        while done < messages:
            start = clock()
            claimed = claim_round(spool, "bench:1/m1")
            times["claim"] += clock() - start
            for message in claimed:
                start = clock()
                spool.mark_part_writing(message.id, 1, 1, lease_owner="bench:1/m1")
                middle = clock()
                spool.mark_many_sent([SentPart(message.id, 1, None, message.id % 256,
                                               lease_owner="bench:1/m1")])
                times["marker"] += middle - start
                times["sent"] += clock() - middle
            done += len(claimed)
        client = time.process_time() - client
        server = None if server is None else cluster_cpu(cluster) - server
    per = {step: 1000 * seconds / messages for step, seconds in times.items()}
    return {**per, "total": sum(per.values()), "client_cpu": 1000 * client / messages,
            "server_cpu": None if server is None else 1000 * server / messages, "disk": disk}


#: The statements of one message's life (and a dashboard's read) whose plans --explain shows.
EXPLAINED = (
    ("claim round", "SELECT * FROM messages WHERE state = 'queued' AND held = 0 AND "
     "(not_before IS NULL OR not_before <= :now) ORDER BY priority DESC, id LIMIT 24 "
     "FOR UPDATE SKIP LOCKED"),
    ("claim", "UPDATE messages SET state = 'sending', sim = 'm1', lease_owner = 'b:1/m1', "
     "lease_until = :now, attempts = attempts + 1, updated_at = :now WHERE id = :id "
     "AND state = 'queued' AND held = 0 RETURNING *"),
    ("marker", "UPDATE messages SET parts_total = 1 WHERE id = :id AND state = 'sending' "
     "AND lease_owner = 'b:1/m1' RETURNING attempts, sim"),
    ("marker part", "INSERT INTO parts (message_id, seq, total, attempt, sim, state, "
     "writing_at) VALUES (:id, 1, 1, 1, 'm1', 'writing', :now)"),
    ("part sent", "UPDATE parts SET state = 'sent', message_reference = 7, sent_at = :now "
     "WHERE message_id = :id AND seq = 1 AND state NOT IN ('sent', 'delivered', "
     "'undelivered') RETURNING sim"),
    ("sent", "UPDATE messages SET state = 'sent', lease_owner = NULL, lease_until = NULL, "
     "updated_at = :now, sent_at = :now WHERE id = :id AND state = 'sending' "
     "AND lease_owner = 'b:1/m1'"),
    ("counts", STATE_COUNTS),
)


def plan_line(step: str, plan: dict) -> str:
    """One EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) result in a line: time, buffers, nodes."""
    top, nodes, stack = plan["Plan"], [], [plan["Plan"]]
    while stack:
        node = stack.pop(0)
        nodes.append(node["Node Type"] + (f" {node['Index Name']}" if "Index Name" in node else ""))
        stack.extend(node.get("Plans", ()))
    triggers = sum(t["Time"] for t in plan.get("Triggers", ()))
    return (f"    {step:<12} {plan['Execution Time']:6.3f} ms (triggers {triggers:5.3f}), "
            f"buffers hit {top.get('Shared Hit Blocks', 0):>3} read "
            f"{top.get('Shared Read Blocks', 0):>2}: {', '.join(nodes)}")


def explain(target) -> list[str]:
    """EXPLAIN ANALYZE of each of EXPLAINED on a message just queued (rolled back), the second
    of two runs (functions compiled, catalogues cached, as in a daemon's connection)."""
    from modempool.spool.model import to_text, utcnow
    from modempool.spool.postgres_engine import PgConn

    with Spool(target) as spool:
        spool.engine.counts.fold()   # as the daemon's housekeeping keeps them
        values = {"now": to_text(utcnow()), "id": spool.enqueue("+8613900000000", "plan").id}
        with spool.engine.pool.connection() as raw:
            conn = PgConn(raw)
            for _ in range(2):
                with raw.transaction(force_rollback=True):
                    lines = [plan_line(step, conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, values).fetchone()[0][0])
                        for step, sql in EXPLAINED]
    return lines


def write_config(path: Path, target, prefix: str, devices: list[str]) -> Path:
    where = f'url = "{target}"' if str(target).startswith("postgres") else f'path = "{target}"'
    lines = ["[spool]", where, ""]
    for device in devices:
        lines += ["[[modem]]", f'name = "{prefix}{Path(device).name}"', f'port = "{device}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def run_daemons(target, daemons: int, modems: int, latency: float, rounds: int,
                      directory: Path, trace: bool = False,
                      keep: Path | None = None, cluster=None) -> dict[str, float]:
    """`daemons` daemons, each with its own bank of `modems`, sharing `target`. With `trace`
    they log their AT traffic (-vv), and the gap between two SMS on a modem is split by it.
    With `keep`, the daemons' logs and the banks' network logs (JSON lines) are copied there.
    With a local `cluster`, the machine's CPU time during the run is split into this run's
    (daemons, banks, cluster) and the other processes'."""
    async with AsyncExitStack() as stack:
        banks = []
        for d in range(daemons):
            bank = await stack.enter_async_context(
                SimulatedBank(modems=modems, directory=directory / f"bank{d}", seed=d + 1))
            for info in bank.modems:
                bank.set_fault(info.name, "sms_latency", seconds=latency)
            banks.append(bank)
        procs, logs = [], []
        for d, bank in enumerate(banks):
            config = write_config(directory / f"d{d}.toml", target, f"d{d}", bank.devices)
            log_path = directory / f"d{d}.log"
            log = open(log_path, "wb")
            logs.append((log, log_path))
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, *profile(d), "-m", "cli", "run", "--config", str(config),
                *(["-vv"] if trace else []), cwd=ROOT,
                stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL))
        try:
            for proc, (_, log_path) in zip(procs, logs):
                while b"pool ready" not in log_path.read_bytes():
                    if proc.returncode is not None:
                        raise SystemExit(log_path.read_text())
                    await asyncio.sleep(0.05)
            total = daemons * modems * rounds
            cpu_before = sum(cpu_seconds(proc.pid) for proc in procs)
            with Spool(target) as spool:
                spool.enqueue_many({"to": "+8613800138000", "text": f"bench {i}"}
                                   for i in range(total))
                enqueued_at = datetime.now().astimezone()
                own_before = time.process_time()   # this process: both simulated banks
                machine_before, cluster_before = machine_cpu(), cluster_cpu(cluster)
                late = asyncio.create_task(loop_lateness())
                try:
                    async with asyncio.timeout(120 + total * max(latency, 0.01)):
                        await all_messages(banks, total)
                except TimeoutError:
                    raise SystemExit(f"timed out; counts {spool.counts()}") from None
                finally:
                    late.cancel()
            cpu = sum(cpu_seconds(proc.pid) for proc in procs) - cpu_before
            own_cpu = time.process_time() - own_before
            machine = {k: v - machine_before[k] for k, v in machine_cpu().items()}
            db_cpu = None if cluster is None else cluster_cpu(cluster) - cluster_before
            if db_cpu is not None:   # what neither this run's processes nor the hypervisor took
                machine["others"] = machine["busy"] - machine["steal"] - cpu - own_cpu - db_cpu
            lateness = None
            with contextlib.suppress(asyncio.CancelledError):   # cancelled before it began
                lateness = await late
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                await proc.wait()
            for log, _ in logs:
                log.close()
        entries = [{**e, "modem": f"{d}/{e.get('modem')}"}  # m1 of each bank apart
                   for d, b in enumerate(banks) for e in b.network_log()]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for _, log_path in logs:
            shutil.copy(log_path, keep / log_path.name)
        (keep / "network.jsonl").write_text(
            "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in entries),
            encoding="utf-8")
        (keep / "enqueued.txt").write_text(enqueued_at.isoformat() + "\n", encoding="utf-8")
    parts = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "part"]
    done = [datetime.fromisoformat(e["time"]) for e in entries if e["kind"] == "message"]
    elapsed = (max(done) - min(parts)).total_seconds() + latency
    ideal = daemons * modems / latency if latency else float("nan")
    carried = [sum(1 for e in b.network_log() if e["kind"] == "message") for b in banks]
    split = at_gap_split([path for _, path in logs]) if trace else {}
    if trace:
        split["bursts"] = answer_bursts([path for _, path in logs], latency)
    split["bank_starts"] = bank_starts(entries, daemons)
    split["machine"] = {k: v / elapsed for k, v in machine.items()}   # cores, on average
    split["banks_late_ms"] = lateness
    split.update(holes(entries, latency))
    # The first PDU (its part is logged as the modem answers, `latency` later) after the
    # enqueue's commit: the wake-up, the first claim round, the first marker.
    split["enqueue_to_pdu_ms"] = 1000 * ((min(parts) - enqueued_at).total_seconds() - latency)
    split["db_cpu_ms"] = None if db_cpu is None else 1000 * db_cpu / total
    return {**split, "cpu_ms": 1000 * cpu / total, "bank_cpu_ms": 1000 * own_cpu / total, **where_time_went(entries, latency), "messages": total, "elapsed": elapsed, "rate": total / elapsed, "ideal": ideal,
            "fraction": (total / elapsed) / ideal if latency else float("nan"),
            "carried": carried}


def bank_starts(entries: list[dict], daemons: int) -> list[tuple[float, float, float]]:
    """For each daemon's bank: when its first, median and last modem wrote their first PDU,
    in ms after the first PDU of either bank."""
    first_part: dict[str, datetime] = {}
    for e in entries:
        if e["kind"] == "part":
            first_part.setdefault(e["modem"], datetime.fromisoformat(e["time"]))
    start = min(first_part.values())
    starts = []
    for d in range(daemons):
        ms = sorted(1000 * (t - start).total_seconds() for modem, t in first_part.items()
                    if modem.startswith(f"{d}/"))
        starts.append((ms[0], ms[len(ms) // 2], ms[-1]))
    return starts


def machine_cpu() -> dict[str, float]:
    """CPU seconds the whole machine spent so far (every core): busy (not idle, not waiting for
    disk) and, of that, stolen by the hypervisor (a virtual machine's neighbours)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return {"busy": (sum(fields[:8]) - idle) / TICKS, "steal": fields[7] / TICKS}


#: The banks' event loop is asked to wake every LATE_TICK s: how late it wakes is how late
#: the simulated modems answer (both banks run in this process, on its one loop).
LATE_TICK = 0.01


async def loop_lateness() -> dict[str, float]:
    """Until cancelled: how late this process's event loop (the simulated banks') woke for a
    timer, in ms: the worst, the 99th percentile and the mean."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    try:
        while True:
            due = loop.time() + LATE_TICK
            await asyncio.sleep(LATE_TICK)
            late.append(loop.time() - due)
    except asyncio.CancelledError:
        late.sort()
        return {"max": 1000 * late[-1], "p99": 1000 * late[int(len(late) * 0.99)],
                "mean": 1000 * sum(late) / len(late)} if late else {}


def holes(entries: list[dict], latency: float, worst: int = 5) -> dict[str, Any]:
    """Where a run lost its time, modem by modem (from the network log: a part is logged as its
    modem answers): the messages each modem carried (a modem with one more than another ends a
    whole SMS later), the gaps of the second round (every modem answered its first SMS at once:
    its daemon records them and marks the next ones together) against the later ones, and the
    `worst` gaps with their modem and when they began (s after the first answer)."""
    answers: dict[str, list[datetime]] = {}
    for e in entries:
        if e["kind"] == "part":
            answers.setdefault(e["modem"], []).append(datetime.fromisoformat(e["time"]))
    first = min(times[0] for times in answers.values())
    counts: dict[int, list[tuple[float, str]]] = {}
    for modem, times in answers.items():
        counts.setdefault(len(times), []).append(((times[-1] - first).total_seconds(), modem))
    gaps = [(1000 * ((b - a).total_seconds() - latency), modem, i, (a - first).total_seconds())
            for modem, times in answers.items() for i, (a, b) in enumerate(zip(times, times[1:]))]
    second = sorted(g for g, _, i, _ in gaps if i == 0)
    later = [g for g, _, i, _ in gaps if i > 0]
    return {"counts": {n: sorted(found, reverse=True) for n, found in sorted(counts.items())},
            "second_round_ms": ((second[0], second[len(second) // 2], second[-1]) if second
                                else (0.0, 0.0, 0.0)),
            "later_mean_ms": sum(later) / len(later) if later else 0.0,
            "worst_gaps": sorted(((g, m, at) for g, m, _, at in gaps), reverse=True)[:worst]}


async def all_messages(banks: list[SimulatedBank], total: int) -> None:
    """Until the banks' networks together logged `total` whole messages: woken by each
    entry, not polling (the banks share this process's event loop with their 64 modems)."""
    done = asyncio.get_running_loop().create_future()
    count = sum(1 for b in banks for e in b.network_log() if e["kind"] == "message")

    def counted(entry: dict) -> None:
        nonlocal count
        if entry["kind"] == "message":
            count += 1
            if count >= total and not done.done():
                done.set_result(None)

    stops = [b.network.add_listener(counted) for b in banks]
    try:
        if count < total:
            await done
    finally:
        for stop in stops:
            stop()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


AT_LINE = re.compile(r"^(\S+ \S+) DEBUG\s+modempool\.modem\.(\S+): (<<|>>) (.*)$")


def at_traffic(path: Path) -> Iterator[tuple[float, str, str, str]]:
    """A daemon's AT traffic from its log (-vv): (when, modem, `>>` or `<<`, the line)."""
    for line in path.read_text(errors="replace").splitlines():
        match = AT_LINE.match(line)
        if match is not None:
            stamp, modem, way, what = match.groups()
            yield (datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), modem, way,
                   what)


def at_gap_split(log_paths: list[Path]) -> dict[str, float]:
    """From the daemons' AT traffic (-vv): the mean of each step between one SMS's answer and the
    next SMS's PDU on a modem, in ms: `answer_to_cmgs` (the daemon: record, next message, encode),
    `prompt` (AT+CMGS=n until `> `: the port both ways and the modem), `marker` (at the prompt:
    the part marker's commit, before the PDU goes out)."""
    steps: dict[str, list[float]] = {"answer_to_cmgs": [], "prompt": [], "marker": []}
    for path in log_paths:
        last: dict[str, tuple[str, float]] = {}  # modem: (what it last did, when)
        for at, modem, way, what in at_traffic(path):
            before, then = last.get(modem, ("", 0.0))
            if way == ">>" and what.startswith("AT+CMGS="):
                if before == "answered":
                    steps["answer_to_cmgs"].append(at - then)
                last[modem] = ("asked", at)
            elif way == "<<" and what == "> " and before == "asked":
                steps["prompt"].append(at - then)
                last[modem] = ("prompt", at)
            elif way == ">>" and what.endswith("<Ctrl-Z>") and before == "prompt":
                steps["marker"].append(at - then)
                last[modem] = ("written", at)
            elif way == "<<" and what == "OK" and before == "written":
                last[modem] = ("answered", at)
    return {f"{step}_ms": 1000 * sum(times) / len(times) for step, times in steps.items() if times}


#: Two answers of a daemon's modems further apart than this (s) belong to two bursts.
BURST_BREAK = 0.15


def answer_bursts(log_paths: list[Path], latency: float) -> list[dict[str, float]]:
    """From each daemon's AT traffic (-vv): how its modems' answers (+CMGS) come. At a fixed
    latency the modems that started together stay in step, so a daemon gets one burst of answers
    a second, and whoever answers late in it waits for the others' next markers: the burst's
    width in the first and last rounds (ms), and, for the modem whose gaps added up most, that
    sum (ms, against the daemon's mean) and its median rank in the bursts (1 = answered first)."""
    found = []
    for path in log_paths:
        answers: list[tuple[float, str]] = []
        pdus: dict[str, list[float]] = {}
        for at, modem, way, what in at_traffic(path):
            if way == "<<" and what.startswith("+CMGS:"):
                answers.append((at, modem))
            elif way == ">>" and what.endswith("<Ctrl-Z>"):
                pdus.setdefault(modem, []).append(at)
        if not answers or not pdus:
            continue
        answers.sort()
        bursts = [[answers[0]]]
        for answer in answers[1:]:
            if answer[0] - bursts[-1][-1][0] > BURST_BREAK:
                bursts.append([])
            bursts[-1].append(answer)
        gaps = {m: (t[-1] - t[0]) - latency * (len(t) - 1) for m, t in pdus.items()}
        worst = max(gaps, key=gaps.__getitem__)
        ranks = sorted([m for _, m in burst].index(worst) + 1
                       for burst in bursts if any(m == worst for _, m in burst))
        found.append({"bursts": len(bursts),
                      "first_width_ms": 1000 * (bursts[0][-1][0] - bursts[0][0][0]),
                      "last_width_ms": 1000 * (bursts[-1][-1][0] - bursts[-1][0][0]),
                      "size": max(len(b) for b in bursts),
                      "worst_gaps_ms": 1000 * gaps[worst],
                      "mean_gaps_ms": 1000 * sum(gaps.values()) / len(gaps),
                      "worst_rank": ranks[len(ranks) // 2] if ranks else 0})
    return found


def carried_line(counts: dict[int, list[tuple[float, str]]]) -> list[str]:
    """How many messages the modems carried; for the counts fewer modems had, which ones and
    when they finished (s after the first answer)."""
    usual = max(counts, key=lambda n: len(counts[n]))
    lines = [f"messages per modem: {usual} on {len(counts[usual])} modems"]
    for n, found in counts.items():
        if n != usual:
            lines.append(f"{n} on {len(found)} (" + ", ".join(
                f"{modem} done at {at:.2f} s" for at, modem in found[:4])
                + (", ..." if len(found) > 4 else "") + ")")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway cluster)")
    parser.add_argument("--only", choices=("spool", "cost", "daemons", "ideal"))
    parser.add_argument("--messages", type=int, default=2000, help="claimed per spool run")
    parser.add_argument("--backlogs", type=int, nargs="*", default=[1_000, 100_000])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000],
                        help="spool sizes (messages of history) for the cost per message")
    parser.add_argument("--million", action="store_true",
                        help="the cost per message in a spool of 1,000,000 too (minutes)")
    parser.add_argument("--explain", action="store_true",
                        help="with the cost per message: the plans of its statements per size")
    parser.add_argument("--daemons", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--modems", type=int, default=4, help="per daemon, at 0 s per SMS")
    # 250 messages per modem: a run of several seconds, which a start or a pause does not sway
    parser.add_argument("--rounds", type=int, default=250, help="messages per modem at 0 s")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each number of daemons at 0 s (each printed, then "
                             "their median)")
    parser.add_argument("--ideal-modems", type=int, default=32)
    # 30 messages per modem, as bench_pool: the start (every modem claiming at once) is a small
    # part of the run, which measures what two boxes sustain.
    parser.add_argument("--ideal-rounds", type=int, default=30)
    parser.add_argument("--durable", action="store_true",
                        help="the throwaway cluster with fsync, synchronous_commit and "
                             "full_page_writes on (a production server's settings)")
    parser.add_argument("--trace", action="store_true",
                        help="split the gap between two SMS by the daemons' AT log (-vv)")
    parser.add_argument("--keep", type=Path,
                        help="copy the ideal run's daemon logs and network log to this directory")
    args = parser.parse_args()

    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster(not args.url, durable=args.durable) as cluster:
        if cluster is not None:
            print("throwaway cluster: " + ("fsync, synchronous_commit, full_page_writes on"
                                           if args.durable else "fsync off"))
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
            directory = Path(tmp)
            if args.only in (None, "spool"):
                print(f"spool: enqueue, then claim + part marker + confirmation of "
                      f"{args.messages} one-part messages, one process: half claimed one at"
                      f" a time, half in a daemon's dispatch rounds of 8")
                for backlog in args.backlogs:
                    for kind in ("sqlite", "postgresql"):
                        target = fresh_target(kind, cluster, directory, f"s{kind[:2]}{backlog}",
                                              args.url)
                        r = bench_spool(target, args.messages, backlog)
                        print(f"  {kind:<10} backlog {backlog:>9,}: enqueue {r['enqueue_per_s']:>8,.0f}/s,"
                              f" claim one at a time {r['claim_per_s']:>6,.0f}/s ({r['claim_ms']:.2f} ms"
                              f" a message), in rounds of 8 {r['round_per_s']:>6,.0f}/s"
                              f" ({r['round_ms']:.2f} ms)")
            if args.only in (None, "cost"):
                sizes = args.sizes + ([1_000_000] if args.million else [])
                print(f"database cost per message on PostgreSQL, {args.messages} messages "
                      f"enqueued one by one, claimed in dispatch rounds of 8, marked writing, recorded "
                      f"sent; ms per message, wall clock, then CPU time")
                for size in sizes:
                    target = fresh_target("postgresql", cluster, directory, f"c{size}", args.url)
                    r = bench_cost(target, size, args.messages, cluster)
                    plans = explain(target) if args.explain else []
                    server = ("" if r["server_cpu"] is None
                              else f"database {r['server_cpu']:.2f} ms + ")
                    print(f"  spool of {size:>9,}: enqueue {r['enqueue']:.2f} + claim "
                          f"{r['claim']:.2f} + marker {r['marker']:.2f} + sent {r['sent']:.2f}"
                          f" = {r['total']:.2f} ms; CPU {server}client "
                          f"{r['client_cpu']:.2f} ms (load {os.getloadavg()[0]:.1f}); the history "
                          f"{r['disk']}", flush=True)
                    if plans:
                        print("\n".join(plans), flush=True)
                    drop_schema(target, cluster)   # no autovacuum of it during the next size
            if args.only in (None, "daemons"):
                print(f"daemons sharing one PostgreSQL queue, {args.modems} simulated modems "
                      f"each, 0 s per SMS")
                for n in args.daemons:
                    rates = []
                    for repeat in range(args.repeats):   # a fresh schema each: no history
                        target = fresh_target("postgresql", cluster, directory, f"d{n}", args.url)
                        r = asyncio.run(run_daemons(target, n, args.modems, 0.0, args.rounds,
                                                    directory / f"run{n}-{repeat}",
                                                    cluster=cluster))
                        drop_schema(target, cluster)
                        rates.append(r["rate"])
                        print(f"  {n} daemon{'s' if n > 1 else ' '} #{repeat + 1}: {r['messages']} "
                              f"messages in {r['elapsed']:.2f} s = {r['rate']:.0f}/s in total "
                              f"(per daemon: {r['carried']}; load {os.getloadavg()[0]:.1f})"
                              + ("" if r["db_cpu_ms"] is None else
                                 f"; CPU a message: database {r['db_cpu_ms']:.2f} ms, daemons "
                                 f"{r['cpu_ms']:.2f} ms"), flush=True)
                    print(f"  {n} daemon{'s' if n > 1 else ' '}: median "
                          f"{statistics.median(rates):.0f}/s of {args.repeats} runs (from "
                          f"{min(rates):.0f} to {max(rates):.0f})", flush=True)
            if args.only in (None, "ideal"):
                target = fresh_target("postgresql", cluster, directory, "ideal", args.url)
                load = os.getloadavg()[0]
                r = asyncio.run(run_daemons(target, 2, args.ideal_modems, 1.0, args.ideal_rounds,
                                            directory / "ideal", trace=args.trace,
                                            keep=args.keep, cluster=cluster))
                print(f"2 daemons x {args.ideal_modems} modems at 1 s per SMS: {r['messages']} "
                      f"messages in {r['elapsed']:.2f} s = {r['rate']:.1f}/s, ideal "
                      f"{r['ideal']:.0f}/s -> {100 * r['fraction']:.1f} % (per daemon: "
                      f"{r['carried']})")
                print(f"  where the time went: modems started within {r['start_spread_ms']:.0f} ms"
                      f" (mean {r['start_mean_ms']:.0f} ms); between two SMS a modem waited"
                      f" {r['gap_mean_ms']:.1f} ms on average (median {r['gap_p50_ms']:.1f},"
                      f" p99 {r['gap_p99_ms']:.1f}); the daemons' CPU {r['cpu_ms']:.2f} ms a"
                      f" message, the simulated banks' (this process) {r['bank_cpu_ms']:.2f} ms;"
                      f" load average {load:.1f} at the start, "
                      f"{os.getloadavg()[0]:.1f} at the end")
                banks = ", ".join(f"daemon {d}: {a:.0f}/{b:.0f}/{c:.0f}"
                                  for d, (a, b, c) in enumerate(r["bank_starts"]))
                print(f"  start: the first PDU {r['enqueue_to_pdu_ms']:.0f} ms after the enqueue's"
                      f" commit; each bank's first/median/last modem started (ms after the"
                      f" first PDU) {banks}")
                print(f"  the modem that finished last started {r['last_start_ms']:.0f} ms after"
                      f" the first PDU and its gaps added up to {r['last_gaps_ms']:.0f} ms (the"
                      f" run's {r['elapsed']:.2f} s less the ideal's {args.ideal_rounds} s)")
                print("  " + "; ".join(carried_line(r["counts"])))
                low, middle, high = r["second_round_ms"]
                print(f"  the second round (every modem answered its first SMS at once, its"
                      f" daemon records them and marks the next together): gaps {low:.0f} to"
                      f" {high:.0f} ms (median {middle:.0f}); the later rounds' mean gap"
                      f" {r['later_mean_ms']:.1f} ms; the worst gaps: " + ", ".join(
                          f"{g:.0f} ms ({m} at {at:.2f} s)" for g, m, at in r["worst_gaps"]))
                m = r["machine"]
                late = r["banks_late_ms"] or {}
                others = (f", other processes {m['others']:.2f}" if "others" in m else "")
                print(f"  the machine during the run (cores of {os.cpu_count()}, on average):"
                      f" busy {m['busy']:.2f}{others}, stolen by the hypervisor"
                      f" {m['steal']:.2f}; the banks' event loop (this process) woke late by"
                      f" {late.get('mean', 0):.1f} ms on average (p99 {late.get('p99', 0):.0f},"
                      f" worst {late.get('max', 0):.0f})")
                if args.trace:
                    steps = ("answer_to_cmgs_ms", "prompt_ms", "marker_ms")
                    rest = r["gap_mean_ms"] - sum(r.get(step, 0.0) for step in steps)
                    print(f"  the gap by the daemons' AT log (-vv, which costs CPU itself): answer"
                          f" to next AT+CMGS {r.get('answer_to_cmgs_ms', 0):.1f} ms, AT+CMGS to"
                          f" prompt {r.get('prompt_ms', 0):.1f} ms, prompt to PDU (the part"
                          f" marker) {r.get('marker_ms', 0):.1f} ms; the rest (port, the"
                          f" simulator's timer) {rest:.1f} ms")
                    for d, b in enumerate(r.get("bursts", [])):
                        print(f"  daemon {d}'s answers: {b['bursts']} bursts of up to"
                              f" {b['size']} (at the fixed latency its modems stay in step),"
                              f" {b['first_width_ms']:.0f} ms wide at first,"
                              f" {b['last_width_ms']:.0f} ms at the end; the"
                              f" modem whose gaps added up most ({b['worst_gaps_ms']:.0f} ms, mean"
                              f" {b['mean_gaps_ms']:.0f}) answered {b['worst_rank']}. of"
                              f" {b['size']} in its bursts (median)")

if __name__ == "__main__":
    main()
