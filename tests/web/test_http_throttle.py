"""Failed key checks are counted for a client address across servers: `modempool serve` twice
on one spool (as `serve` and the sidecar of `run --http` on one box, or two boxes on one
PostgreSQL), real processes, real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import cycle

import httpx

from http_harness import both_engines, free_port, wait_http
from test_http_cli import REPO

LIMIT = 2   # failed attempts a minute: one more drains every 30 s, far longer than the test


def serve(config_path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--listen",
                                f"127.0.0.1:{port}", "--config", str(config_path)], cwd=REPO,
                               stderr=subprocess.PIPE, text=True, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", process)
    return process, url


@both_engines
def test_guesses_spread_over_two_servers_get_the_limit_once_not_twice(config_path):
    from modempool.accounts import Accounts
    from modempool.config import load_config

    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text.replace("auth_failures_per_minute = 5",
                                        f"auth_failures_per_minute = {LIMIT}"), encoding="utf-8")
    with load_config(config_path).open_spool() as spool:
        _, key = Accounts(spool).add("shop", "sender")
    servers = [serve(config_path), serve(config_path)]
    try:
        urls = [url for _, url in servers]
        for url in urls:   # a good key writes no failure
            assert httpx.get(url + "/v1/messages", headers={"Authorization": f"Bearer {key}"}
                             ).status_code == 200
        with load_config(config_path).open_spool() as spool:
            assert spool.rows("SELECT count(*) FROM auth_failures")[0][0] == 0
        guessed, refused = 0, set()
        for url in cycle(urls):          # wrong keys, to one server then the other
            if len(refused) == 2 or guessed > 2 * LIMIT:
                break
            answer = httpx.get(url + "/v1/messages", headers={"Authorization": "Bearer mpk_0_nope"})
            if answer.status_code == 429:
                refused.add(url)
            else:
                assert answer.status_code == 401
                guessed += 1
        # Each server alone would take LIMIT; together they take it once, and the one that
        # had not heard of the other's count lets one more through (auth_throttle.py).
        assert refused == set(urls) and guessed == LIMIT + 1
        for url in urls:   # the address is refused before its key is looked at
            answer = httpx.get(url + "/v1/messages", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
    finally:
        for process, _ in servers:
            process.terminate()
            assert process.wait(30) == 0
