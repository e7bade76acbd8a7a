"""What comes back from the modems: inbound SMS, their parts, and delivery reports.

Parts of a concatenated SMS are kept in `inbound_parts` until all have arrived (across
restarts); the complete text then becomes one `inbound` row. A delivery report is matched
to the part it belongs to by (SIM, message reference, recipient); the message becomes
DELIVERED when every part is (parts of a resumed message come from several attempts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modempool.errors import InvalidNumber
from modempool.numbers import normalise
from modempool.spool.ambiguity import settle_by_report
from modempool.spool.audit import AuditLog
from modempool.spool.verdicts import apply_report, report_key
from modempool.spool.engine import Engine
from modempool.spool.model import from_text, to_text, utcnow
from modempool.spool.plain_text import without_nul
from modempool.spool.sims import Sims

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

    @classmethod
    def from_row(cls, row: Any) -> InboundMessage:
        return cls(row["id"], row["sender"], row["sim"], row["text"],
                   from_text(row["received_at"]), row["parts"], bool(row["complete"]),
                   bool(row["read"]))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "sim": self.sim, "text": self.text,
                "received_at": to_text(self.received_at), "parts": self.parts,
                "complete": self.complete, "read": self.read}


@dataclass(frozen=True, slots=True)
class ReportMatch:
    """Where a stored delivery report went: its row, and the part/message it matched."""

    report_id: int
    part_id: int | None
    message_id: int | None
    message_state: str | None
    proven: bool = False   # it settled an ambiguous part: that SMS now counts as sent


def delivery_outcome(status: int) -> tuple[bool, bool]:
    """(delivered, final) for a TP-Status value (TS 23.040 9.2.3.15)."""
    if status < 0x20:
        return True, True       # short message transaction completed
    if status < 0x40:
        return False, False     # temporary error, the SC is still trying
    return False, True          # permanent error, or temporary error the SC gave up on


def _dedupe_key(card: str | None, sender: str, received_at: datetime, text: str) -> str:
    """`card`: the SIM card's ICCID (`iccid:...`) where known, else the SIM's name."""
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{card}|{sender}|{to_text(received_at)}|{digest}"


class Inbound:
    """Received SMS, their parts, and delivery reports (`spool.inbound`); `spool.inbound()`
    lists received messages. Storing is idempotent, so a message handed over twice, by one
    modem or on two hosts, is stored once."""

    def __init__(self, engine: Engine, audit: AuditLog, region: str,
                 sims: Sims | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.region = region
        self.sims = sims  # counts a part that a report proves was sent (`ambiguity`)

    def _sender(self, sender: str) -> str:
        """E.164 when the sender is a phone number; short codes and names stay as given
        (a name's NULs replaced, as the text's: `plain_text`)."""
        try:
            return normalise(sender, self.region)
        except InvalidNumber:
            return without_nul(sender.strip())

    def _insert(self, conn: Any, sender: str, sim: str | None, text: str,
                received_at: str | None, parts: int, complete: bool,
                dedupe_key: str | None = None) -> InboundMessage | None:
        now = to_text(utcnow())
        row = conn.execute(
            "INSERT INTO inbound (sender, sim, text, received_at, stored_at, parts, "
            "complete, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (sender, sim, text, received_at or now, now, parts, 1 if complete else 0, dedupe_key),
        ).fetchone()
        if row is None:
            return None  # the same message, handed over again
        return InboundMessage(row[0], sender, sim, text, from_text(received_at or now),
                              parts, complete, False)

    def store(
        self,
        sender: str,
        text: str,
        *,
        sim: str | None = None,
        received_at: datetime | None = None,
        parts: int = 1,
        complete: bool = True,
    ) -> InboundMessage | None:
        """Store a complete received SMS (a single part, or already reassembled).

        With the service centre time stamp as `received_at`, the same message handed over twice
        (the modem re-reports what was stored but not yet deleted) is stored once: the second
        call returns None.
        """
        sender, text = self._sender(sender), without_nul(text)
        with self.engine.tx() as conn:
            key = None
            if received_at:
                # By the card, not the modem it sits in: a card moved to another box (another
                # [[modem]] name) with the SMS still on it hands it over again there.
                card = conn.execute("SELECT iccid FROM sims WHERE name = ? AND iccid <> ''",
                                    (sim,)).fetchone() if sim else None
                key = _dedupe_key(f"iccid:{card[0]}" if card else sim, sender, received_at, text)
                by_name = _dedupe_key(sim, sender, received_at, text)
                if card and conn.execute("SELECT 1 FROM inbound WHERE dedupe_key = ?",
                                         (by_name,)).fetchone():
                    return None   # stored by this modempool's name before it knew the ICCID
            return self._insert(conn, sender, sim, text, to_text(received_at), parts,
                                complete, key)

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
    ) -> InboundMessage | None:
        """Keep one part of a concatenated SMS; returns the message once all parts are in.

        A part seen twice (the modem re-reported it, even after its message was complete) is
        stored once; parts of a finished message stay behind, marked done, for that check.
        """
        sender, text = self._sender(sender), without_nul(text)
        key = (sim, sender, reference, total)
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            conn.execute(
                "INSERT INTO inbound_parts (sim, sender, reference, total, seq, text, "
                "received_at, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, seq, text, to_text(received_at) or now, now),
            )
            rows = conn.execute(
                "SELECT seq, text, received_at FROM inbound_parts WHERE sim = ? AND sender = ? "
                "AND reference = ? AND total = ? AND done = 0 ORDER BY seq",
                key,
            ).fetchall()
            if len({r[0] for r in rows}) < total:
                return None
            rows = list({r[0]: r for r in rows}.values())
            taken = conn.execute(
                "UPDATE inbound_parts SET done = 1 WHERE sim = ? AND sender = ? AND reference = ? "
                "AND total = ? AND done = 0",
                key,
            ).rowcount
            if taken == 0:  # another daemon completed it in the meantime
                return None
            return self._insert(conn, sender, sim, "".join(r[1] for r in rows),
                                min(r[2] for r in rows), total, True)

    def flush_parts(self, older_than: timedelta, now: datetime | None = None) -> list[InboundMessage]:
        """Give up waiting for missing parts stored more than `older_than` ago: store what
        arrived as an incomplete message (missing parts shown as '…')."""
        cutoff = to_text((now or utcnow()) - older_than)
        out = []
        with self.engine.tx() as conn:
            groups = conn.execute(
                "SELECT sim, sender, reference, total FROM inbound_parts WHERE done = 0 "
                "GROUP BY sim, sender, reference, total HAVING min(stored_at) <= ?",
                (cutoff,),
            ).fetchall()
            for key in groups:
                rows = {r[0]: r for r in conn.execute(
                    "SELECT seq, text, received_at FROM inbound_parts WHERE sim = ? AND sender = ? "
                    "AND reference = ? AND total = ? AND done = 0", tuple(key))}
                if not rows:  # another daemon flushed it in the meantime
                    continue
                text = "".join(rows[s][1] if s in rows else MISSING_PART for s in range(1, key[3] + 1))
                taken = conn.execute(
                    "UPDATE inbound_parts SET done = 1 WHERE sim = ? AND sender = ? AND "
                    "reference = ? AND total = ? AND done = 0", tuple(key)).rowcount
                if taken == 0:
                    continue
                out.append(self._insert(conn, key[1], key[0], text,
                                        min(r[2] for r in rows.values()), key[3], False))
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

    def store_delivery_report(
        self,
        sim: str | None,
        message_reference: int,
        recipient: str | None,
        status: int,
        *,
        delivered: bool | None = None,
        final: bool | None = None,
        received_at: datetime | None = None,
        submitted_at: datetime | None = None,
    ) -> ReportMatch:
        """Store a status report and apply it to the part (latest with this SIM, message
        reference and recipient) and message it belongs to.

        A delivered report on every part makes the message DELIVERED; a final failure makes a
        SENT message FAILED ("not delivered"). A report that matches no sent part may settle
        an ambiguous message (`ambiguity.settle_by_report`; `submitted_at` is the report's
        service centre time stamp, else `received_at` stands for it). Unmatched reports are
        kept with no part.
        """
        ok, done = delivery_outcome(status)
        delivered = ok if delivered is None else delivered
        final = done if final is None else final
        recipient_e164 = self._sender(recipient) if recipient else None
        now = to_text(received_at or utcnow())
        with self.engine.tx() as conn:
            # Taken by the part's confirmation too: on PostgreSQL the two transactions could
            # otherwise miss each other (neither sees the other's uncommitted row), leaving the
            # report unmatched and the message 'sent' for ever. (A report without its SIM,
            # which the daemon never stores, matches a part of any SIM and takes turns with
            # none of their confirmations.)
            self.engine.lock_key(conn, report_key(sim, message_reference))
            sql = (
                "SELECT parts.id, parts.message_id FROM parts JOIN messages ON messages.id = parts.message_id "
                "WHERE parts.message_reference = ? AND parts.sent_at IS NOT NULL "
                + ("AND parts.sim = ? " if sim is not None else "")
                + ("AND messages.to_number = ? " if recipient_e164 else "")
                + "ORDER BY parts.sent_at DESC, parts.id DESC LIMIT 1"
            )
            params = [message_reference] + ([sim] if sim is not None else []) + (
                [recipient_e164] if recipient_e164 else [])
            match = conn.execute(sql, params).fetchone()
            proven = False
            if match is None:
                match = settle_by_report(
                    conn, self.audit, sim=sim, recipient=recipient_e164,
                    message_reference=message_reference,
                    network_time=submitted_at or received_at or utcnow(), now=now,
                    count_sent=self.sims.add_sent if self.sims is not None else None)
                proven = match is not None
            part_id, message_id = (match[0], match[1]) if match else (None, None)
            report_id = conn.execute(
                "INSERT INTO delivery_reports (sim, message_reference, recipient, status, delivered, "
                "final, received_at, part_id, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id",
                (sim, message_reference, recipient_e164 or recipient, status, int(delivered),
                 int(final), now, part_id, message_id),
            ).fetchone()[0]
            state = None
            if part_id is not None:
                apply_report(conn, self.audit, part_id=part_id, message_id=message_id, sim=sim,
                             status=status, delivered=delivered, final=final, now=now)
                state = conn.execute("SELECT state FROM messages WHERE id = ?", (message_id,)).fetchone()[0]
        return ReportMatch(report_id, part_id, message_id, state, proven)
