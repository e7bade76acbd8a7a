"""Where a SIM is chosen: each strategy on small hand-made pools."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modempool.dispatch.strategies import SimView, Strategy, StrategyState, choose_sim


@dataclass(frozen=True)
class Msg:
    to: str
    id: int = 1


MOBILE = "+8613800138000"    # China Mobile
UNICOM = "+8613012345678"    # China Unicom
TELECOM = "+8618912345678"   # China Telecom


def sims(*specs: tuple[str, str, bool, int]) -> list[SimView]:
    return [SimView(name, operator, busy, load) for name, operator, busy, load in specs]


def test_least_loaded_takes_the_idle_sim_with_fewest_sent_today() -> None:
    pool = sims(("a", "", False, 5), ("b", "", False, 2), ("c", "", True, 0))
    assert choose_sim("least-loaded", Msg(MOBILE), pool, StrategyState()).name == "b"


def test_strategies_see_failures_a_failing_sim_only_when_no_other_is_free() -> None:
    # A SIM whose sends all fail never counts a sent SMS: by load alone it looks best of all.
    failing = SimView("a", load=0, failures=2)
    working = SimView("b", load=40)
    for strategy in ("least-loaded", "round-robin", "carrier-affinity", "sticky"):
        assert choose_sim(strategy, Msg(MOBILE), [failing, working], StrategyState()).name == "b"
    busy = SimView("b", busy=True, load=40)
    assert choose_sim("least-loaded", Msg(MOBILE), [failing, busy], StrategyState()).name == "a"


def test_least_loaded_waits_when_every_candidate_is_busy() -> None:
    pool = sims(("a", "", True, 0), ("b", "", True, 0))
    assert choose_sim(Strategy.LEAST_LOADED, Msg(MOBILE), pool, StrategyState()) is None
    assert choose_sim(Strategy.LEAST_LOADED, Msg(MOBILE), [], StrategyState()) is None


def test_round_robin_cycles_in_name_order_and_skips_busy_sims() -> None:
    state = StrategyState()
    pool = sims(("a", "", False, 9), ("b", "", False, 0), ("c", "", False, 0))
    picked = [choose_sim("round_robin", Msg(MOBILE), pool, state).name for _ in range(4)]
    assert picked == ["a", "b", "c", "a"]
    pool = sims(("a", "", False, 0), ("b", "", True, 0), ("c", "", False, 0))
    assert choose_sim("round-robin", Msg(MOBILE), pool, state).name == "c"


def test_carrier_affinity_prefers_a_sim_of_the_recipients_carrier() -> None:
    pool = sims(("cm", "CHINA MOBILE", False, 10), ("cu", "CHN-UNICOM", False, 0),
                ("ct", "China Telecom", False, 0))
    state = StrategyState()
    assert choose_sim("carrier-affinity", Msg(MOBILE), pool, state).name == "cm"
    assert choose_sim("carrier-affinity", Msg(UNICOM), pool, state).name == "cu"
    assert choose_sim("carrier-affinity", Msg(TELECOM), pool, state).name == "ct"


def test_carrier_affinity_waits_for_a_busy_same_carrier_sim_and_falls_back_without_one() -> None:
    busy_mobile = sims(("cm", "China Mobile", True, 0), ("cu", "China Unicom", False, 0))
    assert choose_sim("carrier-affinity", Msg(MOBILE), busy_mobile, StrategyState()) is None
    no_mobile = sims(("cu", "China Unicom", False, 3), ("ct", "China Telecom", False, 1))
    assert choose_sim("carrier-affinity", Msg(MOBILE), no_mobile, StrategyState()).name == "ct"


def test_sticky_keeps_a_recipient_on_its_sim_and_moves_it_when_that_sim_is_gone() -> None:
    state = StrategyState()
    pool = sims(("a", "", False, 0), ("b", "", False, 1))
    assert choose_sim("sticky", Msg(MOBILE), pool, state).name == "a"
    pool = sims(("a", "", False, 50), ("b", "", False, 0))
    assert choose_sim("sticky", Msg(MOBILE), pool, state).name == "a"      # still a
    assert choose_sim("sticky", Msg(UNICOM), pool, state).name == "b"      # new recipient
    busy = sims(("a", "", True, 0), ("b", "", False, 0))
    assert choose_sim("sticky", Msg(MOBILE), busy, state) is None          # waits for a
    gone = sims(("b", "", False, 0), ("c", "", False, 0))
    assert choose_sim("sticky", Msg(MOBILE), gone, state).name == "b"      # a is gone


def test_sticky_recalls_the_sim_from_the_spool_after_a_restart() -> None:
    state = StrategyState(recall=lambda to: "c" if to == MOBILE else None)
    pool = sims(("a", "", False, 0), ("c", "", False, 9))
    assert choose_sim("sticky", Msg(MOBILE), pool, state).name == "c"


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown dispatch strategy 'fastest'.*least-loaded"):
        choose_sim("fastest", Msg(MOBILE), sims(("a", "", False, 0)), StrategyState())
