"""Received SMS: single ones, the parts of long ones, and reading them back.

Parts of a concatenated SMS are kept in `inbound_parts` until all have arrived (across
restarts, and across the modems and hosts their SIM card went through); the complete text then
becomes one `inbound` row, deduplicated as a single SMS is. (Delivery reports, which come
back the same way, are `delivery_reports.py`.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import from_text, to_text, utcnow
from modempool.spool.numbers import sender_number
from modempool.spool.plain_text import without_nul

MISSING_PART = "…"  # stands in for a part that never arrived


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One row of `inbound`: a complete (or given-up-on) received SMS."""

    id: int
    sender: str
    sim: str | None
    text: str
    received_at: datetime
    parts: int = 1
    complete: bool = True
    read: bool = False
    # The first operator hook still to run (`inbound_hooks.py`); None: none (not shown).
    hooks_next: int | None = None

    @classmethod
    def from_row(cls, row: Any, hooks_next: int | None = None) -> InboundMessage:
        """An `inbound` row; `hooks_next` from its `inbound_hooks` row, where it has one."""
        return cls(row["id"], row["sender"], row["sim"], row["text"],
                   from_text(row["received_at"]), row["parts"], bool(row["complete"]),
                   bool(row["read"]), hooks_next)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "sim": self.sim, "text": self.text,
                "received_at": to_text(self.received_at), "parts": self.parts,
                "complete": self.complete, "read": self.read}


def _dedupe_key(card: str | None, sender: str, received_at: str, text: str) -> str:
    """`card`: the SIM card's key (`iccid:<ICCID>`, else `imsi:<IMSI>`) where known, else the
    SIM's name; `received_at` in the spool's text (the service centre time stamp)."""
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{card}|{sender}|{received_at}|{digest}"


@dataclass(frozen=True, slots=True)
class _Card:
    """The SIM card an SMS came in on: `key` is `iccid:<ICCID>` where the spool knows the
    card's ICCID in `sim`'s row, else `imsi:<IMSI>`, else the SIM's name (the order of
    `dispatch.cards.card_keys`); `names` every SIM (modem) the card was seen in, by either key;
    `others` the keys its messages may be stored under already (its other key, one a modem
    that read both gave it, the names: as the spool keyed them before it knew the card)."""

    sim: str | None
    key: str | None
    names: tuple[str, ...]
    others: tuple[str, ...] = ()

    @classmethod
    def of(cls, conn: Any, sim: str | None) -> _Card:
        own = conn.execute("SELECT iccid, imsi FROM sims WHERE name = ?",
                           (sim,)).fetchone() if sim else None
        iccid, imsi = (own[0] or None, own[1] or None) if own is not None else (None, None)
        if not iccid and not imsi:
            return cls(sim, sim, (sim,) if sim else ())
        rows = conn.execute("SELECT iccid, imsi, name FROM sims WHERE iccid = ? OR imsi = ?",
                            (iccid, imsi)).fetchall()
        keys = {f"iccid:{r[0]}" for r in rows if r[0]} | {f"imsi:{r[1]}" for r in rows if r[1]}
        names = sorted({r[2] for r in rows} | {sim})
        key = f"iccid:{iccid}" if iccid else f"imsi:{imsi}"
        return cls(sim, key, tuple(names), tuple(sorted((keys | set(names)) - {key})))

    def dedupe_key(self, sender: str, received_at: str, text: str) -> str:
        return _dedupe_key(self.key, sender, received_at, text)

    def stored_by_name(self, conn: Any, sender: str, received_at: str, text: str) -> bool:
        """Whether the message is stored already under another key of the card: a modem
        that read its other key (an ICCID where this one read only the IMSI), or the name of a
        SIM (modem) it was seen in, as it was before the spool knew the card."""
        if not self.others:
            return False
        keys = [_dedupe_key(other, sender, received_at, text) for other in self.others]
        marks = ", ".join("?" * len(keys))
        return conn.execute(f"SELECT 1 FROM inbound WHERE dedupe_key IN ({marks})",
                            keys).fetchone() is not None

    def parts_lock(self, sender: str, reference: int, total: int) -> str:
        """What the parts of one long SMS take turns on, whichever modem or host stores them."""
        return f"inbound-parts:{self.key}|{sender}|{reference}|{total}"


