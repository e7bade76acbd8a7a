"""What a user decides about messages: cancel one, retry one, hold or release a campaign's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modempool.spool.model import (RETRYABLE_STATES, Message, MessageState, StateConflict,
                                   to_text, utcnow)

if TYPE_CHECKING:
    from modempool.spool import Spool


class DecisionsMixin:
    """`cancel`, `retry`, `hold`, `release` (mixed into `Spool`)."""

    def cancel(self: Spool, message_id: int) -> Message:
        """Cancel a queued message. A message already being sent or finished cannot be."""
        with self._tx() as conn:
            message = self._message(message_id)
            if message.state is not MessageState.QUEUED:
                raise StateConflict(
                    f"message {message_id} is {message.state.value}; only queued messages can be cancelled"
                )
            now = to_text(utcnow())
            conn.execute(
                "UPDATE messages SET state = 'cancelled', updated_at = ? WHERE id = ?",
                (now, message_id),
            )
            self._event("cancelled", message_id, now=now)
        return self._message(message_id)

    def retry(self: Spool, message_id: int) -> Message:
        """Queue a failed, ambiguous or expired message again (its attempts are kept).

        For an ambiguous message this is the user's decision to risk a duplicate. A message some
        of whose parts are out goes on from the first part not known to be out, through the SIM
        that sent them (the recipient's phone joins parts from one sender only).
        """
        with self._tx() as conn:
            message = self._message(message_id)
            if message.state not in RETRYABLE_STATES:
                allowed = ", ".join(sorted(s.value for s in RETRYABLE_STATES))
                raise StateConflict(
                    f"message {message_id} is {message.state.value}; only {allowed} messages can be retried"
                )
            now = to_text(utcnow())
            sent_from = conn.execute(
                "SELECT sim FROM parts WHERE message_id = ? AND sim IS NOT NULL AND state IN "
                "('sent', 'delivered', 'undelivered') LIMIT 1", (message_id,)).fetchone()
            conn.execute(
                "UPDATE messages SET state = 'queued', error = NULL, not_before = NULL, "
                "expires_at = CASE WHEN state = 'expired' THEN NULL ELSE expires_at END, "
                "sims = CASE WHEN ? IS NULL THEN sims ELSE json_array(?) END, "
                "avoid_sim = NULL, lease_owner = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ?",
                (sent_from and sent_from[0], sent_from and sent_from[0], now, message_id),
            )
            self._event("retried", message_id, detail={"was": message.state.value}, now=now)
        return self._message(message_id)

    def hold(self: Spool, campaign_id: int) -> int:
        """Pause a campaign: its queued messages are not claimed. Returns how many."""
        return self._set_held(campaign_id, 1)

    def release(self: Spool, campaign_id: int) -> int:
        """Resume a held campaign. Returns how many messages were released."""
        return self._set_held(campaign_id, 0)

    def _set_held(self: Spool, campaign_id: int, held: int) -> int:
        with self._tx() as conn:
            now = to_text(utcnow())
            cur = conn.execute(
                "UPDATE messages SET held = ?, updated_at = ? "
                "WHERE campaign_id = ? AND state = 'queued' AND held != ?",
                (held, now, campaign_id, held),
            )
            self._event("held" if held else "released", detail={"campaign_id": campaign_id,
                                                                  "messages": cur.rowcount}, now=now)
            return cur.rowcount
