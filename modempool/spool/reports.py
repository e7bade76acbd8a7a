"""Read-only questions the operator features ask about the spool's `messages` and `inbound`
(campaign progress and reports, conversations, unfinished forwards).

They live here, beside the tables they read, so that the operator modules never write SQL
against the spool's tables and a second storage engine answers the same questions. Every
method reads through the engine (`Engine.rows`), with plain SQL both engines accept.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence
from typing import Any

from modempool.spool.engine import Engine
from modempool.spool.model import to_text


#: The command rows a forward may have been cut short at (an attempt that failed, an operator's
#: retry claimed): the condition of `forward_log`'s partial index `forward_log_command_unfinished`
#: (`operator/forwarding.py`), which `commands_cut_short` repeats as it is written there.
UNFINISHED_COMMAND = "f.outcome IN ('failed', 'retrying') AND f.target NOT LIKE '+%'"


class Reports:
    """`spool.reports`: the read-only questions of the operator features."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        return self.engine.rows(sql, list(params))

    # ---- campaigns
    def campaign_counts(self, campaign_id: int) -> dict[str, int]:
        """Messages of a campaign by state (only the states present), from the counts the
        engine keeps per campaign (schema version 12): no message is read."""
        return {state: n for state, n in self.engine.campaign_state_counts(campaign_id).items()
                if n}

    def campaign_waiting(self, campaign_id: int, now: datetime) -> dict[str, int]:
        """Why a campaign's queued messages wait: `held` (paused), `scheduled` (not before a
        later time), `quiet_hours` (may not go out in quiet hours: counted whether or not it is
        quiet now, the caller knows)."""
        row = self._all(
            "SELECT COALESCE(SUM(CASE WHEN held = 1 THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN held = 0 AND not_before > ? THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN held = 0 AND quiet_hours = 1"
            " AND (not_before IS NULL OR not_before <= ?) THEN 1 ELSE 0 END), 0)"
            " FROM messages WHERE campaign_id = ? AND state = 'queued'",
            [to_text(now), to_text(now), campaign_id])[0]
        return {"held": row[0], "scheduled": row[1], "quiet_hours": row[2]}

    def campaign_sent_since(self, campaign_id: int, since: datetime) -> tuple[int, str | None]:
        """How many of a campaign's messages went out since `since`, and the first send time
        of that window (to measure a rate over the time really spent sending)."""
        count, first = self._all("SELECT COUNT(*), MIN(sent_at) FROM messages WHERE campaign_id = ?"
                                 " AND sent_at >= ?", [campaign_id, to_text(since)])[0]
        return count, first

    def campaign_client_ids(self, campaign_id: int) -> set[str]:
        return {r[0] for r in self._all("SELECT client_id FROM messages WHERE campaign_id = ?",
                                        [campaign_id])}

    def campaign_messages(self, campaign_id: int) -> list[dict[str, Any]]:
        """Each message of a campaign, in id order, with what a report shows of it."""
        keys = ("message_id", "to", "state", "error", "sim", "sent_at", "delivered_at", "attempts")
        return [dict(zip(keys, r)) for r in self._all(
            "SELECT id, to_number, state, error, sim, sent_at, delivered_at, attempts"
            " FROM messages WHERE campaign_id = ? ORDER BY id", [campaign_id])]

    def received_since(self, since: str) -> list[tuple[str, str]]:
        """(sender, text) of every SMS stored since `since` (stored form), oldest first."""
        return [(r[0], r[1]) for r in self._all(
            "SELECT sender, text FROM inbound WHERE stored_at >= ? ORDER BY id", [since])]

    # ---- conversations
    def conversations(self, *, unread_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Numbers written to or heard from, newest first: last time, unread count, messages,
        and the text last received from each."""
        rows = self._all(
            "SELECT number, MAX(time), SUM(unread), COUNT(*) FROM ("
            " SELECT sender AS number, received_at AS time, 1 - read AS unread FROM inbound"
            " UNION ALL SELECT to_number, COALESCE(sent_at, created_at), 0 FROM messages) AS talk"
            " GROUP BY number" + (" HAVING SUM(unread) > 0" if unread_only else "")
            + " ORDER BY MAX(time) DESC LIMIT ?", [limit])
        out = []
        for number, last, unread, count in rows:
            last_in = self._all("SELECT text FROM inbound WHERE sender = ?"
                                " ORDER BY received_at DESC LIMIT 1", [number])
            out.append({"number": number, "last_time": last, "unread": unread, "messages": count,
                        "last_received": last_in[0][0] if last_in else None})
        return out

    # ---- forwarding
    def received_whose_last(self, log_table: str, target: str | tuple[str, ...],
                            outcomes: tuple[str, ...]) -> list[dict[str, Any]]:
        """Received SMS whose latest `log_table` row for `target` (or any of several names of
        one target) has one of `outcomes` (the forwards a stop or crash cut short)."""
        targets = (target,) if isinstance(target, str) else target
        keys = ("id", "sender", "sim", "text", "received_at")
        marks = ", ".join("?" for _ in outcomes)
        names = ", ".join("?" for _ in targets)
        return [dict(zip(keys, r)) for r in self._all(
            f"SELECT i.id, i.sender, i.sim, i.text, i.received_at FROM inbound i JOIN {log_table} f"
            f" ON f.id = (SELECT MAX(id) FROM {log_table} WHERE inbound_id = i.id"
            f" AND target IN ({names})) WHERE f.outcome IN ({marks}) ORDER BY i.id",
            [*targets, *outcomes])]

    def commands_cut_short(self, log_table: str,
                           inbound_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Received SMS (of `inbound_ids` only, when given) whose latest `log_table` row for a
        command (a target that is no number: numbers are kept in E.164, `+…`) is a `failed`
        attempt or a `retrying` claim, and which have no hooks pending (`inbound_hooks`:
        those a daemon runs again itself), oldest first: the command's runs cut short with no
        mark (before schema 15, or a step passed after a bug), which nothing runs again, and
        the operator's retries of them (`operator/forward_leftovers.py` judges whether a
        claim's process lives). With that row's target, attempt, outcome, detail and time.
        It reads the log's failed and retrying command rows alone, through their partial
        index (`forward_log_command_unfinished`, whose condition this one repeats word for
        word, as both engines' planners need), and each one's latest command row by the SMS
        (a subquery per row, which PostgreSQL does not turn into a hash join over the whole
        log as it did `NOT EXISTS`): its cost grows with the command's failed attempts, never
        with the SMS forwarded."""
        keys = ("id", "sender", "sim", "text", "received_at", "target", "attempt", "outcome",
                "detail", "created_at")
        only, params = ("", []) if inbound_ids is None else self.engine.among(
            "f.inbound_id", list(inbound_ids))
        return [dict(zip(keys, r)) for r in self._all(
            "SELECT i.id, i.sender, i.sim, i.text, i.received_at, f.target, f.attempt, "
            f"f.outcome, f.detail, f.created_at FROM {log_table} f JOIN inbound i "
            f"ON i.id = f.inbound_id WHERE {UNFINISHED_COMMAND}"
            + (f" AND {only}" if only else "") +
            f" AND f.id = (SELECT max(g.id) FROM {log_table} g WHERE g.inbound_id = f.inbound_id"
            " AND g.target NOT LIKE '+%') AND NOT EXISTS (SELECT 1 FROM inbound_hooks h "
            "WHERE h.inbound_id = f.inbound_id) ORDER BY i.id", params)]
