"""API accounts in the library: keys remembered by a server for a few seconds, and the failed-auth
throttle, which lives in one process's memory and must stay bounded."""

from __future__ import annotations

from pathlib import Path

from modempool.accounts import Accounts, FailureThrottle
from modempool.config import load_config


def test_a_remembered_key_is_forgotten_when_rotated_or_removed(config: Path):
    with load_config(config).open_spool() as spool:
        server, admin = Accounts(spool, remember_for=60), Accounts(spool)
        _, key = admin.add("shop", "sender")
        assert server.remembered(key) is None            # not until it passed once
        assert server.authenticate(key).name == "shop"
        assert server.remembered(key).name == "shop"
        assert server.remembered(key, "other") is None   # Kannel's username must match too
        assert admin.remembered(key) is None             # remember_for=0: never from memory
        rotated = admin.rotate("shop")                   # another Accounts, same process
        assert server.remembered(key) is None and server.authenticate(key) is None
        assert server.authenticate(rotated).name == "shop"
        admin.remove("shop")
        assert server.authenticate(rotated) is None


def test_the_throttle_refuses_after_the_limit_until_the_oldest_failure_ages_out():
    throttle = FailureThrottle(limit=3, window=60)
    for moment in (0, 10, 20):
        assert throttle.retry_after("10.0.0.1", now=moment) == 0
        throttle.failed("10.0.0.1", now=moment)
    assert throttle.retry_after("10.0.0.1", now=30) == 30    # until 0 + 60
    assert throttle.retry_after("10.0.0.2", now=30) == 0     # per address
    assert throttle.retry_after("10.0.0.1", now=60.5) == 0


def test_the_throttle_stays_bounded_under_a_flood_of_addresses():
    throttle = FailureThrottle(limit=3, window=60, max_addresses=1000)
    for n in range(5000):                        # each address fails up to the limit
        for _ in range(5):
            throttle.failed(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", now=n / 1000)
    assert len(throttle) == 1000
    assert throttle.retry_after("10.0.19.135", now=5) > 0     # the latest ones are still refused
    assert all(len(f) == 3 for f in throttle._failures.values())   # only the last `limit` kept
    throttle.failed("192.0.2.1", now=100)        # a minute later the quiet ones expire
    assert len(throttle) == 1 and throttle.retry_after("10.0.19.135", now=100) == 0
