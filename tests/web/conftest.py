"""A real uvicorn server on 127.0.0.1 over a real spool (an SQLite file, or PostgreSQL for the
tests marked `@both_engines`), and keys of a few accounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modempool.config import load_config
from http_harness import ServerThread

CONFIG = """\
[spool]
path = "pool.db"

[[modem]]
name = "m1"
port = "/dev/null"

[[modem]]
name = "m2"
port = "/dev/null"

[http]
max_body = 4_000_000
auth_failures_per_minute = 5

[webhooks]
retry_base = 0.2
retry_max = 0.5
"""


@dataclass
class Api:
    url: str
    config: Any
    keys: dict[str, str]
    server: ServerThread

    def client(self, account: str | None = "shop", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[account]}"} if account else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@pytest.fixture
def spool_engine() -> str:
    """The spool's engine for this test: SQLite unless the test is marked `@both_engines`
    (http_harness.py), which runs it on both."""
    return "sqlite"


@pytest.fixture
def spool_section(tmp_path, spool_engine, request) -> str:
    """The config's `[spool]` for this test: the file `pool.db` beside the config, or, on
    PostgreSQL, a fresh schema of the session's throwaway cluster."""
    if spool_engine == "postgresql":
        return f'[spool]\nurl = "{request.getfixturevalue("pg_cluster").new_schema()}"\n'
    return '[spool]\npath = "pool.db"\n'


@pytest.fixture
def config_path(tmp_path, spool_section) -> Path:
    """The test's config: two modems and the spool of `spool_section`."""
    path = tmp_path / "modempool.toml"
    path.write_text(CONFIG.replace('[spool]\npath = "pool.db"\n', spool_section), encoding="utf-8")
    return path


@pytest.fixture
def api(config_path) -> Api:
    """The API served on 127.0.0.1 with accounts admin `root`, sender `shop` (any SIM),
    sender `branch` (SIM m2 only, 3 a minute) and viewer `audit`."""
    from modempool.accounts import Accounts

    config = load_config(config_path)
    spool = config.open_spool()
    accounts = Accounts(spool)
    keys = {"root": accounts.add("root", "admin")[1], "shop": accounts.add("shop", "sender")[1],
            "branch": accounts.add("branch", "sender", sims=["m2"], per_minute=3)[1],
            "audit": accounts.add("audit", "viewer")[1]}
    spool.close()
    server = ServerThread(config).start()
    yield Api(server.url, config, keys, server)
    server.stop()


@pytest.fixture
def api_schema(api):
    """The API's own OpenAPI document, loaded from the running server."""
    import schemathesis

    return schemathesis.openapi.from_url(api.url + "/openapi.json")
