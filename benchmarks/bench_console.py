"""Console benchmark: server time of the dashboard and the messages page, and of a history
search, with 1,000,000 messages (and 100,000 received ones) in the spool.

    python benchmarks/bench_console.py                 # 1,000,000 messages
    python benchmarks/bench_console.py --rows 100000   # a quicker look
    python benchmarks/bench_console.py --postgresql    # the same on a PostgreSQL spool
    python benchmarks/bench_console.py --url postgresql://bench@db/bench   # an existing one

The spool is filled by SQL in a temporary directory (sent and delivered messages spread over
the last 30 days, each with its part; the last hour busy; a few thousand queued, failed and
ambiguous), indexed for history search in the same transactions as an enqueue indexes them. The API and
console run in uvicorn in this process; each figure is the time from request to the last byte
of the answer over 127.0.0.1 (median and 95th percentile of --repeat requests), which is the
server's time plus a loopback round trip. History searches are also timed as library calls
(`AccountPool.history`, what `modempool history search` runs).
Targets (issue 17): under 200 ms per page, under 100 ms per search.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filled_bank import SIMS, iso, write_config  # noqa: E402 (beside this file)

SHOPS = ("家乐超市", "阳光药房", "实验小学", "顺丰快递", "城东诊所", "Metro Gym", "Blue Cafe")
NAMES = ("王芳", "李强", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄丽", "周杰", "吴娜")
TEMPLATES = (
    "【{shop}】{name}您好，您的订单{n}已发货，预计明天送达。",
    "【{shop}】{name}家长您好：本周五下午3点在三楼会议室开家长会，请准时参加。",
    "【{shop}】您的验证码是{n}，5分钟内有效，请勿告诉他人。",
    "【{shop}】{name}，您预约的体检时间为{d}日上午9点，请空腹前来。回T退订",
    "{shop}: your code is {n}. It expires in 5 minutes.",
    "{shop}: {name}, your parcel {n} is at the east gate locker.",
)
REPLIES = ("收到，谢谢", "好的，我会准时到", "退订", "请问地址在哪里？", "OK thanks", "TD", "明天可以改期吗")
STATES = (("delivered", 0.80), ("sent", 0.17), ("failed", 0.012), ("ambiguous", 0.003),
          ("queued", 0.01), ("cancelled", 0.005))


def fill(spool, rows: int, inbound: int, sims: list[str]) -> None:
    """`rows` messages and `inbound` received ones, by SQL (triggers keep the index)."""
    rng = random.Random(17)
    now = datetime.now(timezone.utc)
    weights = [w for _, w in STATES]
    names = [s for s, _ in STATES]
    batch = 20_000
    for start in range(0, rows, batch):
        messages, parts = [], []
        for i in range(start + 1, min(rows, start + batch) + 1):
            recent = i > rows - 3000          # the last hour is busy
            age = timedelta(seconds=rng.uniform(0, 3600)) if recent else \
                timedelta(seconds=(rows - i) / rows * 30 * 86400)
            when = iso(now - age)
            state = "delivered" if recent else rng.choices(names, weights)[0]
            text = rng.choice(TEMPLATES).format(shop=rng.choice(SHOPS), name=rng.choice(NAMES),
                                                n=rng.randrange(100000, 999999), d=rng.randrange(1, 29))
            sim = sims[i % len(sims)]
            sent = state in ("sent", "delivered", "ambiguous")
            messages.append((i, f"+86138{i % 100000000:08d}", text, state, sim if sent else None,
                             1 if sent else 0, when, when, when if sent else None,
                             when if state == "delivered" else None, 1))
            if sent:
                parts.append((i, 1, 1, 1, sim, "delivered" if state == "delivered" else "sent",
                              when))
        with spool.transaction() as conn:
            conn.executemany(
                "INSERT INTO messages (id, to_number, text, state, sim, attempts, created_at, "
                "updated_at, sent_at, delivered_at, parts_total) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                messages)
            spool.engine.index_text(conn, "messages", [m[0] for m in messages])   # as enqueue does
            conn.executemany(
                "INSERT INTO parts (message_id, seq, total, attempt, sim, state, sent_at) "
                "VALUES (?,?,?,?,?,?,?)", parts)
        print(f"\r  filling: {min(rows, start + batch):,} messages", end="", flush=True)
    with spool.transaction() as conn:
        conn.executemany(
            "INSERT INTO inbound (sender, sim, text, received_at, stored_at, parts, complete, "
            "read, dedupe_key) VALUES (?,?,?,?,?,1,1,?,?)",
            [(f"+86138{rng.randrange(100000000):08d}", sims[i % len(sims)], rng.choice(REPLIES),
              iso(now - timedelta(seconds=i * 20)), iso(now - timedelta(seconds=i * 20)),
              int(i > 50), f"bench:{i}") for i in range(inbound)])
    print(f"\r  filled: {rows:,} messages, {inbound:,} received" + " " * 10)


class Server:
    def __init__(self, config) -> None:
        from tests.web.http_harness import free_port

        self.config, self.port = config, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready, self.stop_event, self.loop = threading.Event(), None, None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from modempool.web.server import serve_api

        async def main() -> None:
            self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
            await serve_api(self.config, f"127.0.0.1:{self.port}", stop=self.stop_event,
                            webhooks=False, ready=self.ready.set)

        asyncio.run(main())

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def timed(call, repeat: int) -> tuple[float, float]:
    call()   # warm the page cache and the template
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--inbound", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="Build the spool in DIR and keep it; run again with the same DIR "
                             "to measure without filling again.")
    parser.add_argument("--postgresql", action="store_true",
                        help="The spool on PostgreSQL: a throwaway cluster (initdb/pg_ctl in a "
                             "temporary directory, fsync off, LC_CTYPE C.UTF-8).")
    parser.add_argument("--url", default=None,
                        help="The spool in this PostgreSQL database (empty, or filled by an "
                             "earlier run, which is then measured without filling again).")
    args = parser.parse_args()
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster(args.postgresql and not args.url) as cluster:
        if cluster is not None:
            args.url = cluster.url()
        return measure(args)


def measure(args: argparse.Namespace) -> int:

    import httpx

    from modempool.accounts import Accounts
    from modempool.config import load_config
    from modempool.operator.history import Query
    from modempool.pool import Pool

    with tempfile.TemporaryDirectory(prefix="modempool-bench-console-") as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        config = load_config(write_config(Path(tmp), args.url, SIMS))
        spool = config.open_spool()
        filled = bool(spool.rows("SELECT count(*) AS n FROM (SELECT 1 FROM messages LIMIT 1) "
                                 "AS one")[0]["n"])
        if filled:
            args.rows = spool.rows("SELECT max(id) AS n FROM messages")[0]["n"]
            args.inbound = spool.rows("SELECT count(*) AS n FROM inbound")[0]["n"]
            key = Accounts(spool).rotate("root")
        else:
            started = time.perf_counter()
            if spool.engine.name == "postgresql":   # one build of the trigram indexes at the end
                with spool.transaction() as conn:
                    conn.execute("DROP INDEX messages_text_trgm, inbound_text_trgm")
            fill(spool, args.rows, args.inbound, SIMS)
            if spool.engine.name == "postgresql":   # opening the spool makes them again
                spool.close()
                spool = config.open_spool()
            print(f"  fill took {time.perf_counter() - started:.0f} s")
            _, key = Accounts(spool).add("root", "admin")
            with spool.transaction() as conn:
                conn.execute("ANALYZE")
                if spool.engine.name == "postgresql":   # ids were given: the sequence follows
                    conn.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), "
                                 "(SELECT max(id) FROM messages))")
        operator = Pool(config, spool=spool).for_account(Accounts(spool).get("root"))
        results: list[tuple[str, float, float, float]] = []
        with Server(config) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            login = client.get("/login")
            csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
            assert client.post("/login", data={"account": "root", "key": key,
                                               "csrf": csrf}).status_code == 303
            pages = (("dashboard  GET /", "/", 200),
                     ("dashboard  live fragment", "/fragments/dashboard", 200),
                     ("messages   GET /messages (newest 50)", "/messages", 200),
                     ("messages   older page", f"/messages?before={args.rows // 2}", 200),
                     ("messages   state=failed", "/messages?state=failed", 200),
                     ("history    page: 家长会", "/history?text=家长会", 100),
                     ("history    page: 验证码 (inbound+sent)", "/history?text=验证码", 100))
            for label, path, target in pages:
                def get(path=path) -> None:
                    answer = client.get(path)
                    assert answer.status_code == 200, (path, answer.status_code)
                median, p95 = timed(get, args.repeat)
                results.append((label, median, p95, target))
        week = datetime.now(timezone.utc) - timedelta(days=7)
        searches = (("search 家长会 (3+ chars: index)", Query(text="家长会", limit=100)),
                    ("search 退订 (2 chars: scan)", Query(text="退订", limit=100)),
                    ("search parcel 123 (rare)", Query(text="parcel 123", limit=100)),
                    ("search 毕业典礼 (no match)", Query(text="毕业典礼", limit=100)),
                    ("search 家长会 + last 7 days", Query(text="家长会", since=week, limit=100)),
                    ("search 家长会 + state failed", Query(text="家长会", state="failed", limit=100)),
                    ("search 家长会 + state delivered", Query(text="家长会", state="delivered",
                                                          limit=100)),
                    ("search 家长会 + one number", Query(text="家长会", number="+8613800012345",
                                                      limit=100)),
                    ("search 家长会 + before 7 days ago", Query(text="家长会", until=week, limit=100)))
        for label, query in searches:
            median, p95 = timed(lambda query=query: operator.history(query), args.repeat)
            results.append((label, median, p95, 100))
        spool.close()
    print(f"\nconsole with {args.rows:,} messages and {args.inbound:,} received on "
          f"{'PostgreSQL' if args.url else 'SQLite'} ({args.repeat} requests each; ms)")
    print(f"{'':44} {'median':>8} {'p95':>8}  target")
    for label, median, p95, target in results:
        mark = "ok" if p95 < target else "OVER"
        print(f"{label:44} {median:8.1f} {p95:8.1f}  <{target} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
