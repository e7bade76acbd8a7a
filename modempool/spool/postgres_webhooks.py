"""Webhook events on PostgreSQL (issue 15): the PL/pgSQL twins of SQLite's triggers
(sqlite_webhooks.py), row triggers that write each event into `webhook_outbox` in the
transaction of the change it reports, and the outbox's subjects (schema step 13). The payload
has the same keys in the same order on both engines.
"""

from __future__ import annotations

from modempool.spool.schema import FINISHED

#: The index `Webhooks.claim_due` asks of each message event's subject (its order).
SUBJECT_INDEX = ("CREATE INDEX IF NOT EXISTS webhook_outbox_subject ON webhook_outbox "
                 "(webhook_id, subject, id) WHERE state = 'pending' AND subject IS NOT NULL")
#: Schema step 13: an outbox made before subjects (where the webhooks were used) gets the
#: column, the subjects of its pending message events, and the index.
OUTBOX_SUBJECT = (
    "DO $$ BEGIN IF to_regclass('webhook_outbox') IS NOT NULL THEN "
    "ALTER TABLE webhook_outbox ADD COLUMN IF NOT EXISTS subject text; "
    "UPDATE webhook_outbox SET subject = 'message:' || (CAST(payload AS json) #>> '{data,id}') "
    "WHERE state = 'pending' AND webhook_id IS NOT NULL AND type LIKE 'message.%' "
    f"AND subject IS NULL; {SUBJECT_INDEX}; END IF; END $$",
)

_NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_NEW_ID = "'msg_' || replace(CAST(gen_random_uuid() AS text), '-', '')"

#: In each trigger function's text: an older one (without it) is replaced at open.
OUTBOX_VERSION = "modempool webhook outbox 4"   # 3: a Kannel callback's payload, its message id
                                                # 4: each message event's subject (its order)


def _event_trigger(name: str, fire: str, event: str, data: str, where: str = "",
                   joins: str = "", more: str = "", subject: str = "NULL") -> tuple[str, str]:
    """A PL/pgSQL function that writes event `event` (an SQL expression) with payload fields
    `data` for each webhook subscribed to it (and matching `where`), and its trigger;
    `subject` says what the event is about where several events of one thing go in order."""
    function = f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
-- {OUTBOX_VERSION}
DECLARE
    stamp text := {_NOW};
BEGIN
    IF current_setting('modempool.copying', true) = 'on' THEN
        RETURN NULL;   -- rows copied by `spool migrate`: their events were the source's
    END IF;
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at,
                                subject)
    SELECT {_NEW_ID}, w.id, w.url, {event},
        CAST(json_build_object('type', {event}, 'timestamp', stamp,
                               'data', json_build_object({data})) AS text), stamp, stamp,
        {subject}
    FROM webhooks w{joins}
    WHERE jsonb_exists(CAST(w.events AS jsonb), {event}){where};{more}
    RETURN NULL;
END $$"""
    return function, f"CREATE OR REPLACE TRIGGER {name} {fire} EXECUTE FUNCTION {name}()"


_KANNEL_DLR = f"""
    INSERT INTO webhook_outbox (event_id, webhook_id, url, type, payload, created_at, next_at)
    SELECT {_NEW_ID}, NULL,
        replace(replace(d.url, '%d', CAST(c.code AS text)), '%p',
                replace(NEW.to_number, '+', '%2B')),
        'kannel.dlr', CAST(NEW.id AS text), stamp, stamp
    FROM kannel_dlr d, (SELECT CASE NEW.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 8
        WHEN 'failed' THEN CASE WHEN NEW.sent_at IS NULL THEN 16 ELSE 2 END
        ELSE 0 END AS code) c
    WHERE d.message_id = NEW.id AND (d.mask & c.code) != 0;"""

WEBHOOK_OUTBOX = (
    *_event_trigger(
        "webhook_message_state",
        "AFTER UPDATE OF state ON messages FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM "
        f"OLD.state AND NEW.state IN {FINISHED})",
        "'message.' || NEW.state",
        "'id', NEW.id, 'to', NEW.to_number, 'state', NEW.state, 'sim', NEW.sim, "
        "'parts', NEW.parts_total, 'attempts', NEW.attempts, 'error', NEW.error, "
        "'account', o.account, 'created_at', NEW.created_at, 'sent_at', NEW.sent_at, "
        "'delivered_at', NEW.delivered_at",
        where=" AND (w.account IS NULL OR w.account = o.account)",
        joins=" LEFT JOIN message_accounts o ON o.message_id = NEW.id",
        more=_KANNEL_DLR, subject="'message:' || NEW.id"),
    *_event_trigger(
        "webhook_inbound", "AFTER INSERT ON inbound FOR EACH ROW", "'sms.received'",
        "'id', NEW.id, 'from', NEW.sender, 'sim', NEW.sim, 'text', NEW.text, "
        "'parts', NEW.parts, 'complete', NEW.complete = 1, 'received_at', NEW.received_at",
        where=" AND (w.account IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.name = "
              "w.account AND (a.role = 'admin' OR a.sims IS NULL "
              "OR jsonb_exists(CAST(a.sims AS jsonb), NEW.sim))))"),
    *_event_trigger(
        "webhook_optout", "AFTER INSERT ON optouts FOR EACH ROW", "'optout.added'",
        "'number', NEW.number, 'keyword', NEW.keyword, 'source', NEW.source, "
        "'inbound_id', NEW.inbound_id, 'created_at', NEW.created_at"),
)
