"""The counts /metrics and the dashboard read, kept on PostgreSQL without scanning messages.

SQLite keeps them by triggers that update one row per state (`STATE_COUNTS`, `METRIC_COUNTS`
in sqlite_engine.py): its writers take turns anyway. On PostgreSQL, daemons on several hosts
and the API write at once, and a counter row updated by each claim would make every writer
queue behind the one holding its lock (and two transactions changing two states in opposite
orders would deadlock). So the triggers here only *insert*: each change of a message adds a
row of -1 for what it was and +1 for what it is (`message_counts`), each message sent for the
first time its enqueue-to-sent observation (`send_latency_counts`); an enqueue adds one row
per state it inserted (a statement trigger: the engine inserts a batch in one statement).
Inserts never wait for one another. A read sums the rows (through a covering index, version
9); `fold` replaces each table's rows by their sums now and then (the daemon's housekeeping,
or a read that summed many), in one statement per table, so that a read in any snapshot sees
either the rows or their sums.

The counts commit with the change they count: a read always equals a count of the rows.
Schema version 8 makes the tables and triggers and fills them from an existing spool's
messages, after taking the trigger's lock on `messages` (no change slips between the two).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from modempool.spool.schema import latency_bucket

log = logging.getLogger("modempool.spool")

#: The states a message ends in: their counts are kept per SIM too (/metrics' outcomes).
FINISHED = "('sent', 'delivered', 'failed', 'ambiguous')"
#: Any fixed number: one fold at a time (another that finds it taken leaves the work to it).
_FOLD_LOCK = 0x6D70636E74
#: A read that sums more rows than this folds them (outside a transaction).
FOLD_AFTER_ROWS = 1_000
#: The daemon's housekeeping folds at most this often (seconds).
FOLD_EVERY = 5.0

# A time text PostgreSQL cannot read (a legacy or migrated row) is NULL, as SQLite's julianday
# makes it: its latency is left out instead of failing the change that sets sent_at.
SAFE_TIME = """CREATE OR REPLACE FUNCTION modempool_time(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN CAST(t AS timestamptz);
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END $$"""
_SECONDS = ("CAST(extract(epoch FROM modempool_time({row}.sent_at) "
            "- modempool_time({row}.created_at)) AS float8)")

#: The trigger functions, replaced where a database has older ones (`PostgresEngine` at open).
COUNT_FUNCTIONS = (
    SAFE_TIME,
    # rows inserted: one statement trigger, so that a batch adds one row per state
    f"""CREATE OR REPLACE FUNCTION message_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts (state, sim, n)
    SELECT state, CASE WHEN state IN {FINISHED} THEN sim END AS outcome_sim, count(*)
    FROM inserted GROUP BY state, outcome_sim;
    INSERT INTO send_latency_counts (bucket, n, seconds)
    SELECT {latency_bucket('d')} AS b, count(*), sum(d)
    FROM (SELECT {_SECONDS.format(row='inserted')} AS d FROM inserted
          WHERE sent_at IS NOT NULL) AS sent WHERE d IS NOT NULL GROUP BY b;
    RETURN NULL;
END $$""",
    # rows changed or deleted: a row trigger, fired only when what is counted changes
    f"""CREATE OR REPLACE FUNCTION message_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_sim text := CASE WHEN OLD.state IN {FINISHED} THEN OLD.sim END;
    now_sim text;
    seconds float8;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO message_counts (state, sim, n) VALUES (OLD.state, was_sim, -1);
        RETURN NULL;
    END IF;
    now_sim := CASE WHEN NEW.state IN {FINISHED} THEN NEW.sim END;
    IF OLD.state IS DISTINCT FROM NEW.state OR was_sim IS DISTINCT FROM now_sim THEN
        INSERT INTO message_counts (state, sim, n)
        VALUES (OLD.state, was_sim, -1), (NEW.state, now_sim, 1);
    END IF;
    -- the time from enqueue to sent, observed once: when sent_at is first set
    IF OLD.sent_at IS NULL AND NEW.sent_at IS NOT NULL THEN
        seconds := {_SECONDS.format(row='NEW')};
        IF seconds IS NOT NULL THEN
            INSERT INTO send_latency_counts (bucket, n, seconds)
            VALUES ({latency_bucket('seconds')}, 1, seconds);
        END IF;
    END IF;
    RETURN NULL;
END $$""",
)
#: What marks the current COUNT_FUNCTIONS in the functions' source.
COUNT_FUNCTIONS_MARK = "modempool_time"

KEPT_COUNTS = (
    "CREATE TABLE message_counts (state TEXT NOT NULL, sim TEXT, n BIGINT NOT NULL)",
    "CREATE TABLE send_latency_counts (bucket INTEGER NOT NULL, n BIGINT NOT NULL, "
    "seconds DOUBLE PRECISION NOT NULL)",
    *COUNT_FUNCTIONS,
    "CREATE TRIGGER message_counts_insert AFTER INSERT ON messages "
    "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
    "EXECUTE FUNCTION message_counts_inserted()",
    "CREATE TRIGGER message_counts_update AFTER UPDATE OF state, sim, sent_at ON messages "
    "FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.sim IS DISTINCT FROM "
    "NEW.sim OR (OLD.sent_at IS NULL AND NEW.sent_at IS NOT NULL)) "
    "EXECUTE FUNCTION message_counts_follow()",
    "CREATE TRIGGER message_counts_delete AFTER DELETE ON messages FOR EACH ROW "
    "EXECUTE FUNCTION message_counts_follow()",
    # what an existing spool holds (the triggers' lock on messages is held: nothing slips by)
    f"INSERT INTO message_counts (state, sim, n) SELECT state, CASE WHEN state IN {FINISHED} "
    "THEN sim END AS outcome_sim, count(*) FROM messages GROUP BY state, outcome_sim",
    f"INSERT INTO send_latency_counts (bucket, n, seconds) SELECT {latency_bucket('d')} AS b, "
    f"count(*), sum(d) FROM (SELECT {_SECONDS.format(row='messages')} AS d FROM messages "
    "WHERE sent_at IS NOT NULL) AS sent WHERE d IS NOT NULL GROUP BY b",
)

#: Version 9: a read sums the rows through an index that holds them, not the table: a bulk
#: change (a campaign of a million cancelled) adds millions of rows that a fold then deletes,
#: and the table keeps the pages they took (its live rows may sit at its end, so vacuum
#: cannot cut them off), where a scan would read every one; the index's emptied pages leave it.
SUMMED_BY_INDEX = (
    "CREATE INDEX IF NOT EXISTS message_counts_sums ON message_counts (state, sim) INCLUDE (n)",
    "CREATE INDEX IF NOT EXISTS send_latency_counts_sums ON send_latency_counts (bucket) "
    "INCLUDE (n, seconds)",
)

_FOLD = (
    "WITH gone AS (DELETE FROM message_counts RETURNING state, sim, n) "
    "INSERT INTO message_counts (state, sim, n) SELECT state, sim, sum(n) FROM gone "
    "GROUP BY state, sim HAVING sum(n) <> 0",
    "WITH gone AS (DELETE FROM send_latency_counts RETURNING bucket, n, seconds) "
    "INSERT INTO send_latency_counts (bucket, n, seconds) SELECT bucket, sum(n), sum(seconds) "
    "FROM gone GROUP BY bucket",
)


#: Rows a fold would remove: more rows than counts (an idle spool is not rewritten).
_SPARE_ROWS = (
    "SELECT (SELECT count(*) - count(DISTINCT (state, sim)) FROM message_counts) "
    "+ (SELECT count(*) - count(DISTINCT bucket) FROM send_latency_counts)")


class KeptCounts:
    """Reads and folds of the kept counts, for a `PostgresEngine`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._folded_at = 0.0

    def state_counts(self) -> dict[str, int]:
        rows = self.engine.rows("SELECT state, sum(n) AS n, count(*) AS summed "
                                "FROM message_counts GROUP BY state")
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {row["state"]: int(row["n"]) for row in rows}

    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        rows = self.engine.rows("SELECT sim, state, sum(n) AS n, count(*) AS summed "
                                "FROM message_counts WHERE sim IS NOT NULL GROUP BY sim, state")
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {(row["sim"], row["state"]): int(row["n"]) for row in rows if row["n"]}

    def send_latency(self) -> list[tuple[int, int, float]]:
        rows = self.engine.rows("SELECT bucket, sum(n) AS n, sum(seconds) AS seconds, "
                                "count(*) AS summed FROM send_latency_counts GROUP BY bucket")
        self._fold_if_many(sum(row["summed"] for row in rows))
        return [(row["bucket"], int(row["n"]), float(row["seconds"])) for row in rows]

    def _fold_if_many(self, summed: int) -> None:
        """Fold after a read that summed many rows: best effort, the read has its answer (a
        read-only role, a standby or a lock timeout leaves the folding to the daemon)."""
        if summed > FOLD_AFTER_ROWS and not self.engine.in_transaction():
            try:
                self.fold()
            except self.engine._psycopg.Error as exc:
                log.warning("the kept counts were read but not folded: %s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else exc)

    def fold_now_and_then(self) -> None:
        """The daemon's housekeeping: fold, at most every FOLD_EVERY seconds."""
        if time.monotonic() - self._folded_at >= FOLD_EVERY:
            self.fold()

    def fold(self) -> bool:
        """Replace the rows of each count by their sum, in one transaction. False when there
        was nothing to fold, or another daemon was folding."""
        self._folded_at = time.monotonic()
        with self.engine.tx() as conn:
            if not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (_FOLD_LOCK,)).fetchone()[0]:
                return False
            spare = conn.execute(_SPARE_ROWS).fetchone()[0]
            if not spare:   # each count one row already: nothing to write
                return False
            for statement in _FOLD:
                conn.execute(statement)
        return True
