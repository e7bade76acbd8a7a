"""The database server stopped under an open spool (a throwaway PostgreSQL cluster of the
test's own): the first call that finds it gone marks it away, later calls fail at once with
the same "try again" (not after the pool's 10 s timeout each), one probe finds it back, and the
outage is logged once as it begins and once as it ends. (How long a call takes is printed by
benchmarks/bench_outage.py, not asserted here.)"""

from __future__ import annotations

import logging

import pytest

from modempool.spool import Spool
from modempool.spool.unavailable import SpoolUnavailable, unavailable
from tests.modempool.daemon_harness import eventually
from tests.pg_cluster import throwaway_cluster

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
