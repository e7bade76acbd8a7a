"""The `messages` table: queueing SMS (one or many, idempotent on client_id) and reading them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from modempool.errors import InvalidNumber, NotFound, PoolError, RowError
from modempool.spool.engine import Engine
from modempool.spool.model import Message, MessageState, to_text, utcnow
from modempool.spool.numbers import _normalise
from modempool.spool.plain_text import refuse_nul
from modempool.spool.sendable import DEFAULT_MAX_PARTS, check_text

_ENQUEUE_KEYS = frozenset(
    {
        "to", "text", "client_id", "priority", "not_before", "expires_at", "campaign_id",
        "quiet_hours", "sims", "held", "region",
    }
)

#: What an enqueue writes of each message (in `_prepare`'s order); the state is the
#: column's default, queued.
_COLUMNS = ("id", "client_id", "to_number", "text", "priority", "not_before", "expires_at",
            "campaign_id", "quiet_hours", "sims", "held", "created_at", "updated_at")


def read_message(engine: Engine, message_id: int, *, for_update: bool = False) -> Message:
    """The message with this id (inside the current transaction if one is open), or NotFound.

    `for_update`: the open transaction will change it, so its row is locked (PostgreSQL) until
    the commit. A plain read takes no lock: a dispatcher's claim (SKIP LOCKED) would pass over
    the row, and a role with SELECT only may not lock.
    """
    lock = engine.lock_rows if for_update else ""
    rows = engine.rows("SELECT * FROM messages WHERE id = ?" + lock, (message_id,))
    if not rows:
        raise NotFound(f"no message with id {message_id}")
    return Message.from_row(rows[0])


class Messages:
    """Enqueue and read messages; `region` is the default for national numbers."""

    def __init__(self, engine: Engine, region: str, max_parts: int = DEFAULT_MAX_PARTS) -> None:
        self.engine = engine
        self.region = region
        self.max_parts = max_parts  # longer text is refused at enqueue (`sendable.check_text`)

    def _prepare(self, row: dict[str, Any], now: str, normalised: bool = False) -> list[Any]:
        """Validate one message and return its INSERT parameters (id first, filled later)."""
        unknown = set(row) - _ENQUEUE_KEYS
        if unknown:
            raise PoolError(f"unknown message field(s): {', '.join(sorted(unknown))}")
        if "to" not in row or "text" not in row:
            raise PoolError("a message needs 'to' and 'text'")
        text = row["text"]
        check_text(text, self.max_parts)
        to = str(row["to"]) if normalised else _normalise(str(row["to"]), row.get("region") or self.region)
        sims = row.get("sims")
        if isinstance(sims, str):
            sims = [sims]
        client_id = row.get("client_id")
        refuse_nul("client_id", client_id)
        return [
            None,
            str(client_id) if client_id is not None else None,
            to,
            text,
            _priority(row.get("priority")),
            _time_param(row.get("not_before")),
            _time_param(row.get("expires_at")),
            row.get("campaign_id"),
            1 if row.get("quiet_hours") else 0,
            json.dumps(list(sims), ensure_ascii=False) if sims else None,
            1 if row.get("held") else 0,
            now,
            now,
        ]

    def enqueue(self, to: str, text: str, *, client_id: str | None = None, priority: int = 0,
                not_before: datetime | None = None, expires_at: datetime | None = None,
                campaign_id: int | None = None, quiet_hours: bool = False,
                sims: list[str] | None = None, held: bool = False,
                region: str | None = None) -> Message:
        """Queue one SMS; the same `client_id` twice returns the first message unchanged.

        Raises InvalidNumber for a number that is not valid in E.164 or in `region`, and
        UnsendableText for text that is blank or needs more than `max_parts` parts.
        """
        row = dict(
            to=to, text=text, client_id=client_id, priority=priority, not_before=not_before,
            expires_at=expires_at, campaign_id=campaign_id, quiet_hours=quiet_hours,
            sims=sims, held=held, region=region,
        )
        return self.get(self.enqueue_many([row])[0])

    def enqueue_many(self, rows: Iterable[dict[str, Any]], *, normalised: bool = False) -> list[int]:
        """Queue many SMS in one transaction and return their ids, in order.

        Every row is validated first: one bad number raises (naming its row) and queues
        nothing. Rows whose client_id already exists get the existing id. `normalised`: the
        caller has made every `to` E.164 already (the front door does; it is not redone).
        """
        return self.enqueue_fresh(rows, normalised=normalised)[0]

    def enqueue_fresh(self, rows: Iterable[dict[str, Any]], *,
                      normalised: bool = False) -> tuple[list[int], list[int]]:
        """`enqueue_many`, and which of the ids are of messages queued now (the others' client_id
        was there already: a retry finds its messages), for a caller that charges or records
        only those."""
        now = to_text(utcnow())
        rows = list(rows)
        prepared = []
        for index, row in enumerate(rows):
            try:
                prepared.append(self._prepare(row, now, normalised))
            except PoolError as exc:  # the row is named when there are several
                if len(rows) == 1:
                    raise
                raise RowError.of(index + 1, exc) from None
        if not prepared:
            return [], []
        with self.engine.tx() as conn:
            ids = self.engine.new_ids(conn, "messages", len(prepared))
            for params, new_id in zip(prepared, ids):
                params[0] = new_id
            inserted = self.engine.insert_new(conn, "messages", _COLUMNS, prepared)
            self.engine.index_text(conn, "messages", ids)   # history search (before ids change)
            fresh = ids
            if inserted != len(ids):  # some client_ids existed: return their messages
                fresh = list(ids)
                keys = [params[1] for params in prepared if params[1] is not None]
                among, values = self.engine.among("client_id", keys)
                stored = {row[0]: row[1] for row in conn.execute(
                    f"SELECT client_id, id FROM messages WHERE {among}", values).fetchall()}
                for index, params in enumerate(prepared):
                    if params[1] is None:
                        continue
                    if params[1] not in stored:
                        raise PoolError(f"row {index + 1} could not be stored")
                    ids[index] = stored[params[1]]
                fresh = [i for i, reserved in zip(ids, fresh) if i == reserved]
            self.engine.notify_enqueued(conn)
        return ids, fresh

    def get(self, message_id: int) -> Message:
        """The message with this id, or NotFound."""
        return read_message(self.engine, message_id)

    def get_many(self, ids: Sequence[int]) -> list[Message]:
        """The messages with these ids, in the order given (a batch in a few queries)."""
        found: dict[int, Message] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            for row in self.engine.rows(f"SELECT * FROM messages WHERE id IN ({marks})", chunk):
                found[row["id"]] = Message.from_row(row)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no message with id {missing[0]}")
        return [found[i] for i in ids]

    def recipients_and_states(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Each message's number and state, by id (in one query however many ids; inside
        the caller's transaction if one is open)."""
        among, values = self.engine.among("id", ids)
        return {row[0]: (row[1], row[2]) for row in self.engine.rows(
            f"SELECT id, to_number, state FROM messages WHERE {among}", values)}

    def get_by_client_id(self, client_id: str) -> Message | None:
        rows = self.engine.rows("SELECT * FROM messages WHERE client_id = ?", (client_id,))
        return Message.from_row(rows[0]) if rows else None

    def list(self, state: MessageState | str | None = None, campaign_id: int | None = None,
             limit: int | None = None) -> list[Message]:
        """Messages in id order, optionally of one state and/or campaign (the last `limit`)."""
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(MessageState(state).value)
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        sql = "SELECT * FROM messages" + (" WHERE " + " AND ".join(where) if where else "")
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) AS recent ORDER BY id"
            params.append(int(limit))
        else:
            sql += " ORDER BY id"
        return [Message.from_row(r) for r in self.engine.rows(sql, params)]

    def counts(self) -> dict[str, int]:
        """Number of messages in each state (every state present, zeros included)."""
        out = {state.value: 0 for state in MessageState}
        out.update({state: n for state, n in self.engine.state_counts().items() if n})
        return out

    def count_in_state(self, state: str, at_most: int) -> int:
        """Messages in `state`, counted up to `at_most`: enough to tell a rare state from a
        common one without counting a million rows."""
        return min(self.engine.state_counts().get(state, 0), at_most)

    def queue_depth(self) -> int:
        """Messages waiting to be sent (queued, including held and scheduled ones)."""
        return self.counts()[MessageState.QUEUED.value]

    def parts(self, message_id: int) -> list[dict[str, Any]]:
        """The `parts` rows of a message (latest attempt overwrites earlier ones), by seq."""
        rows = self.engine.rows("SELECT * FROM parts WHERE message_id = ? ORDER BY seq",
                                (message_id,))
        return [dict(r) for r in rows]

    def last_sims_for(self, numbers: Iterable[str]) -> dict[str, str]:
        """The SIM that last sent to each of `numbers` (the sticky strategy after a restart),
        in one query for a whole dispatch round; a number never sent to is left out."""
        numbers = list(numbers)
        if not numbers:
            return {}
        condition, params = self.engine.among("to_number", numbers)
        return {row["to_number"]: row["sim"] for row in self.engine.rows(
            "SELECT to_number, sim FROM messages WHERE id IN (SELECT max(id) FROM messages "
            f"WHERE {condition} AND state IN ('sent', 'delivered') GROUP BY to_number)", params)}


PRIORITY_RANGE = range(-1_000_000, 1_000_001)


def _priority(value: Any) -> int:
    """A message's priority, an integer in PRIORITY_RANGE (SQLite stores at most 64 bits)."""
    try:
        priority = int(value or 0)
    except (TypeError, ValueError):
        raise PoolError(f"priority must be an integer, got {value!r}") from None
    if priority not in PRIORITY_RANGE:
        raise PoolError(f"priority must be between {PRIORITY_RANGE.start} and "
                        f"{PRIORITY_RANGE.stop - 1}, got {priority}")
    return priority


def _time_param(value: datetime | str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return to_text(value)
    except (ValueError, OverflowError) as exc:
        raise PoolError(f"not a usable time: {value!r} ({exc})") from None
