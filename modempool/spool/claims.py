"""The send side of the spool: leases, part markers and the transitions a dispatcher makes.

A dispatcher (i) claims a message for one SIM with a lease, (ii) before writing each PDU
to the modem records `mark_part_writing` durably, (iii) records each part's message
reference when the modem answers (`records.py`: `mark_part_sent`, `mark_many_sent`, the
record with the SIM's next marker), and (iv) ends the attempt with `mark_sent`, `requeue`,
`mark_failed` or `mark_ambiguous`. Because (ii) is committed before the PDU leaves, a
crash at any instant can be told apart afterwards: see `recover_leases`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from modempool.spool.ambiguity import settle_before, settle_by_stored_reports
from modempool.spool.audit import AuditLog
from modempool.spool.card_holders import shown_card
from modempool.spool.daemons import Here
from modempool.spool.engine import Engine
from modempool.spool.model import (CardLost, LeaseLost, Message, MessageState, Recovery, to_text,
                                   utcnow)
from modempool.spool.part_markers import WRITING, lease_check, marker_ctes, not_leased
from modempool.spool.recovery import ACCEPTED, dead_owners, recover_leases
from modempool.spool.resume_card import resume_refusal
from modempool.spool.sims import Sims
from modempool.spool.verdicts import deliver_if_complete, fail_if_undelivered

#: An attempt ended (`finish`): the message's new state, its lease let go.
FINISH = """
UPDATE messages SET state = :state, error = :error, lease_owner = NULL, lease_until = NULL,
    updated_at = :now {extra}
