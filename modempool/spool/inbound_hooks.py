"""The operator hooks a stored SMS still has to run, kept in its `inbound` row (`spool.inbound_hooks`).

The daemon stores a received SMS with `hooks_next = 0` and `hooks_owner` its run, in the
storing transaction. Each hook then runs in a transaction that first moves `hooks_next` on
(`advance`: the row's lock, and a check that it is still this run's and at this hook), so its
writes and the step commit together: a crash at any instant leaves the hook either done and
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

    def advance(self, conn: Any, inbound_id: int, index: int, count: int, owner: str) -> bool:
        """In the hook's own transaction (`conn`), before its writes: pass hook `index` of
        `count`. False when it is not this run's to run: done already (by this run, or by
        the one that took it over), or the row is another run's."""
        following = index + 1 if index + 1 < count else None
        return conn.execute(
            "UPDATE inbound SET hooks_next = ? WHERE id = ? AND hooks_next = ? "
            "AND hooks_owner = ?", (following, inbound_id, index, owner)).rowcount == 1

    def skip(self, inbound_id: int, index: int, count: int, owner: str) -> bool:
        """Pass hook `index` without its writes (it failed otherwise than for the database:
        run again, it would fail again)."""
        with self.engine.tx() as conn:
            return self.advance(conn, inbound_id, index, count, owner)

    def take_over(self, owner: str, dead: Callable[[list[str]], list[str]]) -> list[str]:
        """Make `owner` the runner of the hooks that runs `dead` judges dead left pending (and
        of those no run was named for); returns the senders of the SMS taken, oldest first."""
        with self.engine.tx() as conn:
            self.engine.lock_key(conn, TAKE_OVER_LOCK)
            others = [row[0] for row in conn.execute(
                "SELECT DISTINCT hooks_owner FROM inbound WHERE hooks_next IS NOT NULL "
                "AND hooks_owner <> ?", (owner,)).fetchall()]
            gone = dead(others) if others else []
            unnamed = conn.execute("SELECT count(*) FROM inbound WHERE hooks_next IS NOT NULL "
                                   "AND hooks_owner IS NULL").fetchone()[0]
            if not gone and not unnamed:
                return []
            among, params = self.engine.among("hooks_owner", gone or [owner])
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
