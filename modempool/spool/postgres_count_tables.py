"""The tables, trigger functions and triggers that keep the counts on PostgreSQL, the schema
steps that make them (versions 8 to 12), and the folds that move their rows of changes into
totals.

Why they are kept this way (insert-only rows of changes, folded into totals, the tables of
changes vacuumed) is told in postgres_counts.py, which reads them and runs the folds;
postgres_schema.py runs the steps.
"""

from __future__ import annotations

from modempool.spool.schema import FINISHED, latency_bucket

#: Any fixed number: one fold at a time (another that finds it taken leaves the work to it).
FOLD_LOCK = 0x6D70636E74

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
FOLD_KEPT = (
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
    f"SELECT pg_advisory_xact_lock({FOLD_LOCK})",
    "DROP INDEX IF EXISTS message_counts_sums",
    "DROP INDEX IF EXISTS send_latency_counts_sums",
    "CREATE TABLE IF NOT EXISTS message_count_totals (state TEXT NOT NULL, sim TEXT NOT NULL, "
    f"n BIGINT NOT NULL, PRIMARY KEY (state, sim)) WITH (fillfactor = 50, {_VACUUM_SOON})",
    "CREATE TABLE IF NOT EXISTS send_latency_totals (bucket INTEGER PRIMARY KEY, "
    f"n BIGINT NOT NULL, seconds DOUBLE PRECISION NOT NULL) WITH (fillfactor = 50, {_VACUUM_SOON})",
    *FOLD_KEPT,
    f"ALTER TABLE message_counts SET ({_VACUUM_SOON})",
    f"ALTER TABLE send_latency_counts SET ({_VACUUM_SOON})",
)

#: Outcomes reached per SIM, which only rise (`modempool_sim_messages_total`): the kept
#: counts above follow what each message is *now* (sent -> delivered takes one from sent).
#: Insert-only changes folded into totals, as those. Version 11.
FOLD_REACHED = (
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
FOLD_OWNERS = tuple(
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
