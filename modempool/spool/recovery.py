"""Crash recovery: what a message left in SENDING by a stopped or killed dispatcher becomes.

The markers `spool_claim.py` commits before each PDU leaves decide it: nothing was written
(queued again), everything was confirmed (sent), every PDU written was confirmed but parts
are left (queued again for the SIM that sent them), or a PDU may be out without its answer
(ambiguous, never resent on its own).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modempool.masked import one_line

from modempool.spool.ambiguity import settle_by_stored_reports
from modempool.spool.daemons import Here, judge
from modempool.spool.model import Recovery, to_text, utcnow
from modempool.spool.row_holders import row_holders
from modempool.spool.unavailable import database_failed, log_repeated, refused_by_database

if TYPE_CHECKING:
    from modempool.spool.audit import AuditLog
    from modempool.spool.engine import Engine


log = logging.getLogger("modempool.spool.recovery")

# Part states that mean the network took the part (a report may already have come back).
ACCEPTED = ("sent", "delivered", "undelivered")


def recover_leases(
    engine: Engine,
    audit: AuditLog,
    owner: str | None = None,
    *,
    include_live: bool = False,
    expired_only: bool = False,
    now: datetime | None = None,
    count_sent: Callable[[Any, str, int, datetime], None] | None = None,
) -> Recovery:
    """Settle messages left in SENDING by a dispatcher that stopped or crashed.

    Which: those leased by `owner` (any lease of that owner), or with `owner=None`
    those whose lease has run out (`include_live=True`: every SENDING message, for the
    single daemon starting up). The rule, per message, from the parts of its current
    attempt:
    - no part marked writing → nothing left for the modem: QUEUED again (attempt not counted);
    - every part sent (a message reference for each of `total`, this attempt or an earlier
      one that it resumes) → SENT;
    - each part this attempt marked was accepted, the others never marked (the claim cut
      between two parts: a kill after a record, a stop while the next marker waited for the
      database) → no PDU in doubt: QUEUED again for the SIM that sent them, to go on from
      the first part not out (the phone joins parts from one sender only), its attempt
      counted;
    - otherwise some PDU may have been written → AMBIGUOUS (never resent automatically).
    A message one of whose parts another transaction holds (its owner, alive though judged
    dead, recording it), or, with `owner` given, whose row another transaction holds (an
    operator's cancel, a session that locked it; not a foreign key's KEY SHARE, such as a
    report stored against it), stays SENDING, an INFO line at most once a minute
    (`Recovery.held`), for the next recovery: recovery never waits on a lock while it holds
    the message. Held for HELD_WARNING_AFTER, the line is a WARNING naming the holding
    session (`row_holders`). A message the
    database refuses to settle so (a trigger, a constraint), or whose settling meets a bug
    (its traceback logged once), stays SENDING, one ERROR line naming it
    (`Recovery.refused`), and is tried again by the next recovery; the others are settled.
    Only the database unable to answer fails the whole recovery.
    """
    moment = now or utcnow()
    now_text = to_text(moment)
    where, params = ["state = 'sending'"], []
    if owner is not None:
        where.append("lease_owner = ?")
        params.append(owner)
    if (owner is None and not include_live) or expired_only:
        where.append("(lease_until IS NULL OR lease_until <= ?)")
        params.append(now_text)
    requeued: list[int] = []
    ambiguous: list[int] = []
    sent: list[int] = []
    refused: list[int] = []
    held: list[int] = []
    with engine.tx() as conn:
        # Locked rows are being finished by their owner right now: not ours to settle. A
        # foreign key's KEY SHARE (a report stored against the message) does not stop it.
        leased = conn.execute(
            f"SELECT id, attempts, parts_total, sim FROM messages WHERE {' AND '.join(where)}"
            + engine.skip_locked_no_key,
            params,
        ).fetchall()
        if owner is not None:   # an owner's give-back: a row skipped is not settled (rev23 M1)
            held += _rows_held(conn, engine, where, params, {row[0] for row in leased}, moment)
        for message_id, attempt, parts_total, sim in leased:
            # Each message under a savepoint of its own: one the database refuses to settle
            # (an operator's trigger or constraint) stays SENDING, the others are settled.
            conn.execute("SAVEPOINT recover_one")
            try:
                part = _part_held(conn, engine, message_id)
                if part is not None:   # its record on its way: not now
                    _said_held(conn, engine, message_id, "a part of it is being written by "
                               "another transaction (its record)", ("parts", part), moment)
                    conn.execute("ROLLBACK TO recover_one")
                    conn.execute("RELEASE recover_one")
                    held.append(message_id)
                    continue
                became = _settle_one(conn, audit, message_id, attempt, parts_total, sim,
                                     now_text, count_sent)
            except Exception as exc:
                if database_failed(exc):   # it cannot answer now: the whole recovery later
                    raise
                conn.execute("ROLLBACK TO recover_one")
                conn.execute("RELEASE recover_one")
                refused.append(message_id)
                _said_why(engine, message_id, exc)
                continue
            conn.execute("RELEASE recover_one")
            {"queued": requeued, "ambiguous": ambiguous, "sent": sent}[became].append(message_id)
    return Recovery(tuple(requeued), tuple(ambiguous), tuple(sent), tuple(refused),
                    tuple(held))


#: By spool: the messages whose settling met a bug (its traceback logged once).
_TRACED: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()


def _said_why(engine: Engine, message_id: int, exc: Exception) -> None:
    """Why message `message_id` could not be settled: the database's refusal (an operator's
    trigger or constraint), one ERROR line a minute; a bug met settling it (a trigger that
    fails as a bug does, a column missing, a TypeError), its traceback once, then the same
    line. Either way the other messages are settled and this one is tried again later."""
    traced = _TRACED.setdefault(engine, set())
    if not refused_by_database(exc) and message_id not in traced:
        traced.add(message_id)
        log.error("message %s: recovery met a bug settling it; it stays SENDING and is tried "
                  "again", message_id, exc_info=exc)
        return
    why = "refused by the database" if refused_by_database(exc) else "a bug met"
    log_repeated(log, logging.ERROR, f"message {message_id}: recovery could not settle it, "
                 f"{why}; it stays SENDING and is tried again", one_line(exc))


def _rows_held(conn: Any, engine: Engine, where: list[str], params: list[Any],
               leased: set[int], moment: datetime) -> list[int]:
    """The messages matching `where` whose row another transaction holds (an operator's cancel
    or retry, a writer of the message, a session that locked it and stays idle), which the
    locking read skipped: left SENDING as `Recovery.held`, so that the owner's give-back is
    tried again rather than leaving them under a live lease until its stop. Read after the
    locks: a message that turned SENDING meanwhile counts as held too (tried again later).
    SQLite has one writer: none."""
    if not engine.skip_locked:
        return []
    skipped = [row[0] for row in conn.execute(
        f"SELECT id FROM messages WHERE {' AND '.join(where)}", params) if row[0] not in leased]
    for message_id in skipped:
        _said_held(conn, engine, message_id, "its row is held by another transaction",
                   ("messages", message_id), moment)
    return skipped


def _part_held(conn: Any, engine: Engine, message_id: int) -> int | None:
    """A part of `message_id` another transaction holds (a record on its way: the owner, alive
    though judged dead, locks the part, then the message), None if none is; the others are
    locked for this one. Recovery holds the message already: waiting for the part would close
    a cycle with that record (PostgreSQL aborts one, dead23), so the message is left as it is.
    A foreign key's KEY SHARE (a report stored against the part) does not hold it. SQLite has
    one writer: nothing else can hold a part."""
    if not engine.skip_locked:
        return None
    locked = {row[0] for row in conn.execute(
        "SELECT id FROM parts WHERE message_id = ?" + engine.skip_locked_no_key, (message_id,))}
    # read after the locks: a part inserted meanwhile counts as held (left for later too)
    every = {row[0] for row in conn.execute(
        "SELECT id FROM parts WHERE message_id = ?", (message_id,))}
    return min(every - locked, default=None)


#: How long a message may stay held by another transaction (its row or a part's) before its
#: line becomes a WARNING naming the holding session: one left idle in its transaction (a
#: client gone) keeps the SIM's give-back pending with no bound (docs/scale-out.md:
#: idle_in_transaction_session_timeout).
HELD_WARNING_AFTER = timedelta(minutes=5)

#: By spool: each held message's (first, last) time found held, by recovery's clock. A hold
#: not seen for HELD_WARNING_AFTER is over (its message settled meanwhile): the next is new.
_HELD: weakref.WeakKeyDictionary[Any, dict[int, tuple[datetime, datetime]]] = (
    weakref.WeakKeyDictionary())


def _said_held(conn: Any, engine: Engine, message_id: int, what: str, row: tuple[str, int],
               moment: datetime) -> None:
    """Say that `message_id` is left SENDING, held (`what`): an INFO line a minute at most;
    once held for HELD_WARNING_AFTER, a WARNING naming the session that holds `row` (table,
    id). Before the caller's rollback to its savepoint: the holder's look-up is in it."""
    held = _HELD.setdefault(engine, {})
    if len(held) >= 1000:   # holds long over: forgotten
        for key in [k for k, (_, last) in held.items() if moment - last >= HELD_WARNING_AFTER]:
            del held[key]
    first, last = held.get(message_id, (moment, moment))
    if moment - last >= HELD_WARNING_AFTER:
        first = moment
    held[message_id] = (first, moment)
    if moment - first < HELD_WARNING_AFTER:
        log_repeated(log, logging.INFO, f"message {message_id}: {what}",
                     "left SENDING for the next recovery")
        return
    minutes = int((moment - first).total_seconds() // 60)
    log_repeated(log, logging.WARNING, f"message {message_id}: {what} for minutes",
                 f"{minutes} min now, by {row_holders(conn, *row)}; left SENDING, its SIM "
                 "waits to be given back (end that session; docs/scale-out.md: "
                 "idle_in_transaction_session_timeout)")


def _settle_one(conn: Any, audit: AuditLog, message_id: int, attempt: int,
                parts_total: int | None, sim: str | None, now_text: str,
                count_sent: Callable[[Any, str, int, datetime], None] | None) -> str:
    """One leased message settled by `recover_leases`'s rule; returns what it became."""
    parts = conn.execute(
        "SELECT attempt, state FROM parts WHERE message_id = ?", (message_id,)
    ).fetchall()
    written = [state for made, state in parts if made == attempt and state != "failed"]
    # Parts sent by an earlier attempt count: a resumed message sends only the rest.
    sent_parts = sum(state in ACCEPTED for _, state in parts)
    if not written:
        conn.execute(
            "UPDATE messages SET state = 'queued', "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
            "lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
            (now_text, message_id),
        )
        audit.record(conn, "lease-recovered", message_id, sim, "queued", now_text)
        return "queued"
    if parts_total and sent_parts == parts_total == len(parts):
        conn.execute(
            "UPDATE messages SET state = 'sent', sent_at = ?, lease_owner = NULL, "
            "lease_until = NULL, updated_at = ? WHERE id = ?",
            (now_text, now_text, message_id),
        )
        audit.record(conn, "lease-recovered", message_id, sim, "sent", now_text)
        return "sent"
    sent_by = sent_from(conn, message_id)
    # cut between parts (audit24); the sending path goes on from the first part not out only
    # where the part count is known (`parts_total`, the markers'): else it would send all again
    if parts_total and sent_by and all(state in ACCEPTED for state in written):
        conn.execute(
            "UPDATE messages SET state = 'queued', sims = ?, avoid_sim = NULL, "
            "lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?",
            (json.dumps([sent_by]), now_text, message_id))
        audit.record(conn, "lease-recovered", message_id, sim, "queued: the parts out went "
                     "through its SIM, the rest goes on from it", now_text)
        return "queued"
    error = "the dispatcher stopped after a PDU may have been written to the modem"
    conn.execute(
        "UPDATE messages SET state = 'ambiguous', error = ?, lease_owner = NULL, "
        "lease_until = NULL, updated_at = ? WHERE id = ?",
        (error, now_text, message_id),
    )
    conn.execute(
        "UPDATE parts SET state = 'ambiguous' WHERE message_id = ? AND attempt = ? "
        "AND state = 'writing'",
        (message_id, attempt),
    )
    audit.record(conn, "lease-recovered", message_id, sim, "ambiguous", now_text)
    # its report may already be stored (the killed daemon read it): proof settles it
    if settle_by_stored_reports(conn, audit, message_id, now_text, count_sent):
        return "sent"
    return "ambiguous"


