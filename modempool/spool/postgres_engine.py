"""The spool on PostgreSQL: one database shared by daemons on several hosts.

Connections come from a psycopg 3 pool. A write transaction takes one connection for its
whole length (nested calls in the same thread join it); reads outside a transaction borrow
one for a statement. The rules' SQL is written once with `?` / `:name` parameters: this file
turns them into psycopg's, and supplies what PostgreSQL does differently: `FOR UPDATE SKIP
LOCKED` for claims (two daemons never wait on, nor take, the same message), ids from the
table's sequence, JSON lists as `jsonb`, `LISTEN/NOTIFY` to wake idle dispatchers, and the
schema version in table `modempool_schema`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from modempool.errors import InvalidText
from modempool.masked import one_line
from modempool.spool.database_errors import forbidden, not_sent
from modempool.spool.engine import (UNCERTAIN_PARTS, UNMATCHED_REPORTS, Engine, SpoolTooNew,
                                    SpoolUnreachable, created_names, row_class, statements)
from modempool.spool.postgres_connect import connect_once
from modempool.spool.postgres_counts import (ACCOUNT_COUNTS, COUNT_FUNCTIONS,
                                             COUNT_FUNCTIONS_MARKS, KEPT_COUNTS, KEPT_TOTALS,
                                             REACHED_COUNTS, STEP_12_LOCKS, SUMMED_BY_INDEX,
                                             KeptCounts)
from modempool.spool.schema import FINISHED, MIGRATIONS, SCHEMA_VERSION, too_new
from modempool.spool.server_watch import RECONNECT_GIVE_UP, ServerWatch
from modempool.spool.unavailable import SpoolUnavailable, outcome_unknown
from modempool.spool.upgrade_guard import (DAEMON_COLUMNS, breaks_older, daemon_rows,
                                           refuse_if_older_daemons_run)

log = logging.getLogger("modempool.spool")

#: The channel a NOTIFY on enqueue is sent on.
CHANNEL = "modempool_queue"
#: Any fixed number: the advisory lock that serialises schema upgrades of one database.
_UPGRADE_LOCK = 0x6D6F64656D

#: Version 9: each lookup the send path makes on an index that answers it alone, whatever the
#: statistics say. A message by id and state (a claim, its part marker, its outcome) on
#: (state, id); the claim round's walk of the queue's head on a partial index of queued
#: messages. Before, both used (state, held, priority, id), where the planner, told by
#: statistics that few messages were sending, walked every entry of that state, dead ones
#: included, to find one id (2 ms a part marker with 50,000 messages sent since the last
#: vacuum, against 0.05 ms). And autovacuum after a fixed number of changes, not a fifth of
#: the table: the dead entries the queue's walk steps over stay as few at a million messages
#: as at a thousand, and the statistics as fresh.
QUEUE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS messages_queue ON messages (held, priority DESC, id) "
    "WHERE state = 'queued'",
    "CREATE INDEX IF NOT EXISTS messages_state ON messages (state, id)",
    "DROP INDEX IF EXISTS messages_claim",
    *(f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0, "
      "autovacuum_vacuum_threshold = 10000, autovacuum_analyze_scale_factor = 0, "
      "autovacuum_analyze_threshold = 10000)" for table in ("messages", "parts")),
)

#: The first key of the two-key advisory locks `lock_key` takes (the one-key space holds the
#: schema and fold locks).
_KEY_LOCKS = 0x6D70

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

#: Schema steps of this engine's own, run after the shared script of the same version.
OWN_STEPS: dict[int, Sequence[str]] = {8: KEPT_COUNTS, 9: QUEUE_INDEXES + SUMMED_BY_INDEX,
                                       10: KEPT_TOTALS, 11: REACHED_COUNTS, 12: ACCOUNT_COUNTS,
                                       13: OUTBOX_SUBJECT}
#: Table locks a step takes before its shared script (`MIGRATIONS`), in writers' order. Step 15
#: drops columns of `inbound` after copying what they hold: no store between the two.
LOCKS_FIRST: dict[int, Sequence[str]] = {12: STEP_12_LOCKS,
                                         15: ("LOCK TABLE inbound IN ACCESS EXCLUSIVE MODE",)}

#: A pooled connection unused for longer than this is checked before it is handed out.
IDLE_CHECK_AFTER = 2.0
#: How long the server watch's probe waits for an idle pooled connection (seconds).
PROBE_POOL_WAIT = 1.0

_NAMED = re.compile(r"(?<!:):([A-Za-z_]\w*)")


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`?` and `:name` parameters (the rules' style, SQLite's) as psycopg's `%s`/`%(name)s`."""
    sql = sql.replace("%", "%%")
    sql = _NAMED.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


