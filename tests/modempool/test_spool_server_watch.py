"""The database server stopped under an open spool (a throwaway PostgreSQL cluster of the
test's own): the first call that finds it gone marks it away, later calls fail at once with
the same "try again" (not after the pool's 10 s timeout each), one probe finds it back, and the
outage is logged once as it begins and once as it ends. (How long a call takes is printed by
benchmarks/bench_outage.py, not asserted here.)"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from urllib.parse import unquote

import psycopg
import pytest

from modempool.spool import Spool
from modempool.spool.daemons import Daemons
from modempool.spool import postgres_pool
from modempool.spool.postgres_engine import PostgresEngine
from modempool.spool.unavailable import SpoolUnavailable, unavailable
from tests.modempool.daemon_harness import eventually
from tests.pg_cluster import answering, throwaway_cluster

pytestmark = pytest.mark.timeout(300)


def _answers(spool: Spool) -> bool:
    try:
        spool.counts()
    except Exception as exc:
        assert unavailable(exc) is not None
        return False
    return True


async def test_calls_fail_at_once_while_the_server_is_away_and_work_again_when_it_is_back(
        caplog):
    caplog.set_level(logging.INFO, logger="modempool.spool")
    with throwaway_cluster() as cluster:
        with Spool(cluster.new_schema()) as spool:
            spool.enqueue("+8613800138000", "before")
            cluster.stop()
            with pytest.raises(Exception) as gone:   # the driver's error: now it is away
                spool.enqueue("+8613800138000", "during")
            assert unavailable(gone.value) is not None
            for _ in range(3):
                with pytest.raises(SpoolUnavailable, match="server is away") as away:
                    spool.enqueue("+8613800138000", "during")
                assert "nothing was changed" in str(away.value)
            cluster.start()
            await eventually(lambda: _answers(spool), what="the probe finding the server back")
            spool.enqueue("+8613800138000", "after")
            assert [m.text for m in spool.list()] == ["before", "after"]
    lines = [r.getMessage() for r in caplog.records if r.name == "modempool.spool"]
    assert sum("cannot be reached" in line for line in lines) == 1, lines
    assert sum("answers again, after" in line for line in lines) == 1, lines
    assert "Traceback" not in caplog.text


def _other_thread(call):
    """What `call()` raised in a thread of its own (None: it answered)."""
    result: list[BaseException | None] = [None]

    def run() -> None:
        try:
            call()
        except Exception as exc:
            result[0] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_a_pool_busy_to_its_last_connection_fails_one_call_and_leaves_the_server_there(
        pg_cluster):
    """A pool of one connection, held by a long transaction: a call in another thread waits
    the pool's timeout and is told to try again, but the server (healthy all along) is not
    marked away, so calls after the long one answer."""
    engine = PostgresEngine(pg_cluster.new_schema(), pool_size=1, connect_timeout=1.0)
    try:
        with engine.connection() as held:
            busy = _other_thread(lambda: engine.rows("SELECT 1"))
            assert isinstance(busy, SpoolUnavailable), busy
            assert "connections are in use" in str(busy) and busy.retry_after == 1
            assert engine.server.away is None
            held.execute("SELECT 1")
        assert _other_thread(lambda: engine.rows("SELECT 1")) is None
        assert engine.server.away is None
    finally:
        engine.close()


def _limited_role(cluster, limit: int) -> tuple[str, str]:
    """A role of its own (at most `limit` connections) owning a fresh schema: (role, URL)."""
    url = cluster.new_schema()
    schema = unquote(url).rsplit("search_path=", 1)[1]
    role = f"r_{schema}"
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
        admin.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
    return role, url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


def _gone() -> psycopg.OperationalError:
    """A real "cannot connect" error (no server at that socket) to tell the watch."""
    try:
        psycopg.connect("postgresql://postgres@/postgres?host=/nonexistent-modempool-dir",
                        connect_timeout=1)
    except psycopg.OperationalError as exc:
        return exc
    raise AssertionError("a connection to nowhere succeeded")


async def test_new_connections_refused_as_too_many_the_server_is_there_and_heartbeats_go_on(
        pg_cluster):
    """The role's connection slots all taken by other clients (53300 to any new one) while the
    server is marked away: the probe takes "too many connections" for "the server is there",
    so the box's heartbeats go on (its leases are not taken by other boxes)."""
    role, url = _limited_role(pg_cluster, 3)
    engine = PostgresEngine(url, pool_size=1, connect_timeout=1.0)
    others = []
    try:
        with engine.connection():   # the pool's only one out: the probe must not need it
            while True:   # the role's other slots, taken by others (until one is refused)
                try:
                    others.append(psycopg.connect(url, autocommit=True))
                except psycopg.OperationalError as refused:
                    assert "too many connections" in str(refused)
                    break
            engine.server.failed(_gone())   # (its probe may find it back at once: no assert)
            await eventually(lambda: engine.server.away is None,
                             what="the probe taking 53300 for a server that is there")
        Daemons(engine).beat("box-a", host="a", pid=1, started_at=datetime.now(UTC))
        assert [row["owner"] for row in Daemons(engine)()] == ["box-a"]
    finally:
        for other in others:
            other.close()
        engine.close()


