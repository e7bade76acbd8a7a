"""History (历史记录): search sent and received messages, export them to CSV or XLSX.

Sent messages come from the spool's `messages` table, received ones from `inbound`; each row is
labelled with the contact's name when the number is in the address book.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from modempool.operator.contacts import AddressBook
from modempool.errors import InvalidNumber, PoolError
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.operator.db import parse_time
from modempool.spool.history import HistoryEntry, HistoryFilter
from modempool.spool.model import MessageState
from modempool.spool.plain_text import refuse_nul

COLUMNS = ("direction", "id", "time", "number", "name", "text", "state", "sim", "campaign_id",
           "error")


#: what `Query.state` may be: an outbound message's state, or "received" for inbound only
STATES = (*(state.value for state in MessageState), "received")


@dataclass(frozen=True, slots=True)
class Query:
    number: str | None = None
    contact: str | None = None       # a contact name (substring) or a group name
    text: str | None = None          # substring of the message text
    since: datetime | str | None = None   # text as typed is read by Pool.history in [pool] timezone
    until: datetime | str | None = None
    state: str | None = None         # outbound state; "received" for inbound only
    campaign: int | None = None
    direction: str = "both"          # out | in | both
    limit: int | None = 1000
    owner: str | None = None         # only this account's sent messages (AccountPool)
    inbound_sims: tuple[str, ...] | None = None   # only what came in on these SIMs


def search(spool: Any, query: Query, region: str = DEFAULT_REGION) -> list[HistoryEntry]:
    """Messages matching every given criterion, newest first, with the contact's name of each
    number (`spool.history` finds them, through the spool's full-text index for a text)."""
    for what, value in (("number", query.number), ("contact", query.contact),
                        ("text", query.text)):
        refuse_nul(f"the history search's {what}", value)
    if query.direction not in ("in", "out", "both"):
        raise PoolError("direction must be in, out or both")
    if query.state is not None and query.state not in STATES:
        raise PoolError(f"no message state {query.state!r} (one of: {', '.join(STATES)})")
    if query.limit is not None and query.limit < 0:
        raise PoolError(f"the limit must be 0 (none) or more, not {query.limit}")
    numbers = _numbers_for(spool.db, query, region)
    wanted = HistoryFilter(
        numbers=None if numbers is None else tuple(numbers), text=query.text or None,
        since=_moment(query.since), until=_moment(query.until), state=query.state,
        campaign=query.campaign, owner=query.owner,
        inbound_sims=None if query.inbound_sims is None else tuple(query.inbound_sims),
        limit=query.limit)
    rows: list[HistoryEntry] = []
    if query.direction in ("out", "both") and query.state != "received":
        rows += spool.history.sent(wanted)
    if query.direction in ("in", "both") and query.campaign is None and query.state in (
            None, "received"):
        rows += spool.history.received(replace(wanted, state=None))
    rows.sort(key=lambda r: (r.time or "", r.id), reverse=True)
    if query.limit:
        rows = rows[:query.limit]
    if not rows:
        return rows
    names = {c.number: c.name for c in AddressBook(spool.db, region).list()}
    return [row.named(names[row.number]) if row.number in names else row for row in rows]


def _moment(value: datetime | str | None) -> datetime | None:
    """A time of the query as a datetime (text as the spool stores it, or ISO 8601)."""
    if value is None or value == "" or isinstance(value, datetime):
        return value or None
    return parse_time(value)


def _numbers_for(db: Any, query: Query, region: str) -> list[str] | None:
    numbers: list[str] | None = None
    if query.number:
        try:
            numbers = [normalise(query.number, region)]
        except InvalidNumber:
            if not query.number.strip().lstrip("+").isdigit():
                raise
            numbers = [query.number]  # a short code such as 10086 is searched as typed
    if query.contact:
        book = AddressBook(db, region)
        if any(g["name"] == query.contact for g in book.groups()):
            found = [c.number for c in book.list(group=query.contact)]
        else:
            found = [c.number for c in book.list(search=query.contact)]
        numbers = found if numbers is None else [n for n in numbers if n in found]
    return numbers


def export(spool: Any, query: Query, path: str | Path, region: str = DEFAULT_REGION) -> int:
    """Write the search result to CSV (UTF-8 with BOM) or XLSX by extension; returns rows."""
    from modempool.operator.spreadsheets import write_table

    rows = (entry.to_dict() for entry in search(spool, query, region))
    return write_table(path, COLUMNS, ([row[c] for c in COLUMNS] for row in rows))


@dataclass(frozen=True, slots=True)
class Thread:
    """One number's conversation as an inbox lists it: the contact's name and groups, the
    last time either side wrote (the spool's UTC text), unread replies, messages both ways,
    and the text last received from the number."""

    number: str
    name: str
    groups: tuple[str, ...]
    last_time: str | None
    unread: int
    messages: int
    last_received: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "groups": list(self.groups),
                "last_time": self.last_time, "unread": self.unread, "messages": self.messages,
                "last_received": self.last_received}


def threads(spool: Any, *, unread_only: bool = False, limit: int = 100,
            region: str = DEFAULT_REGION) -> list[Thread]:
    """Conversations by number, newest first: contact name and groups, last message, unread count
    (what an inbox shows next to each number)."""
    book = AddressBook(spool.db, region)
    out = []
    for row in spool.reports.conversations(unread_only=unread_only, limit=limit):
        contact = book.find(row["number"])
        out.append(Thread(row["number"], contact.name if contact else "",
                          tuple(contact.groups) if contact else (), row["last_time"],
                          row["unread"], row["messages"], row["last_received"]))
    return out
