"""What a user decides about messages: cancel one, retry one, hold or release a campaign's."""

from __future__ import annotations

import json

from modempool.spool.audit import AuditLog
from modempool.spool.engine import Engine
from modempool.spool.messages import read_message
from modempool.spool.model import (RETRYABLE_STATES, Message, MessageState, StateConflict,
                                   to_text, utcnow)
from modempool.spool.recovery import sent_from


class Decisions:
    """`cancel`, `retry`, `hold`, `release`: each re-reads the message under its row lock, so a
    dispatcher on another host cannot claim it between the check and the change."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def cancel(self, message_id: int) -> Message:
        """Cancel a queued message. A message already being sent or finished cannot be."""
        with self.engine.tx() as conn:
            message = read_message(self.engine, message_id, for_update=True)
            now = to_text(utcnow())
            done = message.state is MessageState.QUEUED and conn.execute(
                "UPDATE messages SET state = 'cancelled', updated_at = ? "
                "WHERE id = ? AND state = 'queued'", (now, message_id)).rowcount == 1
            if not done:
                state = read_message(self.engine, message_id).state.value
                raise StateConflict(
                    f"message {message_id} is {state}; only queued messages can be cancelled",
                    code="cancel_not_queued", params={"id": message_id, "state": state})
            self.audit.record(conn, "cancelled", message_id, now=now)
        return read_message(self.engine, message_id)

    def retry(self, message_id: int) -> Message:
        """Queue a failed, ambiguous or expired message again (its attempts are kept).

        For an ambiguous message this is the user's decision to risk a duplicate. A message some
        of whose parts are out goes on from the first part not known to be out, through the SIM
        that sent them (the recipient's phone joins parts from one sender only).
        """
        with self.engine.tx() as conn:
            message = read_message(self.engine, message_id, for_update=True)
            if message.state not in RETRYABLE_STATES:
                allowed = ", ".join(sorted(s.value for s in RETRYABLE_STATES))
                raise StateConflict(
                    f"message {message_id} is {message.state.value}; only {allowed} messages can be retried",
                    code="retry_not_final", params={"id": message_id, "state": message.state.value})
            now = to_text(utcnow())
            sent_by = sent_from(conn, message_id)
            sims = json.dumps([sent_by]) if sent_by else (
                json.dumps(list(message.sims)) if message.sims is not None else None)
            conn.execute(
                "UPDATE messages SET state = 'queued', error = NULL, not_before = NULL, "
                "expires_at = CASE WHEN state = 'expired' THEN NULL ELSE expires_at END, "
                "sims = ?, avoid_sim = NULL, lease_owner = NULL, lease_until = NULL, "
                "updated_at = ? WHERE id = ?",
                (sims, now, message_id),
            )
            self.audit.record(conn, "retried", message_id,
                              detail={"was": message.state.value}, now=now)
            self.engine.notify_enqueued(conn)
        return read_message(self.engine, message_id)

    def hold(self, campaign_id: int) -> int:
        """Pause a campaign: its queued messages are not claimed. Returns how many."""
        return self._set_held(campaign_id, 1)

    def release(self, campaign_id: int) -> int:
        """Resume a held campaign. Returns how many messages were released."""
        return self._set_held(campaign_id, 0)

    def _set_held(self, campaign_id: int, held: int) -> int:
        with self.engine.tx() as conn:
            now = to_text(utcnow())
            count = conn.execute(
                "UPDATE messages SET held = ?, updated_at = ? "
                "WHERE campaign_id = ? AND state = 'queued' AND held != ?",
                (held, now, campaign_id, held),
            ).rowcount
            self.audit.record(conn, "held" if held else "released",
                              detail={"campaign_id": campaign_id, "messages": count}, now=now)
            if not held:
                self.engine.notify_enqueued(conn)
            return count
