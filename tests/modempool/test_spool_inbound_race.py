"""The same SMS stored at once by two spools on one database, as two hosts do (a card moved
between boxes, or a daemon restarted beside one still finishing): stored once, a single SMS and
a long one alike, on both engines.

Each round releases two threads together (`threading.Barrier`) at every step, so their
transactions overlap as often as the machine lets them; the outcome is asserted every round,
whatever the interleaving. On PostgreSQL a check-then-insert in place of the unique key stores
most rounds twice; SQLite's writers take turns, so there the test holds the rule, not the race.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from modempool.spool import Spool

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CARD = "89860012345678901234"
SENDER = "+8613800138000"
ROUNDS = 100


@pytest.fixture
def spools(spool_target):
    """Two spools on one database (two connections or pools, as two hosts have); the card in
    modem a1 of one box was in b7 of the other."""
    with Spool(spool_target) as one, Spool(spool_target) as two:
        one.upsert_sim("a1", iccid=CARD)
        one.upsert_sim("b7", iccid=CARD)
        yield one, two


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads released together; their results (an exception raised again)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    failures: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=60)   # a hang guard only
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


@pytest.mark.parametrize("sims", [("a1", "a1"), ("a1", "b7")], ids=["same-modem", "moved-card"])
def test_one_sms_handed_over_twice_at_once_is_stored_once(spools, sims):
    one, two = spools
    for round_ in range(ROUNDS):
        text, at = f"验证码 {round_}", T0 + timedelta(seconds=round_)
        stored = at_once(lambda: one.store_inbound(SENDER, text, sim=sims[0], received_at=at),
                         lambda: two.store_inbound(SENDER, text, sim=sims[1], received_at=at))
        assert sum(message is not None for message in stored) == 1, f"round {round_}: {stored}"
    texts = Counter(row["text"] for row in one.inbound())
    assert texts == Counter({f"验证码 {round_}": 1 for round_ in range(ROUNDS)})


@pytest.mark.parametrize("orders", [((1, 2), (1, 2)), ((1, 2), (2, 1))],
                         ids=["same-order", "opposite-order"])
def test_a_long_sms_handed_over_twice_at_once_is_joined_once(spools, orders):
    """Both boxes hand over both parts of one long SMS, step by step together: in the same
    order, or in opposite orders (each box's first part completes the other's message)."""
    one, two = spools
    for round_ in range(ROUNDS):
        at, reference = T0 + timedelta(seconds=round_), round_ % 256
        halves = {1: f"第{round_}条长短信的前半", 2: "和后半"}

        def part(spool: Spool, sim: str, seq: int) -> Any:
            return spool.store_inbound_part(sim, SENDER, reference, 2, seq, halves[seq],
                                            received_at=at)

        joined = [message for step in range(2) for message in at_once(
            lambda: part(one, "a1", orders[0][step]),
            lambda: part(two, "b7", orders[1][step])) if message is not None]
        assert [(m.text, m.parts) for m in joined] == [(halves[1] + halves[2], 2)], \
            f"round {round_}"
    texts = Counter(row["text"] for row in one.inbound())
    assert texts == Counter({f"第{round_}条长短信的前半和后半": 1 for round_ in range(ROUNDS)})
    assert one.pending_inbound_parts() == []
