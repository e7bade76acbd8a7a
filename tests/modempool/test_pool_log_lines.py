"""The PostgreSQL connection pool's warnings, folded where logging is set up (issue 18): one
line each, no password, at most one a minute (`logs.FoldedPoolLines`)."""

from __future__ import annotations

import logging
import threading

from psycopg_pool import ConnectionPool

from modempool.logs import POOL_LOGGER, FoldedPoolLines


class _Counted(logging.Filter):
    """Counts the warnings a logger is given before the fold sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.warnings += record.levelno >= logging.WARNING
        return True


def test_a_server_that_never_answers_gives_one_line_of_the_pool(tmp_path, caplog):
    """A real psycopg pool whose connections all fail (no server on that socket) retries
    each of its two connections until it gives up: many warnings of several lines; one
    line is logged."""
    logger = logging.getLogger(POOL_LOGGER)
    counted, fold = _Counted(), FoldedPoolLines()
    installed, logger.filters = logger.filters, [counted, fold]   # this test's fold alone
    caplog.set_level(logging.DEBUG, logger=POOL_LOGGER)
    given_up = threading.Semaphore(0)
    pool = ConnectionPool(f"postgresql://pool:s3cret@/modempool?host={tmp_path}", min_size=2,
                          open=False, name="modempool-spool", reconnect_timeout=0.5,
                          reconnect_failed=lambda _: given_up.release())
    try:
        pool.open(wait=False)
        for _ in range(2):   # each connection's attempts have ended
            assert given_up.acquire(timeout=120)
    finally:
        pool.close()
        logger.filters = installed
    said = [r.getMessage() for r in caplog.records if r.name == POOL_LOGGER]
    assert counted.warnings >= 4, counted.warnings   # two attempts and a give-up each
    assert len(said) == 1, said
    assert said[0].startswith("error connecting in 'modempool-spool': "), said
    assert "\n" not in said[0] and "s3cret" not in said[0], said
    assert str(tmp_path) in said[0], said   # the driver's own detail: where it tried


def test_the_next_line_after_a_minute_says_how_many_were_held_back(caplog):
    now = [100.0]
    logger = logging.getLogger("tests.pool_lines")
    fold = FoldedPoolLines(every=60.0, clock=lambda: now[0])
    logger.addFilter(fold)
    try:
        for step in (0.0, 10.0, 30.0, 25.0):   # at 100, 110, 140, 165
            now[0] += step
            logger.warning("error connecting in %r: %s", "modempool-spool",
                           "connection failed: postgresql://pool:s3cret@db1/x\n  refused")
        logger.info("connection given by 'modempool-spool'")
    finally:
        logger.removeFilter(fold)
    said = [r.getMessage() for r in caplog.records if r.name == "tests.pool_lines"]
    assert said == [
        "error connecting in 'modempool-spool': connection failed: postgresql://pool:***@db1/x; "
        "refused",
        "error connecting in 'modempool-spool': connection failed: postgresql://pool:***@db1/x; "
        "refused (2 more from the connection pool since the last such line)"], said
