"""The counts /metrics and the dashboard read, kept on PostgreSQL without scanning messages:
the reads, and the folds that keep the rows a read sums few (`KeptCounts`). The tables,
trigger functions and schema steps that keep them are in postgres_count_tables.py.

SQLite keeps them by triggers that update one row per state (`STATE_COUNTS`, `METRIC_COUNTS`
in sqlite_counts.py): its writers take turns anyway. On PostgreSQL, daemons on several hosts
and the API write at once, and a counter row updated by each claim would make every writer
queue behind the one holding its lock (and two transactions changing two states in opposite
orders would deadlock). So the triggers only *insert*: each change of a message adds a
row of -1 for what it was and +1 for what it is (`message_counts`), each message sent for the
first time its enqueue-to-sent observation (`send_latency_counts`); an enqueue adds one row
per state it inserted (a statement trigger: the engine inserts a batch in one statement).
Inserts never wait for one another. A fold (the daemon's housekeeping
and `serve`'s, every FOLD_EVERY seconds, or a read that summed many) moves those rows into
totals, one row per count (`message_count_totals`, `send_latency_totals`), in one statement
per table, so that a read in any snapshot sees either the rows or their sums; a read adds the
totals and the rows not folded yet, in one statement (schema version 10).

Why two tables: a read's cost is the pages it scans, and the rows a fold deletes leave their
pages behind until a vacuum. When the sums went back into the same table (versions 8 and 9),
they landed at its end, behind the emptied pages, so that vacuum could not cut those off: after
a million changes in one go, a read scanned 6,000 empty pages (16 ms, 60 ms under load) for
195 live rows, for as long as the spool lived. Now a fold empties the table of changes
entirely and vacuums it (`VACUUM (SKIP_LOCKED)`, best effort, as autovacuum also does after
1,000 dead rows, unthrottled): the changes of the next seconds go into its first pages, its end
is cut off, and a read scans what a few seconds of changes take plus the totals' few pages.

The counts commit with the change they count: a read always equals a count of the rows.
Schema version 8 makes the tables and triggers and fills them from an existing spool's
messages, after taking the trigger's lock on `messages` (no change slips between the two).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from modempool.masked import one_line
from modempool.spool.database_errors import SpoolForbidden
from modempool.spool.postgres_count_tables import FOLD_KEPT, FOLD_LOCK, FOLD_OWNERS, FOLD_REACHED
from modempool.spool.postgres_count_tables import SUMMED_BY_INDEX  # benchmarks/bench_upgrade.py
from modempool.spool.unavailable import SpoolUnavailable

__all__ = ["FOLD_AFTER_ROWS", "FOLD_EVERY", "KEPT_PAGES_AT_MOST", "STATE_COUNTS", "KeptCounts",
           "SUMMED_BY_INDEX"]

log = logging.getLogger("modempool.spool")
#: The fold's advisory lock, by its former name here (tests take it to hold a fold off).
_FOLD_LOCK = FOLD_LOCK

#: A read that sums more rows than this folds them (outside a transaction).
FOLD_AFTER_ROWS = 1_000
#: The daemon's housekeeping folds at most this often (seconds).
FOLD_EVERY = 5.0

#: The reads: totals and changes in one statement (one snapshot: a fold between two
#: statements would count its rows twice or not at all); `summed`, the changes summed.
STATE_COUNTS = (
    "SELECT state, sum(n) AS n, sum(change) AS summed FROM ("
    "SELECT state, n, 0 AS change FROM message_count_totals "
    "UNION ALL SELECT state, n, 1 FROM message_counts) AS kept GROUP BY state")
SIM_OUTCOMES = (
    "SELECT sim, state, sum(n) AS n, sum(change) AS summed FROM ("
    "SELECT sim, state, n, 0 AS change FROM message_count_totals WHERE sim <> '' "
    "UNION ALL SELECT sim, state, n, 1 FROM message_counts WHERE sim IS NOT NULL) AS kept "
    "GROUP BY sim, state")
SIM_REACHED = (
    "SELECT sim, state, sum(n) AS n, sum(change) AS summed FROM ("
    "SELECT sim, state, n, 0 AS change FROM sim_outcome_totals "
    "UNION ALL SELECT sim, state, n, 1 FROM sim_outcome_changes) AS kept GROUP BY sim, state")
OWNER_COUNTS = {
    kind: ("SELECT state, sum(n) AS n, sum(change) AS summed FROM ("
           f"SELECT state, n, 0 AS change FROM {kind}_state_totals WHERE {key} = ? "
           f"UNION ALL SELECT state, n, 1 FROM {kind}_state_changes WHERE {key} = ?) AS kept "
           "GROUP BY state")
    for kind, key in (("account", "account"), ("campaign", "campaign_id"))}
SEND_LATENCY = (
    "SELECT bucket, sum(n) AS n, sum(seconds) AS seconds, sum(change) AS summed FROM ("
    "SELECT bucket, n, seconds, 0 AS change FROM send_latency_totals "
    "UNION ALL SELECT bucket, n, seconds, 1 FROM send_latency_counts) AS kept GROUP BY bucket")

#: What the tables of changes take, empty pages included.
_CHANGE_TABLES = ("message_counts", "send_latency_counts", "sim_outcome_changes",
                  "account_state_changes", "campaign_state_changes")
_PAGES_HELD = ("SELECT " + " + ".join(f"pg_relation_size('{table}')" for table in _CHANGE_TABLES)
               + " AS bytes")
#: Past this size of the tables of changes, an idle spool's housekeeping vacuums them.
KEPT_PAGES_AT_MOST = 1 << 20

#: Whether a fold has anything to do (an idle spool is not rewritten).
_CHANGES_LEFT = "SELECT " + " OR ".join(f"EXISTS (SELECT 1 FROM {table})"
                                      for table in _CHANGE_TABLES)


class KeptCounts:
    """Reads and folds of the kept counts, for a `PostgresEngine`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._folded_at = 0.0

    def state_counts(self) -> dict[str, int]:
        rows = self.engine.rows(STATE_COUNTS)
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {row["state"]: int(row["n"]) for row in rows}

    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        rows = self.engine.rows(SIM_OUTCOMES)
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {(row["sim"], row["state"]): int(row["n"]) for row in rows if row["n"]}

    def sim_outcomes_reached(self) -> dict[tuple[str, str], int]:
        rows = self.engine.rows(SIM_REACHED)
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {(row["sim"], row["state"]): int(row["n"]) for row in rows if row["n"]}

    def add_reached(self, conn: Any, counts: dict[tuple[str, str], int]) -> None:
        """Outcomes reached, by (SIM, state), that no message here counts (a migrated spool's:
        messages that moved on from them), added in the transaction `conn`."""
        conn.executemany("INSERT INTO sim_outcome_changes (sim, state, n) VALUES (?, ?, ?)",
                         [(sim, state, n) for (sim, state), n in sorted(counts.items())])

    def owner_counts(self, kind: str, key: Any) -> dict[str, int]:
        """Messages by state of one account (`kind` "account") or campaign ("campaign")."""
        rows = self.engine.rows(OWNER_COUNTS[kind], (key, key))
        self._fold_if_many(sum(row["summed"] for row in rows))
        return {row["state"]: int(row["n"]) for row in rows}

    def send_latency(self) -> list[tuple[int, int, float]]:
        rows = self.engine.rows(SEND_LATENCY)
        self._fold_if_many(sum(row["summed"] for row in rows))
        return [(row["bucket"], int(row["n"]), float(row["seconds"])) for row in rows]

    def _fold_if_many(self, summed: int) -> None:
        """Fold after a read that summed many rows: best effort, the read has its answer (a
        read-only role, a standby or a lock timeout leaves the folding to the daemon)."""
        if summed > FOLD_AFTER_ROWS and not self.engine.in_transaction():
            try:
                self.fold()
            except (self.engine._psycopg.Error, SpoolForbidden, SpoolUnavailable) as exc:
                log.warning("the kept counts were read but not folded: %s", one_line(exc))

    def fold_now_and_then(self) -> None:
        """The housekeeping of the daemon and of `serve` (a thread of theirs): fold at most
        every FOLD_EVERY seconds, then vacuum the emptied tables of changes; vacuum them too
        when nothing changed but they hold more than KEPT_PAGES_AT_MOST bytes (an idle spool
        just upgraded, or whose autovacuum is off): a read scans every page."""
        if time.monotonic() - self._folded_at < FOLD_EVERY:
            return
        if self.fold() or self.engine.rows(_PAGES_HELD)[0]["bytes"] > KEPT_PAGES_AT_MOST:
            self.vacuum()

    def fold(self) -> bool:
        """Move the rows of changes into the totals, in one transaction. False when there
        was nothing to fold, or another daemon was folding."""
        self._folded_at = time.monotonic()
        with self.engine.tx() as conn:
            if not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (FOLD_LOCK,)).fetchone()[0]:
                return False
            if not conn.execute(_CHANGES_LEFT).fetchone()[0]:
                return False
            for statement in (*FOLD_KEPT, FOLD_REACHED, *FOLD_OWNERS):
                conn.execute(statement)
        return True

    def vacuum(self) -> None:
        """The pages a fold emptied made free and the tables' empty end cut off, now rather
        than when autovacuum comes (it looks at a database once a minute). Skipped where
        another vacuum holds a table; a role that does not own them gets a warning from the
        server and leaves it to autovacuum. It may wait up to 5 s for a moment without
        writers to cut the end off (PostgreSQL's own bound): call it from a thread of its own."""
        if self.engine.in_transaction():
            return
        try:
            with self.engine.connection() as raw:
                raw.execute(f"VACUUM (SKIP_LOCKED) {', '.join(_CHANGE_TABLES)}")
        except (self.engine._psycopg.Error, SpoolForbidden, SpoolUnavailable) as exc:
            log.warning("the kept counts' changes were folded but not vacuumed: %s",
                        one_line(exc))
