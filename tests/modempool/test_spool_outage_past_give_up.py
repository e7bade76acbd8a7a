"""An outage longer than the pool's own reconnection attempts (`RECONNECT_GIVE_UP`): the pool
then holds no connection and opens none until asked, and every call fails at once while the
server is known to be away, so only the server watch's probe can bring the engine back. Each
test stops a throwaway cluster of its own until the pool has given up, starts it again and
waits for the watch to find it back. The engines wait out the outage at a fifth of the
defaults' pace (`OUTAGE`: the pool gives up after 1 s, not 5; the probe's connection waits
1 s, not 5), so each step comes seconds sooner."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from modempool.spool.postgres_engine import PostgresEngine
from modempool.spool.server_watch import OutageWaits
from tests.log_handlers import handler_on
from tests.modempool.test_postgres_connect import never_answering, two_hosts
from tests.pg_cluster import throwaway_cluster

pytestmark = pytest.mark.timeout(300)

#: A hang guard: the probe tries every second; far longer means it never will.
BACK_WITHIN = 60.0
#: The engines' waits in an outage, a fifth of the defaults'.
OUTAGE = OutageWaits(probe_every=0.2, probe_connect=1.0, reconnect_give_up=1.0)


class _GivenUp(logging.Handler):
    """Set when the pool says it gave its reconnection attempts up."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnection attempt in pool" in record.getMessage():
            self.event.set()


@contextmanager
def _unfolded(name: str) -> Iterator[None]:
    """The logger `name` without its filters for the block: the pool's lines are folded to
    one a minute (`logs.FoldedPoolLines`) once a command or daemon in this process set up
    logging, which would hold the give-up line back."""
    logger = logging.getLogger(name)
    filters = list(logger.filters)
    for kept in filters:
        logger.removeFilter(kept)
    try:
        yield
    finally:
        for kept in filters:
            logger.addFilter(kept)


def _outage_past_give_up(cluster, engine: PostgresEngine) -> None:
    """Stop the server, let a call find it gone, wait until the pool gave up; start it."""
    with _unfolded("psycopg.pool"), \
            handler_on("psycopg.pool", _GivenUp(), logging.WARNING) as pool:
        cluster.stop()
        with pytest.raises(psycopg.Error), engine.connection() as raw:
            raw.execute("SELECT 1")
        assert engine.server.away is not None and not engine.server.back.is_set()
        assert pool.event.wait(BACK_WITHIN), "the pool never gave its reconnection attempts up"
    cluster.start()


def _answers(engine: PostgresEngine) -> None:
    assert engine.server.back.wait(BACK_WITHIN), f"still away: {engine.server.away}"
    with engine.connection() as raw:
        assert raw.execute("SELECT 1").fetchone() is not None


def test_a_url_whose_first_host_never_answers_is_back_after_a_long_outage():
    """The audit's case: host 1 a silent port, host 2 the cluster. The probe's one wait for
    every host ran out on host 1, and with no pooled connection left nothing else was asked:
    away for good, although a fresh psycopg connection reached host 2."""
    with throwaway_cluster() as cluster, never_answering() as port:
        # opened in 5 s: its first connection waits that long on host 1, the pool's the URL's 2 s
        engine = PostgresEngine(two_hosts(cluster, port), connect_timeout=5.0, outage=OUTAGE)
        try:
            _outage_past_give_up(cluster, engine)
            _answers(engine)
        finally:
            engine.close()


def test_a_server_slower_to_accept_than_the_probe_waits_is_back_through_the_pool():
    """A server that takes longer than the probe's wait (1 s here, 5 s by default) to accept a
    connection (authentication held up: here `pre_auth_delay`) while the pool's own
    connections, given the URL's longer limit, get in. The probe then asks the pool to open
    one (it holds none after giving up) and finds it there; it asked only an idle pooled
    connection, and there was none."""
    with throwaway_cluster() as cluster:
        engine = PostgresEngine(cluster.url(), connect_timeout=2.0, outage=OUTAGE)
        try:
            with psycopg.connect(cluster.url(), autocommit=True) as db:
                db.execute("ALTER SYSTEM SET pre_auth_delay = '2s'")   # from the next start
            _outage_past_give_up(cluster, engine)
            _answers(engine)
        finally:
            engine.close()
