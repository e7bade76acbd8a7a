"""`Dispatcher.marking` and `quiet_moment`: claims for later wait while a part waits for its
marker's commit (and a moment after, for its PDU to go out), at most their patience; a stopping
dispatcher is not held up by them."""

from __future__ import annotations

import asyncio

import pytest

from modempool.config import Config
from modempool.dispatch.dispatcher import Dispatcher
from modempool.spool import Spool

#: A patience no test waits out: a quiet moment that returns did so for its reason.
LONG = 300.0


async def _turns(count: int = 10) -> None:
    """Let the loop turn `count` times: the callbacks and wake-ups due now have run."""
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
def dispatcher(tmp_path):
    with Spool(tmp_path / "spool.db") as spool:
        yield Dispatcher(spool, Config.default(), owner="test", slots=[])


async def test_a_quiet_moment_waits_for_every_marker_then_returns(dispatcher):
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    dispatcher.marking(first)
    dispatcher.marking(second)
    waiting = asyncio.create_task(dispatcher.quiet_moment(LONG))
    first.set_result(None)
    await _turns()
    # the second marker is not committed yet: not every marker is, and the moment waits
    assert not dispatcher._all_marked.is_set() and not waiting.done()
    second.set_exception(RuntimeError("its commit failed"))   # settled all the same
    async with asyncio.timeout(30):   # hang guard
        await waiting
    second.exception()   # retrieved: no "never retrieved" warning
    async with asyncio.timeout(30):
        await dispatcher.quiet_moment(LONG)   # nothing waits now: at once


async def test_a_stopping_dispatcher_is_not_held_by_a_quiet_moment(dispatcher):
    """A marker that never commits (the database away): the daemon's stop ends the wait of
    its checkpoints and claims at once, not after their patience."""
    marker = asyncio.get_running_loop().create_future()
    dispatcher.marking(marker)
    waiting = asyncio.create_task(dispatcher.quiet_moment(LONG))
    await _turns()
    assert not waiting.done()
    dispatcher.stop()
    async with asyncio.timeout(30):   # hang guard: the old wait went on for LONG seconds
        await waiting
    marker.cancel()


async def test_a_quiet_moment_waits_while_a_modem_is_busy(dispatcher):
    """Every marker committed, but a modem between its answer and its next PDU (`busy_now`):
    the moment waits for that too (here far away: until the stop)."""
    dispatcher._busy_until = asyncio.get_running_loop().time() + LONG
    waiting = asyncio.create_task(dispatcher.quiet_moment(LONG))
    await _turns()
    assert dispatcher._all_marked.is_set() and not waiting.done()
    dispatcher.stop()
    async with asyncio.timeout(30):   # hang guard
        await waiting
