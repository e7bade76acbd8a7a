"""The failed-auth throttle (modempool/auth_throttle.py), on a real spool of either engine:
an address's failures counted once for every server on the spool, the table bounded."""

from __future__ import annotations

import pytest

from modempool.auth_throttle import HOST, FailureThrottle, counted_as
from modempool.spool import Spool
from tests.pg_cluster import answering, throwaway_cluster


@pytest.fixture
def spools(spool_target):
    """Two spools on one database: what two server processes hold."""
    with Spool(spool_target) as one, Spool(spool_target) as two:
        yield one, two


def test_a_burst_up_to_the_limit_is_refused_then_one_more_per_interval(spools):
    throttle = FailureThrottle(spools[0], limit=3, window=60)    # one failure drains per 20 s
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1", now=100) == 0
        throttle.failed("10.0.0.1", now=100)
    assert throttle.retry_after("10.0.0.1", now=100) == 20
    assert throttle.retry_after("10.0.0.2", now=100) == 0       # per address
    assert throttle.retry_after("10.0.0.1", now=120) == 0       # one more attempt
    throttle.failed("10.0.0.1", now=120)
    assert throttle.retry_after("10.0.0.1", now=120) == 20      # and refused again
    assert throttle.retry_after("10.0.0.1", now=200) == 0


def test_two_servers_count_an_address_together(spools):
    # flush_every=0: each failure is written at once (as the first after a quiet while is)
    first, second = (FailureThrottle(spool, limit=4, window=60, flush_every=0) for spool in spools)
    for throttle in (first, second, first):
        throttle.failed("10.0.0.1", now=100)
    assert first.retry_after("10.0.0.1", now=100) == 0 == second.retry_after("10.0.0.1", now=100)
    second.failed("10.0.0.1", now=100)       # the fourth, wherever it came
    assert second.retry_after("10.0.0.1", now=100) == 15
    # The first has not heard of it: it lets one more through, which is counted too.
    assert first.retry_after("10.0.0.1", now=100) == 0
    first.failed("10.0.0.1", now=100)
    assert first.retry_after("10.0.0.1", now=100) == 30


def test_failures_within_an_interval_are_written_together_later(spools):
    spool = spools[0]
    throttle = FailureThrottle(spool, limit=3, window=60, flush_every=0.5)
    throttle.failed("10.0.0.1", now=100)     # the first after a quiet while: written at once
    assert _rows(spool) == {"10.0.0.1": 120}
    for n in range(2, 12):                   # a flood within the interval: memory only
        throttle.failed(f"10.0.0.{n}", now=100.2)
        throttle.failed("10.0.0.1", now=100.2)
    assert _rows(spool) == {"10.0.0.1": 120} and throttle.pending() == 11
    assert throttle.retry_after("10.0.0.1", now=100.2) > 0      # refused here already
    throttle.failed("10.0.0.12", now=100.5)  # the interval is over: all in one transaction
    assert throttle.pending() == 0
    rows = _rows(spool)
    assert len(rows) == 12 and rows["10.0.0.1"] == 120 + 20 * 10     # from where it was
    # a second server now hears of the first's count at its own first write
    other = FailureThrottle(spools[1], limit=3, window=60)
    other.failed("10.0.0.1", now=100.5)
    assert other.retry_after("10.0.0.1", now=100.5) == 320 + 20 - 40 - 100.5


def test_past_the_new_addresses_a_second_new_ones_are_refused_from_memory(spools):
    spool = spools[0]
    throttle = FailureThrottle(spool, limit=10, window=60, flush_every=0, new_per_second=5)
    for n in range(10):
        throttle.failed(f"10.0.0.{n}", now=100)
    assert sorted(_rows(spool)) == [f"10.0.0.{n}" for n in range(5)]   # the rest not written
    assert throttle.retry_after("10.0.0.4", now=100) == 0
    assert throttle.retry_after("10.0.0.9", now=100) == 6    # refused for one interval
    throttle.failed("10.0.1.1", now=101)     # the next second: written again
    assert "10.0.1.1" in _rows(spool)


def test_a_database_error_is_one_log_line_and_the_failures_are_kept(spools, caplog):
    spool, other = spools
    throttle = FailureThrottle(spool, limit=3, window=60, flush_every=0)
    other.db.execute("DROP TABLE auth_failures")      # another process broke it
    with caplog.at_level("WARNING", logger="modempool.web"):
        throttle.failed("10.0.0.1", now=100)          # no exception: the caller answers 401
    assert [r.message for r in caplog.records if "auth throttle" in r.message] == [
        caplog.records[-1].message] and "kept for the next try" in caplog.records[-1].message
    assert throttle.pending() == 1 and throttle.retry_after("10.0.0.1", now=100) == 0
    FailureThrottle(other)                            # the table is back
    throttle.failed("10.0.0.1", now=101)
    assert _rows(spool) == {"10.0.0.1": 101 + 40}


