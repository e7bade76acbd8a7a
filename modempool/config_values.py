"""The checks of single config values: each takes what TOML gave and returns the value to use,
or raises ValueError with what was expected (`config.py` adds the file, line and key)."""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Callable
from datetime import time
from typing import Any

from modempool.callback_guard import CallbackAllow
from modempool.masked import masked


def at_least(minimum: int = 0) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value
    return check


def between(minimum: int, maximum: int) -> Callable[[Any], int]:
    lower = at_least(minimum)

    def check(value: Any) -> int:
        if lower(value) > maximum:
            raise ValueError(f"must be at most {maximum}, got {value}")
        return value
    return check


def positive_seconds(value: Any) -> float:
    if not _finite(value) or value <= 0:
        raise ValueError(f"expected a number of seconds > 0, got {value!r}")
    return float(value)


def seconds(value: Any) -> float:
    if not _finite(value) or value < 0:
        raise ValueError(f"expected a number of seconds ≥ 0, got {value!r}")
    return float(value)


def _finite(value: Any) -> bool:
    """A number, not a bool, nan or inf (TOML allows both: a wait of nan or for ever is a slip)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value))


def command_timeouts(value: Any) -> tuple[tuple[str, float], ...]:
    """`timeouts = { list = 60, send = 20 }` (`[timing]`, a `[[modem]]`): seconds per AT
    command, by its name in at_commands.COMMANDS; an unknown name is a mistake said at once."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of command = seconds, like {{ list = 60 }}, "
                         f"got {value!r}")
    from at_commands.commands import COMMANDS   # here: a config without it imports none of it

    out = []
    for name, wait in value.items():
        if name == "send_result":
            raise ValueError("the wait after a message's PDU is [retry] send_timeout")
        if name not in COMMANDS:
            hint = difflib.get_close_matches(name, list(COMMANDS), n=1)
            raise ValueError(f"unknown AT command {name!r}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; known: {', '.join(COMMANDS)}")
        try:
            out.append((name, positive_seconds(wait)))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return tuple(out)


def amount(value: Any) -> float:
    """A sum of money (a balance threshold): any number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def postgres_url(value: Any) -> str:
    """A PostgreSQL URL for a spool shared by several daemons (`[spool] url`)."""
    value = text(value)
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"expected a postgresql://user@host/db URL, got {masked(value)!r} "
                         "(an SQLite spool is [spool] path)")
    from modempool.spool.postgres_url import describe, url_problem

    problem = url_problem(value)   # a typo reads as one, not as a server away
    if problem:
        raise ValueError(f"invalid spool URL {describe(value)}: {problem}")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def pin_code(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"\d{4,8}", text):
        # The value itself is never echoed: it may be (nearly) the real PIN.
        raise ValueError("expected a PIN of 4 to 8 digits as a string (the value given is not "
                         "shown)")
    return text


def text_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_names(value: Any) -> tuple[str, ...]:
    """Names of environment variables (`[forward] pass_env`): a name with `=` or a blank in
    it can never match one, so it is a mistake to say at once."""
    names = text_list(value)
    for name in names:
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"expected names of environment variables, got {name!r}")
    return names


def callback_allow(value: Any) -> CallbackAllow:
    """`[http] callback_allow`: URL prefixes and networks (modempool/callback_guard.py)."""
    return CallbackAllow.parse(text_list(value))


def prefixes(value: Any) -> tuple[str, ...]:
    out = text_list(value)
    for prefix in out:
        if not re.fullmatch(r"\+\d+", prefix):
            raise ValueError(f"expected E.164 prefixes like \"+86138\", got {prefix!r}")
    return out


def clock(value: Any) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError(f"expected a time like \"22:00\", got {value!r}")
    hours, minutes = map(int, value.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return time(hours, minutes)


def region_code(value: Any) -> str:
    import phonenumbers

    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"expected a two-letter region code like \"CN\", got {value!r}")
    return value.upper()


def strategy_name(value: Any) -> str:
    from modempool.dispatch.strategies import Strategy

    return Strategy.parse(text(value)).value


def timezone_name(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like \"Asia/Shanghai\")") from None
    return value


def one_of(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value.lower()
    return check


def listen_address(value: Any) -> str:
    """`host:port` (an IPv6 host in brackets: `[::1]:8080`), or a bare port (loopback)."""
    from modempool.http_listen import parse_listen

    return parse_listen(text(value) if not isinstance(value, int) else str(value)).text


def any_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def regex(value: Any) -> str:
    try:
        re.compile(text(value))
    except re.error as exc:
        raise ValueError(f"bad pattern {value!r}: {exc}") from None
    return value


def clock_window(value: Any) -> str:
    """A local time window such as "09:00-18:00" (it may wrap midnight: "22:00-06:00")."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})\s*", text(value))
    if not match:
        raise ValueError(f"expected a time window like \"09:00-18:00\", got {value!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"time window {value!r} has an impossible time")
    return value


def message_format(*fields: str) -> Callable[[Any], str]:
    """A str.format template that may use only `fields`."""
    def check(value: Any) -> str:
        try:
            any_text(value).format(**dict.fromkeys(fields, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r}: unknown field {exc} (use {', '.join(fields)})") from None
        return value
    return check


def fold(value: str) -> str:
    """Compare form of a text: NFKC (full-width → ASCII), case-folded, without spaces and
    punctuation around it (`ＴＤ。` → `td`)."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return re.sub(r"^[\W_]+|[\W_]+$", "", folded.strip())