WHERE id = :id AND state = 'sending' {owner}
"""


#: An uncounted requeue's attempt given back (`requeue`), unless a part of it was accepted:
#: a number given again would make that part look like the next claim's own write.
GIVEN_BACK = (", attempts = CASE WHEN attempts > 0 AND NOT EXISTS (SELECT 1 FROM parts "
              "WHERE parts.message_id = messages.id AND parts.attempt = messages.attempts "
              f"AND parts.state IN {ACCEPTED}) THEN attempts - 1 ELSE attempts END")


class Claims:
    """Leases and the send-side transitions (`spool.claims`). Every transition names the
    lease owner it expects, so that a lease recovered meanwhile is never written to."""

    def __init__(self, engine: Engine, sims: Sims, audit: AuditLog) -> None:
        self.engine = engine
        self.sims = sims
        self.audit = audit
        # lease owner -> the card hold (ICCID, daemon run, modem) its markers require
        self.holds: dict[str, tuple[str, str, str]] = {}

    def require_hold(self, lease_owner: str, hold: tuple[str, str, str] | None) -> None:
        """From now on a part of `lease_owner` is marked (so written) only while `hold`, the
        (ICCID, daemon run, modem) row of `card_holders`, is there: a daemon judged dead
        while it lives sends nothing on a card taken from it, whenever it looks. None: a
        modem that reads no ICCID holds no card."""
        if hold is None:
            self.holds.pop(lease_owner, None)
        else:
            self.holds[lease_owner] = hold

    def not_marked(self, conn: Any, message_id: int, lease_owner: str | None) -> LeaseLost:
        """Why a marker of `message_id` was not written (in its transaction): its lease is
        gone (LeaseLost), or it is still `lease_owner`'s and the card hold is (CardLost)."""
        hold = self.holds.get(lease_owner or "")
        if hold is not None and conn.execute(
                "SELECT 1 FROM messages WHERE id = ? AND state = 'sending' AND lease_owner = ?",
                (message_id, lease_owner)).fetchone() is not None:
            return CardLost(f"its SIM card {shown_card(hold[0])} is no longer held by this "
                            "daemon (taken over by another, which judged this one dead, or let "
                            "go)")
        return not_leased(message_id, lease_owner)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several calls in one transaction: one commit, all or nothing (a dispatch round)."""
        with self.engine.tx():
            yield

    def recover_leases(self, owner: str | None = None, *, include_live: bool = False,
                       expired_only: bool = False, now: datetime | None = None) -> Recovery:
        """Settle messages left in SENDING by a dispatcher that stopped or crashed (see
        `recovery.recover_leases` for the rule)."""
        return recover_leases(self.engine, self.audit, owner, include_live=include_live,
                              expired_only=expired_only, now=now, count_sent=self.sims.add_sent)

    def recover_dead_owners(self, *, here: Here, alive: Callable[[int], bool],
                            silent: Callable[[dict[str, Any]], bool],
                            now: datetime | None = None) -> Recovery:
        """Several daemons on one database: settle the run-out leases of daemons that are dead
        (see `recovery.dead_owners`), never a live one's. Returns what became of them."""
        requeued, ambiguous, sent, refused, held = [], [], [], [], []
        for owner in dead_owners(self.engine, here=here, alive=alive, silent=silent, now=now):
            done = recover_leases(self.engine, self.audit, owner, expired_only=True, now=now,
                                  count_sent=self.sims.add_sent)
            requeued += done.requeued
            ambiguous += done.ambiguous
            sent += done.sent
            refused += done.refused
            held += done.held
        if requeued:
            with self.engine.tx() as conn:
                self.engine.notify_enqueued(conn)
        return Recovery(tuple(requeued), tuple(ambiguous), tuple(sent), tuple(refused),
                        tuple(held))

    def expire_due(self, now: datetime | None = None) -> list[int]:
        """Move queued messages whose expiry has passed to EXPIRED; returns their ids."""
        now_text = to_text(now or utcnow())
        with self.engine.tx() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    f"UPDATE messages{self.engine.expiry_index} SET state = 'expired', "
                    "error = 'expired before it could be sent', "
                    "updated_at = ? WHERE state = 'queued' AND expires_at IS NOT NULL "
                    "AND expires_at <= ? RETURNING id",
                    (now_text, now_text),
                )
            ]
            for message_id in ids:
                self.audit.record(conn, "expired", message_id, now=now_text)
        return ids

    # ---- used by the dispatcher (dispatcher engineer): it picks the SIM, then claims by id ----
    def dispatchable(self, now: datetime | None = None, limit: int = 64, *,
                     lock: bool = False) -> Iterator[Message]:
        """Queued messages that are due (not held, not before `now`), best first. Each is built
        as the caller comes to it (a dispatch round often stops early). With `lock`, inside a
        transaction about to claim some of them: on a shared database they are locked until
        it ends, and those another daemon's round holds are skipped, not waited for."""
        rows = self.engine.rows(
            "SELECT * FROM messages WHERE state = 'queued' AND held = 0 "
            "AND (not_before IS NULL OR not_before <= ?) ORDER BY priority DESC, id LIMIT ?"
            + (self.engine.skip_locked if lock else ""),
            (to_text(now or utcnow()), limit),
        )
        return (Message.from_row(row) for row in rows)

    def due_count(self, now: datetime | None = None, at_most: int = 64) -> int:
        """How many messages `dispatchable` would give (at most `at_most`), those another
        daemon's round holds locked included: a plain read, it neither locks nor waits."""
        return self.engine.rows(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE state = 'queued' AND held = 0 "
            "AND (not_before IS NULL OR not_before <= ?) LIMIT ?) due",
            (to_text(now or utcnow()), at_most))[0][0]

    def due_and_in_hand(self, now: datetime | None = None, due_at_most: int = 64,
                        in_hand_at_most: int = 128) -> tuple[int, int]:
        """`due_count` (at most `due_at_most`) and, in the same read, how many messages SIMs
        hold (claimed with a lease still running: on the air or taken ahead, every daemon's;
        at most `in_hand_at_most`): a plain read, it neither locks nor waits (QUEUE_END)."""
        now_text = to_text(now or utcnow())
        return tuple(self.engine.rows(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages WHERE state = 'queued' "
            "AND held = 0 AND (not_before IS NULL OR not_before <= ?) LIMIT ?) due), "
            "(SELECT count(*) FROM (SELECT 1 FROM messages WHERE state = 'sending' "
            "AND lease_until > ? LIMIT ?) held)",
            (now_text, due_at_most, now_text, in_hand_at_most))[0])

    def claim(self, message_id: int, sim: str, lease_owner: str,
              lease_seconds: float = 300.0, now: datetime | None = None) -> Message | None:
        """Lease message `message_id` for `sim` if it is still queued (conditional UPDATE)."""
        return self.claim_many([(message_id, sim, lease_owner)], lease_seconds, now)[0]

    def claim_many(self, claims: Sequence[tuple[int, str, str]], lease_seconds: float = 300.0,
                   now: datetime | None = None) -> list[Message | None]:
        """`claim` for each (message id, SIM, lease owner) of a dispatch round, in one
        statement (a round trip for the round, not one per message); in their order, None for
        a message no longer queued. As `claim` one after another: a message asked twice goes
        to its first claim, the second gets None (never one message to two SIMs)."""
        if not claims:
            return []
        moment = now or utcnow()
        now_text = to_text(moment)
        first = {message_id: (sim, owner) for message_id, sim, owner in reversed(claims)}
        sims = json.dumps({str(message_id): sim for message_id, (sim, _) in first.items()})
        owners = json.dumps({str(message_id): owner for message_id, (_, owner) in first.items()})
        chosen, chosen_params = self.engine.among("id", list(first))
        with self.engine.tx():
            rows = self.engine.rows(
                f"UPDATE messages SET state = 'sending', sim = {self.engine.json_text_at('?', 'id')}, "
                f"lease_owner = {self.engine.json_text_at('?', 'id')}, lease_until = ?, "
                f"attempts = attempts + 1, updated_at = ? WHERE {chosen} AND state = 'queued' "
                "AND held = 0 RETURNING *",
                (sims, owners, to_text(moment + timedelta(seconds=lease_seconds)), now_text,
                 *chosen_params),
            )
        claimed = {message.id: message for message in map(Message.from_row, rows)}
        return [claimed.pop(message_id, None) for message_id, _, _ in claims]

    def renew_lease(self, message_id: int, lease_owner: str, lease_seconds: float) -> None:
        """Extend a lease (a long multipart send); LeaseLost if it is no longer ours."""
        until = to_text(utcnow() + timedelta(seconds=lease_seconds))
        with self.engine.tx() as conn:
            cur = conn.execute(
                "UPDATE messages SET lease_until = ? WHERE id = ? AND state = 'sending' "
                "AND lease_owner = ?",
                (until, message_id, lease_owner),
            )
            if cur.rowcount != 1:
                raise LeaseLost(f"message {message_id} is no longer leased to {lease_owner}")

    def mark_part_writing(
        self,
        message_id: int,
        seq: int,
        total: int | None = None,
        *,
        lease_owner: str | None = None,
    ) -> None:
        """Record, durably, that part `seq` is about to be written to the modem.

        Call it before writing each PDU: after a crash this marker is what says the part
        may have left. With `lease_owner`, raises LeaseLost if the lease was recovered.
        """
        marker, values = marker_ctes(message_id, seq, total, lease_owner,
                                     self.holds.get(lease_owner or ""))
        with self.engine.tx() as conn:
            if self.engine.writes_in_with:   # one round trip: the PDU waits for this commit
                if not conn.execute(f"WITH {marker} SELECT EXISTS (SELECT 1 FROM marked)",
                                    values).fetchone()[0]:
                    raise self.not_marked(conn, message_id, lease_owner)
                return
            row = conn.execute(lease_check(lease_owner, values["marker_card"] is not None),
                               values).fetchone()
            if row is None:
                raise self.not_marked(conn, message_id, lease_owner)
            conn.execute(WRITING.format(rows="VALUES (:marker_id, :marker_seq, :marker_total, "
                                             ":attempts, :sim, 'writing', :marker_at, "
                                             ":marker_card)"),
                         {**values, "attempts": row[0], "sim": row[1]})

    def sent_parts(self, message_id: int) -> set[int]:
        """The parts of a message already accepted by the network (by any attempt)."""
        return {row[0] for row in self.engine.rows(
            "SELECT seq FROM parts WHERE message_id = ? AND state IN ('sent', 'delivered', "
            "'undelivered')", (message_id,))}

    def resume_refusal(self, message_id: int, lease_owner: str, modem: str) -> str | None:
        """Why `modem` (leases of `lease_owner`) must not send the rest of `message_id`, parts of
        which are out: the card that sent them is not the one it holds now (`resume_card`)."""
        hold = self.holds.get(lease_owner)
        with self.engine.tx() as conn:
            return resume_refusal(conn, message_id, hold[0] if hold else None, modem)

    def mark_sent(self, message_id: int, *, lease_owner: str | None = None) -> bool:
        """End a successful attempt: SENT (or DELIVERED if every report is already in)."""
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            ok = finish(conn, message_id, MessageState.SENT, None, now, lease_owner,
                        extra=", sent_at = :now")
            if ok:
                self.audit.record(conn, "sent", message_id, now=now)
                deliver_if_complete(conn, message_id, now)
                fail_if_undelivered(conn, message_id, now)
            return ok

    def mark_failed(self, message_id: int, error: str, *, lease_owner: str | None = None) -> bool:
        """End an attempt for good: FAILED with `error` (a permanent error, or retries used up)."""
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            ok = finish(conn, message_id, MessageState.FAILED, error, now, lease_owner)
            if ok:
                self._refused(conn, message_id, now)
                self.audit.record(conn, "failed", message_id, detail=error, now=now)
            return ok

    def _refused(self, conn: Any, message_id: int, now: str) -> None:
        """In `conn`'s transaction: the parts of `message_id` marked writing in this attempt
        become failed (the modem refused them). A refused write owns no report: one that
        waited on it may now prove an ambiguous part before it (`settle_before`; a probe of
        the ambiguous parts' index when there is none)."""
        for part_id, sim in conn.execute(
                "UPDATE parts SET state = 'failed' WHERE message_id = ? AND state = 'writing' "
                "RETURNING id, sim", (message_id,)).fetchall():
            settle_before(conn, self.audit, sim, part_id, now, self.sims.add_sent)

    def fail_queued(self, message_id: int, error: str) -> bool:
        """Fail a message that is still queued (no SIM may ever carry it); False if it moved on."""
        return self._end_queued(message_id, MessageState.FAILED, error)

    def cancel_queued(self, message_id: int, reason: str) -> bool:
        """Cancel a message still queued, for `reason` (kept as its error): a rule refused it as
        it was about to be claimed (an opt-out meanwhile). False if it had moved on."""
        return self._end_queued(message_id, MessageState.CANCELLED, reason)

    def _end_queued(self, message_id: int, state: MessageState, error: str) -> bool:
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            cur = conn.execute(
                "UPDATE messages SET state = ?, error = ?, updated_at = ? "
                "WHERE id = ? AND state = 'queued'", (state.value, error, now, message_id))
            if cur.rowcount == 1:
                self.audit.record(conn, state.value, message_id, detail=error, now=now)
            return cur.rowcount == 1

    def mark_ambiguous(self, message_id: int, error: str, *, lease_owner: str | None = None) -> bool:
        """End an attempt whose outcome is unknown: AMBIGUOUS, never resent automatically."""
        now = to_text(utcnow())
        with self.engine.tx() as conn:
            ok = finish(conn, message_id, MessageState.AMBIGUOUS, error, now, lease_owner)
            if ok:
                conn.execute(
                    "UPDATE parts SET state = 'ambiguous' WHERE message_id = ? AND state = 'writing'",
                    (message_id,),
                )
                self.audit.record(conn, "ambiguous", message_id, detail=error, now=now)
                settle_by_stored_reports(conn, self.audit, message_id, now, self.sims.add_sent)
            return ok

    def requeue(
        self,
        message_id: int,
        error: str | None,
        not_before: datetime | None = None,
        *,
        avoid_sim: str | None = None,
        lease_owner: str | None = None,
        only_sim: str | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """Give a message back to the queue after a temporary error (retry with backoff).

        `avoid_sim` asks the dispatcher to prefer another SIM (failover); that SIM still
        takes it when it is the only one left.
        `only_sim` binds it to one SIM from now on (the rest of a message partly sent from that
        SIM's number). `count_attempt=False`: the modem failed before this part was written, so
        the attempt was not the message's, unless a part of it went out already: then it counts
        (`GIVEN_BACK`), so the next claim's number is new and recovery never reads that part as
        the next claim's write. Parts marked writing in this attempt become failed: the modem
        refused them.
        """
        now = to_text(utcnow())
        extra = ", not_before = :not_before, avoid_sim = :avoid_sim"
        if only_sim is not None:
            extra += ", sims = :only_sims"
        if not count_attempt:
            extra += GIVEN_BACK
        with self.engine.tx() as conn:
            ok = finish(
                conn, message_id, MessageState.QUEUED, error, now, lease_owner, extra=extra,
                not_before=to_text(not_before), avoid_sim=avoid_sim,
                only_sims=json.dumps([only_sim]) if only_sim is not None else None,
            )
            if ok:
                self._refused(conn, message_id, now)
                self.audit.record(conn, "requeued", message_id, sim=avoid_sim,
                                  detail={"error": error, "not_before": to_text(not_before)},
                                  now=now)
                self.engine.notify_enqueued(conn)
            return ok


def finish(conn: Any, message_id: int, state: MessageState, error: str | None, now: str,
           lease_owner: str | None, extra: str = "", **more: Any) -> bool:
    """In `conn`'s transaction: end the attempt of `message_id` in `state` (`FINISH`), if it
    is still being sent (by `lease_owner`, when given); whether it was."""
    owner = "AND lease_owner = :owner" if lease_owner is not None else ""
    cur = conn.execute(
        FINISH.format(extra=extra, owner=owner),
        {"state": state.value, "error": error, "now": now, "id": message_id,
         "owner": lease_owner, **more},
    )
    return cur.rowcount == 1
