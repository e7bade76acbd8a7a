"""History (历史记录): search sent and received messages, export them to CSV or XLSX.

Sent messages come from the spool's `messages` table, received ones from `inbound`; each row is
labelled with the contact's name when the number is in the address book.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modempool.operator.contacts import AddressBook
from modempool.errors import InvalidNumber, PoolError
from modempool.numbers import DEFAULT_REGION, normalise
from modempool.operator.db import LIKE_ESCAPE, contains, now_iso

UNTIL_MARGIN = timedelta(minutes=5)
NARROW = 50_000   # rows of a state or below: reading their text beats walking the text index
COLUMNS = ("direction", "id", "time", "number", "name", "text", "state", "sim", "campaign_id",
           "error")


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


def search(spool: Any, query: Query, region: str = DEFAULT_REGION) -> list[dict[str, Any]]:
    """Messages matching every given criterion, newest first; a text is looked up in the
    spool's full-text index instead of scanning every row."""
    db = spool.db
    if query.direction not in ("in", "out", "both"):
        raise PoolError("direction must be in, out or both")
    numbers = _numbers_for(db, query, region)
    rows: list[dict[str, Any]] = []
    want_in = query.direction in ("in", "both") and query.campaign is None and query.state in (
        None, "received")
    want_out = query.direction in ("out", "both") and query.state != "received"
    if want_out:
        rows += _select(db, "out", query, numbers, spool)
    if want_in:
        rows += _select(db, "in", query, numbers, spool)
    rows.sort(key=lambda r: (r["time"] or "", r["id"]), reverse=True)
    if query.limit:
        rows = rows[:query.limit]
    names = {c.number: c.name for c in AddressBook(db, region).list()} if rows else {}
    for row in rows:
        row["name"] = names.get(row["number"], "")
    return rows


def _numbers_for(db: Any, query: Query, region: str) -> list[str] | None:
    numbers: list[str] | None = None
    if query.number:
        try:
            numbers = [normalise(query.number, region)]
        except InvalidNumber:
            numbers = [query.number]  # a short code such as 10086 is searched as typed
    if query.contact:
        book = AddressBook(db, region)
        if any(g["name"] == query.contact for g in book.groups()):
            found = [c.number for c in book.list(group=query.contact)]
        else:
            found = [c.number for c in book.list(search=query.contact)]
        numbers = found if numbers is None else [n for n in numbers if n in found]
    return numbers


def _select(db: Any, direction: str, query: Query, numbers: list[str] | None,
            spool: Any = None) -> list[dict]:
    narrow = numbers is not None or (direction == "out" and (
        query.campaign is not None
        or (query.state and spool is not None
            and spool.messages.count_in_state(query.state, NARROW) < NARROW)))
    if narrow:   # a number's, a campaign's or a rare state's rows: read their text
        return _select_where(db, direction, query, numbers, spool, None, narrow=True)
    if not (query.text and spool is not None and query.limit) or (
            query.until and direction == "in"):
        return _select_where(db, direction, query, numbers, spool, None)
    # Text without a number: walk the full-text index newest first, a growing chunk of
    # matches at a time, until the other criteria keep `limit` rows or the matches run out.
    table = "messages" if direction == "out" else "inbound"
    found: list[dict] = []
    before, chunk = None, max(query.limit, 500)
    if query.until:   # start at the messages made before then, not at the newest
        before = _first_id_made_after(db, query.until + UNTIL_MARGIN)
    while True:
        ids = spool.newest_matching(table, query.text, chunk, before)
        if ids is None:   # no index here: one query with the engine's condition
            return _select_where(db, direction, query, numbers, spool, None)
        if ids:
            found += _select_where(db, direction, query, numbers, spool, ids)
        if len(found) >= query.limit or len(ids) < chunk:
            return found[:query.limit]
        before, chunk = ids[-1], chunk * 2


