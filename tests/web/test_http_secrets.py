"""No secret in the logs: a webhook's URL may carry a password and a token (Kannel's dlr-url
always does), and httpx logs every request's full URL at INFO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from http_harness import Receiver, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_webhook_urls_password_and_token_never_reach_the_log(config_path, tmp_path):
    receiver = Receiver(lambda arrival: (500 if arrival.number == 1 else 204, {}))   # failed once, then delivered
    url = f"http://crm:TopSecretPw@127.0.0.1:{receiver.port}/h?token=LEAKME"
    added = cli("webhooks", "add", url, "--events", "optout.added", config=config_path)
    assert added.returncode == 0, added.stderr
    key = json.loads(cli("accounts", "add", "root", "--role", "admin", "--json",
                         config=config_path).stdout)["key"]
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--listen",
                                f"127.0.0.1:{port}", "--config", str(config_path)],
                               cwd=REPO, stderr=log, text=True, env={**os.environ})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/optouts", json={"numbers": ["13800138000"]},
                            headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        receiver.wait_for(2)   # failed once, then delivered
    finally:
        process.terminate()
        assert process.wait(30) == 0
        receiver.stop()
    assert receiver.paths == ["/h?token=LEAKME"] * 2   # the token went where it belongs
    log.seek(0)
    logged = log.read()
    assert f"to http://127.0.0.1:{receiver.port}/h: attempt 1 failed (HTTP 500)" in logged
    assert "TopSecretPw" not in logged and "LEAKME" not in logged and "crm:" not in logged
