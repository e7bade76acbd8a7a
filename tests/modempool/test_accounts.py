"""API accounts in the library: keys remembered by a server for a few seconds."""

from __future__ import annotations

from modempool.accounts import Accounts
from modempool.spool import Spool


def test_a_remembered_key_is_forgotten_when_rotated_or_removed(spool_target):
    with Spool(spool_target) as spool:
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
