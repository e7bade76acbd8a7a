"""The spool's tables, written out so that a reader of the SQLite file sees the same names.

Open the file with `sqlite-utils` or Datasette: `messages` holds one row per SMS, `parts` one
row per PDU written to a modem, `inbound`/`inbound_parts` what came back, `delivery_reports`
the status reports, `sims` each SIM's status and counters, `events` an audit log.
"""

from __future__ import annotations

from modempool.spool.card_links import CARD_IMSIS
from modempool.spool.write_history import EARLIER_WRITES

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY,
    client_id    TEXT UNIQUE,            -- idempotency key given by the sender
    to_number    TEXT NOT NULL,          -- E.164
    text         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
                 ('queued','sending','sent','delivered','failed','expired','cancelled','ambiguous')),
    sim          TEXT,                   -- SIM that carried (or last tried) it
    attempts     INTEGER NOT NULL DEFAULT 0,
    priority     INTEGER NOT NULL DEFAULT 0,   -- higher goes first
    not_before   TEXT,
    expires_at   TEXT,
    campaign_id  INTEGER,
    quiet_hours  INTEGER NOT NULL DEFAULT 0,   -- 1: do not send during quiet hours
    sims         TEXT,                   -- JSON list of SIM names allowed, NULL = any
    held         INTEGER NOT NULL DEFAULT 0,   -- 1: paused (campaign on hold)
    avoid_sim    TEXT,                   -- failover: prefer another SIM than this one
    error        TEXT,
    parts_total  INTEGER,
    lease_owner  TEXT,
    lease_until  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    delivered_at TEXT
);
-- The claim walks this index in order (priority, then FIFO) and stops at the first eligible row.
CREATE INDEX IF NOT EXISTS messages_claim ON messages (state, held, priority DESC, id);
CREATE INDEX IF NOT EXISTS messages_expiry ON messages (expires_at)
    WHERE state = 'queued' AND expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_campaign ON messages (campaign_id, state);
CREATE INDEX IF NOT EXISTS messages_to ON messages (to_number, id);

CREATE TABLE IF NOT EXISTS parts (
    id                INTEGER PRIMARY KEY,
    message_id        INTEGER NOT NULL REFERENCES messages (id),
    seq               INTEGER NOT NULL,     -- 1-based part number
    total             INTEGER,
    attempt           INTEGER NOT NULL,     -- messages.attempts when it was written
    reference         INTEGER,              -- concatenation reference (UDH)
    message_reference INTEGER,              -- TP-MR returned by +CMGS
    sim               TEXT,
    state             TEXT NOT NULL CHECK (state IN
                      ('writing','sent','failed','ambiguous','delivered','undelivered')),
    writing_at        TEXT,                 -- set durably before the PDU goes to the modem
    sent_at           TEXT,
    status            INTEGER,              -- TP-Status of the delivery report
    status_at         TEXT,
    UNIQUE (message_id, seq)
);
CREATE INDEX IF NOT EXISTS parts_report ON parts (sim, message_reference, sent_at);
CREATE INDEX IF NOT EXISTS parts_sim_sent ON parts (sim, sent_at);

