"""`spool.history`: sent and received messages found by number, text, time, state, campaign,
owner or SIM, newest first (what `modempool history`, the console and the exports search).

The rows come from `messages` (sent) and `inbound` (received). A text is looked up in the
engine's full-text index (`Engine.text_matches`, `Engine.newest_matching`: FTS5 trigrams on
SQLite, pg_trgm on PostgreSQL), walked newest first until enough rows meet the other criteria,
instead of reading every row; a few rows (a number's, a campaign's, a rare state's) are read
and their text compared. The SQL here is what both engines accept.

`owner` narrows sent messages to those an API account queued: `message_accounts` is the
accounts module's table (`modempool/accounts.py`); only a spool with accounts is asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.messages import Messages
from modempool.spool.model import to_text

#: Messages enqueued by processes at the same time may interleave by milliseconds: a search
#: `until` a moment starts its index walk a little after it.
UNTIL_MARGIN = timedelta(minutes=5)
#: Rows of a state or below: reading their text beats walking the text index.
NARROW = 50_000


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What a history search asks of the spool (every given criterion must hold)."""

    numbers: tuple[str, ...] | None = None   # to or from one of these; None: any number
    text: str | None = None                  # contained in the text (Latin letters in any case)
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = None                 # a sent message's state
    campaign: int | None = None
    owner: str | None = None                 # sent messages this account queued
    inbound_sims: tuple[str, ...] | None = None   # received on one of these SIMs
    limit: int | None = 1000


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One sent or received message as history shows it. `time` is the spool's UTC text
    (sent, else made, for a sent message; received for a received one); `name` is the
    contact's, filled in by the operator's search (`modempool/operator/history.py`)."""

    direction: str            # "out" or "in"
    id: int
    time: str | None
    number: str
    text: str
    state: str                # a sent message's state; "received"
    sim: str | None
    campaign_id: int | None = None
    error: str | None = None
    name: str = ""

    def named(self, name: str) -> HistoryEntry:
        """The entry with the contact's name (as `dataclasses.replace`, without its cost:
        a search names up to `limit` rows)."""
        return HistoryEntry(self.direction, self.id, self.time, self.number, self.text,
                            self.state, self.sim, self.campaign_id, self.error, name)

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "id": self.id, "time": self.time,
                "number": self.number, "text": self.text, "state": self.state, "sim": self.sim,
                "campaign_id": self.campaign_id, "error": self.error, "name": self.name}


_SOURCES = {
    "out": ("SELECT 'out', id, COALESCE(sent_at, created_at), to_number, text, state, sim,"
            " campaign_id, error FROM messages", "COALESCE(sent_at, created_at)", "to_number",
            "messages"),
    "in": ("SELECT 'in', id, received_at, sender, text, 'received', sim, NULL, NULL FROM inbound",
           "received_at", "sender", "inbound"),
}


class History:
    """`spool.history`: the history search's reads (see the module's docstring)."""

    def __init__(self, engine: Engine, messages: Messages) -> None:
        self.engine = engine
        self.messages = messages

    def sent(self, wanted: HistoryFilter) -> list[HistoryEntry]:
        """Sent messages matching `wanted`, newest (by id) first, at most `limit`."""
        return self._find("out", wanted)

    def received(self, wanted: HistoryFilter) -> list[HistoryEntry]:
        """Received messages matching `wanted` (`state` and `campaign` are the caller's to
        leave out), newest (by id) first, at most `limit`."""
        if wanted.inbound_sims is not None and not wanted.inbound_sims:
            return []
        return self._find("in", wanted)

    def first_id_made_after(self, moment: datetime) -> int:
        """The smallest message id made at or after `moment`: ids are given in the order
        messages are made, so a binary search on a few rows finds it (callers add a margin)."""
        stamp = to_text(moment)
        # two queries: SQLite answers min() and max() from the index only when each is alone
        low = self.engine.rows("SELECT coalesce(min(id), 1) FROM messages")[0][0]
        high = self.engine.rows("SELECT coalesce(max(id), 0) + 1 FROM messages")[0][0]
        while low < high:
            middle = (low + high) // 2
            rows = self.engine.rows(
                "SELECT id, created_at FROM messages WHERE id >= ? ORDER BY id LIMIT 1", [middle])
            if not rows or rows[0][1] >= stamp:
                high = middle
            else:
                low = rows[0][0] + 1
        return low

    def _find(self, direction: str, wanted: HistoryFilter) -> list[HistoryEntry]:
        if wanted.numbers is not None and not wanted.numbers:
            return []
        narrow = wanted.numbers is not None or (direction == "out" and (
            wanted.campaign is not None
            or (wanted.state and self.messages.count_in_state(wanted.state, NARROW) < NARROW)))
        if narrow:   # a number's, a campaign's or a rare state's rows: read their text
            return self._select(direction, wanted, narrow=True)
        if not (wanted.text and wanted.limit) or (wanted.until and direction == "in"):
            return self._select(direction, wanted)
        # Text without a number: walk the full-text index newest first, a growing chunk of
        # matches at a time, until the other criteria keep `limit` rows or the matches run out.
        table = _SOURCES[direction][3]
        found: list[HistoryEntry] = []
        before, chunk = None, max(wanted.limit, 500)
        if wanted.until:   # start at the messages made before then, not at the newest
            before = self.first_id_made_after(wanted.until + UNTIL_MARGIN)
        while True:
            ids = self.engine.newest_matching(table, wanted.text, chunk, before)
            if ids is None:   # no index here: one query with the engine's condition
                return self._select(direction, wanted)
            if ids:
                found += self._select(direction, wanted, ids=ids)
            if len(found) >= wanted.limit or len(ids) < chunk:
                return found[:wanted.limit]
            before, chunk = ids[-1], chunk * 2

    def _select(self, direction: str, wanted: HistoryFilter, *, ids: list[int] | None = None,
                narrow: bool = False) -> list[HistoryEntry]:
        """Rows of one direction matching `wanted`; `ids`: among these (text already
        matched); `narrow`: few rows have the number, campaign or state, so read their text
        (and go through the state's index) instead of asking the full-text index."""
        sql, time_column, number_column, table = _SOURCES[direction]
        where: list[str] = []
        params: list[Any] = []
        if wanted.numbers is not None:
            condition, values = self.engine.among(number_column, wanted.numbers)
            where.append(condition)
            params += values
        if ids is not None:
            condition, values = self.engine.among("id", ids)
            where.append(condition)
            params += values
        elif wanted.text:
            matches = self.engine.text_scan if narrow else self.engine.text_matches
            condition, values = matches(table, wanted.text)
            where.append(condition)
            params += values
        if wanted.since:
            where.append(f"{time_column} >= ?")
            params.append(to_text(wanted.since))
        if wanted.until:
            where.append(f"{time_column} < ?")
            params.append(to_text(wanted.until))
        if direction == "out":
            if wanted.state:
                where.append("id IN (SELECT id FROM messages WHERE state = ?)" if narrow
                             else "state = ?")
                params.append(wanted.state)
            if wanted.campaign is not None:
                where.append("campaign_id = ?")
                params.append(wanted.campaign)
            if wanted.owner is not None:
                where.append("id IN (SELECT message_id FROM message_accounts WHERE account = ?)")
                params.append(wanted.owner)
        elif wanted.inbound_sims is not None:
            condition, values = self.engine.among("sim", wanted.inbound_sims)
            where.append(condition)
            params += values
        if where:
            sql += " WHERE " + " AND ".join(where)
        if wanted.limit:
            sql += " ORDER BY id DESC LIMIT ?"
            params.append(int(wanted.limit))
        return [HistoryEntry(*row) for row in self.engine.rows(sql, params)]

