"""An upgrade that would break daemons of an older modempool still running is refused.

Most schema steps only add (a table, a column, an index): a daemon of the version before keeps
working on the upgraded spool until it is restarted. A step in `DROPS_WHAT_OLDER_WRITE` drops
or moves what older daemons still write (step 15: the hooks' marks left `inbound`'s columns
for `inbound_hooks`): from its commit on, an older daemon still running fails at every SMS it
stores, and the SMS it was shown without a storage index (and the delivery reports queued
behind them) are lost when it stops. Or it needs what they do not write (step 20: each write's
card, `parts.card`, which the ambiguity rule reads; an older daemon's marker writes none, and
its new attempt keeps the earlier attempt's card, another card's maybe). Such an upgrade is refused, in one line naming the daemon
runs that look alive (the `daemons` table: no stop recorded, and, in this process table, a
process with the pid; elsewhere, a heartbeat younger than `LIVE_WITHIN`), unless the
operator says to go on (`modempool spool upgrade --despite-older-daemons`).

Refusing, not making the step safe for old writers: an older daemon keeps its marks in the
columns and never sees the table, so its SMS' marks would be run by no newer daemon once it
died (or run twice: the copy made at the upgrade, never deleted by the old daemon), and the
order of a sender's SMS across daemons would not hold. Stopping the older daemons first is
the only order in which nothing is lost.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from modempool.box.ports import process_exists
from modempool.errors import PoolError
from modempool.spool.daemons import Here, by_age, judge, shown_owner, this_place
from modempool.spool.model import from_text, utcnow
from modempool.spool.schema import SCHEMA_VERSION

#: Schema steps after which a daemon of an older modempool cannot go on writing the spool:
#: for each, what goes wrong from the upgrade on, and what `--despite-older-daemons` costs.
DROPS_WHAT_OLDER_WRITE: dict[int, tuple[str, str]] = {
    15: ("From the upgrade on, an older daemon can store no SMS it receives.",
         "what they receive until they are stopped is lost, apart from a log line"),
    20: ("From the upgrade on, an older daemon's markers write no card (a new attempt keeps the "
         "earlier one's), which the ambiguity rule reads as another card's writes.",
         "an ambiguous SMS near what they send until they are stopped may be proven sent by a "
         "report that is not its own"),
}
#: A daemon elsewhere whose last heartbeat is younger than this (seconds) is taken as alive:
#: `[pool] silent_after`'s default (the spool opens before any config's value is known).
LIVE_WITHIN = 30.0
#: The columns read from `daemons` (every version that has the table has them).
DAEMON_COLUMNS = "owner, host, pid, started_at, heartbeat_at, stopped_at"


class OlderDaemonsRunning(PoolError):
    """The upgrade would break daemons of an older modempool that still run: refused, the spool
    left as it was."""


def breaks_older(version: int) -> bool:
    """Whether upgrading a spool of `version` crosses a step older daemons cannot survive
    (a new spool, version 0, has no daemons to break)."""
    return version > 0 and any(version < step <= SCHEMA_VERSION
                               for step in DROPS_WHAT_OLDER_WRITE)


def refuse_if_older_daemons_run(where: str, version: int, rows: list[dict[str, Any]], *,
                                now: datetime | None = None,
                                alive: Callable[[int], bool] = process_exists) -> None:
    """Raise OlderDaemonsRunning when any of the `daemons` `rows` of a spool at `version`
    (every run there runs a modempool of that version or older) looks alive."""
    moment = now or utcnow()
    here = Here(socket.gethostname(), this_place())
    silent = by_age(moment, LIVE_WITHIN)
    live = [row for row in rows if judge(row, here=here, alive=alive, silent=silent).alive]
    if not live:
        return
    named = "; ".join(_described(row, moment) for row in live)
    steps = [s for s in sorted(DROPS_WHAT_OLDER_WRITE) if version < s <= SCHEMA_VERSION]
    why = " ".join(DROPS_WHAT_OLDER_WRITE[s][0] for s in steps)
    cost = "; ".join(DROPS_WHAT_OLDER_WRITE[s][1] for s in steps)
    raise OlderDaemonsRunning(
        f"the spool {where} has schema version {version}; upgrading it to {SCHEMA_VERSION} "
        f"(step {', '.join(map(str, steps))}) would break {len(live)} "
        f"daemon{'s' if len(live) > 1 else ''} of an older modempool (schema {version} or "
        f"older) still running: {named}. {why} Stop them first, then start this version; or "
        f"`modempool spool upgrade --despite-older-daemons` upgrades now ({cost}). The spool "
        "was left untouched")


def daemon_rows(fetched: list[Any]) -> list[dict[str, Any]]:
    """Rows read with `SELECT {DAEMON_COLUMNS} FROM daemons` as the dicts `judge` reads."""
    names = [name.strip() for name in DAEMON_COLUMNS.split(",")]
    return [dict(zip(names, tuple(row))) for row in fetched]


def _described(row: dict[str, Any], now: datetime) -> str:
    """One run: host:pid, and its last heartbeat with its age."""
    shown = shown_owner(str(row["owner"]))
    heartbeat = from_text(row.get("heartbeat_at"))
    if heartbeat is None:
        return f"{shown} (no heartbeat)"
    age = max(0, int((now - heartbeat).total_seconds()))
    return f"{shown} (last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S} UTC, {age} s ago)"
