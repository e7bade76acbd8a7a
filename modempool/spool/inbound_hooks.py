"""The operator hooks a stored SMS still has to run (`spool.inbound_hooks`): a row of `inbound_hooks`.

The daemon stores a received SMS with a row here (`next_hook` 0, `owner` its run), in the
storing transaction. Its hooks then run in a transaction that first moves `next_hook` on, or
deletes the row after the last step (`advance`: the row's lock, and a check that it is still
this run's and at this step), so their writes and the step commit together: a crash at any
instant leaves a hook either done and passed, or not done and still pending, never done and
pending (the daemon passes all of an SMS's hooks in one transaction, and each in its own only
when one of them fails). Where a forward command is configured, it is the last step: the row
stays at it until the command's final outcome is recorded, in the transaction that deletes
it (`modempool.operator.forwarding`). What a dead daemon run left pending is taken over by a
live one (`take_over`), which runs it in each sender's order; a live run's rows are never taken.
A table of its own, not columns of `inbound` (schema 15): the hooks' commit touches one small
row, not the SMS's entries in every index of `inbound`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.inbound import InboundMessage
from modempool.spool.model import from_text

#: Taking over a dead run's hooks: one daemon at a time, so that one sender's SMS go to one.
TAKE_OVER_LOCK = "inbound-hooks-take-over"


@dataclass(frozen=True, slots=True)
class HooksWaiting:
    """How many stored SMS have hooks still to run, and when the oldest of them was stored."""

    count: int
    oldest_stored_at: datetime | None

    def age(self, now: datetime) -> float | None:
        """Seconds the oldest has waited at `now` (None: none waits)."""
        if self.oldest_stored_at is None:
            return None
        return max(0.0, (now - self.oldest_stored_at).total_seconds())


class InboundHooks:
    """Where each stored SMS is in its hooks, and who runs them (see the module)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def advance(self, conn: Any, inbound_id: int, first: int, end: int, count: int,
                owner: str, *, sender: str | None = None, handlers: int = 0) -> bool:
        """In the transaction of their writes (`conn`), before them: pass steps `first` to
        `end` (not included) of `count`. False when they are not this run's to run: done
        already (by this run, or by the one that took it over), or the row is another run's.
        With the SMS's `sender`: False too while an earlier SMS of that sender waits in another
        run at one of its first `handlers` steps (a dead daemon's not taken over yet, or a
        live one's at its handlers), so that a sender's 退订 is recorded before their next SMS
        is answered, whichever daemon stored each (`at` tells this from done). An earlier SMS
        at its forward command (the last step) holds nothing up: the handlers' writes, which
        the order is for, are committed; the same run does not wait for its own either."""
        where, params = "WHERE inbound_id = ? AND next_hook = ? AND owner = ?", [
            inbound_id, first, owner]
        if sender is not None:
            where += (" AND NOT EXISTS (SELECT 1 FROM inbound_hooks earlier WHERE "
                      "earlier.sender = ? AND earlier.inbound_id < ? AND "
                      "earlier.next_hook < ? AND (earlier.owner IS NULL OR earlier.owner <> ?))")
            params += [sender, inbound_id, handlers, owner]
        if end < count:
            return conn.execute(f"UPDATE inbound_hooks SET next_hook = ? {where}",
                                [end, *params]).rowcount == 1
        return conn.execute(f"DELETE FROM inbound_hooks {where}", params).rowcount == 1

    def skip(self, inbound_id: int, first: int, end: int, count: int, owner: str) -> bool:
        """Pass steps without their writes (a hook failed otherwise than for the database:
        run again, it would fail again)."""
        with self.engine.tx() as conn:
            return self.advance(conn, inbound_id, first, end, count, owner)

    def at(self, inbound_id: int, step: int, owner: str, conn: Any = None) -> bool:
        """Whether the SMS is still at `step`, and `owner`'s to run (in `conn`'s transaction
        where one is given)."""
        sql = "SELECT 1 FROM inbound_hooks WHERE inbound_id = ? AND next_hook = ? AND owner = ?"
        params = (inbound_id, step, owner)
        if conn is not None:
            return conn.execute(sql, params).fetchone() is not None
        return bool(self.engine.rows(sql, params))

    def take_over(self, owner: str, dead: Callable[[list[str]], list[str]]) -> list[str]:
        """Make `owner` the runner of the hooks that runs `dead` judges dead left pending (and
        of those no run was named for); returns the senders of the SMS taken, oldest first.
        Nothing written while no other run has hooks pending (a read, every few seconds)."""
        others = "SELECT DISTINCT owner FROM inbound_hooks WHERE owner IS NULL OR owner <> ?"
        if not self.engine.rows(others, (owner,)):
            return []
        with self.engine.tx() as conn:
            self.engine.lock_key(conn, TAKE_OVER_LOCK)
            runs = [row[0] for row in conn.execute(others, (owner,)).fetchall()]
            gone = dead([run for run in runs if run is not None])
            if not gone and None not in runs:
                return []
            among, params = self.engine.among("owner", gone or [""])   # "": no run
            rows = conn.execute(
                f"UPDATE inbound_hooks SET owner = ? WHERE {among} OR owner IS NULL "
                "RETURNING inbound_id, sender", [owner, *params]).fetchall()
        return list(dict.fromkeys(row[1] for row in sorted(rows)))

    def pending(self, owner: str, sender: str, limit: int = 100) -> list[InboundMessage]:
        """`sender`'s SMS whose hooks `owner` has still to run, in the order they were stored."""
        return [InboundMessage.from_row(row, row["next_hook"]) for row in self.engine.rows(
            "SELECT i.*, h.next_hook FROM inbound_hooks h JOIN inbound i ON i.id = h.inbound_id "
            "WHERE h.owner = ? AND h.sender = ? ORDER BY h.inbound_id LIMIT ?",
            (owner, sender, limit))]

    def waiting(self) -> list[dict[str, Any]]:
        """Every SMS whose hooks are still to run: its id, sender, next step and run."""
        return [dict(row) for row in self.engine.rows(
            "SELECT inbound_id, sender, next_hook, owner FROM inbound_hooks "
            "ORDER BY inbound_id")]

    def summary(self, handlers: int) -> tuple[HooksWaiting, HooksWaiting]:
        """For `status`: the SMS at one of their first `handlers` steps (opt-out, auto-reply,
        forwarding's record: milliseconds on a healthy bank), and those at their forward
        command (running or retrying: seconds to minutes, by the config), each with when the
        oldest was stored."""
        oldest = ("(SELECT stored_at FROM inbound WHERE id = (SELECT min(inbound_id) FROM "
                  "inbound_hooks WHERE next_hook {} ?))")
        [row] = self.engine.rows(
            "SELECT (SELECT count(*) FROM inbound_hooks WHERE next_hook < ?), "
            f"{oldest.format('<')}, (SELECT count(*) FROM inbound_hooks WHERE next_hook >= ?), "
            f"{oldest.format('>=')}", (handlers,) * 4)
        return (HooksWaiting(row[0], from_text(row[1]) if row[1] else None),
                HooksWaiting(row[2], from_text(row[3]) if row[3] else None))