class Inbound:
    """Received SMS and their parts (`spool.inbound`); `spool.inbound()` lists received
    messages. Storing is idempotent, so a message handed over twice, by one modem or on two
    hosts, is stored once."""

    def __init__(self, engine: Engine, region: str) -> None:
        self.engine = engine
        self.region = region

    def _sender(self, sender: str) -> str:
        return sender_number(sender, self.region)

    def _insert(self, conn: Any, sender: str, sim: str | None, text: str,
                received_at: str | None, parts: int, complete: bool,
                dedupe_key: str | None = None,
                hooks_by: str | None = None) -> InboundMessage | None:
        """`hooks_by`: the daemon run that runs the message's hooks, marked pending in this
        transaction (a row of `inbound_hooks`: `inbound_hooks.py`); the same message handed
        over again comes back (with where its hooks are) while that run still has hooks of it
        to run: the COMMIT that stored it may have lost its answer, and then no hook ran."""
        now = to_text(utcnow())
        row = conn.execute(
            "INSERT INTO inbound (sender, sim, text, received_at, stored_at, parts, "
            "complete, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (sender, sim, text, received_at or now, now, parts, 1 if complete else 0, dedupe_key),
        ).fetchone()
        if row is not None:
            if hooks_by is None:
                return InboundMessage(row[0], sender, sim, text, from_text(received_at or now),
                                      parts, complete, False)
            conn.execute("INSERT INTO inbound_hooks (inbound_id, sender, owner) VALUES (?, ?, ?)",
                         (row[0], sender, hooks_by))
            return InboundMessage(row[0], sender, sim, text, from_text(received_at or now),
                                  parts, complete, False, 0)
        if hooks_by is None or dedupe_key is None:
            return None  # the same message, handed over again
        pending = conn.execute("SELECT i.id, i.received_at, h.next_hook FROM inbound i "
                               "JOIN inbound_hooks h ON h.inbound_id = i.id "
                               "WHERE i.dedupe_key = ? AND h.owner = ?",
                               (dedupe_key, hooks_by)).fetchone()
        if pending is None:
            return None
        return InboundMessage(pending[0], sender, sim, text, from_text(pending[1]), parts,
                              complete, False, pending[2])

    def store(
        self,
        sender: str,
        text: str,
        *,
        sim: str | None = None,
        received_at: datetime | None = None,
        parts: int = 1,
        complete: bool = True,
        hooks_by: str | None = None,
    ) -> InboundMessage | None:
        """Store a complete received SMS (a single part, or already reassembled).

        With the service centre time stamp as `received_at`, the same message handed over twice
        (the modem re-reports what was stored but not yet deleted) is stored once: the second
        call returns None (or, with `hooks_by`, the message while its hooks wait: `_insert`).
        """
        sender, text = self._sender(sender), without_nul(text)
        with self.engine.tx() as conn:
            if not received_at:
                return self._insert(conn, sender, sim, text, None, parts, complete,
                                    hooks_by=hooks_by)
            # By the card, not the modem it sits in: a card moved to another box (another
            # [[modem]] name) with the SMS still on it hands it over again there.
            return self._insert_once(conn, _Card.of(conn, sim), sender, text,
                                     to_text(received_at), parts, complete, hooks_by)

    def _insert_once(self, conn: Any, card: _Card, sender: str, text: str, received_at: str,
                     parts: int, complete: bool,
                     hooks_by: str | None = None) -> InboundMessage | None:
        """Insert a message under its dedupe key (the card, sender, service centre time and
        text); None if it is stored already, under that key or under the SIM's name."""
        if card.stored_by_name(conn, sender, received_at, text):
            return None
        return self._insert(conn, sender, card.sim, text, received_at, parts, complete,
                            card.dedupe_key(sender, received_at, text), hooks_by)

    def store_part(
        self,
        sim: str,
        sender: str,
        reference: int,
        total: int,
        seq: int,
        text: str,
        *,
        received_at: datetime | None = None,
        hooks_by: str | None = None,
    ) -> InboundMessage | None:
        """Keep one part of a concatenated SMS; returns the message once all parts are in
        (its hooks marked pending for `hooks_by`, as `store`'s).

        Parts belong to the SIM card (its ICCID where known, as `store`'s messages), not to the
        modem it sits in: a card moved to another modem or box joins parts stored in either.
        A part seen twice (the modem re-reported it, even after its message was complete, or
        the card moved with it still on it) is stored once; parts of a finished message stay
        behind, marked done, for that check. The joined message is stored under the key
        `store` gives a single SMS (card, sender, its earliest part's time, the whole text),
        so it is stored once even if its parts were joined twice.
        """
        sender, text = self._sender(sender), without_nul(text)
        stamp = to_text(received_at) or to_text(utcnow())
        with self.engine.tx() as conn:
            card = _Card.of(conn, sim)
            # Two hosts (or lanes) storing parts of one message take turns: each sees the
            # parts the other committed, so the last part always finds its siblings.
            self.engine.lock_key(conn, card.parts_lock(sender, reference, total))
            group, params = self._parts_of(card, sender, reference, total)
            if conn.execute(f"SELECT 1 FROM inbound_parts WHERE {group} AND seq = ? "
                            "AND received_at = ?", [*params, seq, stamp]).fetchone() is None:
                conn.execute(
                    "INSERT INTO inbound_parts (sim, sender, reference, total, seq, text, "
                    "received_at, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (sim, sender, reference, total, seq, text, stamp, to_text(utcnow())))
            rows = conn.execute(f"SELECT seq, text, received_at FROM inbound_parts WHERE {group} "
                                "AND done = 0 ORDER BY seq, id", params).fetchall()
            by_seq = {r[0]: r for r in rows}
            if len(by_seq) < total:
                return None
            taken = conn.execute(f"UPDATE inbound_parts SET done = 1 WHERE {group} AND done = 0",
                                 params).rowcount
            if taken == 0:  # another daemon completed it in the meantime
                return None
            return self._insert_once(conn, card, sender, "".join(r[1] for r in by_seq.values()),
                                     min(r[2] for r in by_seq.values()), total, True, hooks_by)

    def _parts_of(self, card: _Card, sender: str, reference: int,
                  total: int) -> tuple[str, list[Any]]:
        """A WHERE clause for the parts of one long SMS in `inbound_parts`, whichever of the
        card's modems stored them, and its parameters."""
        among, names = self.engine.among("sim", card.names)
        return (f"{among} AND sender = ? AND reference = ? AND total = ?",
                [*names, sender, reference, total])

    def flush_parts(self, older_than: timedelta, now: datetime | None = None, *,
                    hooks_by: str | None = None) -> list[InboundMessage]:
        """Give up waiting for missing parts stored more than `older_than` ago: store what
        arrived as an incomplete message (missing parts shown as '…'), the parts its card
        holds under any modem's name together (their hooks pending for `hooks_by`)."""
        cutoff = to_text((now or utcnow()) - older_than)
        out = []
        with self.engine.tx() as conn:
            stale = conn.execute(
                "SELECT sim, sender, reference, total FROM inbound_parts WHERE done = 0 "
                "GROUP BY sim, sender, reference, total HAVING min(stored_at) <= ?",
                (cutoff,)).fetchall()
            groups = [(_Card.of(conn, sim), sender, reference, total)
                      for sim, sender, reference, total in stale]
            self.engine.lock_keys(conn, [card.parts_lock(*rest) for card, *rest in groups])
            for card, sender, reference, total in groups:
                group, params = self._parts_of(card, sender, reference, total)
                rows = {r[0]: r for r in conn.execute(
                    f"SELECT seq, text, received_at FROM inbound_parts WHERE {group} AND done = 0 "
                    "ORDER BY seq, id", params)}
                if not rows:  # flushed meanwhile, by another daemon or with another modem's parts
                    continue
                text = "".join(rows[s][1] if s in rows else MISSING_PART for s in range(1, total + 1))
                if conn.execute(f"UPDATE inbound_parts SET done = 1 WHERE {group} AND done = 0",
                                params).rowcount == 0:
                    continue
                message = self._insert_once(conn, card, sender, text,
                                            min(r[2] for r in rows.values()), total, False,
                                            hooks_by)
                if message is not None:
                    out.append(message)
        return out

    def pending_parts(self) -> list[dict[str, Any]]:
        """Parts still waiting for their siblings."""
        return [dict(r) for r in self.engine.rows(
            "SELECT * FROM inbound_parts WHERE done = 0 ORDER BY id")]

    def __call__(
        self,
        since: datetime | None = None,
        sender: str | None = None,
        limit: int | None = None,
        *,
        unread: bool = False,
    ) -> list[dict[str, Any]]:
        """`messages(...)` as dicts, times in the spool's UTC text."""
        return [m.to_dict() for m in self.messages(since, sender, limit, unread=unread)]

    def messages(
        self,
        since: datetime | None = None,
        sender: str | None = None,
        limit: int | None = None,
        *,
        unread: bool = False,
    ) -> list[InboundMessage]:
        """Received messages, oldest first (the last `limit` of them)."""
        where, params = [], []
        if since is not None:
            where.append("received_at >= ?")
            params.append(to_text(since))
        if sender is not None:
            where.append("sender = ?")
            params.append(self._sender(sender))
        if unread:
            where.append("read = 0")
        sql = "SELECT * FROM inbound" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY received_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self.engine.rows(sql, params)
        return [InboundMessage.from_row(r) for r in reversed(rows)]

    def last_stamps(self) -> tuple[str | None, str | None] | None:
        """The SMS stored last: its service centre time stamp and when we stored it (the
        spool's text), to compare our clock with the network's; None if none came in."""
        rows = self.engine.rows(
            "SELECT received_at, stored_at FROM inbound ORDER BY id DESC LIMIT 1")
        return (rows[0][0], rows[0][1]) if rows else None

    def mark_read(self, ids: list[int]) -> None:
        with self.engine.tx() as conn:
            conn.executemany("UPDATE inbound SET read = 1 WHERE id = ?", [(i,) for i in ids])
