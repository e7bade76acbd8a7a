"""Requests for the daemon that owns a SIM (mixed into `Spool`): asked by a front end, taken and
answered by the daemon. The `requests` table is the channel, so that any process that reaches the
spool may ask, whichever host the daemon runs on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import to_text, utcnow
from modempool.spool.plain_text import refuse_nul


class Requests:
    """Rows of the `requests` table (`spool.requests`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, sim: str, kind: str, argument: str | None = None) -> int:
        """File a request for the daemon that drives `sim`; returns its id."""
        refuse_nul(f"the {kind} code" if kind == "ussd" else f"the {kind} request", argument)
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            [request_id] = self.engine.new_ids(conn, "requests", 1)
            conn.execute(
                "INSERT INTO requests (id, sim, kind, argument, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (request_id, sim, kind, argument, now, now))
            return request_id

    def pending(self, sims: Iterable[str]) -> list[dict[str, Any]]:
        """Requests not yet taken for any of `sims`, oldest first."""
        names = list(sims)
        if not names:
            return []
        marks = ", ".join("?" * len(names))
        return [dict(r) for r in self.engine.rows(
            f"SELECT * FROM requests WHERE state = 'pending' AND sim IN ({marks}) ORDER BY id",
            names)]

    def take(self, request_id: int, owner: str) -> bool:
        """Mark a pending request as being answered by `owner`; False if someone else took it
        (or its asker gave up)."""
        with self.engine.tx() as conn:
            cur = conn.execute(
                "UPDATE requests SET state = 'running', owner = ?, updated_at = ? "
                "WHERE id = ? AND state = 'pending'", (owner, to_text(utcnow()), request_id))
            return cur.rowcount == 1

    def answer(self, request_id: int, *, answer: str | None = None,
                       error: str | None = None) -> None:
        """The end of a request: its answer, or the error that stopped it."""
        with self.engine.tx() as conn:
            conn.execute(
                "UPDATE requests SET state = ?, answer = ?, error = ?, updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'running')",
                ("failed" if error is not None else "done", answer, error, to_text(utcnow()),
                 request_id))

    def get(self, request_id: int) -> dict[str, Any] | None:
        rows = self.engine.rows("SELECT * FROM requests WHERE id = ?", (request_id,))
        return dict(rows[0]) if rows else None

    def abandon(self, owner: str | None = None, *, sims: Iterable[str] | None = None) -> int:
        """Running requests nobody will answer fail: those of `owner` (a daemon stopping), or
        those of `sims` (a daemon starting: each SIM is served by one daemon, so what runs on
        its SIMs was left by its earlier run; other daemons' requests are left alone)."""
        clauses, params = ["state = 'running'"], []
        if owner:
            clauses.append("owner = ?")
            params.append(owner)
        if sims is not None:
            names = list(sims)
            clauses.append(f"sim IN ({', '.join('?' for _ in names) or 'NULL'})")
            params.extend(names)
        with self.engine.tx() as conn:
            cur = conn.execute(
                "UPDATE requests SET state = 'failed', error = 'the daemon stopped before "
                f"answering', updated_at = ? WHERE {' AND '.join(clauses)}",
                (to_text(utcnow()), *params))
            return cur.rowcount
