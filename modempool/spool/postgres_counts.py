"""The counts /metrics and the dashboard read, kept on PostgreSQL without scanning messages.

SQLite keeps them by triggers that update one row per state (`STATE_COUNTS`, `METRIC_COUNTS`
in sqlite_counts.py): its writers take turns anyway. On PostgreSQL, daemons on several hosts
and the API write at once, and a counter row updated by each claim would make every writer
queue behind the one holding its lock (and two transactions changing two states in opposite
orders would deadlock). So the triggers here only *insert*: each change of a message adds a
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
from modempool.spool.schema import FINISHED, latency_bucket
from modempool.spool.unavailable import SpoolUnavailable

log = logging.getLogger("modempool.spool")

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
    INSERT INTO sim_outcome_changes (sim, state, n)
    SELECT sim, state, count(*) FROM inserted
    WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state;
    INSERT INTO campaign_state_changes (campaign_id, state, n)
    SELECT campaign_id, state, count(*) FROM inserted
    WHERE campaign_id IS NOT NULL GROUP BY campaign_id, state;
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
        INSERT INTO campaign_state_changes (campaign_id, state, n)
        SELECT OLD.campaign_id, OLD.state, -1 WHERE OLD.campaign_id IS NOT NULL;
        -- an owned message cannot go before its owner's row (its foreign key): none here
        RETURN NULL;
    END IF;
    now_sim := CASE WHEN NEW.state IN {FINISHED} THEN NEW.sim END;
    IF OLD.state IS DISTINCT FROM NEW.state OR was_sim IS DISTINCT FROM now_sim THEN
        INSERT INTO message_counts (state, sim, n)
        VALUES (OLD.state, was_sim, -1), (NEW.state, now_sim, 1);
        -- an outcome reached: counted once, never taken back (a Prometheus counter)
        IF now_sim IS NOT NULL THEN
            INSERT INTO sim_outcome_changes (sim, state, n) VALUES (now_sim, NEW.state, 1);
        END IF;
    END IF;
    IF OLD.state IS DISTINCT FROM NEW.state OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id THEN
        INSERT INTO campaign_state_changes (campaign_id, state, n)
        SELECT campaign_id, state, n FROM (VALUES (OLD.campaign_id, OLD.state, -1),
            (NEW.campaign_id, NEW.state, 1)) AS change (campaign_id, state, n)
        WHERE campaign_id IS NOT NULL;
    END IF;
    IF OLD.state IS DISTINCT FROM NEW.state THEN
        INSERT INTO account_state_changes (account, state, n)
        SELECT owner.account, change.state, change.n FROM message_accounts owner,
            (VALUES (OLD.state, -1), (NEW.state, 1)) AS change (state, n)
        WHERE owner.message_id = NEW.id;
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
#: What marks the current COUNT_FUNCTIONS in the functions' source (each, of a version since).
COUNT_FUNCTIONS_MARKS = ("modempool_time", "campaign_state_changes")

#: The row trigger of the changes that count (campaign_id since version 12).
COUNTS_FOLLOW_UPDATES = (
    "CREATE TRIGGER message_counts_update AFTER UPDATE OF state, sim, sent_at, campaign_id "
    "ON messages FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.sim IS "
    "DISTINCT FROM NEW.sim OR (OLD.sent_at IS NULL AND NEW.sent_at IS NOT NULL) "
    "OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id) "
    "EXECUTE FUNCTION message_counts_follow()")

KEPT_COUNTS = (
    "CREATE TABLE message_counts (state TEXT NOT NULL, sim TEXT, n BIGINT NOT NULL)",
    "CREATE TABLE send_latency_counts (bucket INTEGER NOT NULL, n BIGINT NOT NULL, "
    "seconds DOUBLE PRECISION NOT NULL)",
    *COUNT_FUNCTIONS,
    "CREATE TRIGGER message_counts_insert AFTER INSERT ON messages "
    "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
    "EXECUTE FUNCTION message_counts_inserted()",
    COUNTS_FOLLOW_UPDATES,
    "CREATE TRIGGER message_counts_delete AFTER DELETE ON messages FOR EACH ROW "
    "EXECUTE FUNCTION message_counts_follow()",
    # what an existing spool holds (the triggers' lock on messages is held: nothing slips by)
    f"INSERT INTO message_counts (state, sim, n) SELECT state, CASE WHEN state IN {FINISHED} "
    "THEN sim END AS outcome_sim, count(*) FROM messages GROUP BY state, outcome_sim",
    f"INSERT INTO send_latency_counts (bucket, n, seconds) SELECT {latency_bucket('d')} AS b, "
    f"count(*), sum(d) FROM (SELECT {_SECONDS.format(row='messages')} AS d FROM messages "
    "WHERE sent_at IS NOT NULL) AS sent WHERE d IS NOT NULL GROUP BY b",
)

#: Version 9: a read summed the rows through an index that holds them (version 10 drops it:
#: the table of changes stays small, and each change paid for an index entry).
SUMMED_BY_INDEX = (
    "CREATE INDEX IF NOT EXISTS message_counts_sums ON message_counts (state, sim) INCLUDE (n)",
    "CREATE INDEX IF NOT EXISTS send_latency_counts_sums ON send_latency_counts (bucket) "
    "INCLUDE (n, seconds)",
)

#: A fold: the changes deleted and added to the totals, one statement per count. A SIM of
#: NULL (a state not counted per SIM) is '' in the totals, whose key cannot hold NULL.
_FOLD = (
    "WITH gone AS (DELETE FROM message_counts RETURNING state, sim, n) "
    "INSERT INTO message_count_totals AS kept (state, sim, n) "
    "SELECT state, coalesce(sim, '') AS outcome_sim, sum(n) FROM gone "
    "GROUP BY state, outcome_sim HAVING sum(n) <> 0 "
    "ON CONFLICT (state, sim) DO UPDATE SET n = kept.n + excluded.n",
    "WITH gone AS (DELETE FROM send_latency_counts RETURNING bucket, n, seconds) "
    "INSERT INTO send_latency_totals AS kept (bucket, n, seconds) "
    "SELECT bucket, sum(n), sum(seconds) FROM gone GROUP BY bucket "
    "ON CONFLICT (bucket) DO UPDATE SET n = kept.n + excluded.n, "
    "seconds = kept.seconds + excluded.seconds",
)

#: Autovacuum of the tables of changes after 1,000 dead rows whatever their size, unthrottled
#: (they are small): the fold's own vacuum may be skipped (another holds the table) or refused
#: (a role that does not own it).
_VACUUM_SOON = ("autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, "
                "autovacuum_vacuum_cost_delay = 0")

#: Version 10: the totals (a fold updates each row in its page: fillfactor 50), what the
#: changes held moved into them, the index of version 9 dropped, autovacuum set. A version 9
#: daemon on another box may be folding meanwhile (its fold deletes and inserts rows of
#: changes): the upgrade waits for the fold lock (a version 9 fold that finds it taken skips),
#: then drops the indexes, which takes the tables of changes whole, before it deletes a row,
#: so the two never wait on each other in a cycle.
KEPT_TOTALS = (
    f"SELECT pg_advisory_xact_lock({_FOLD_LOCK})",
    "DROP INDEX IF EXISTS message_counts_sums",
    "DROP INDEX IF EXISTS send_latency_counts_sums",
    "CREATE TABLE IF NOT EXISTS message_count_totals (state TEXT NOT NULL, sim TEXT NOT NULL, "
    f"n BIGINT NOT NULL, PRIMARY KEY (state, sim)) WITH (fillfactor = 50, {_VACUUM_SOON})",
    "CREATE TABLE IF NOT EXISTS send_latency_totals (bucket INTEGER PRIMARY KEY, "
    f"n BIGINT NOT NULL, seconds DOUBLE PRECISION NOT NULL) WITH (fillfactor = 50, {_VACUUM_SOON})",
    *_FOLD,
    f"ALTER TABLE message_counts SET ({_VACUUM_SOON})",
    f"ALTER TABLE send_latency_counts SET ({_VACUUM_SOON})",
)

#: Outcomes reached per SIM, which only rise (`modempool_sim_messages_total`): the kept
#: counts above follow what each message is *now* (sent -> delivered takes one from sent).
#: Insert-only changes folded into totals, as those. Version 11.
_FOLD_REACHED = (
    "WITH gone AS (DELETE FROM sim_outcome_changes RETURNING sim, state, n) "
    "INSERT INTO sim_outcome_totals AS kept (sim, state, n) "
    "SELECT sim, state, sum(n) FROM gone GROUP BY sim, state "
    "ON CONFLICT (sim, state) DO UPDATE SET n = kept.n + excluded.n")
REACHED_COUNTS = (
    # no message changes between the count of what exists and the functions that count on
    "LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE",
    f"CREATE TABLE IF NOT EXISTS sim_outcome_changes (sim TEXT NOT NULL, state TEXT NOT NULL, "
    f"n BIGINT NOT NULL) WITH ({_VACUUM_SOON})",
    "CREATE TABLE IF NOT EXISTS sim_outcome_totals (sim TEXT NOT NULL, state TEXT NOT NULL, "
    f"n BIGINT NOT NULL, PRIMARY KEY (sim, state)) WITH (fillfactor = 50, {_VACUUM_SOON})",
    # an existing spool's counters start from the messages in each outcome now (where the
    # step runs again, on a spool marked older than it is, the counts are kept)
    "INSERT INTO sim_outcome_totals (sim, state, n) SELECT sim, state, count(*) FROM messages "
    f"WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state "
    "ON CONFLICT (sim, state) DO NOTHING",
    *COUNT_FUNCTIONS,
)

#: Version 12: messages by state per account (`message_accounts`: its dashboard, `GET
#: /v1/status`) and per campaign (its progress), kept as the whole spool's are: insert-only
#: rows of changes (`account_state_changes`, `campaign_state_changes`), folded into totals.
#: The functions above count a message's changes of state for its campaign and its owner;
#: these count a message when its owner's row comes (or goes). An owner's row is written in
#: the transaction that queues its message (`scoped.own`: API sends, a sender's campaign), so
#: no other transaction changes the message's state meanwhile and no lock on it is needed
#: (a share lock over a campaign's messages deadlocked with a daemon marking them sent).
_OWNED_FUNCTION = """CREATE OR REPLACE FUNCTION account_counts_owned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_state_changes (account, state, n)
    SELECT owner.account, m.state, CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END * count(*)
    FROM owned owner JOIN messages m ON m.id = owner.message_id GROUP BY owner.account, m.state;
    RETURN NULL;