def test_the_table_keeps_only_the_addresses_that_failed_within_the_window(spools):
    spool = spools[0]
    throttle = FailureThrottle(spool, limit=3, window=60, max_addresses=50, flush_every=0)
    for n in range(600):                     # a new address every 1/8 s, each failing once
        throttle.failed(f"10.0.{n >> 8}.{n & 255}", now=1000 + n / 8)
    # each failure drains in 20 s: those of the last 20 s are kept, the older deleted
    assert spool.rows("SELECT count(*) FROM auth_failures")[0][0] == 20 * 8
    assert len(throttle) == 50               # what one process remembers is bounded too
    throttle.failed("192.0.2.1", now=2000)   # a quiet while later, only the new one is left
    assert spool.rows("SELECT client FROM auth_failures")[0][0] == "192.0.2.1"
    assert len(throttle) == 1


def test_a_database_away_is_one_log_line_a_write_and_the_writes_go_on_when_it_is_back(caplog):
    """A PostgreSQL server away: the first write meets the driver's error, the next the
    engine's SpoolUnavailable (its watch knows the server is gone). Each is one line, the
    failures are kept, and the throttle writes them once the server is back."""
    with throwaway_cluster() as cluster, Spool(cluster.url()) as spool:
        throttle = FailureThrottle(spool, limit=3, window=60, flush_every=0)
        cluster.stop()
        with caplog.at_level("WARNING", logger="modempool.web"):
            throttle.failed("10.0.0.1", now=100)      # no exception: the caller answers 401
            throttle.failed("10.0.0.1", now=100)
        lines = [r.message for r in caplog.records if "auth throttle" in r.message]
        assert len(lines) == 2 and all("kept for the next try" in line for line in lines)
        assert "the database server is away" in lines[1], lines
        assert throttle.pending() == 1
        cluster.start()
        answering(spool)
        throttle.failed("10.0.0.1", now=101)
        assert throttle.pending() == 0 and _rows(spool) == {"10.0.0.1": 101 + 60}


def test_an_ipv6_address_is_counted_alone_and_its_64_at_eight_times_the_limit(spools):
    throttle = FailureThrottle(spools[0], limit=2, window=60, flush_every=0)
    throttle.failed("2001:db8:1:2::a", now=100)
    throttle.failed("2001:db8:1:2:ffff::b", now=100)     # another address of the same /64
    assert throttle.retry_after("2001:db8:1:2::c", now=100) == 0      # neighbours go on
    throttle.failed("2001:db8:1:2::a", now=100)
    assert throttle.retry_after("2001:db8:1:2::a", now=100) > 0       # at its own limit
    assert throttle.retry_after("2001:db8:1:2::c", now=100) == 0
    for n in range(13):                                   # 16 failures in the /64 in all
        throttle.failed(f"2001:db8:1:2::1:{n}", now=100)
    assert throttle.retry_after("2001:db8:1:2::c", now=100) > 0       # the LAN's limit
    assert throttle.retry_after("2001:db8:1:3::a", now=100) == 0      # the next /64
    throttle.failed("::ffff:192.0.2.1", now=100)           # IPv4, as a dual-stack socket shows it
    throttle.failed("192.0.2.1", now=100)
    assert throttle.retry_after("192.0.2.1", now=100) > 0
    assert throttle.retry_after("192.0.2.2", now=100) == 0
    rows = _rows(spools[0])
    assert {"192.0.2.1", "2001:db8:1:2::/64", "2001:db8:1:2::a", "2001:db8:1:2::1:12"} <= set(rows)
    assert rows["2001:db8:1:2::/64"] == 100 + 16 * 60 / 16


def test_addresses_local_to_each_host_carry_its_name():
    assert counted_as("127.0.0.1") == (f"127.0.0.1@{HOST}",)
    assert counted_as("127.0.0.2") == (f"127.0.0.2@{HOST}",)
    assert counted_as("::1") == (f"::1@{HOST}", f"::/64@{HOST}")
    assert counted_as("fe80::1%eth0") == (f"fe80::1@{HOST}", f"fe80::/64@{HOST}")
    assert counted_as("169.254.1.2") == (f"169.254.1.2@{HOST}",)
    # anything that is no address is one key, not one row per text a client sends
    assert counted_as("unknown") == counted_as("x" * 500) == (f"not-an-address@{HOST}",)
    assert counted_as("192.0.2.7") == ("192.0.2.7",)


def _rows(spool) -> dict[str, float]:
    return {client: clear_at for client, clear_at in spool.rows(
        "SELECT client, clear_at FROM auth_failures")}
