"""The counts SQLite keeps by triggers in the writing transaction, so that no read scans
messages: messages by state (the dashboard), per account and per campaign; what /metrics asks
(enqueue-to-sent latency, outcomes per SIM now and reached). One row per count, updated in
place: SQLite's writers take turns anyway (PostgreSQL's way is postgres_counts.py).
"""

from __future__ import annotations

from modempool.spool.schema import FINISHED, latency_bucket

# The dashboard's queue by state (issue 17): counting a million rows by state takes a few
# hundred milliseconds, so the count of each state is kept by triggers, in the writing
# transaction. The executemany of an enqueue pays a one-row UPDATE per message.
STATE_COUNTS = (
    "CREATE TABLE message_state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "INSERT INTO message_state_counts (state, n) SELECT state, count(*) FROM messages "
    "GROUP BY state",
    "CREATE TRIGGER message_state_counts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO message_state_counts (state, n) VALUES (new.state, 1) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER message_state_counts_delete AFTER DELETE ON messages BEGIN "
    "UPDATE message_state_counts SET n = n - 1 WHERE state = old.state; END",
    "CREATE TRIGGER message_state_counts_update AFTER UPDATE OF state ON messages "
    "WHEN old.state IS NOT new.state BEGIN "
    "UPDATE message_state_counts SET n = n - 1 WHERE state = old.state; "
    "INSERT INTO message_state_counts (state, n) VALUES (new.state, 1) "
    "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
)

# What /metrics asks on every scrape (issue 15), kept by triggers in the writing transaction
# instead of read from every sent message each time: each message's time from enqueue to sent
# observed once, when its sent_at is first set (a bucket index, the count and the seconds),
# and the finished messages per SIM and state.
_SECONDS = "(julianday({row}.sent_at) - julianday({row}.created_at)) * 86400.0"
METRIC_COUNTS = (
    "CREATE TABLE send_latency (bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
    "seconds REAL NOT NULL)",
    f"INSERT INTO send_latency (bucket, n, seconds) SELECT {latency_bucket('d')} AS b, count(*), "
    f"sum(d) FROM (SELECT {_SECONDS.format(row='messages')} AS d FROM messages "
    "WHERE sent_at IS NOT NULL) WHERE d IS NOT NULL GROUP BY b",
    "CREATE TRIGGER send_latency_observe AFTER UPDATE OF sent_at ON messages "
    "WHEN old.sent_at IS NULL AND new.sent_at IS NOT NULL BEGIN "
    f"INSERT INTO send_latency (bucket, n, seconds) SELECT {latency_bucket('d')}, 1, d "
    f"FROM (SELECT {_SECONDS.format(row='new')} AS d) WHERE d IS NOT NULL "
    "ON CONFLICT (bucket) DO UPDATE SET n = n + 1, seconds = seconds + excluded.seconds; END",
    "CREATE TABLE sim_outcome_counts (sim TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (sim, state))",
    "INSERT INTO sim_outcome_counts (sim, state, n) SELECT sim, state, count(*) FROM messages "
    f"WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state",
    "CREATE TRIGGER sim_outcome_counts_update AFTER UPDATE OF state, sim ON messages "
    "WHEN old.state IS NOT new.state OR old.sim IS NOT new.sim BEGIN "
    "UPDATE sim_outcome_counts SET n = n - 1 WHERE sim = old.sim AND state = old.state; "
    "INSERT INTO sim_outcome_counts (sim, state, n) SELECT new.sim, new.state, 1 "
    f"WHERE new.sim IS NOT NULL AND new.state IN {FINISHED} "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_counts_insert AFTER INSERT ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} BEGIN "
    "INSERT INTO sim_outcome_counts (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_counts_delete AFTER DELETE ON messages BEGIN "
    "UPDATE sim_outcome_counts SET n = n - 1 WHERE sim = old.sim AND state = old.state; END",
)

