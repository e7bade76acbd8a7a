"""The pool's history part: what came in and went out, read back with the address book's
names: the inbox (`Received`), the history search and its export, conversations by number.
Times people type (`-2h`, `18:30`) are read here in `[pool] timezone`. `Pool` holds it as
`pool.history_desk` and keeps each call under its front-door name (`pool.inbox()` is
`pool.history_desk.inbox()`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.spool import InboundMessage
from modempool.when import parse_when

if TYPE_CHECKING:
    from modempool.operator.history import Query, Thread
    from modempool.pool import Pool
    from modempool.spool.history import HistoryEntry

__all__ = ["PoolHistory", "Received"]


@dataclass(frozen=True, slots=True)
class Received:
    """One received SMS as the spool keeps it (`message`), with the address book's name and
    groups of its sender ('' and () for a number not in it)."""

    message: InboundMessage
    name: str = ""
    groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.message.to_dict(), "name": self.name, "groups": list(self.groups)}


class PoolHistory:
    """The inbox, history search and threads, each message with its sender's contact."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def inbox(self, *, since: datetime | str | None = None, sender: str | None = None,
              limit: int | None = None, unread: bool = False) -> list[Received]:
        """Received messages oldest first (the last `limit`), each with its sender's contact
        name and groups. `since` also takes '-2h' and 'HH:MM' (the last such time)."""
        moment = parse_when(since, self.pool.config.tz, past=True)
        return self.with_contacts(self.pool.spool.inbound.messages(
            since=moment, sender=sender, limit=limit, unread=unread))

    def with_contacts(self, messages: Iterable[InboundMessage]) -> list[Received]:
        """Each received message with its sender's contact name and groups (the address book
        is asked once per number)."""
        book, known = self.pool.contacts, {}
        out = []
        for message in messages:
            if message.sender not in known:
                known[message.sender] = book.find(message.sender) if message.sender else None
            contact = known[message.sender]
            out.append(Received(message, contact.name if contact else "",
                                tuple(contact.groups) if contact else ()))
        return out

    def history(self, query: Query) -> list[HistoryEntry]:
        """Sent and received messages matching `query`, newest first, with contact names;
        its `since` / `until` may be what a person typed (read in `[pool] timezone`)."""
        from modempool.operator.history import search

        return search(self.pool.spool, self._read_query(query), self.pool.config.region)

    def export_history(self, query: Query, path: str | Path) -> int:
        """Write what `history(query)` finds to CSV or XLSX; returns the rows written."""
        from modempool.operator.history import export

        return export(self.pool.spool, self._read_query(query), path, self.pool.config.region)

    def _read_query(self, query: Query) -> Query:
        import dataclasses

        tz = self.pool.config.tz
        return dataclasses.replace(query, since=parse_when(query.since, tz, past=True),
                                   until=parse_when(query.until, tz, past=True))

    def threads(self, *, unread: bool = False, limit: int = 100) -> list[Thread]:
        """Conversations by number, newest first, with names, groups and unread counts."""
        from modempool.operator.history import threads

        return threads(self.pool.spool, unread_only=unread, limit=limit,
                       region=self.pool.config.region)