def sent_from(conn: Any, message_id: int) -> str | None:
    """The SIM that sent the parts of `message_id` already out (None: none out): the rest
    must go through it too, since the recipient's phone joins parts from one sender only."""
    row = conn.execute(
        "SELECT sim FROM parts WHERE message_id = ? AND sim IS NOT NULL AND state IN "
        f"{ACCEPTED} LIMIT 1", (message_id,)).fetchone()
    return None if row is None else row[0]


def dead_owners(engine: Engine, *, here: Here, alive: Callable[[int], bool],
                silent: Callable[[dict[str, Any]], bool],
                now: datetime | None = None) -> list[str]:
    """Lease owners (`host:pid:place-run/sim`) holding run-out leases whose daemon is dead by
    `daemons.judge` (the rule `status` uses too): it stopped, ran in this process table
    (`here`) and its process is gone, or ran elsewhere and is `silent`. A live daemon's
    leases are never in the list, even run out (a long multipart send): only its own finish or
    recovery settles them."""
    moment = now or utcnow()
    owners = [r[0] for r in engine.rows(
        "SELECT DISTINCT lease_owner FROM messages WHERE state = 'sending' "
        "AND lease_owner IS NOT NULL AND (lease_until IS NULL OR lease_until <= ?)",
        (to_text(moment),))]
    return judged_dead(engine, owners, here=here, alive=alive, silent=silent)


def judged_dead(engine: Engine, owners: list[str], *, here: Here, alive: Callable[[int], bool],
                silent: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Those of `owners` (daemon runs, or their lease owners `run/sim`) whose daemon is dead
    by `daemons.judge`; one that never beat is judged by its name alone."""
    if not owners:
        return []
    beats = {r["owner"]: dict(r) for r in engine.rows(
        "SELECT owner, host, pid, process_start, started_at, heartbeat_at, stopped_at "
        "FROM daemons")}
    dead = []
    for owner in owners:
        daemon = owner.split("/", 1)[0]
        fields = daemon.split(":")
        row = beats.get(daemon) or {  # it never beat: judged by its name alone
            "owner": daemon, "host": fields[0],
            "pid": int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None}
        if not judge(row, here=here, alive=alive, silent=silent).alive:
            dead.append(owner)
    return dead