#: Outcomes reached per SIM (`modempool_sim_messages_total`): added to when a message enters a
#: finished state, never taken from (sim_outcome_counts follows what each message is now). An
#: existing spool's counts start from the messages in each outcome when it is opened.
REACHED_COUNTS = (
    "CREATE TABLE sim_outcome_totals (sim TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (sim, state))",
    "INSERT INTO sim_outcome_totals (sim, state, n) SELECT sim, state, count(*) FROM messages "
    f"WHERE sim IS NOT NULL AND state IN {FINISHED} GROUP BY sim, state",
    "CREATE TRIGGER sim_outcome_totals_update AFTER UPDATE OF state, sim ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} "
    "AND (old.state IS NOT new.state OR old.sim IS NOT new.sim) BEGIN "
    "INSERT INTO sim_outcome_totals (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
    "CREATE TRIGGER sim_outcome_totals_insert AFTER INSERT ON messages "
    f"WHEN new.sim IS NOT NULL AND new.state IN {FINISHED} BEGIN "
    "INSERT INTO sim_outcome_totals (sim, state, n) VALUES (new.sim, new.state, 1) "
    "ON CONFLICT (sim, state) DO UPDATE SET n = n + 1; END",
)


#: Messages by state per account (its dashboard, `GET /v1/status`) and per campaign (its
#: progress), kept as the whole spool's are (STATE_COUNTS): one row per count, updated in the
#: writing transaction. A message counts for an account once both its row and its owner's
#: row (`message_accounts`, written after it) exist. Made by schema step 12 in the upgrade's
#: transaction, from the rows there are.
_OWNER_OF = "(SELECT account FROM message_accounts WHERE message_id = {row}.id)"
_ADD = "ON CONFLICT ({key}, state) DO UPDATE SET n = n + 1"
ACCOUNT_COUNTS = (
    "CREATE TABLE account_state_counts (account TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (account, state))",
    "INSERT INTO account_state_counts (account, state, n) SELECT o.account, m.state, count(*) "
    "FROM message_accounts o JOIN messages m ON m.id = o.message_id GROUP BY o.account, m.state",
    "CREATE TRIGGER account_state_counts_owned AFTER INSERT ON message_accounts BEGIN "
    "INSERT INTO account_state_counts (account, state, n) SELECT new.account, state, 1 "
    f"FROM messages WHERE id = new.message_id {_ADD.format(key='account')}; END",
    "CREATE TRIGGER account_state_counts_disowned AFTER DELETE ON message_accounts BEGIN "
    "UPDATE account_state_counts SET n = n - 1 WHERE account = old.account "
    "AND state = (SELECT state FROM messages WHERE id = old.message_id); END",
    "CREATE TRIGGER account_state_counts_update AFTER UPDATE OF state ON messages "
    "WHEN old.state IS NOT new.state BEGIN "
    f"UPDATE account_state_counts SET n = n - 1 WHERE account = {_OWNER_OF.format(row='new')} "
    "AND state = old.state; "
    "INSERT INTO account_state_counts (account, state, n) SELECT account, new.state, 1 "
    f"FROM message_accounts WHERE message_id = new.id {_ADD.format(key='account')}; END",
    "CREATE TRIGGER account_state_counts_delete AFTER DELETE ON messages BEGIN "
    f"UPDATE account_state_counts SET n = n - 1 WHERE account = {_OWNER_OF.format(row='old')} "
    "AND state = old.state; END",
    "CREATE TABLE campaign_state_counts (campaign_id INTEGER NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (campaign_id, state))",
    "INSERT INTO campaign_state_counts (campaign_id, state, n) SELECT campaign_id, state, "
    "count(*) FROM messages WHERE campaign_id IS NOT NULL GROUP BY campaign_id, state",
    "CREATE TRIGGER campaign_state_counts_insert AFTER INSERT ON messages "
    "WHEN new.campaign_id IS NOT NULL BEGIN "
    "INSERT INTO campaign_state_counts (campaign_id, state, n) "
    f"VALUES (new.campaign_id, new.state, 1) {_ADD.format(key='campaign_id')}; END",
    "CREATE TRIGGER campaign_state_counts_update AFTER UPDATE OF state, campaign_id ON messages "
    "WHEN old.state IS NOT new.state OR old.campaign_id IS NOT new.campaign_id BEGIN "
    "UPDATE campaign_state_counts SET n = n - 1 WHERE campaign_id = old.campaign_id "
    "AND state = old.state; "
    "INSERT INTO campaign_state_counts (campaign_id, state, n) "
    "SELECT new.campaign_id, new.state, 1 WHERE new.campaign_id IS NOT NULL "
    f"{_ADD.format(key='campaign_id')}; END",
    "CREATE TRIGGER campaign_state_counts_delete AFTER DELETE ON messages "
    "WHEN old.campaign_id IS NOT NULL BEGIN "
    "UPDATE campaign_state_counts SET n = n - 1 WHERE campaign_id = old.campaign_id "
    "AND state = old.state; END",
)
