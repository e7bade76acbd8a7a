"""Campaigns as one account sees and runs them (`AccountPool.campaign_desk()`), on both spool
engines: admins all, senders their own (through their SIMs, within their quota, their messages
their own), viewers look at all and change none."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from modempool import Pool
from modempool.accounts import Accounts, Forbidden, QuotaExceeded, SimNotAllowed
from modempool.errors import NotFound
from modempool.operator.contacts import Selection

CONFIG = """\
[spool]
path = "pool.db"

[[modem]]
name = "m1"
port = "/dev/null"

[[modem]]
name = "m2"
port = "/dev/null"
"""


@pytest.fixture
def pool(tmp_path, spool_target):
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with Pool.open(path, spool_path=spool_target) as pool:
        accounts = Accounts(pool.spool)
        accounts.add("root", "admin")
        accounts.add("branch", "sender", sims=["m2"], per_minute=3)
        accounts.add("shop", "sender")
        accounts.add("audit", "viewer")
        pool.contacts.upsert("13700137001", "王芳", fields={"班级": "一班"}, groups=["家长"])
        pool.contacts.upsert("13700137002", "李强", fields={"班级": "二班"}, groups=["家长"])
        yield pool


def desk(pool, name):
    return pool.for_account(Accounts(pool.spool).get(name)).campaign_desk()


def test_a_sender_runs_its_own_campaign_through_its_sims_and_owns_its_messages(pool):
    branch, shop = desk(pool, "branch"), desk(pool, "shop")
    made = branch.create("家长会", "{name}家长：{班级}周五开会。", groups=Selection(("家长",)),
                         kind="notice")
    assert made.sims == ("m2",)   # bound to the sender's SIMs
    with pytest.raises(SimNotAllowed):
        branch.create("x", "y", numbers=["13700137003"], sims=["m1"])
    assert [c.name for c in branch.list()] == ["家长会"]
    assert shop.list() == []
    with pytest.raises(NotFound):
        shop.get(made.id)
    with pytest.raises(NotFound):
        shop.start(made.id)
    assert branch.start(made.id).enqueued == 2
    own = pool.for_account(Accounts(pool.spool).get("branch"))
    messages, _ = own.page()
    assert sorted(m.to for m in messages) == ["+8613700137001", "+8613700137002"]
    assert all(m.sims == ("m2",) for m in messages)
    assert pool.for_account(Accounts(pool.spool).get("shop")).page()[0] == []
    running = {name: [c.campaign for c in pool.for_account(Accounts(pool.spool).get(name))
                      .status().campaigns] for name in ("branch", "shop", "root")}
    assert running == {"branch": [made.id], "shop": [], "root": [made.id]}   # the dashboard
    branch.pause(made.id)
    assert branch.progress(made.id).state == "paused"


def test_a_senders_quota_counts_a_campaign_and_nothing_is_queued_past_it(pool):
    branch = desk(pool, "branch")   # 3 a minute
    numbers = ["13700137003", "13700137004", "13700137005", "13700137006"]
    made = branch.create("促销", "周末八折", numbers=numbers, kind="notice")
    with pytest.raises(QuotaExceeded) as refused:
        branch.start(made.id)
    assert refused.value.code == "quota_per_minute" and refused.value.params["count"] == 4
    assert pool.messages(campaign=made.id) == []


def test_a_viewer_looks_at_every_campaign_and_runs_none_and_an_admin_runs_all(pool):
    made = desk(pool, "shop").create("通知", "{name}您好", groups=Selection(("家长",)),
                                     kind="notice")
    audit, root = desk(pool, "audit"), desk(pool, "root")
    assert [c.id for c in audit.list()] == [made.id] and len(audit.plan(made.id).recipients) == 2
    assert not audit.may_run(made.id) and root.may_run(made.id)
    for change in (audit.start, audit.pause, audit.resume, audit.cancel):
        with pytest.raises(Forbidden):
            change(made.id)
    with pytest.raises(Forbidden):
        audit.create("x", "y", numbers=["13700137003"])
    assert pool.messages(campaign=made.id) == []
    assert root.start(made.id).enqueued == 2
    assert root.cancel(made.id) == 2


def test_history_of_a_sender_is_its_own_and_what_came_in_on_its_sims(pool):
    from modempool.operator.history import Query

    accounts = Accounts(pool.spool)
    branch, shop = (pool.for_account(accounts.get(n)) for n in ("branch", "shop"))
    root = pool.for_account(accounts.get("root"))
    shop.send(["13800138000"], "本周五下午三点开家长会")
    branch.send(["13800138001"], "分店：周五家长会改到四点")
    pool.spool.store_inbound("13800138000", "收到家长会通知", sim="m1")
    pool.spool.store_inbound("13800138001", "好的，家长会见", sim="m2")
    texts = {name: {r.text for r in who.history(Query(text="家长会"))}
             for name, who in (("branch", branch), ("shop", shop), ("root", root))}
    assert texts["branch"] == {"分店：周五家长会改到四点", "好的，家长会见"}
    assert texts["shop"] == {"收到家长会通知", "好的，家长会见", "本周五下午三点开家长会"}
    assert len(texts["root"]) == 4


def test_starting_a_campaign_never_waits_for_a_daemon_changing_its_messages(tmp_path, pg_cluster):
    """On PostgreSQL a sender's start records its messages' owner in the transaction that
    queues them (all owned at once, none ever unowned), and so locks none of the campaign's
    committed messages: a daemon marking them sent out of id order, its transaction open,
    does not hold it up (a share lock over them deadlocked with it)."""
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG, encoding="utf-8")
    url = pg_cluster.new_schema()
    with Pool.open(path, spool_path=url) as pool:
        Accounts(pool.spool).add("shop", "sender")
        shop = desk(pool, "shop")
        made = shop.create("上新", "新品到店", numbers=["13700137003", "13700137004"])
        assert shop.start(made.id).enqueued == 2
        pairs = pool.spool.rows(
            "SELECT DISTINCT m.xmin::text AS queued, o.xmin::text AS owned FROM messages m "
            "JOIN message_accounts o ON o.message_id = m.id WHERE m.campaign_id = ?", (made.id,))
        assert len(pairs) == 1 and pairs[0]["queued"] == pairs[0]["owned"]   # one transaction
        low, high = sorted(row["id"] for row in pool.spool.rows(
            "SELECT id FROM messages WHERE campaign_id = ?", (made.id,)))
        with psycopg.connect(url, autocommit=True) as daemon:
            with daemon.transaction():
                daemon.execute("UPDATE messages SET state = 'sending' WHERE id = %s", (high,))
                outcome: list[object] = []
                again = threading.Thread(target=lambda: outcome.append(shop.start(made.id)))
                again.start()
                waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
                deadline = time.monotonic() + 60
                while again.is_alive() and not daemon.execute(waiting).fetchone()[0]:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)   # polling the server's lock table, not waiting for time
                stuck = again.is_alive()
                daemon.execute("UPDATE messages SET state = 'sending' WHERE id = %s", (low,))
            again.join(60)
        assert not stuck and outcome[0].already_enqueued == 2
        counts = {s: n for s, n in pool.spool.scoped.counts("shop").items() if n}
        assert counts == {"sending": 2}


def test_a_senders_campaign_is_its_own_whoever_starts_it_an_admins_is_the_banks(pool):
    """A campaign a sender made: its messages are the sender's (its list, its counts), also
    when an admin (console, API) or the CLI (`Pool`) starts it; one an admin made, or one
    made outside any account, has messages of no account's (the global figures only)."""
    shop = pool.for_account(Accounts(pool.spool).get("shop"))
    root = desk(pool, "root")
    for_shop = desk(pool, "shop").create("上新", "新品到店", numbers=["13700137003"],
                                         kind="notice")
    assert root.start(for_shop.id).enqueued == 1   # an admin starts the sender's campaign
    by_cli = desk(pool, "shop").create("补货", "到货通知", numbers=["13700137004"], kind="notice")
    assert pool.start_campaign(by_cli.id).enqueued == 1   # the CLI starts it
    admins = root.create("停电通知", "今晚停电", numbers=["13700137005"], kind="notice")
    assert root.start(admins.id).enqueued == 1
    banks = pool.create_campaign("全体", "放假通知", numbers=["13700137006"], kind="notice")
    assert pool.start_campaign(banks.id).enqueued == 1
    assert sorted(m.to for m in shop.list()[0]) == ["+8613700137003", "+8613700137004"]
    assert shop.counts()["queued"] == 2
    assert pool.spool.scoped.counts("root")["queued"] == 0
    assert pool.counts()["queued"] == 4   # every one in the global figures
