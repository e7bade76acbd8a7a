"""Times as people type them (`18:30`, `+10m`, `-2h`, `2026-12-01 09:00`, `12h`) and as we show them.

Every front end reads times through these functions, in the pool's time zone (`[pool] timezone`,
or the system's), so that `send --at 18:30` means the same from the CLI, the HTTP API and Python.
Shown to people, a time is local (`2026-12-01 09:00:00`); in JSON it is ISO 8601 with its offset.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from typing import Any

from modempool.errors import PoolError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidTime(PoolError, ValueError):
    """A time or duration that cannot be read; the message shows the forms that can."""


def now_in(tz: tzinfo | None = None) -> datetime:
    """The current time, aware, in `tz` (None: the system's local time zone)."""
    return datetime.now(tz).astimezone(tz)


def parse_duration(text: str) -> timedelta:
    """'90s', '10m', '2h', '3d', '2w' (or plain minutes) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise InvalidTime(f"{text!r}: use e.g. 90m, 12h, 3d, 2w")
    try:
        return timedelta(**{_UNITS[match.group(2) or "m"]: float(match.group(1))})
    except OverflowError:
        raise InvalidTime(f"{text!r} is longer than any calendar holds") from None


def parse_when(text: str | datetime | None, tz: tzinfo | None = None, *,
               past: bool = False) -> datetime | None:
    """A moment from what a person typed: 'HH:MM' (the next such local time, or the last one
    with `past`), '+10m' / '+2h' / '+1d' (from now; '-2h' before now), or an ISO date-time
    (local to `tz` when it has no offset). A datetime is returned as it is (naive = local)."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=tz) if tz else text.astimezone()
    value = text.strip()
    now = now_in(tz)
    relative = re.fullmatch(r"([+-])(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if relative:
        try:
            delta = timedelta(**{_UNITS[relative.group(3)]: float(relative.group(2))})
            return now + delta if relative.group(1) == "+" else now - delta
        except OverflowError:
            raise InvalidTime(f"{text!r} is beyond the year 9999") from None
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    try:
        if clock:
            moment = now.replace(hour=int(clock.group(1)), minute=int(clock.group(2)),
                                 second=0, microsecond=0)
            if past:
                return moment if moment <= now else moment - timedelta(days=1)
            return moment if moment > now else moment + timedelta(days=1)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidTime(f"{text!r}: use HH:MM, +10m/+2h/+1d or YYYY-MM-DD HH:MM",
                          code="time_unreadable", params={"text": text}) from None
    if moment.tzinfo:
        return moment
    return moment.replace(tzinfo=tz) if tz else moment.astimezone()


def check_window(at: datetime | None, expires: datetime | None,
                 now: datetime | None = None) -> None:
    """InvalidTime if a message's `expires` is already past or not after its `at`: such a
    message could never be sent (a naive time is local, as `parse_when` reads it)."""
    if expires is None:
        return
    expires = expires.astimezone()
    if expires <= (now or datetime.now().astimezone()):
        raise InvalidTime(f"expires {local_text(expires)} is already past: the message "
                          "could never be sent", code="expires_past")
    if at is not None and expires <= at.astimezone():
        raise InvalidTime(f"expires {local_text(expires)} is not after at "
                          f"{local_text(at.astimezone())}: the message could never be sent",
                          code="expires_before_at")


def local_text(moment: datetime | str | None, tz: tzinfo | None = None) -> str:
    """A time for people: `2026-12-01 09:00:00` in `tz` (None: the system's), '' for none."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def as_moment(value: Any) -> datetime | None:
    """`value` as an aware datetime if it is one, or ISO text with an offset; else None
    (a date without a time, a clock time such as '09:00', any other text stays as it is)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.astimezone()
    if isinstance(value, str) and len(value) >= 19 and value[10:11] in ("T", " "):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else None
    return None


def local_time(moment: Any, tz: tzinfo | None = None) -> str:
    """A time for people: `2026-12-01 09:00:00` in `tz` (`[pool] timezone`), '' for none;
    anything that is no moment is shown as it is."""
    if moment is None or moment == "":
        return ""
    aware = as_moment(moment)
    return local_text(aware, tz) if aware else str(moment)
