"""Per-SIM limits: windows in local time, SIMs at their limit skipped, long messages not stuck."""

from __future__ import annotations

from datetime import datetime, timedelta

from modempool.dispatch.limits import Counters, Limits, allows, count, current, headroom, reopens_at


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone()   # a local wall-clock time


def test_counts_accumulate_within_each_window_and_reset_when_it_ends() -> None:
    c = Counters()
    for _ in range(3):
        c = count(c, at("2026-03-31T23:59:10"))
    assert (c.sent_minute, c.sent_today, c.sent_month) == (3, 3, 3)
    next_minute = current(c, at("2026-03-31T23:59:59"))
    assert next_minute.sent_minute == 3
    after_midnight = current(c, at("2026-04-01T00:00:01"))
    assert (after_midnight.sent_minute, after_midnight.sent_today, after_midnight.sent_month) == (0, 0, 0)
    same_month = current(count(Counters(), at("2026-04-01T10:00")), at("2026-04-02T10:00"))
    assert (same_month.sent_today, same_month.sent_month) == (0, 1)


def test_a_sim_at_any_limit_is_not_allowed_and_reopens_at_the_next_window() -> None:
    limits = Limits(per_minute=2, per_day=3, per_month=100)
    now = at("2026-05-10T12:00:05")
    c = count(count(Counters(), now), now)
    assert not allows(limits, c, now)
    assert reopens_at(limits, c, now) == at("2026-05-10T12:01:00")
    later = now + timedelta(minutes=1)
    assert allows(limits, c, later)
    c = count(c, later)
    assert headroom(limits, c, later) == 0
    assert reopens_at(limits, c, later) == at("2026-05-11T00:00:00")
    assert allows(limits, c, at("2026-05-11T00:00:00"))


def test_monthly_quota_reopens_on_the_first() -> None:
    limits = Limits(per_month=1)
    c = count(Counters(), at("2026-12-31T08:00"))
    assert not allows(limits, c, at("2026-12-31T20:00"))
    assert reopens_at(limits, c, at("2026-12-31T20:00")) == at("2027-01-01T00:00")


def test_unlimited_sim_always_allows_and_long_messages_need_a_free_window() -> None:
    assert allows(Limits(), count(Counters(), at("2026-01-01T00:00")), at("2026-01-01T00:00"), 50)
    limits = Limits(per_minute=3)
    now = at("2026-01-01T09:00:00")
    assert allows(limits, Counters(), now, parts=5)          # longer than the limit: a fresh minute
    assert not allows(limits, count(Counters(), now), now, parts=5)
    assert allows(limits, count(Counters(), now), now, parts=2)
    assert not allows(limits, count(Counters(), now, 2), now, parts=2)