async def test_new_connections_refused_the_pools_own_answering_says_the_server_is_there(
        pg_cluster):
    """New connections refused for another reason (the role may no longer log in) while the
    pool's own still work: the probe's idle pooled connection answering `SELECT 1` marks the
    server back."""
    role, url = _limited_role(pg_cluster, -1)
    engine = PostgresEngine(url, pool_size=1, connect_timeout=1.0)
    try:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} NOLOGIN")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=1).close()
        engine.server.failed(_gone())
        await eventually(lambda: engine.server.away is None,
                         what="the probe finding the pool's connection answering")
        assert engine.rows("SELECT 1 AS one")[0]["one"] == 1
    finally:
        engine.close()


def test_an_idle_pooled_connection_broken_by_an_outage_fails_the_first_call_on_the_spot(
        monkeypatch):
    """Every pooled connection counts as idle (tried before use): a server restarted meanwhile
    costs the broken connection only (the call takes a new one); a server gone fails the first
    call with the refused connection's own error, not with the pool's timeout after its own
    checks and reconnection attempts (10 s), and marks the server away."""
    from psycopg_pool import PoolTimeout

    monkeypatch.setattr(postgres_pool, "IDLE_CHECK_AFTER", -1.0)
    with throwaway_cluster() as cluster, Spool(cluster.new_schema()) as spool:
        spool.enqueue("+8613800138000", "before")
        cluster.stop()
        cluster.start()
        spool.enqueue("+8613800138000", "after a restart")
        assert spool.engine.server.away is None
        cluster.stop()
        with pytest.raises(Exception) as gone:
            spool.enqueue("+8613800138000", "during")
        assert not isinstance(gone.value, PoolTimeout), gone.value
        assert unavailable(gone.value) is not None
        assert spool.engine.server.away is not None
        cluster.start()
        answering(spool)
        assert [m.text for m in spool.list()] == ["before", "after a restart"]


async def test_one_too_many_is_known_by_its_sqlstate_on_a_server_that_speaks_german():
    """A server whose messages are translated (lc_messages in German): a connection refused as
    one too many reads "zu viele Verbindungen", which no English words match, and psycopg gives
    it no SQLSTATE. The probe asks libpq for verbose errors (the SQLSTATE in the text, in any
    language), so with the pool's only connection out it still takes 53300 for a server that is
    there (it stayed away until a pooled connection was idle)."""
    from modempool.spool.postgres_connect import connect_once

    with throwaway_cluster(language="de") as cluster:
        role, url = _limited_role(cluster, 2)
        engine = PostgresEngine(url, pool_size=1, connect_timeout=1.0)
        others = []
        try:
            with engine.connection():   # the pool's only one out: the probe must not need it
                deadline = time.monotonic() + 60
                while (refused := connect_once(url, timeout=10)) is None:
                    assert time.monotonic() < deadline, "hang guard: never refused as one too many"
                    try:
                        others.append(psycopg.connect(url, autocommit=True))
                    except psycopg.OperationalError:   # the probe's backend not yet gone
                        continue
                assert "Verbindungen" in refused.message and "too many" not in refused.message
                assert refused.sqlstates == ("53300",) and refused.too_many
                engine.server.failed(_gone())
                await eventually(lambda: engine.server.away is None,
                                 what="the probe taking 53300 in German for a server there")
            assert connect_once(cluster.url(), timeout=10) is None   # the superuser's: fine
        finally:
            for other in others:
                other.close()
            engine.close()


def test_a_statement_the_driver_will_not_send_is_that_requests_bug_not_the_server_away(
        pg_cluster):
    """More than 65,535 parameters: psycopg refuses to send the statement (an OperationalError
    without SQLSTATE, as a lost connection's) while its connection is whole. That request fails
    with one line, as a bug; the server is not marked away and the next call is answered."""
    from modempool.spool.database_errors import StatementNotSent

    with Spool(pg_cluster.new_schema()) as spool:
        spool.enqueue("+8613800138000", "before")
        numbers = list(range(70_000))
        with pytest.raises(StatementNotSent) as refused:
            spool.rows(f"SELECT id FROM messages WHERE id IN ({', '.join('?' * len(numbers))})",
                       numbers)
        assert unavailable(refused.value) is None and "\n" not in str(refused.value)
        assert "65535" in str(refused.value)
        assert spool.engine.server.away is None
        assert [m.text for m in spool.list()] == ["before"]   # at once, not "server is away"