END $$"""
_FOLD_OWNERS = tuple(
    f"WITH gone AS (DELETE FROM {kind}_state_changes RETURNING {key}, state, n) "
    f"INSERT INTO {kind}_state_totals AS kept ({key}, state, n) "
    f"SELECT {key}, state, sum(n) FROM gone GROUP BY {key}, state HAVING sum(n) <> 0 "
    f"ON CONFLICT ({key}, state) DO UPDATE SET n = kept.n + excluded.n"
    for kind, key in (("account", "account"), ("campaign", "campaign_id")))
#: Taken before anything of step 12 (its indexes lock `message_accounts`, then `messages`),
#: in the order writers take them (an API send writes its message, then its owner row): a
#: writer of the running fleet between the two then finishes before the step begins, instead
#: of deadlocking with it. `message_accounts` exists before 12 only where accounts were used.
STEP_12_LOCKS = ("""DO $$ BEGIN
    LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass('message_accounts') IS NOT NULL THEN
        LOCK TABLE message_accounts IN SHARE ROW EXCLUSIVE MODE;
    END IF;
END $$""",)
ACCOUNT_COUNTS = (
    # no message nor owner changes between the counts of what exists and the triggers
    "LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE",
    "LOCK TABLE message_accounts IN SHARE ROW EXCLUSIVE MODE",
    *(statement for kind, key, type_ in (("account", "account", "TEXT"),
                                         ("campaign", "campaign_id", "BIGINT"))
      for statement in (
          f"CREATE TABLE IF NOT EXISTS {kind}_state_changes ({key} {type_} NOT NULL, "
          f"state TEXT NOT NULL, n BIGINT NOT NULL) WITH ({_VACUUM_SOON})",
          f"CREATE TABLE IF NOT EXISTS {kind}_state_totals ({key} {type_} NOT NULL, "
          f"state TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY ({key}, state)) "
          f"WITH (fillfactor = 50, {_VACUUM_SOON})")),
    "INSERT INTO account_state_totals (account, state, n) SELECT o.account, m.state, count(*) "
    "FROM message_accounts o JOIN messages m ON m.id = o.message_id GROUP BY o.account, m.state "
    "ON CONFLICT (account, state) DO NOTHING",
    "INSERT INTO campaign_state_totals (campaign_id, state, n) SELECT campaign_id, state, "
    "count(*) FROM messages WHERE campaign_id IS NOT NULL GROUP BY campaign_id, state "
    "ON CONFLICT (campaign_id, state) DO NOTHING",
    *COUNT_FUNCTIONS,
    _OWNED_FUNCTION,
    "DROP TRIGGER IF EXISTS message_counts_update ON messages",
    COUNTS_FOLLOW_UPDATES,
    "DROP TRIGGER IF EXISTS account_counts_owned ON message_accounts",
    "CREATE TRIGGER account_counts_owned AFTER INSERT ON message_accounts "
    "REFERENCING NEW TABLE AS owned FOR EACH STATEMENT EXECUTE FUNCTION account_counts_owned()",
    "DROP TRIGGER IF EXISTS account_counts_disowned ON message_accounts",
    "CREATE TRIGGER account_counts_disowned AFTER DELETE ON message_accounts "
    "REFERENCING OLD TABLE AS owned FOR EACH STATEMENT EXECUTE FUNCTION account_counts_owned()",
)

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
            if not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (_FOLD_LOCK,)).fetchone()[0]:
                return False
            if not conn.execute(_CHANGES_LEFT).fetchone()[0]:
                return False
            for statement in (*_FOLD, _FOLD_REACHED, *_FOLD_OWNERS):
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