def _first_id_made_after(db: Any, moment: datetime) -> int:
    """The smallest message id made at or after `moment`: ids are given in the order
    messages are made, so a binary search on a few rows finds it. (Processes that enqueue at
    the same time may interleave by milliseconds: callers add a margin.)"""
    stamp = now_iso(moment)
    # two queries: SQLite answers min() and max() from the index only when each is alone
    low = db.execute("SELECT coalesce(min(id), 1) FROM messages").fetchone()[0]
    high = db.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0]
    while low < high:
        middle = (low + high) // 2
        row = db.execute("SELECT id, created_at FROM messages WHERE id >= ? ORDER BY id LIMIT 1",
                         [middle]).fetchone()
        if row is None or row[1] >= stamp:
            high = middle
        else:
            low = row[0] + 1
    return low


def _select_where(db: Any, direction: str, query: Query, numbers: list[str] | None,
                  spool: Any, ids: list[int] | None, narrow: bool = False) -> list[dict]:
    """Rows of one direction matching `query`; `ids`: among these (text already matched);
    `narrow`: few rows have the number, campaign or state, so read their text (and go through
    the state's index) instead of asking the full-text index."""
    if direction == "out":
        sql = ("SELECT 'out', id, COALESCE(sent_at, created_at), to_number, text, state, sim,"
               " campaign_id, error FROM messages")
        time_col, number_col = "COALESCE(sent_at, created_at)", "to_number"
    else:
        sql = ("SELECT 'in', id, received_at, sender, text, 'received', sim, NULL, NULL"
               " FROM inbound")
        time_col, number_col = "received_at", "sender"
    where: list[str] = []
    params: list[Any] = []
    if numbers is not None:
        if not numbers:
            return []
        where.append(f"{number_col} IN ({', '.join('?' for _ in numbers)})")
        params += numbers
    if ids is not None:
        among, values = spool.engine.among("id", ids)
        where.append(among)
        params += values
    elif query.text and spool is not None:
        table = "messages" if direction == "out" else "inbound"
        condition, values = (spool.engine.text_scan if narrow else spool.text_matches)(
            table, query.text)
        where.append(condition)
        params += values
    elif query.text:
        where.append(f"text LIKE ? {LIKE_ESCAPE}")
        params.append(contains(query.text))
    if query.since:
        where.append(f"{time_col} >= ?")
        params.append(now_iso(query.since))
    if query.until:
        where.append(f"{time_col} < ?")
        params.append(now_iso(query.until))
    if direction == "out" and query.state:
        where.append("id IN (SELECT id FROM messages WHERE state = ?)" if narrow
                     else "state = ?")
        params.append(query.state)
    if direction == "out" and query.campaign is not None:
        where.append("campaign_id = ?")
        params.append(query.campaign)
    if direction == "out" and query.owner is not None:
        where.append("id IN (SELECT message_id FROM message_accounts WHERE account = ?)")
        params.append(query.owner)
    if direction == "in" and query.inbound_sims is not None:
        if not query.inbound_sims:
            return []
        where.append(f"sim IN ({', '.join('?' for _ in query.inbound_sims)})")
        params += list(query.inbound_sims)
    if where:
        sql += " WHERE " + " AND ".join(where)
    if query.limit:
        sql += f" ORDER BY id DESC LIMIT {int(query.limit)}"
    keys = ("direction", "id", "time", "number", "text", "state", "sim", "campaign_id", "error")
    return [dict(zip(keys, r)) for r in db.execute(sql, params).fetchall()]


def export(spool: Any, query: Query, path: str | Path, region: str = DEFAULT_REGION) -> int:
    """Write the search result to CSV (UTF-8 with BOM) or XLSX by extension; returns rows."""
    from modempool.operator.spreadsheets import write_table

    rows = search(spool, query, region)
    return write_table(path, COLUMNS, ([r.get(c) for c in COLUMNS] for r in rows))


def threads(spool: Any, *, unread_only: bool = False, limit: int = 100,
            region: str = DEFAULT_REGION) -> list[dict[str, Any]]:
    """Conversations by number, newest first: contact name and groups, last message, unread count
    (what an inbox shows next to each number)."""
    book = AddressBook(spool.db, region)
    out = []
    for row in spool.reports.conversations(unread_only=unread_only, limit=limit):
        contact = book.find(row["number"])
        out.append({"number": row["number"], "name": contact.name if contact else "",
                    "groups": list(contact.groups) if contact else [], **row})
    return out
