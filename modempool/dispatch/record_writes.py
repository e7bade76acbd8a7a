"""Writing a dispatcher's confirmed sends to the spool, and what each record's outcome is when
the database refuses some: together in one transaction first; refused, one by one, where one
refused alone is called ambiguous, one that can be written neither way is kept
(`OutcomeRefused`) and one that met a bug is dropped (its traceback once). When and with what
they are written (with the SIM's next marker, or after a burst) is `recording.py`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from modempool.errors import SpoolFailure
from modempool.masked import one_line
from modempool.spool.records import SentPart
from modempool.spool.unavailable import (database_failed, log_failure, log_repeated,
                                         refused_by_database)

log = logging.getLogger("modempool.dispatch.dispatcher")
T = TypeVar("T")   # what a write of records returns

# A confirmed send waiting to be recorded: its record, the modem's logger, recipient and parts.
Unrecorded = tuple[SentPart, logging.Logger, str, int]
# What became of one: recorded (True), its lease taken over (False), called ambiguous (None),
# its outcome refused for good (`OutcomeRefused`: kept), or a bug met (its exception: dropped).
Outcome = bool | None | BaseException


class OutcomeRefused(SpoolFailure):
    """A confirmed message whose record the spool refused, and refused again to call it
    ambiguous: no outcome of it can be written. Like a right missing, it is the database's
    to fix (an operator's trigger or constraint), not the modem's: the message stays in hand
    (its lease held), its SIM writes nothing more (its next marker carries that outcome), and
    it is tried again with backoff, the modem left open, until the database takes one."""

    def __init__(self, message_id: int, record: BaseException, ambiguous: BaseException) -> None:
        super().__init__(f"message {message_id}: the spool refused its record "
                         f"({one_line(record)}) and refused to call it ambiguous "
                         f"({one_line(ambiguous)}); its SIM sends nothing more until the "
                         "database takes one of the two")
        self.message_id = message_id


def write_records(spool: Any, pending: list[Unrecorded]) -> list[Outcome] | None:
    """In the lane: record `pending` in one transaction; None if the database failed (they
    are kept and tried again, the leases staying). A record it refuses otherwise refuses
    them all: they are then written one by one (`one_by_one`), where one whose outcome
    is refused for good is kept alone (`OutcomeRefused`) and one that met a bug is
    dropped, its traceback logged here once (its lease left for recovery, which calls it
    ambiguous when its SIM's leases are given back)."""
    if not pending:
        return []
    try:
        outcomes = together(spool.mark_many_sent, pending, "together")
        if outcomes is not None:
            return outcomes
        outcomes = one_by_one(spool, pending)
    except Exception as exc:
        log_failure(log, f"could not record {len(pending)} sent messages", exc)
        return None
    _log_bugs(pending, outcomes)
    return outcomes


def one_by_one(spool: Any, pending: list[Unrecorded]) -> list[Outcome]:
    """Each record of `pending` in a transaction of its own, after the database refused
    them together: one it refuses alone (not for being away, nor for a right the role
    lacks) is called ambiguous (None: the modem confirmed it, the spool refused to say so),
    an outcome committed all the same, so that its SIM may go on. One whose outcome can
    be written neither way is its `OutcomeRefused` (kept), one that met a bug its
    exception (dropped): the others of `pending`, other SIMs', go on. Raises only the
    database's failure (away, a right missing); those committed before it are taken out
    of `pending` (which the caller keeps to write again) and said now."""
    outcomes: list[Outcome] = []
    try:
        for sent, *_ in pending:
            try:
                outcomes.append(_one_record(spool, sent))
            except OutcomeRefused as exc:
                outcomes.append(exc)
            except Exception as exc:
                if database_failed(exc):
                    raise
                outcomes.append(exc)
    except Exception:
        _log_bugs(pending, outcomes)
        keep_refused(pending, outcomes)
        raise
    return outcomes


def _one_record(spool: Any, sent: SentPart) -> bool | None:
    """`sent` recorded in a transaction of its own, or (refused) called ambiguous: None.
    Only the database's refusal of both is `OutcomeRefused`; anything else that calling
    it ambiguous raises (a bug: a TypeError, a column missing) goes up as it is."""
    try:
        return spool.mark_many_sent([sent])[0]
    except Exception as exc:
        if database_failed(exc):
            raise
        refused = exc
    why = (f"confirmed by the modem (reference {sent.message_reference}), but the "
           f"spool refused its record: {one_line(refused)}")
    try:
        spool.mark_ambiguous(sent.message_id, why, lease_owner=sent.lease_owner)
    except Exception as exc:
        if database_failed(exc) or not refused_by_database(exc):
            raise
        raise OutcomeRefused(sent.message_id, refused, exc) from exc
    log_failure(log, f"message {sent.message_id}: its record was refused", refused)
    return None


def keep_refused(pending: list[Unrecorded], outcomes: list[Outcome]) -> None:
    """Of `pending`, whose first entries have `outcomes`: those written are said now and taken
    out, as are those that met a bug (dropped); those refused for good (`OutcomeRefused`)
    stay in it, with those not tried yet, for the caller to keep."""
    done = [(entry, outcome) for entry, outcome in zip(pending, outcomes)
            if not isinstance(outcome, BaseException)]
    _say_recorded([entry for entry, _ in done], [outcome for _, outcome in done])
    pending[:] = [entry for entry, outcome in zip(pending, outcomes)
                  if isinstance(outcome, OutcomeRefused)] + pending[len(outcomes):]


def _log_bugs(pending: list[Unrecorded], outcomes: list[Outcome]) -> None:
    """The traceback of each record of `pending` that met a bug (once: it is not tried
    again; its lease is left for recovery, which calls it ambiguous when its SIM's leases are
    given back)."""
    for (sent, *_), outcome in zip(pending, outcomes):
        if is_bug(outcome):
            log.error("message %s: a bug while writing its outcome; left to recovery",
                      sent.message_id, exc_info=outcome)


def is_bug(outcome: Outcome) -> bool:
    """Whether a record's `outcome` is a bug met while writing it (not the database's)."""
    return isinstance(outcome, BaseException) and not isinstance(outcome, OutcomeRefused)


def _say_recorded(pending: list[Unrecorded], recorded: list[Any]) -> None:
    """The line of each confirmed send of `pending` whose outcome is committed (`recorded`)."""
    for ok, (sent, mlog, to, parts) in zip(recorded, pending):
        if ok is None:
            mlog.warning("message %s to %s sent (%d part%s), reference %s, but its record "
                         "was refused: ambiguous", sent.message_id, to, parts,
                         "" if parts == 1 else "s", sent.message_reference)
            continue
        mlog.info("message %s to %s sent (%d part%s), reference %s%s", sent.message_id, to,
                  parts, "" if parts == 1 else "s", sent.message_reference,
                  "" if ok else " (its lease had been taken over)")


def together(write: Callable[[list[SentPart]], T], pending: list[Unrecorded],
              how: str) -> T | None:
    """In the lane: `pending`'s records in one commit by `write`; None when the database
    refused it for one of them (not for being away: that is raised), to be written one by one
    (said once a minute when there were several)."""
    try:
        return write([sent for sent, *_ in pending])
    except Exception as exc:
        if database_failed(exc):
            raise
        if len(pending) > 1:
            log_repeated(log, logging.WARNING, f"could not record {len(pending)} sent "
                         f"messages {how}; one by one", one_line(exc))
        return None
