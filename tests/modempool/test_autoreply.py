"""Auto-reply rules: keywords/patterns, per-sender cooldown, SIM and time-window limits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from modempool.operator.autoreply import AutoReplies, Rule, in_window, make_autoreply_handler, parse_window
from modempool.config import load_config
from modempool.errors import ConfigError

CONFIG = """
[spool]
path = "spool.db"
[[autoreply]]
keywords = ["营业时间"]
reply = "每天 9:00-18:00"
cooldown = 600
[[autoreply]]
pattern = "^(价格|报价)"
reply = "请致电 400-000-0000"
sim = "m2"
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0).astimezone()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(tmp_path, spool_setting):
    """The spool (on each engine), the rules' handler and its clock."""
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.replace('path = "spool.db"', spool_setting), "utf-8")
    config = load_config(path)
    spool = config.open_spool()
    clock = Clock()
    yield spool, make_autoreply_handler(config, clock), clock
    spool.close()


def test_cooldown_stops_ping_pong_then_expires(setup):
    spool, handle, clock = setup
    first = spool.store_inbound("13800138000", "请问营业时间？", sim="m1")
    reply_id = handle(spool, first)
    reply = spool.get(reply_id)
    assert (reply.to, reply.text, reply.sims) == ("+8613800138000", "每天 9:00-18:00", ("m1",))
    clock.now += timedelta(seconds=599)  # another auto-responder answers within the cooldown
    assert handle(spool, spool.store_inbound("13800138000", "营业时间自动回复", sim="m1")) is None
    assert handle(spool, spool.store_inbound("13900139000", "营业时间", sim="m1")) is not None
    clock.now += timedelta(seconds=2)
    assert handle(spool, spool.store_inbound("13800138000", "营业时间", sim="m1")) is not None
    outcomes = [(r.sender, r.outcome) for r in reversed(AutoReplies(spool.db).log())]
    assert outcomes == [("+8613800138000", "replied"), ("+8613800138000", "cooldown"),
                        ("+8613900139000", "replied"), ("+8613800138000", "replied")]
    assert len(spool.list()) == 3


def test_rule_limited_to_a_sim_and_pattern(setup):
    spool, handle, _ = setup
    assert handle(spool, spool.store_inbound("13800138000", "价格多少", sim="m1")) is None
    assert spool.get(handle(spool, spool.store_inbound("13800138000", "报价单", sim="m2"))).text \
        == "请致电 400-000-0000"
    assert handle(spool, spool.store_inbound("13700137000", "我想要价格", sim="m2")) is None  # ^ anchors


def test_time_window_and_db_rules(setup):
    spool, handle, clock = setup
    AutoReplies(spool.db).add("下班了，明天回复您", keywords=("在吗",), hours="18:00-09:00", cooldown=0)
    clock.now = datetime(2026, 11, 25, 12, 0).astimezone()
    assert handle(spool, spool.store_inbound("13800138000", "在吗", sim="m1")) is None
    clock.now = datetime(2026, 11, 25, 23, 30).astimezone()
    assert spool.get(handle(spool, spool.store_inbound("13800138000", "在吗？", sim="m1"))).text \
        == "下班了，明天回复您"


def test_opt_out_keywords_and_blacklisted_senders_get_no_reply(setup):
    spool, handle, _ = setup
    AutoReplies(spool.db).add("收到", keywords=("T", "好"))
    assert handle(spool, spool.store_inbound("13800138000", "T", sim="m1")) is None
    from modempool.operator.optout import OptOutList

    OptOutList(spool.db).add_to_blacklist(["13900139000"])
    assert handle(spool, spool.store_inbound("13900139000", "好的", sim="m1")) is None
    assert handle(spool, spool.store_inbound("10086", "好", sim="m1")) is None  # short code
    assert spool.list() == []


def test_rule_validation():
    with pytest.raises(ConfigError, match="needs keywords or a pattern"):
        Rule("x", "reply")
    with pytest.raises(ConfigError, match="bad pattern"):
        Rule("x", "reply", pattern="(")
    with pytest.raises(ConfigError, match="09:00-18:00"):
        Rule("x", "reply", keywords=("a",), hours="nine to five")
    window = parse_window("22:00-06:00")
    assert in_window(window, datetime(2026, 1, 1, 23, 0).astimezone())
    assert not in_window(window, datetime(2026, 1, 1, 12, 0).astimezone())


def test_one_sender_on_two_sims_at_once_gets_one_reply_on_postgresql(tmp_path, pg_cluster):
    """Two daemons' threads (or two hosts) answer one sender's two SMS at the same moment: the
    cooldown is read and the reply recorded under the sender's lock, so one reply goes out."""
    import threading
    import time

    import psycopg

    url = pg_cluster.new_schema()
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.replace('path = "spool.db"', f"url = {url!r}"), "utf-8")
    config = load_config(path)
    spool, clock = config.open_spool(), Clock()
    handle = make_autoreply_handler(config, clock)
    assert handle(spool, spool.store_inbound("13900139000", "营业时间", sim="m1")) is not None
    first = spool.store_inbound("13800138000", "营业时间？", sim="m1")
    second = spool.store_inbound("13800138000", "营业时间", sim="m2")
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as watcher:
        # Each answer waits to write its log line: both have decided by then, unless the
        # second waits for the first's whole decision.
        blocker.execute("LOCK TABLE autoreply_log IN EXCLUSIVE MODE")
        answers: list = []
        threads = [threading.Thread(target=lambda m=m: answers.append(handle(spool, m)))
                   for m in (first, second)]
        for thread in threads:
            thread.start()
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database()")
        guard = time.monotonic() + 120   # a hang guard only: the threads block on the server
        while watcher.execute(waiting).fetchone()[0] < 2:
            assert all(t.is_alive() for t in threads), "a hook ended before it blocked"
            assert time.monotonic() < guard, "the two hooks never waited on the server"
            time.sleep(0.01)   # polls the server's view of who waits; the threads block there
        blocker.commit()
        for thread in threads:
            thread.join()
    assert sorted(answers, key=lambda a: a is None)[1] is None
    assert [m.to for m in spool.list()].count("+8613800138000") == 1
    outcomes = sorted(r.outcome for r in AutoReplies(spool.db).log() if r.sender == "+8613800138000")
    assert outcomes == ["cooldown", "replied"]
    spool.close()
