"""Webhook events on SQLite (issue 15): the triggers that write each event into
`webhook_outbox` in the transaction of the change it reports (see
`Engine.ensure_webhook_outbox`), and the outbox's subjects (schema step 13). PostgreSQL's
PL/pgSQL twins are in postgres_webhooks.py.
"""

from __future__ import annotations

import sqlite3

from modempool.spool.schema import FINISHED

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_NEW_ID = "'msg_' || lower(hex(randomblob(12)))"
#: In the trigger that writes Kannel callbacks: an older one (without it) is made again.
DLR_MARK = "the message id as the payload"
#: ... and since its events carry their subject (the message), this too.
SUBJECT_MARK = "each event's subject"

#: The outbox of a spool from before subjects (schema step 13): the column, the subjects of its
#: pending message events (so that they too go in order), and the index `claim_due` asks (a
#: later event of a subject waits while an earlier one to the same endpoint is pending).
OUTBOX_SUBJECT = (
    "ALTER TABLE webhook_outbox ADD COLUMN subject TEXT",
    "UPDATE webhook_outbox SET subject = 'message:' || json_extract(payload, '$.data.id') "
    "WHERE state = 'pending' AND webhook_id IS NOT NULL AND type LIKE 'message.%'",
)
SUBJECT_INDEX = ("CREATE INDEX IF NOT EXISTS webhook_outbox_subject ON webhook_outbox "
                 "(webhook_id, subject, id) WHERE state = 'pending' AND subject IS NOT NULL")

WEBHOOK_OUTBOX = (
    f"""CREATE TRIGGER IF NOT EXISTS webhook_message_state AFTER UPDATE OF state ON messages
WHEN new.state != old.state AND new.state IN {FINISHED}
BEGIN
    -- {SUBJECT_MARK}: a message's events to one endpoint go in order (`Webhooks.claim_due`)
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at,
                                subject)
    SELECT {_NEW_ID}, w.id, w.url, 'message.' || new.state,
        json_object('type', 'message.' || new.state, 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'to', new.to_number, 'state', new.state, 'sim', new.sim,
            'parts', new.parts_total, 'attempts', new.attempts, 'error', new.error,
            'account', (SELECT account FROM message_accounts WHERE message_id = new.id),
            'created_at', new.created_at, 'sent_at', new.sent_at,
            'delivered_at', new.delivered_at)),
        {_NOW}, {_NOW}, 'message:' || new.id
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'message.' || new.state)
      AND (w.account IS NULL
           OR w.account = (SELECT account FROM message_accounts WHERE message_id = new.id));
    -- {DLR_MARK}: a message's callbacks are delivered in order (`Webhooks.claim_due`)
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, NULL,
        replace(replace(d.url, '%d', c.code), '%p', replace(new.to_number, '+', '%2B')),
        'kannel.dlr', CAST(new.id AS TEXT), {_NOW}, {_NOW}
    FROM kannel_dlr d, (SELECT CASE new.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 8
        WHEN 'failed' THEN CASE WHEN new.sent_at IS NULL THEN 16 ELSE 2 END
        ELSE 0 END AS code) c
    WHERE d.message_id = new.id AND (d.mask & c.code) != 0;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS webhook_inbound AFTER INSERT ON inbound
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'sms.received',
        json_object('type', 'sms.received', 'timestamp', {_NOW}, 'data', json_object(
            'id', new.id, 'from', new.sender, 'sim', new.sim, 'text', new.text,
            'parts', new.parts, 'complete', json(CASE new.complete WHEN 1 THEN 'true' ELSE 'false' END),
            'received_at', new.received_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'sms.received')
      AND (w.account IS NULL OR EXISTS (
          SELECT 1 FROM accounts a WHERE a.name = w.account AND (a.role = 'admin'
              OR a.sims IS NULL OR EXISTS (SELECT 1 FROM json_each(a.sims) WHERE value = new.sim))));
END""",
    f"""CREATE TRIGGER IF NOT EXISTS webhook_optout AFTER INSERT ON optouts
BEGIN
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, w.id, w.url, 'optout.added',
        json_object('type', 'optout.added', 'timestamp', {_NOW}, 'data', json_object(
            'number', new.number, 'keyword', new.keyword, 'source', new.source,
            'inbound_id', new.inbound_id, 'created_at', new.created_at)),
        {_NOW}, {_NOW}
    FROM webhooks w
    WHERE EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'optout.added');
END""",
)


def outbox_subject_step(conn: sqlite3.Connection) -> None:
    """Step 13: an outbox made before subjects gets the column, its pending message events
    their subject, and the index (a spool whose webhooks were never used has no outbox)."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(webhook_outbox)")]
    if columns and "subject" not in columns:
        for statement in OUTBOX_SUBJECT:
            conn.execute(statement)
    if columns:
        conn.execute(SUBJECT_INDEX)
