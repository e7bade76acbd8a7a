"""`spool.db`, the operator modules' database: safe from any thread, and read-only until a
module is asked to change something."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from modempool.operator.autoreply import AutoReplies
from modempool.operator.campaigns import Campaigns
from modempool.operator.contacts import AddressBook
from modempool.operator.optout import OptOutList
from modempool.operator.recurring import Jobs
from modempool.operator.templates import CampaignTemplates
from modempool.spool import Spool


class WatchedLock:
    """The engine's own lock, which also tells when a thread other than `owner` asks for it."""

    def __init__(self, lock, owner: threading.Thread, asked: threading.Event) -> None:
        self.lock, self.owner, self.asked = lock, owner, asked

    def acquire(self, *args, **kwargs) -> bool:
        if threading.current_thread() is not self.owner:
            self.asked.set()
        return self.lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self.lock.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()


class RolledBack(Exception):
    pass


def _on_another_thread_during_a_transaction(spool, write, call):
    """`write` in a transaction of this thread; meanwhile `call` on another thread (until it
    returns, or waits for the engine's lock); then the transaction is rolled back. `call`'s
    result."""
    moved = threading.Event()   # the other thread finished, or waits for the lock
    spool.engine.lock = WatchedLock(spool.engine.lock, threading.current_thread(), moved)
    result = []
    other = threading.Thread(target=lambda: (result.append(call()), moved.set()))
    with pytest.raises(RolledBack):
        with spool.transaction():
            write()
            other.start()
            assert moved.wait(60), "the other thread neither finished nor waited"
            raise RolledBack
    other.join(60)
    return result


def test_another_thread_s_opt_out_waits_for_an_open_transaction_instead_of_joining_it(tmp_path):
    # The HTTP writer thread holds a transaction open while the console's thread opts a
    # number out: on one shared connection the opt-out must not be rolled back with it.
    with Spool(tmp_path / "spool.db") as spool:
        optouts = OptOutList(spool.db)
        added = _on_another_thread_during_a_transaction(
            spool, lambda: spool.enqueue("13900139000", "rolled back"),
            lambda: optouts.add("13800138000"))
        assert added == [True]
        assert OptOutList(spool.db).is_opted_out("13800138000")   # not lost with the rollback
        assert spool.list() == []


def test_a_read_on_another_thread_does_not_see_an_uncommitted_write(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        book = AddressBook(spool.db)
        seen = _on_another_thread_during_a_transaction(
            spool, lambda: book.upsert("13800138000", "张三"), lambda: book.find("13800138000"))
        assert seen == [None]


OPERATOR_MODULES = {
    "opt-outs": lambda spool: OptOutList(spool.db).optouts(),
    "contacts": lambda spool: AddressBook(spool.db).list(),
    "templates": lambda spool: CampaignTemplates(spool.db).list(),
    "auto-replies": lambda spool: AutoReplies(spool.db).log(5),
    "jobs": lambda spool: Jobs(spool.db).list(),
    "campaigns": lambda spool: Campaigns(spool).list(),
}


@pytest.mark.parametrize("read", OPERATOR_MODULES.values(), ids=OPERATOR_MODULES.keys())
def test_opening_the_spool_and_a_module_to_read_takes_no_write_lock(tmp_path, read):
    path = tmp_path / "spool.db"
    with Spool(path) as first:
        read(first)   # the module's tables exist from now on
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")   # another process holds the write lock
    try:
        with Spool(path, busy_timeout=0.05) as viewer:   # gives up at once if it has to write
            read(viewer)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
