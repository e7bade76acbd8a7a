"""Several SIMs' records and next part markers in one round trip (PostgreSQL).

When modems answer together, each asks for its next part's marker, which carries its SIM's
previous record (`Records.mark_sent_then_writing`). Written as a transaction each, or as one
transaction of several statements, every marking pays its BEGIN, report locks, statement and
COMMIT as round trips, each a wait for the server and then for a processor and the
interpreter's lock in a busy daemon. Here the markings of a batch are the rows of ONE
statement (`SENT_AND_MARKED`), sent with the report locks, the BEGIN and the COMMIT in one
pipeline: one round trip for the batch.

Only the common case goes so: a SIM's one record at most, of a message's only part, counted
on the batch's local day, its part confirmed before any report (the part still writing) and
its message not another marking's. A marker goes in only with its record done (or with none):
a record that is not the common case writes nothing, nor its marker, so the caller writes
that marking alone after the commit (`mark_sent_then_writing`: the long way, in one
transaction), as it does a marking that was never eligible. The rule holds either way: a SIM's
marker commits with or after its previous record, never before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from modempool.spool.ambiguity import CLOCK_SLACK
from modempool.spool.audit import INSERT_EVENT
from modempool.spool.claims import Claims
from modempool.spool.engine import Engine
from modempool.spool.model import LeaseLost, to_text, utcnow
from modempool.spool.part_markers import HOLD_SHARED, WRITING
from modempool.spool.sims import Sims
from modempool.spool.verdicts import no_early_report

#: A batch's statements planned once per connection, for any rows: prepared at their first
#: run there (`prepare=True`; psycopg's default waits for the fifth) and planned generically
#: (PostgreSQL plans a prepared statement afresh for its first five runs on a connection, and
#: for as long as plans for the values at hand look cheaper: the report locks' statement, its
#: `= ANY` list's length in the estimate, 100 to 400 times a run). At a run's start, each
#: daemon's connections new, that was 75 plans of the batch's statement in the first 10 s, 123
#: ms of the server's time among the first rounds' markers (2 x 32 at 1 s per SMS, with
#: pg_stat_statements); its generic plan is the one the server settles on after them anyway.
PLANNED_ONCE = "SET LOCAL plan_cache_mode = force_generic_plan"

#: One SIM's next part marker with that SIM's records still to commit (maybe none): the
#: records (`SentPart`), then the marker's message id, part number, part count and lease owner.
Marking = tuple[Sequence[Any], int, int, int | None, str | None]
#: What the batch did with a marking: its records' outcomes and its marker's LeaseLost (or
#: None: written); None for a marking it did not write (to be written alone).
Written = tuple[list[bool], LeaseLost | None] | None


def eligible(markings: Sequence[Marking], day_of: Callable[[datetime], Any]) -> list[bool]:
    """Which of `markings` may go in the batch's statement: a record at most, of a message's
    only part, all counted on the local day (`day_of`) of the first that has one, and no
    record's message another marking's marker."""
    markers = {message_id for _, message_id, *_ in markings}
    day = next((day_of(sends[0].now or utcnow()) for sends, *_ in markings if sends), None)
    return [not sends or (len(sends) == 1 and sends[0].seq == 1
                          and sends[0].message_id not in markers
                          and day_of(sends[0].now or utcnow()) == day)
            for sends, *_ in markings]


def write_in_one_trip(engine: Engine, sims: Sims, claims: Claims,
                      lock_reports: Callable[[Any, list[tuple[int, int, int | None]]], None],
                      markings: Sequence[Marking]) -> list[Written]:
    """The eligible of `markings` written in one round trip (`engine.one_trip`); in their
    order, what became of each (None: not written, to be written alone). Raises, nothing
    written, when the statement fails (a record a trigger refuses, a lock not granted)."""
    chosen = [n for n, ok in enumerate(eligible(markings, sims.local_day_month)) if ok]
    done: list[Written] = [None] * len(markings)
    if not chosen:
        return done
    now = utcnow()
    rows = [_row(n, markings[n], claims.holds.get(markings[n][4] or "")) for n in chosen]
    moment = next((markings[n][0][0].now or now for n in chosen if markings[n][0]), now)
    counting, values = sims.counting("SELECT sim FROM part WHERE sim <> ''", 1, moment)
    now_text = to_text(now)
    with engine.one_trip() as conn:
        conn.execute(PLANNED_ONCE)
        lock_reports(conn, [(send.message_id, send.seq, send.message_reference)
                            for n in chosen for send in markings[n][0]])
        answers = conn.execute(SENT_AND_MARKED.format(
            early=no_early_report(engine, "input.reference"), counting=counting,
            event=INSERT_EVENT, writing=WRITING.format(
                rows="SELECT id, marker_seq, marker_total, attempts, sim, 'writing', "
                     ":now, marker_card FROM leased")),
            {**values, "rows": json.dumps(rows), "now": now_text, "state": "sent",
             "slack": CLOCK_SLACK.total_seconds()}, prepare=True)
    unmarked = []
    for n, (recorded, finished, marked) in zip(chosen, answers.fetchall()):
        sends = markings[n][0]
        if sends and not recorded:   # not the common case: nothing of it written
            continue
        done[n] = ([bool(finished)] if sends else [], None)
        if not marked:
            unmarked.append(n)
    if unmarked:   # why each was not written: its lease gone, or its card's hold
        with engine.tx() as conn:
            for n in unmarked:
                _, message_id, _, _, owner = markings[n]
                done[n] = (done[n][0], claims.not_marked(conn, message_id, owner))
    return done


def _row(n: int, marking: Marking, hold: tuple[str, str, str] | None) -> dict[str, Any]:
    """One marking as a row of the statement's `input` (its record's columns null if none)."""
    sends, message_id, seq, total, owner = marking
    record = {"id": None, "seq": None, "attempt": None, "part_reference": None,
              "reference": None, "sent_at": None, "owner": None}
    if sends:
        send = sends[0]
        record = {"id": send.message_id, "seq": send.seq, "attempt": send.attempt,
                  "part_reference": send.reference,
                  "reference": send.message_reference,
                  "sent_at": to_text(send.now or utcnow()), "owner": send.lease_owner}
    return {"n": n, **record, "marker_id": message_id, "marker_seq": seq,
            "marker_total": total, "marker_owner": owner,
            **dict(zip(("marker_card", "marker_holder", "marker_modem"), hold or ()))}


#: Part states a record's one statement (`records._at_once`, `SENT_AND_MARKED`) leaves
#: alone: accepted already (a late confirmation never undoes a report, nor counts twice), or
#: called ambiguous by a recovery that ran while the record was on its way, which the long
#: way settles (`records._sent_after_recovery`).
NOT_AT_ONCE = "'sent', 'delivered', 'undelivered', 'ambiguous'"

#: Many SIMs' records (at most one each) and next part markers in one statement, the
#: markings as rows (`input`, in order): each record's common case as `_sent_at_once` (the
#: part sent and counted, the message SENT and its event), each marker as `marker_ctes` (with
#: its modem's card hold, where it has one, share-locked) and only where its record went so (or it has
#: none); for each marking whether its part was recorded, its message finished, its marker
#: written.
SENT_AND_MARKED = (
    "WITH input AS (SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS input (n int, "
    "id bigint, seq int, attempt int, part_reference int, reference int, sent_at text, "
    "owner text, "
    "marker_id bigint, marker_seq int, marker_total int, marker_owner text, marker_card text, "
    "marker_holder text, marker_modem text)), "
    "part AS (UPDATE parts SET state = 'sent', reference = input.part_reference, "
    "message_reference = input.reference, sent_at = input.sent_at FROM input "
    "WHERE parts.message_id = input.id AND parts.seq = input.seq "
    f"AND parts.state NOT IN ({NOT_AT_ONCE}) "
    "AND (input.attempt IS NULL OR parts.attempt = input.attempt) "
    "AND (input.reference IS NULL OR {early}) RETURNING parts.message_id, parts.sim), "
    "{counting}, "
    "done AS (UPDATE messages SET state = :state, error = NULL, lease_owner = NULL, "
    "lease_until = NULL, updated_at = :now, sent_at = :now FROM input "
    "WHERE messages.id = input.id AND messages.state = 'sending' "
    "AND (input.owner IS NULL OR messages.lease_owner = input.owner) "
    "AND EXISTS (SELECT 1 FROM part WHERE part.message_id = input.id) RETURNING messages.id), "
    "logged AS ({event} SELECT :now, 'sent', id, NULL, NULL FROM done), "
    # each marking's hold probed (share-locked, as marker_ctes: takes wait) once, apart:
    # inside `leased`'s join the planner may run the locking probe for every message being
    # sent times every marking (seen: 62 x 3 probes, 8.4 of a batch's 9.6 ms)
    "holding AS MATERIALIZED (SELECT input.n FROM input WHERE input.marker_card IS NULL "
    "OR EXISTS (SELECT 1 FROM sim_holders WHERE iccid = input.marker_card "
    "AND owner = input.marker_holder AND modem = input.marker_modem" + HOLD_SHARED + ")), "
    "leased AS (UPDATE messages SET parts_total = coalesce(input.marker_total, parts_total) "
    "FROM input JOIN holding ON holding.n = input.n "
    "WHERE messages.id = input.marker_id AND messages.state = 'sending' "
    "AND (input.id IS NULL OR EXISTS (SELECT 1 FROM part WHERE part.message_id = input.id)) "
    "AND (input.marker_owner IS NULL OR messages.lease_owner = input.marker_owner) "
    "RETURNING messages.id, input.marker_seq, input.marker_total, messages.attempts, "
    "messages.sim, input.marker_card), "
    "marked AS ({writing} RETURNING message_id) "
    "SELECT EXISTS (SELECT 1 FROM part WHERE part.message_id = input.id), "
    "EXISTS (SELECT 1 FROM done WHERE done.id = input.id), "
    "EXISTS (SELECT 1 FROM marked WHERE marked.message_id = input.marker_id) "
    "FROM input ORDER BY input.n")
