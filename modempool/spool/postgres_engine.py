"""The spool on PostgreSQL: one database shared by daemons on several hosts.

Connections come from a psycopg 3 pool (postgres_pool.py, with the watch on its server). A
write transaction takes one connection for its whole length (nested calls in the same thread
join it); reads outside a transaction borrow one for a statement. The rules' SQL is written
once with `?` / `:name` parameters (turned into psycopg's by `postgres_conn.PgConn`); this
file supplies what PostgreSQL does differently: `FOR UPDATE SKIP LOCKED` for claims (two
daemons never wait on, nor take, the same message), ids from the table's sequence, JSON lists
as `jsonb`, `LISTEN/NOTIFY` to wake idle dispatchers. Its schema is made at open by postgres_schema.py; its webhook triggers are
in postgres_webhooks.py, its kept counts in postgres_counts.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from modempool.masked import one_line
from modempool.spool.database_errors import forbidden
from modempool.spool.engine import Engine, SpoolUnreachable, created_names, statements
from modempool.spool.postgres_conn import PgConn, describe, refuse_standby
from modempool.spool.postgres_url import url_problem
from modempool.spool.postgres_connect import connection_class, server_refused
from modempool.spool.postgres_counts import KeptCounts
from modempool.spool.postgres_pool import SpoolConnections
from modempool.spool.postgres_schema import ddl, prepare, schema_lock
from modempool.spool.server_watch import OutageWaits
from modempool.spool.postgres_webhooks import OUTBOX_VERSION, SUBJECT_INDEX, WEBHOOK_OUTBOX
from modempool.spool.unavailable import outcome_unknown

#: The channel a NOTIFY on enqueue is sent on.
CHANNEL = "modempool_queue"

#: The first key of the two-key advisory locks `lock_key` takes (the one-key space holds the
#: schema and fold locks).
_KEY_LOCKS = 0x6D70


class PostgresEngine(Engine):
    name = "postgresql"
    lock_rows = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    skip_locked_no_key = " FOR NO KEY UPDATE SKIP LOCKED"
    case_blind_like = "ILIKE"   # which the trigram indexes (postgres_schema.TEXT_INDEX) answer
    writes_in_with = True
    locks_keys = True
    schema = "public"   # the spool's schema (asked at open), for a missing GRANT's message
    checkpoint_does = "folding the kept counts"

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0,
                 despite_older_daemons: bool = False,
                 outage: OutageWaits = OutageWaits()) -> None:
        try:
            import psycopg
            import psycopg_pool  # noqa: F401  (postgres_pool's, its absence named here)
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise SpoolUnreachable(f"PostgreSQL spool needs psycopg 3: {exc}") from None
        problem = url_problem(url)
        if problem:   # a typo in the URL, not a server away
            raise SpoolUnreachable(f"invalid spool URL {describe(url)}: {problem}")
        self.url = url
        self._local = threading.local()
        self._listener: Any = None
        self._ensured: set[str] = set()   # module schemas made (ensure_schema)
        self._psycopg = psycopg
        # its host names looked up within the connect timeout (postgres_connect), as none are
        self._connection = connection_class(float(max(int(connect_timeout), 1)))
        try:  # one direct connection first: its error names the host and the reason
            first = self._connection.connect(url, connect_timeout=max(int(connect_timeout), 1),
                                             autocommit=True)
        except psycopg.Error as exc:   # the server out of reach, or refusing (a role unknown)
            said = (f"the spool at {describe(url)} refused the connection"
                    if server_refused(str(exc)) else f"cannot reach the spool at {describe(url)}")
            raise SpoolUnreachable(f"{said}: {one_line(exc, url)}") from None
        try:
            self.schema = first.execute("SELECT current_schema()").fetchone()[0] or "public"
            refuse_standby(first, url)
            # upgraded even across a step that breaks older daemons still running (upgrade_guard)
            self.text_index = prepare(first, url, despite_older_daemons=despite_older_daemons)
        except psycopg.errors.InsufficientPrivilege as exc:   # the GRANT it needs, named
            raise SpoolUnreachable(f"cannot prepare the spool at {self.where}: permission denied: "
                                   f"{forbidden(exc, first.info.user, self.schema)}") from None
        except psycopg.Error as exc:
            raise SpoolUnreachable(
                f"cannot prepare the spool at {self.where}: {one_line(exc, url)}") from None
        finally:
            first.close()
        self.connections = SpoolConnections(url, self._connection, self.schema,
                                            pool_size=pool_size, connect_timeout=connect_timeout,
                                            outage=outage)
        self.pool = self.connections.pool      # psycopg's own (benchmarks borrow from it)
        self.server = self.connections.server
        self.counts = KeptCounts(self)

    def connection(self) -> AbstractContextManager[Any]:
        """A pooled connection for the block, committed or rolled back at its end
        (`postgres_pool.SpoolConnections.connection`)."""
        return self.connections.connection()

    def run_ddl(self, statements_: list[str]) -> None:
        """Run schema statements (the operator modules' tables) in one transaction, serialised
        with other daemons; inside an open transaction, in it."""
        if getattr(self._local, "conn", None) is not None:
            for statement in statements_:
                self._local.conn.execute(statement)
            return
        with self.connection() as raw, schema_lock(raw), raw.transaction():
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

    @contextmanager
    def one_trip(self) -> Iterator[PgConn]:
        """A write transaction sent whole in one round trip: its BEGIN, the block's statements
        and its COMMIT go in one pipeline, read back when the block is left (a cursor's rows
        are read after it; a read inside, rows or a row count, sends what came before it: a
        round trip more, the transaction still open). A statement that fails rolls the whole
        back (its error raised then); a connection lost meanwhile leaves the outcome unknown
        (the COMMIT may have been done): SpoolOutcomeUnknown. Nested in another transaction,
        it joins that one (the outer one commits)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self.connection() as raw:
            conn = PgConn(raw, self.schema)
            self._local.conn = conn
            try:
                with raw.pipeline() as conn.pipeline:
                    raw.execute("BEGIN")
                    yield conn
                    raw.execute("COMMIT")
            except Exception as exc:
                if raw.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                    try:
                        raw.execute("ROLLBACK")   # a statement refused: nothing was committed
                    except Exception:
                        pass
                lost = outcome_unknown(exc)
                if lost is not None:   # the COMMIT may have been done before the answer was lost
                    raise lost from exc
                conn.refused(exc, conn.failed_statement())
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
                     "AS numbers ORDER BY number", (_KEY_LOCKS, *params), prepare=True)

    def notify_enqueued(self, conn: Any) -> None:
        conn.execute(f"NOTIFY {CHANNEL}")  # delivered at commit, once per transaction

    def wait_for_enqueue(self, timeout: float) -> bool:
        """Block up to `timeout` s for a NOTIFY from an enqueue on any host (call it in a
        thread). Its own connection, opened on first use."""
        try:
            if self._listener is None:
                self.server.check()
                self._listener = self._connection.connect(self.url, autocommit=True)
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
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.connections.close()
