"""`spool.scoped`: the spool's messages and received SMS narrowed to what one API account sees
(`modempool/account_pool.py` asks; the rules of who sees what stay there).

- `owner`: the messages an account queued, recorded in `message_accounts` (the accounts
  module's table, `modempool/accounts.py`, made with the accounts); None: every message.
- `sims`: what came in on these SIMs; None: on any SIM.

The SQL is what both engines accept; lists of values go through `Engine.among`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.inbound import InboundMessage
from modempool.spool.model import Message, MessageState, to_text

_OWNED = "m.id IN (SELECT message_id FROM message_accounts WHERE account = ?)"


@dataclass(frozen=True, slots=True)
class Conversation:
    """One sender's SMS as a list of conversations shows it: the last time it wrote (the
    spool's UTC text), unread and all messages, its newest text; `name` is the contact's,
    filled in by the account's pool."""

    number: str
    last_at: str | None
    unread: int
    count: int
    last_text: str | None
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "last_at": self.last_at,
                "unread": self.unread, "count": self.count, "last_text": self.last_text}


class Scoped:
    """`spool.scoped`: reads narrowed to an owner's messages or some SIMs' SMS."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- messages ---------------------------------------------------------------------------

    def messages(self, *, owner: str | None = None, state: str | None = None,
                 to: str | None = None, after: int | None = None, before: int | None = None,
                 newest_first: bool = False, limit: int = 100) -> tuple[list[Message], bool]:
        """Messages (of `owner`, in `state`, to the E.164 number `to`) with ids above `after`
        and below `before`, in id order (`newest_first`: reversed), at most `limit`; and
        whether more follow."""
        where, params = ["1 = 1"], []
        if state:
            where.append("m.state = ?")
            params.append(MessageState(state).value)
        if to:
            where.append("m.to_number = ?")
            params.append(to)
        if after is not None:
            where.append("m.id > ?")
            params.append(int(after))
        if before is not None:
            where.append("m.id < ?")
            params.append(int(before))
        if owner is not None:
            where.append(_OWNED)
            params.append(owner)
        order = "m.id DESC" if newest_first else "m.id"
        rows = self.engine.rows(f"SELECT m.* FROM messages m WHERE {' AND '.join(where)} "
                                f"ORDER BY {order} LIMIT ?", [*params, limit + 1])
        return [Message.from_row(r) for r in rows[:limit]], len(rows) > limit

    def has_message(self, message_id: int, owner: str | None = None) -> bool:
        """Whether message `message_id` exists (and `owner` queued it)."""
        if owner is None:
            return bool(self.engine.rows("SELECT 1 FROM messages WHERE id = ?", (message_id,)))
        return bool(self.engine.rows(
            "SELECT 1 FROM message_accounts WHERE message_id = ? AND account = ?",
            (message_id, owner)))

    def counts(self, owner: str) -> dict[str, int]:
        """`owner`'s messages in each state (every state, zeros included), from the counts
        the engine keeps per account (schema version 12): no message is read."""
        out = {state.value: 0 for state in MessageState}
        out.update(self.engine.account_state_counts(owner))
        return out

    def own(self, owner: str, ids: Sequence[int], now: datetime) -> None:
        """Record messages as `owner`'s (ids already recorded stay as they are). Call it in
        the transaction that queued them: a message is never seen without its owner, so the
        kept counts need no lock on it. One statement however many ids (PostgreSQL's
        statement trigger then counts them at once)."""
        if not ids:
            return
        # One id (every single-message POST): `id = ?`. The list form (SQLite's json_each)
        # cost 18 us a message against 11 us, about 1.5 % of a POST's CPU (docs/http.md).
        clause, params = ("id = ?", [ids[0]]) if len(ids) == 1 else self.engine.among("id", ids)
        with self.engine.tx() as conn:
            conn.execute("INSERT INTO message_accounts (message_id, account, created_at) "
                         f"SELECT id, ?, ? FROM messages WHERE {clause} ON CONFLICT DO NOTHING",
                         [owner, to_text(now), *params])

    # ---- received SMS -----------------------------------------------------------------------

    def _on(self, sims: Sequence[str] | None) -> tuple[str, list[Any]]:
        if sims is None:
            return "1 = 1", []
        return self.engine.among("sim", sims)

    def inbound(self, *, sims: Sequence[str] | None = None, since: datetime | None = None,
                after: int | None = None, limit: int = 100) -> tuple[list[InboundMessage], bool]:
        """Received SMS (on `sims`, received since `since`) with ids above `after`, oldest
        first, at most `limit`; and whether more follow."""
        scope, params = self._on(sims)
        where = [scope]
        if since is not None:
            where.append("received_at >= ?")
            params.append(to_text(since))
        if after is not None:
            where.append("id > ?")
            params.append(int(after))
        rows = self.engine.rows(f"SELECT * FROM inbound WHERE {' AND '.join(where)} "
                                "ORDER BY id LIMIT ?", [*params, limit + 1])
        return [InboundMessage.from_row(r) for r in rows[:limit]], len(rows) > limit

    def conversations(self, *, sims: Sequence[str] | None = None,
                      limit: int = 100) -> list[Conversation]:
        """Who wrote (on `sims`), the latest writer first: last time, unread and all SMS,
        and the newest text (of those on `sims` too)."""
        scope, params = self._on(sims)
        rows = self.engine.rows(
            f"SELECT sender, max(received_at) AS last_at, sum(1 - read) AS unread, count(*) AS n, "
            f"(SELECT text FROM inbound WHERE sender = i.sender AND {scope} ORDER BY id DESC "
            f"LIMIT 1) AS last_text FROM inbound i WHERE {scope} GROUP BY sender "
            f"ORDER BY last_at DESC LIMIT ?", [*params, *params, limit])
        return [Conversation(r["sender"], r["last_at"], int(r["unread"] or 0), r["n"],
                             r["last_text"]) for r in rows]

    def from_sender(self, sender: str, *, sims: Sequence[str] | None = None,
                    limit: int = 200) -> list[InboundMessage]:
        """The last `limit` SMS `sender` sent (on `sims`), newest first."""
        scope, params = self._on(sims)
        rows = self.engine.rows(f"SELECT * FROM inbound WHERE sender = ? AND {scope} "
                                "ORDER BY id DESC LIMIT ?", [sender, *params, limit])
        return [InboundMessage.from_row(r) for r in rows]