def ddl(script: str) -> str:
    """The schema's SQLite DDL as PostgreSQL's: integer keys become identity columns."""
    return script.replace("INTEGER PRIMARY KEY",
                          "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")


# Webhook events (issue 15): the PL/pgSQL twins of SQLite's triggers (WEBHOOK_OUTBOX in
# sqlite_engine.py), row triggers that insert into webhook_outbox in the transaction of the
# change. The payload has the same keys in the same order on both engines.
_NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_NEW_ID = "'msg_' || replace(CAST(gen_random_uuid() AS text), '-', '')"

# History search (issue 17): GIN trigram indexes (pg_trgm, in Debian's postgresql package)
# over the text of messages and inbound. `ILIKE '%...%'` uses them for a search of three
# characters or more, where the planner finds that cheaper than walking the newest rows; the
# database must classify characters by a UTF-8 locale (LC_CTYPE C.UTF-8, not C) for pg_trgm to
# take Chinese characters into its trigrams.
TEXT_INDEX = {"messages_text_trgm": "messages", "inbound_text_trgm": "inbound"}


def _trigram_schema(raw: Any) -> str | None:
    """The schema pg_trgm was created in (one per database), quoted; None if it was not."""
    row = raw.execute("SELECT CAST(CAST(extnamespace AS regnamespace) AS text) FROM pg_extension "
                      "WHERE extname = 'pg_trgm'").fetchone()
    return row[0] if row else None


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


def _rows(cursor: Any) -> Any:
    """psycopg's row factory, called for every statement: its rows as `Row`s (readable by
    column name). The names are read from the result, not from `cursor.description`, which
    makes a `Column` object per column each time (a tenth of a daemon's Python time at
    64 SMS a second, measured with py-spy)."""
    result = cursor.pgresult
    if result is None or not result.nfields:
        return tuple
    return _row_class_of(tuple(result.fname(i) for i in range(result.nfields)))


@lru_cache(maxsize=256)
def _row_class_of(names: tuple[bytes, ...]) -> type:
    return row_class(tuple(name.decode() for name in names))   # our column names are ASCII