CREATE TABLE IF NOT EXISTS inbound (
    id          INTEGER PRIMARY KEY,
    sender      TEXT NOT NULL,
    sim         TEXT,
    text        TEXT NOT NULL,
    received_at TEXT NOT NULL,   -- service centre time stamp when known
    stored_at   TEXT NOT NULL,
    parts       INTEGER NOT NULL DEFAULT 1,
    complete    INTEGER NOT NULL DEFAULT 1,   -- 0: some parts never arrived
    read        INTEGER NOT NULL DEFAULT 0,
    -- sim|sender|service centre time|text digest: a message the modem hands over again (the
    -- daemon stopped between storing it and deleting it from the modem) is stored once.
    dedupe_key  TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS inbound_received ON inbound (received_at);
CREATE INDEX IF NOT EXISTS inbound_sender ON inbound (sender, received_at);

CREATE TABLE IF NOT EXISTS inbound_parts (
    id          INTEGER PRIMARY KEY,
    sim         TEXT NOT NULL,
    sender      TEXT NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    text        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    stored_at   TEXT NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,  -- 1: part of a message already stored in `inbound`
    UNIQUE (sim, sender, reference, total, seq, received_at)
);

CREATE TABLE IF NOT EXISTS delivery_reports (
    id                INTEGER PRIMARY KEY,
    sim               TEXT,
    message_reference INTEGER NOT NULL,
    recipient         TEXT,
    status            INTEGER NOT NULL,
    delivered         INTEGER NOT NULL,
    final             INTEGER NOT NULL DEFAULT 1,
    received_at       TEXT NOT NULL,
    part_id           INTEGER REFERENCES parts (id),
    message_id        INTEGER REFERENCES messages (id)
);

CREATE TABLE IF NOT EXISTS sims (
    name              TEXT PRIMARY KEY,
    port              TEXT,
    imsi              TEXT,
    iccid             TEXT,
    msisdn            TEXT,
    operator          TEXT,
    state             TEXT,
    signal            INTEGER,
    sent_today        INTEGER NOT NULL DEFAULT 0,
    day               TEXT,          -- local date sent_today counts for
    sent_month        INTEGER NOT NULL DEFAULT 0,
    month             TEXT,          -- local YYYY-MM sent_month counts for
    sent_total        INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    quarantined_until TEXT,
    updated_at        TEXT
);

CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message_id INTEGER,
    sim        TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS events_message ON events (message_id);

"""

SIM_COLUMNS = frozenset(
    {
        "port", "imsi", "iccid", "msisdn", "operator", "state", "signal", "sent_today", "day",
        "sent_month", "month", "sent_total", "errors", "last_error", "quarantined_until",
        "balance", "balance_text", "balance_at", "no_credit",
    }
)

#: One row per daemon run: its heartbeat tells `status` whether the SIM states are current, and
#: recovery a dead owner's leases from a live one's (several daemons may share one database).
DAEMONS = """
CREATE TABLE IF NOT EXISTS daemons (
    owner        TEXT PRIMARY KEY,       -- host:pid, the prefix of its lease owners
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,          -- written every few seconds by the daemon's loop
    stopped_at   TEXT                    -- set by a graceful stop; NULL while running or killed
);
"""

#: Requests for the daemon that owns a SIM's modem (`modempool ussd`): a front end inserts one,
#: the daemon answers it. Any process that reaches the spool can ask, whichever host the daemon
#: runs on.
REQUESTS = """
CREATE TABLE IF NOT EXISTS requests (
    id         INTEGER PRIMARY KEY,
    sim        TEXT NOT NULL,
    kind       TEXT NOT NULL,            -- 'ussd'
    argument   TEXT,                     -- the USSD code
    state      TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending','running','done','failed')),
    answer     TEXT,
    error      TEXT,
    owner      TEXT,                     -- the daemon (host:pid) that took it
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_pending ON requests (state, sim);
"""

#: Each SIM's credit as its operator last told it (`[[balance]]` in the config).
SIM_BALANCE = """
ALTER TABLE sims ADD COLUMN balance REAL;         -- the amount read from the answer
ALTER TABLE sims ADD COLUMN balance_text TEXT;    -- the answer itself (USSD or SMS)
ALTER TABLE sims ADD COLUMN balance_at TEXT;
ALTER TABLE sims ADD COLUMN no_credit INTEGER NOT NULL DEFAULT 0;  -- 1: out of rotation until topped up
"""

#: A PIN a SIM refused: never entered again (three tries lock the SIM) until the configured PIN
#: changes. Keyed by the SIM's ICCID, or by the port where the ICCID cannot be read first.
REFUSED_PINS = """
CREATE TABLE IF NOT EXISTS refused_pins (
    sim_key       TEXT PRIMARY KEY,   -- "iccid:<ICCID>" or "port:<device>"
    pin_hash      TEXT NOT NULL,      -- SHA-256 of the key and the refused PIN, never the PIN
    sim           TEXT,               -- the configured SIM (modem) that tried it
    reason        TEXT,               -- what the SIM answered
    attempts_left INTEGER,            -- PIN attempts left then (AT+CPINR / vendor), NULL unknown
    refused_at    TEXT NOT NULL
);
"""

#: Ambiguous parts by SIM and write time: a delivery report that matches no sent part looks for
#: one among them (`ambiguity.settle_by_report`) without reading every part.
AMBIGUOUS_PARTS = """
CREATE INDEX IF NOT EXISTS parts_ambiguous ON parts (sim, writing_at) WHERE state = 'ambiguous';
"""

#: A SIM's counters by the SIM itself (its ICCID, where the modem reported one), not by the
#: modem it sits in: a SIM moved to another modem or box keeps its day and month, and daemons on
#: several hosts add to the same row. Without an ICCID, by the SIM's configured name. The
#: counters of `sims` stay per modem (what each modem sent), for status and metrics. At the
#: upgrade, each SIM starts from its modem's counters (the sum, for an ICCID seen in two).
SIM_COUNTERS = """
CREATE TABLE IF NOT EXISTS sim_counters (
    sim_key     TEXT PRIMARY KEY,     -- "iccid:<ICCID>" or "name:<SIM name>"
    sent_today  INTEGER NOT NULL DEFAULT 0,
    day         TEXT,                 -- local date sent_today counts for
    sent_month  INTEGER NOT NULL DEFAULT 0,
    month       TEXT,                 -- local YYYY-MM sent_month counts for
    sent_total  INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT
);
INSERT INTO sim_counters (sim_key, sent_today, day, sent_month, month, sent_total, updated_at)
SELECT CASE WHEN iccid IS NOT NULL AND iccid <> '' THEN 'iccid:' || iccid ELSE 'name:' || name END
       AS counted_as, sum(sent_today), max(day), sum(sent_month), max(month), sum(sent_total),
       max(updated_at)
FROM sims GROUP BY counted_as;
"""

#: Which account queued a message (the API's and the console's messages), written in the enqueue
#: transaction (`accounts.record_owner`); the accounts module made it with the accounts before
#: version 12, which makes it part of every spool: each account's kept counts by state are
#: triggers on it (`ACCOUNT_COUNTS` of each engine). A message's owner row follows its message.
MESSAGE_OWNERS = """
CREATE TABLE IF NOT EXISTS message_accounts (
    message_id  INTEGER PRIMARY KEY REFERENCES messages (id),
    account     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS message_accounts_by_account ON message_accounts (account, message_id);
CREATE INDEX IF NOT EXISTS message_accounts_by_time ON message_accounts (account, created_at);
-- A campaign's send rate reads what it sent in the last minutes (`reports.campaign_sent_since`)
-- from here, not from every message of the campaign; other messages are not in it.
CREATE INDEX IF NOT EXISTS messages_campaign_sent ON messages (campaign_id, sent_at)
    WHERE campaign_id IS NOT NULL;
"""

#: The operator hooks (opt-out, auto-reply, forwarding) a stored SMS still has to run, kept in its
#: row from the transaction that stores it (`inbound_hooks.py`): each hook moves `hooks_next` on
#: in the transaction of its own writes, the last sets it NULL; a daemon killed between the two
#: leaves it for the next start, or for a live daemon once `hooks_owner` is judged dead. Rows
#: stored before version 14 are not pending (NULL): whether their hooks ran cannot be known.
INBOUND_HOOKS = """
ALTER TABLE inbound ADD COLUMN hooks_next INTEGER;   -- index of the first hook still to run; NULL: none
ALTER TABLE inbound ADD COLUMN hooks_owner TEXT;     -- the daemon run (host:pid:place-run) running them
CREATE INDEX IF NOT EXISTS inbound_hooks_pending ON inbound (hooks_owner, sender, id)
    WHERE hooks_next IS NOT NULL;
"""

#: The same marks in a table of their own (`inbound_hooks.py`): the storing transaction inserts
#: a row, the hooks' transaction moves `next_hook` on or deletes it. In `inbound`, clearing the
#: mark rewrote the SMS's entries in every index of the table (an UPDATE of a column a partial
#: index's condition reads is never HOT on PostgreSQL, and the text's trigram index is large);
#: here it touches one small row and its two indexes. The marks pending at the upgrade are
#: carried over, each with its run and step. By sender: a sender's SMS run in order, and one
#: waits while an earlier one of the sender is pending in another run. No foreign key: nothing
#: deletes an SMS, and the check would cost a lookup in `inbound` at each store.
HOOKS_TABLE = """
CREATE TABLE IF NOT EXISTS inbound_hooks (
    inbound_id  INTEGER PRIMARY KEY,  -- the SMS (inbound.id; given, as message_accounts' key)
    sender      TEXT NOT NULL,        -- its sender: one sender's hooks run in order
    next_hook   INTEGER NOT NULL DEFAULT 0,   -- index of the first hook still to run
    owner       TEXT                  -- the daemon run (host:pid:place-run) running them
);
CREATE INDEX IF NOT EXISTS inbound_hooks_by_sender ON inbound_hooks (sender, inbound_id);
INSERT INTO inbound_hooks (inbound_id, sender, next_hook, owner)
SELECT id, sender, hooks_next, hooks_owner FROM inbound WHERE hooks_next IS NOT NULL;
DROP INDEX inbound_hooks_pending;
ALTER TABLE inbound DROP COLUMN hooks_next;
ALTER TABLE inbound DROP COLUMN hooks_owner;
"""

#: Which live daemon serves each SIM card (by ICCID): one at a time, so that the quota a daemon
#: decides in its memory from the card's counts (`sim_counters`, read when it takes the card) is
#: the card's whole day. `sims` cannot say it: it is keyed by modem name, which two boxes may
#: share, and a cloned card sits in two modems at once (`card_holders.py`).
SIM_HOLDERS = """
CREATE TABLE IF NOT EXISTS sim_holders (
    iccid  TEXT PRIMARY KEY,
    owner  TEXT NOT NULL,            -- the daemon run serving it (host:pid:place-run)
    modem  TEXT NOT NULL,            -- the name of its modem there
    since  TEXT NOT NULL             -- when that daemon took it
);
"""

#: When each daemon run's process started (`box.ports.process_start`: clock ticks after boot), beside
#: its pid: in this process table the pid names that process only while the start agrees. After a
#: kill the kernel may give the pid to any new process, which must not keep the dead run's leases
#: and SIM cards held (`daemons.judge`). Rows written before are judged by their pid alone. Ticks
#: after boot outgrow a 32-bit integer after 248 days of uptime at 100 Hz: a 64-bit one.
PROCESS_START = """
ALTER TABLE daemons ADD COLUMN process_start BIGINT;
"""

#: The forward log's first index named each row's whole command line beside the SMS: a command
#: longer than PostgreSQL's btree row (about 2.7 KB) made every insert into `forward_log` fail.
#: Its index is now by the SMS alone (`operator/forwarding.py`); the old one goes. `IF EXISTS`:
#: the table is made only where forwarding was used.
FORWARD_LOG_INDEX = """
DROP INDEX IF EXISTS forward_log_by_inbound;
"""

#: version -> the script that brings a spool of the version before up to it. A spool records
#: its version (SQLite: PRAGMA user_version; PostgreSQL: table modempool_schema); opening it
#: runs the scripts it lacks in one transaction, and refuses a version above SCHEMA_VERSION.
#: Version 8 keeps the counts that /metrics and the dashboard read (messages by state, finished
#: ones by SIM, the enqueue-to-sent histogram) in the database, each engine its own way: no
#: shared script. PostgreSQL's are `postgres_count_tables.KEPT_COUNTS` (its step 8); SQLite makes its
#: counting triggers when it opens any spool (`STATE_COUNTS`, `METRIC_COUNTS`). Version 9
#: is PostgreSQL's too: its queue indexes and autovacuum (`QUEUE_INDEXES`, postgres_schema.py);
#: and version 10: the totals its kept counts are folded into (`postgres_count_tables.KEPT_TOTALS`).
#: Version 11: outcomes reached per SIM, counts that only rise (`postgres_count_tables.REACHED_COUNTS`;
#: SQLite makes its `REACHED_COUNTS` when it opens any spool).
#: Version 12: `message_accounts` in every spool, a campaign's recent sends indexed, and the
#: messages by state kept per account and per campaign, each engine its own way (`ACCOUNT_COUNTS` in sqlite_counts.py and
#: postgres_count_tables.py), in the upgrade's transaction on both.
#: Version 13: the webhook outbox, where the webhooks were used before, gets its `subject`
#: column, its pending message events their subject and its index (each engine's
#: `OUTBOX_SUBJECT`, in its `OWN_STEPS`): a message's events go out in order, and an older
#: modempool, whose triggers write no subject, refuses the spool rather than replace them.
#: Version 14: a received SMS's hooks still to run, durable (`INBOUND_HOOKS`); version 15: their
#: marks in a table of their own (`HOOKS_TABLE`).
#: Version 16: the daemon serving each SIM card (`SIM_HOLDERS`). Version 17: when each daemon's
#: process started (`PROCESS_START`). Version 18: a part's writes that a new attempt overwrote,
#: and the order of writes (`write_history.py`; each engine's column and trigger in its
#: `OWN_STEPS`). Version 19: the forward log's index by the SMS alone (`FORWARD_LOG_INDEX`).
#: Version 20: the card each write was made by (`write_history.py`, each engine's `OWN_STEPS`).
#: Version 21: a card's IMSI beside its ICCID in `sim_counters` (each engine's step in its
#: `OWN_STEPS`: `sims.SQLITE_STEP`, `sims.POSTGRES_STEP`).
#: Version 22: the SIM card each delivery report came back to, and the ambiguous parts and
#: unmatched reports indexed by card (`report_cards.py`, each engine's step in its `OWN_STEPS`).
#: Version 23: every IMSI read beside an ICCID (`card_links.CARD_IMSIS`: a multi-IMSI card's
#: earlier IMSIs), and the sent parts indexed by card and TP-MR, for a report's match by its
#: card (`report_cards.SENT_BY_CARD_STEP`, in each engine's `OWN_STEPS`).
MIGRATIONS: dict[int, str] = {1: SCHEMA, 2: DAEMONS, 3: REQUESTS, 4: SIM_BALANCE,
                              5: REFUSED_PINS, 6: AMBIGUOUS_PARTS, 7: SIM_COUNTERS, 8: "",
                              9: "", 10: "", 11: "", 12: MESSAGE_OWNERS, 13: "",
                              14: INBOUND_HOOKS, 15: HOOKS_TABLE, 16: SIM_HOLDERS,
                              17: PROCESS_START, 18: EARLIER_WRITES, 19: FORWARD_LOG_INDEX,
                              20: "", 21: "", 22: "", 23: CARD_IMSIS}
SCHEMA_VERSION = max(MIGRATIONS)
SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")

#: The finished states, as SQL: what both engines' triggers count per SIM (/metrics' outcomes,
#: those reached) and what a message's webhook events report. One list for both engines.
FINISHED = "('sent', 'delivered', 'failed', 'ambiguous')"

#: Upper bounds (seconds) of the enqueue-to-sent histogram's buckets (and +Inf after them).
SEND_LATENCY_BOUNDS = (1, 5, 10, 30, 60, 300, 900, 3600, 21600)


def latency_bucket(seconds: str) -> str:
    """SQL for the index into SEND_LATENCY_BOUNDS of the SQL expression `seconds` (the
    first bound it does not pass; one past the last for more)."""
    whens = " ".join(f"WHEN {seconds} <= {bound} THEN {index}"
                     for index, bound in enumerate(SEND_LATENCY_BOUNDS))
    return f"CASE {whens} ELSE {len(SEND_LATENCY_BOUNDS)} END"


def too_new(where: str, version: int) -> str:
    """The refusal of a spool written by a newer modempool."""
    return (f"the spool {where} has schema version {version}, newer than this modempool "
            f"understands ({SCHEMA_VERSION}): upgrade modempool; the spool was left untouched")
