"""The failed-auth throttle (modempool/auth_throttle.py), on a real spool of either engine:
an address's failures counted once for every server on the spool, the table bounded."""

from __future__ import annotations

import pytest

from modempool.auth_throttle import FailureThrottle
from modempool.spool import Spool


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
    first, second = (FailureThrottle(spool, limit=4, window=60) for spool in spools)
    for throttle in (first, second, first):
        throttle.failed("10.0.0.1", now=100)
    assert first.retry_after("10.0.0.1", now=100) == 0 == second.retry_after("10.0.0.1", now=100)
    second.failed("10.0.0.1", now=100)       # the fourth, wherever it came
    assert second.retry_after("10.0.0.1", now=100) == 15
    # The first has not heard of it: it lets one more through, which is counted too.
    assert first.retry_after("10.0.0.1", now=100) == 0
    first.failed("10.0.0.1", now=100)
    assert first.retry_after("10.0.0.1", now=100) == 30


def test_the_table_keeps_only_the_addresses_that_failed_within_the_window(spools):
    spool = spools[0]
    throttle = FailureThrottle(spool, limit=3, window=60, max_addresses=50)
    for n in range(600):                     # a new address every 1/8 s, each failing once
        throttle.failed(f"10.0.{n >> 8}.{n & 255}", now=1000 + n / 8)
    # each failure drains in 20 s: those of the last 20 s are kept, the older deleted
    assert spool.rows("SELECT count(*) FROM auth_failures")[0][0] == 20 * 8
    assert len(throttle) == 50               # what one process remembers is bounded too
    throttle.failed("192.0.2.1", now=2000)   # a quiet while later, only the new one is left
    assert spool.rows("SELECT client FROM auth_failures")[0][0] == "192.0.2.1"
    assert len(throttle) == 1


def test_an_ipv6_address_is_counted_by_its_64_network(spools):
    throttle = FailureThrottle(spools[0], limit=2, window=60)
    throttle.failed("2001:db8:1:2::a", now=100)
    throttle.failed("2001:db8:1:2:ffff::b", now=100)     # another address of the same /64
    assert throttle.retry_after("2001:db8:1:2::c", now=100) > 0
    assert throttle.retry_after("2001:db8:1:3::a", now=100) == 0     # the next /64
    throttle.failed("::ffff:192.0.2.1", now=100)           # IPv4, as a dual-stack socket shows it
    throttle.failed("192.0.2.1", now=100)
    assert throttle.retry_after("192.0.2.1", now=100) > 0
    assert throttle.retry_after("192.0.2.2", now=100) == 0
    assert sorted(r[0] for r in spools[0].rows("SELECT client FROM auth_failures")) == [
        "192.0.2.1", "2001:db8:1:2::/64"]