def describe(url: str) -> str:
    """user@host:port/db of a URL, without its password (for messages and logs); the hosts
    of a multi-host URL each with its own port (`db1:5432,db2:5433`)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "postgresql://(unparsable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{_hosts(info)}/{info.get('dbname') or ''}"


def _hosts(info: dict[str, Any]) -> str:
    """The hosts of a parsed conninfo paired with their ports: libpq's `host` and `port` are
    lists in step (one port alone is every host's; an empty one the default)."""
    hosts = str(info.get("host") or info.get("hostaddr") or "localhost").split(",")
    ports = str(info.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    shown = []
    for host, port in zip(hosts, ports + [""] * (len(hosts) - len(ports))):
        host = host or "localhost"
        if ":" in host and port:   # an IPv6 address before its port
            host = f"[{host}]"
        shown.append(f"{host}:{port}" if port else host)
    return ",".join(shown)


class PgConn:
    """A connection as the rules use it: `execute`/`executemany` with their parameter style."""

    def __init__(self, raw: Any, schema: str = "public") -> None:
        self.raw = raw
        self.schema = schema   # the spool's, for a missing GRANT's message

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        try:
            if not params:
                return self.raw.execute(sql)
            return self.raw.execute(translate(sql), params)
        except Exception as exc:
            self._refuse(exc, sql)
            raise

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(translate(sql), rows)
        except Exception as exc:
            self._refuse(exc, sql)
            raise
        return cursor

    def _refuse(self, exc: Exception, sql: str) -> None:
        """A library error for what is no bug: a NUL in text, a right the role lacks; and a
        statement the driver would not send (a bug) told from the database away."""
        _refuse_nul(exc)
        import psycopg

        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            raise forbidden(exc, self.raw.info.user, self.schema, sql) from None
        refused = not_sent(exc, self.raw)
        if refused is not None:   # no cause kept: the server watch would read it as gone
            raise refused from None


def _refuse_nul(exc: Exception) -> None:
    """A U+0000 that no check of the library caught (`plain_text.refuse_nul` names the field)
    is still an InvalidText, not psycopg's DataError (a 500 for the API)."""
    import psycopg

    if isinstance(exc, psycopg.errors.UntranslatableCharacter) or (
            isinstance(exc, psycopg.DataError) and "NUL" in str(exc)):
        raise InvalidText("the text contains the NUL character (U+0000), which cannot be "
                          "stored; remove it", code="text_nul", params={"field": "text"}) from None


class PostgresEngine(Engine):
    name = "postgresql"
    lock_rows = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    case_blind_like = "ILIKE"   # which the trigram indexes (TEXT_INDEX) answer too
    writes_in_with = True
    locks_keys = True
    schema = "public"   # the spool's schema (asked at open), for a missing GRANT's message
    checkpoint_does = "folding the kept counts"

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0,
                 despite_older_daemons: bool = False) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise SpoolUnreachable(f"PostgreSQL spool needs psycopg 3: {exc}") from None
        self.url = url
        # upgrade even across a step that breaks older daemons still running (upgrade_guard)
        self.despite_older_daemons = despite_older_daemons
        self._local = threading.local()
        self._listener: Any = None
        self._ensured: set[str] = set()   # module schemas made (ensure_schema)
        self._idle_since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._psycopg = psycopg
        try:  # one direct connection first: its error names the host and the reason
            first = psycopg.connect(url, connect_timeout=max(int(connect_timeout), 1),
                                    autocommit=True)
        except psycopg.Error as exc:
            raise SpoolUnreachable(
                f"cannot reach the spool at {describe(url)}: {one_line(exc, url)}") from None
        try:
            self.schema = first.execute("SELECT current_schema()").fetchone()[0] or "public"
            _refuse_standby(first, url)
            self._upgrade(first)
            self._replace_count_functions(first)
            self._make_indexes(first)
        except psycopg.errors.InsufficientPrivilege as exc:   # the GRANT it needs, named
            raise SpoolUnreachable(f"cannot prepare the spool at {self.where}: permission denied: "
                                   f"{forbidden(exc, first.info.user, self.schema)}") from None
        except psycopg.Error as exc:
            raise SpoolUnreachable(
                f"cannot prepare the spool at {self.where}: {one_line(exc, url)}") from None
        finally:
            first.close()
        # reconnect_timeout: see server_watch.py (the pool's doubling waits kept short); no
        # `check` callback: `_pooled` tries idle connections itself
        self.pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, timeout=connect_timeout,
            kwargs={"autocommit": True}, configure=self._configure,
            name="modempool-spool", reconnect_timeout=RECONNECT_GIVE_UP)
        self.pool.open(wait=True, timeout=connect_timeout)
        self.server = ServerWatch(self.where, self._probe)
        self._pool_timeout = PoolTimeout
        self._lent = 0   # connections out of the pool (`_lending`)
        self._lent_lock = threading.Lock()
        self.counts = KeptCounts(self)

    @staticmethod
    def _configure(raw: Any) -> None:
        raw.row_factory = _rows

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection for the block; when it goes back, the time is noted for
        `_pooled`. Noted here, not by the pool's `reset` callback: with one, the pool hands
        every returned connection to its worker thread, which puts it back only once that
        thread has had its turn (a thread switch per transaction, and meanwhile the next
        transaction finds the connection away)."""
        self.server.check()   # away: fail now, not after the pool's timeout
        try:
            raw = self._pooled()
            try:
                with self._lending(), raw:   # as the pool's `connection()`: commit or roll back
                    yield raw
            except self._psycopg.errors.InsufficientPrivilege as exc:   # DDL's GRANT
                raise forbidden(exc, raw.info.user, self.schema) from None
            finally:
                self._idle_since[raw] = time.monotonic()
                self.pool.putconn(raw)
        except self._pool_timeout as exc:
            if self._lent:   # every connection out, and none more given: busy, not gone
                raise SpoolUnavailable(
                    f"all {self.pool.max_size} of this process's database connections are "
                    "in use", 1, one_line(exc)) from None
            self.server.failed(exc)   # none out, and none made in time: the server is gone
            raise
        except Exception as exc:
            self.server.failed(exc)
            raise

    def _pooled(self) -> Any:
        """A connection from the pool. One idle for a while is tried first (the server may
        have restarted, or gone, since); one in steady use is not, which saves a round trip
        per transaction. A broken one goes back (the pool drops it) and the server is asked
        at once (`_probe`): gone, its error is raised now, rather than after the pool's own
        checks and reconnection attempts have waited its whole timeout (10 s); there (it
        restarted), the pool's next connections are taken, each tried likewise."""
        from psycopg_pool import ConnectionPool

        probed = False
        for _ in range(self.pool.max_size + 1):
            raw = self.pool.getconn()
            if time.monotonic() - self._idle_since.get(raw, 0.0) <= IDLE_CHECK_AFTER:
                return raw
            try:
                ConnectionPool.check_connection(raw)
                return raw
            except self._psycopg.Error as exc:
                self.pool.putconn(raw)
                broken = exc
            if not probed:
                self._probe()
                probed = True
        raise broken

    @contextmanager
    def _lending(self) -> Iterator[None]:
        """Count the pooled connections out (a pool's timeout with some out means busy)."""
        with self._lent_lock:
            self._lent += 1
        try:
            yield
        finally:
            with self._lent_lock:
                self._lent -= 1

    def _probe(self) -> None:
        """Raise unless the server answers (the server watch's probe): a fresh connection,
        opened and closed; refused as one too many (53300, by its SQLSTATE in any language:
        `postgres_connect`), the server is there all the same. Failing that, an idle pooled
        connection answering `SELECT 1` (new connections refused, for example by pg_hba or a
        role's limit, while the pool's own still work). With none idle, the pool is asked to
        open one (in the background, for the next probe): after an outage longer than
        RECONNECT_GIVE_UP it holds none and, every call failing at once, nothing else asks."""
        refused = connect_once(self.url, timeout=5)
        if refused is None or refused.too_many:
            return
        exc = self._psycopg.OperationalError(refused.message)
        if self.pool.get_stats().get("pool_available", 0) == 0:
            self.pool.check()   # none to check: it grows by one, unless growing already
            raise exc
        try:
            with self.pool.connection(timeout=PROBE_POOL_WAIT) as raw:
                raw.execute("SELECT 1")
        except Exception:
            raise exc from None

    def _upgrade(self, raw: Any) -> None:
        """Bring the database to SCHEMA_VERSION in one transaction, one daemon at a time;
        refuse a newer one before writing anything."""
        raw.row_factory = _rows
        version = self._version(raw)
        if version > SCHEMA_VERSION:
            raise SpoolTooNew(too_new(self.where, version))
        if version == SCHEMA_VERSION:
            return
        with self._schema_lock(raw), raw.transaction():
            version = self._version(raw)  # another daemon may have done it meanwhile
            if version > SCHEMA_VERSION:
                raise SpoolTooNew(too_new(self.where, version))
            if breaks_older(version) and not self.despite_older_daemons:
                refuse_if_older_daemons_run(self.where, version, self._daemon_rows(raw))
            raw.execute("CREATE TABLE IF NOT EXISTS modempool_schema (version INTEGER NOT NULL)")
            for step in range(max(version, 0) + 1, SCHEMA_VERSION + 1):
                for statement in LOCKS_FIRST.get(step, ()):
                    raw.execute(statement)
                for statement in statements(ddl(MIGRATIONS[step])):
                    raw.execute(statement)
                for statement in OWN_STEPS.get(step, ()):
                    raw.execute(statement)
            raw.execute("DELETE FROM modempool_schema")
            raw.execute("INSERT INTO modempool_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    @staticmethod
    def _daemon_rows(raw: Any) -> list[dict[str, Any]]:
        """The daemon runs with no stop recorded (none where the table is not made yet)."""
        if raw.execute("SELECT to_regclass('daemons')").fetchone()[0] is None:
            return []
        return daemon_rows(raw.execute(f"SELECT {DAEMON_COLUMNS} FROM daemons "
                                       "WHERE stopped_at IS NULL").fetchall())

    def _replace_count_functions(self, raw: Any) -> None:
        """The kept counts' trigger functions as this version writes them, where a database
        made by an older one has others (replacing a function locks no table)."""
        current = ("SELECT count(*) FROM pg_proc WHERE proname IN ('message_counts_inserted', "
                   "'message_counts_follow') AND pronamespace = "
                   "CAST(current_schema() AS regnamespace) AND strpos(prosrc, %s) > 0 "
                   "AND strpos(prosrc, %s) > 0")
        if raw.execute(current, COUNT_FUNCTIONS_MARKS).fetchone()[0] == 2:
            return
        try:   # a role that does not own them (a read-only API, say) still opens the spool
            with self._schema_lock(raw), raw.transaction():
                for statement in COUNT_FUNCTIONS:
                    raw.execute(statement)
        except self._psycopg.Error as exc:
            log.warning("the count triggers' functions stay as they are (%s); a daemon whose "
                        "role owns them replaces them when it starts", one_line(exc, self.url))

    @staticmethod
    @contextmanager
    def _schema_lock(raw: Any) -> Iterator[None]:
        """Schema changes one daemon at a time. A session lock, taken before the transaction:
        a transaction that waited for a lock inside itself could still see the catalogue as it
        was before the other's commit (and CREATE ... IF NOT EXISTS is not safe in parallel)."""
        raw.execute("SELECT pg_advisory_lock(%s)", (_UPGRADE_LOCK,))
        try:
            yield
        finally:
            raw.execute("SELECT pg_advisory_unlock(%s)", (_UPGRADE_LOCK,))

    def _make_indexes(self, raw: Any) -> None:
        """The indexes the SQLite engine makes at open too: uncertain parts (UNCERTAIN_PARTS),
        unmatched reports (UNMATCHED_REPORTS) and history search's trigram indexes
        (TEXT_INDEX), each made once."""
        names = ["parts_uncertain", "delivery_reports_unmatched", *TEXT_INDEX]
        present = "SELECT count(to_regclass(name)) FROM unnest(CAST(%s AS text[])) AS name"
        if raw.execute(present, (names,)).fetchone()[0] == len(names):
            self.text_index = True
            return
        with self._schema_lock(raw), raw.transaction():
            raw.execute(UNCERTAIN_PARTS)
            raw.execute(UNMATCHED_REPORTS)
        self.text_index = self._text_index(raw)

    def _text_index(self, raw: Any) -> bool:
        """The trigram indexes of history search (TEXT_INDEX); False when pg_trgm cannot be
        had here (no contrib, no right to create it): searches then scan."""
        try:
            with self._schema_lock(raw), raw.transaction():
                if _trigram_schema(raw) is None:
                    raw.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                schema = _trigram_schema(raw)
                for index, table in TEXT_INDEX.items():
                    raw.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} "
                                f"USING gin (text {schema}.gin_trgm_ops)")
                if not raw.execute(f"SELECT {schema}.show_trgm('短信猫')").fetchone()[0]:
                    log.warning(
                        "the database of %s classifies characters by the C locale, so its "
                        "trigram index cannot see Chinese: history searches of Chinese text scan "
                        "(make the database with LC_CTYPE 'C.UTF-8')", self.where)
        except self._psycopg.Error as exc:
            log.warning("history search on %s scans every message: no pg_trgm index (%s)",
                        self.where, one_line(exc, self.url))
            return False
        return True

    def run_ddl(self, statements_: list[str]) -> None:
        """Run schema statements (the operator modules' tables) in one transaction, serialised
        with other daemons; inside an open transaction, in it."""
        if getattr(self._local, "conn", None) is not None:
            for statement in statements_:
                self._local.conn.execute(statement)
            return
        with self.connection() as raw, self._schema_lock(raw), raw.transaction():
            for statement in statements_:
                raw.execute(statement)

    def ensure_schema(self, script: str) -> None:
        """Runs the DDL only where a table or index of `script` is missing: `CREATE INDEX IF
        NOT EXISTS` of an index that exists still waits for the table's writers, and inside
        an open transaction the DDL would run in it, without the schema lock."""
        if script in self._ensured:
            return
        nested = getattr(self._local, "conn", None) is not None   # may yet roll back
        parts = statements(ddl(script))
        if not self._all_exist(parts):
            self.run_ddl(parts)
        if not nested:
            self._ensured.add(script)

    def _all_exist(self, parts: list[str]) -> bool:
        """Whether each statement is a `CREATE TABLE/INDEX ... IF NOT EXISTS` of a relation
        present in the search path."""
        names = created_names(parts, kinds="TABLE|INDEX")
        if names is None:
            return False
        present = "SELECT count(to_regclass(name)) FROM unnest(CAST(? AS text[])) AS name"
        return self.rows(present, (names,))[0][0] == len(names)

    def ensure_webhook_outbox(self) -> None:
        if "webhook_outbox" in self._ensured:
            return
        names = ["webhook_message_state", "webhook_inbound", "webhook_optout"]
        present = ("SELECT (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
                   "AND tgname = ANY(?) AND tgrelid IN (CAST('messages' AS regclass), "
                   "CAST('inbound' AS regclass), CAST('optouts' AS regclass))) "
                   "+ (SELECT count(*) FROM pg_proc WHERE proname = ANY(?) "
                   "AND pronamespace = CAST(current_schema() AS regnamespace) "
                   "AND strpos(prosrc, ?) > 0) "
                   "+ (SELECT count(*) FROM pg_class WHERE relname = 'webhook_outbox_subject' "
                   "AND relnamespace = CAST(current_schema() AS regnamespace))")
        # replacing a trigger locks its table: only when one is missing or out of date
        if self.rows(present, (names, names, OUTBOX_VERSION))[0][0] < 2 * len(names) + 1:
            self.run_ddl([SUBJECT_INDEX, *WEBHOOK_OUTBOX])
        self._ensured.add("webhook_outbox")

    @staticmethod
    def _version(raw: Any) -> int:
        if raw.execute("SELECT to_regclass('modempool_schema')").fetchone()[0] is None:
            return 0
        row = raw.execute("SELECT max(version) FROM modempool_schema").fetchone()
        return row[0] or 0

    @property
    def where(self) -> str:
        return describe(self.url)

    @contextmanager
    def tx(self) -> Iterator[PgConn]:
        current = getattr(self._local, "conn", None)
        if current is not None:  # nested: the outer one commits
            yield current
            return
        with self.connection() as raw:
            conn = PgConn(raw, self.schema)
            self._local.conn = conn
            committing = False
            try:
                with raw.transaction():
                    yield conn
                    committing = True   # the block is done: leaving `transaction` sends COMMIT
            except Exception as exc:
                lost = outcome_unknown(exc) if committing else None
                if lost is not None:   # the server may have committed: never "nothing changed"
                    raise lost from exc
                raise
            finally:
                self._local.conn = None

    def rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            return current.execute(sql, params).fetchall()
        with self.connection() as raw:
            return PgConn(raw, self.schema).execute(sql, params).fetchall()

    def in_transaction(self) -> bool:
        """Whether this thread has a write transaction open."""
        return getattr(self._local, "conn", None) is not None

    def state_counts(self) -> dict[str, int]:
        return self.counts.state_counts()

    def sim_outcomes(self) -> dict[tuple[str, str], int]:
        return self.counts.sim_outcomes()

    def sim_outcomes_reached(self) -> dict[tuple[str, str], int]:
        return self.counts.sim_outcomes_reached()

    def account_state_counts(self, account: str) -> dict[str, int]:
        return self.counts.owner_counts("account", account)

    def campaign_state_counts(self, campaign_id: int) -> dict[str, int]:
        return self.counts.owner_counts("campaign", campaign_id)

    def send_latency(self) -> list[tuple[int, int, float]]:
        return self.counts.send_latency()

    def checkpoint(self) -> None:
        """The daemon's housekeeping: the kept counts folded now and then (postgres_counts)."""
        self.counts.fold_now_and_then()

    def insert_new(self, conn: Any, table: str, columns: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> int:
        # One statement for the whole batch, each value typed by its column: one round trip,
        # and the statement trigger of the kept counts fires once (postgres_counts.py).
        names = ", ".join(columns)
        records = json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False)
        return conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} "
            f"FROM json_populate_recordset(CAST(NULL AS {table}), CAST(? AS json)) "
            "ON CONFLICT DO NOTHING", (records,)).rowcount

    def new_ids(self, conn: Any, table: str, count: int) -> list[int]:
        rows = conn.execute(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
            "FROM generate_series(1, ?)", (count,)).fetchall()
        return [row[0] for row in rows]

    def newest_matching(self, table: str, text: str, limit: int,
                        before: int | None = None) -> list[int] | None:
        # One query: the planner walks the newest rows for a common text and asks the trigram
        # index for a rare one (its statistics tell which).
        condition, params = self.text_matches(table, text)
        return [row[0] for row in self.rows(
            f"SELECT id FROM {table} WHERE {condition} AND id < ? ORDER BY id DESC LIMIT ?",
            [*params, 2**63 - 1 if before is None else before, int(limit)])]

    def json_list_has(self, column: str, param: str) -> str:
        return f"jsonb_exists(CAST({column} AS jsonb), CAST({param} AS text))"

    def json_text_at(self, document: str, key: str) -> str:
        return f"(CAST({document} AS jsonb) ->> CAST({key} AS text))"

    def seconds_between(self, later: str, earlier: str) -> str:
        return (f"CAST(extract(epoch FROM CAST({later} AS timestamptz) "
                f"- CAST({earlier} AS timestamptz)) AS float8)")

    def among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]   # an array parameter

    def lock_key(self, conn: Any, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(CAST(? AS integer), hashtext(?))", (_KEY_LOCKS, key))

    def lock_keys(self, conn: Any, keys: Iterable[str]) -> None:
        keys = sorted(set(keys))
        if keys:
            self.lock_keys_of(conn, "SELECT unnest(CAST(? AS text[]))", [keys])

    def lock_keys_of(self, conn: Any, query: str, params: Sequence[Any]) -> None:
        """One round trip, the locks taken in the order of the numbers locked (`hashtext`),
        not of the keys' text: two keys whose hashes collide are one lock, which sorting by
        text could take in either order. (A volatile function of the SELECT list is
        evaluated after the ORDER BY's sort.)"""
        conn.execute("SELECT pg_advisory_xact_lock(CAST(? AS integer), number) FROM "
                     f"(SELECT DISTINCT hashtext(key) AS number FROM ({query}) AS keys (key)) "
                     "AS numbers ORDER BY number", (_KEY_LOCKS, *params))

    def notify_enqueued(self, conn: Any) -> None:
        conn.execute(f"NOTIFY {CHANNEL}")  # delivered at commit, once per transaction

    def wait_for_enqueue(self, timeout: float) -> bool:
        """Block up to `timeout` s for a NOTIFY from an enqueue on any host (call it in a
        thread). Its own connection, opened on first use."""
        try:
            if self._listener is None:
                self.server.check()
                self._listener = self._psycopg.connect(self.url, autocommit=True)
                self._listener.execute(f"LISTEN {CHANNEL}")
            got = False
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except Exception as exc:
            self.server.failed(exc)
            raise

    def forget_listener(self) -> None:
        """Drop the LISTEN connection (it failed); the next wait opens a new one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:
                pass

    def table_names(self) -> list[str]:
        return [r[0] for r in self.rows(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]

    def operator_db(self) -> Any:
        """`spool.db` for the operator modules (SQLite-dialect SQL, see postgres_operator.py)."""
        from modempool.spool.postgres_operator import OperatorDb

        return OperatorDb(self)

    def close(self) -> None:
        self.server.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.pool.close()


def _refuse_standby(raw: Any, url: str) -> None:
    """SpoolUnreachable when the server `raw` reached is a standby (in recovery: it takes no
    write, and every command would fail with "try again" that no wait mends). At open only: a
    node that turns read-only later (a failover under a running daemon) is waited out as an
    outage (`unavailable`)."""
    if not raw.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        return
    node = _hosts({"host": raw.info.host, "port": str(raw.info.port)})
    raise SpoolUnreachable(
        f"cannot use the spool at {describe(url)}: the server at {node} is a standby "
        "(read-only, in recovery); point the spool's URL at the primary, or name every node "
        "with ?target_session_attrs=read-write")
