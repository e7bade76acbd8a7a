"""Per-SIM rate limits and quotas: SMS per minute, per day, per month.

Carriers count SMS, so one part of a long message counts as one. Windows are calendar windows in
local time (a day resets at local midnight, a month on the 1st). Within a minute the sends are
spread out (`spacing`): a SIM allowed 3 a minute sends one every 20 s, never 3 in a burst at the
start of the minute, which is what carriers flag and what operators set the limit to avoid. The counters live in the spool's
``sims`` table so they survive restarts; this module only decides, it never stores.
A SIM at its limit is skipped by the dispatcher, never failed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True, slots=True)
class Limits:
    """None means no limit."""

    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None

    @classmethod
    def of(cls, modem_config: object) -> Limits:
        return cls(getattr(modem_config, "per_minute", None), getattr(modem_config, "per_day", None),
                   getattr(modem_config, "per_month", None))


@dataclass(frozen=True, slots=True)
class Counters:
    """SMS sent by one SIM in the current minute, day and month (keys are local-time labels)."""

    minute: str = ""
    sent_minute: int = 0
    day: str = ""
    sent_today: int = 0
    month: str = ""
    sent_month: int = 0


def _local(now: datetime) -> datetime:
    """`now` in its own time zone when it has one (the configured one), else system local."""
    return now if now.tzinfo is not None and now.tzinfo is not timezone.utc else now.astimezone()


def window_keys(now: datetime) -> tuple[str, str, str]:
    """Labels of the minute, day and month `now` falls in (local time)."""
    return _window_keys(now, now.tzinfo)  # a dispatch round asks this for every SIM


@lru_cache(maxsize=16)
def _window_keys(now: datetime, tz: object) -> tuple[str, str, str]:
    # `tz` is part of the key: equal instants in other zones have other local labels.
    local = _local(now)
    return _keys(local.year, local.month, local.day, local.hour, local.minute)


@lru_cache(maxsize=64)
def _keys(year: int, month: int, day: int, hour: int, minute: int) -> tuple[str, str, str]:
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}",
            f"{year:04d}-{month:02d}-{day:02d}", f"{year:04d}-{month:02d}")


def current(counters: Counters, now: datetime) -> Counters:
    """`counters` with every window that has ended since reset to zero."""
    minute, day, month = window_keys(now)
    return Counters(
        minute=minute, sent_minute=counters.sent_minute if counters.minute == minute else 0,
        day=day, sent_today=counters.sent_today if counters.day == day else 0,
        month=month, sent_month=counters.sent_month if counters.month == month else 0,
    )


def at_least(held: Counters, stored: Counters, now: datetime) -> Counters:
    """The greater count of each window of `held` (in memory) and `stored` (the spool's): a
    SIM that comes up keeps what it counted, and learns what it sent elsewhere."""
    a, b = current(held, now), current(stored, now)
    return Counters(a.minute, max(a.sent_minute, b.sent_minute), a.day,
                    max(a.sent_today, b.sent_today), a.month, max(a.sent_month, b.sent_month))


def headroom(limits: Limits, counters: Counters, now: datetime) -> int | None:
    """How many more SMS the SIM may send now (None: unlimited)."""
    now_counts = current(counters, now)
    room = [limit - used for limit, used in (
        (limits.per_minute, now_counts.sent_minute),
        (limits.per_day, now_counts.sent_today),
        (limits.per_month, now_counts.sent_month),
    ) if limit is not None]
    return max(0, min(room)) if room else None


def allows(limits: Limits, counters: Counters, now: datetime, parts: int = 1) -> bool:
    """Whether the SIM may send a message of `parts` SMS now."""
    return fits(limits, headroom(limits, counters, now), parts)


def fits(limits: Limits, room: int | None, parts: int) -> bool:
    """Whether a message of `parts` SMS fits in `room` (from `headroom`; None: unlimited).

    A message longer than the smallest limit could never fit; it goes out once that whole window
    is free (and overshoots it), rather than waiting forever.
    """
    if room is None:
        return True
    return room > 0 and room >= min(parts, _smallest(limits))


def _smallest(limits: Limits) -> int:
    return min(x for x in (limits.per_minute, limits.per_day, limits.per_month) if x is not None)


def count(counters: Counters, now: datetime, parts: int = 1) -> Counters:
    """Counters after `parts` more SMS were sent at `now`."""
    now_counts = current(counters, now)
    return replace(now_counts, sent_minute=now_counts.sent_minute + parts,
                   sent_today=now_counts.sent_today + parts,
                   sent_month=now_counts.sent_month + parts)


def spacing(limits: Limits, parts: int = 1) -> float:
    """Seconds to leave after a message of `parts` SMS before the SIM's next one: the per-minute
    limit as an even pace (a token bucket holding one token). 0 without a per-minute limit."""
    if limits.per_minute is None:
        return 0.0
    return 60.0 * max(1, parts) / limits.per_minute


def reopens_at(limits: Limits, counters: Counters, now: datetime) -> datetime:
    """When a SIM at its limit may send again: the start of the next window that frees room."""
    local = _local(now)
    used = current(counters, now)
    if limits.per_month is not None and used.sent_month >= limits.per_month:
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return (first + timedelta(days=32)).replace(day=1)
    if limits.per_day is not None and used.sent_today >= limits.per_day:
        return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return local.replace(second=0, microsecond=0) + timedelta(minutes=1)
