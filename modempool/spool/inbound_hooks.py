"""The operator hooks a stored SMS still has to run, kept in its `inbound` row (`spool.inbound_hooks`).

The daemon stores a received SMS with `hooks_next = 0` and `hooks_owner` its run, in the
storing transaction. Each hook then runs in a transaction that first moves `hooks_next` on
(`advance`: the row's lock, and a check that it is still this run's and at this hook), so its
writes and the step commit together (the daemon passes all of an SMS's hooks in one
transaction, and each in its own only when one of them fails): a crash at any instant leaves the hook either done and
passed, or not done and still pending, never done and pending. The last hook sets `hooks_next`
NULL. What a dead daemon run left pending is taken over by a live one (`take_over`), which runs
it in each sender's order; a live run's rows are never taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.inbound import InboundMessage

#: Taking over a dead run's hooks: one daemon at a time, so that one sender's SMS go to one.
TAKE_OVER_LOCK = "inbound-hooks-take-over"


class InboundHooks:
    """Where each stored SMS is in its hooks, and who runs them (see the module)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def advance(self, conn: Any, inbound_id: int, first: int, end: int, count: int,
                owner: str) -> bool:
        """In the transaction of their writes (`conn`), before them: pass hooks `first` to
        `end` (not included) of `count`. False when they are not this run's to run: done
        already (by this run, or by the one that took it over), or the row is another run's."""
        following = end if end < count else None
        return conn.execute(
            "UPDATE inbound SET hooks_next = ? WHERE id = ? AND hooks_next = ? "
            "AND hooks_owner = ?", (following, inbound_id, first, owner)).rowcount == 1

    def skip(self, inbound_id: int, first: int, end: int, count: int, owner: str) -> bool:
        """Pass hooks without their writes (one failed otherwise than for the database: run
        again, it would fail again)."""
        with self.engine.tx() as conn:
            return self.advance(conn, inbound_id, first, end, count, owner)

    def take_over(self, owner: str, dead: Callable[[list[str]], list[str]]) -> list[str]:
        """Make `owner` the runner of the hooks that runs `dead` judges dead left pending (and
        of those no run was named for); returns the senders of the SMS taken, oldest first.
        Nothing written while no other run has hooks pending (a read, every few seconds)."""
        others = ("SELECT DISTINCT hooks_owner FROM inbound WHERE hooks_next IS NOT NULL "
                  "AND (hooks_owner IS NULL OR hooks_owner <> ?)")
        if not self.engine.rows(others, (owner,)):
            return []
        with self.engine.tx() as conn:
            self.engine.lock_key(conn, TAKE_OVER_LOCK)
            runs = [row[0] for row in conn.execute(others, (owner,)).fetchall()]
            gone = dead([run for run in runs if run is not None])
            if not gone and None not in runs:
                return []
            among, params = self.engine.among("hooks_owner", gone or [""])   # "": no run
            rows = conn.execute(
                f"UPDATE inbound SET hooks_owner = ? WHERE hooks_next IS NOT NULL "
                f"AND ({among} OR hooks_owner IS NULL) RETURNING id, sender",
                [owner, *params]).fetchall()
        return list(dict.fromkeys(row[1] for row in sorted(rows)))

    def senders(self, owner: str) -> list[str]:
        """Senders of the SMS whose hooks `owner` has still to run, the longest waiting first."""
        rows = self.engine.rows(
            "SELECT sender, min(id) AS first FROM inbound WHERE hooks_next IS NOT NULL "
            "AND hooks_owner = ? GROUP BY sender ORDER BY first", (owner,))
        return [row[0] for row in rows]

    def pending(self, owner: str, sender: str, limit: int = 100) -> list[InboundMessage]:
        """`sender`'s SMS whose hooks `owner` has still to run, in the order they were stored."""
        return [InboundMessage.from_row(row) for row in self.engine.rows(
            "SELECT * FROM inbound WHERE hooks_next IS NOT NULL AND hooks_owner = ? "
            "AND sender = ? ORDER BY id LIMIT ?", (owner, sender, limit))]
