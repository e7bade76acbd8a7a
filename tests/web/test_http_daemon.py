"""`modempool run --simulate N --http ADDR`: the daemon serves the API from its sidecar, sends
what comes in over HTTP, and calls a Kannel dlr-url back; a public address is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from http_harness import Receiver, both_engines, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


@both_engines
def test_run_with_http_sends_what_the_api_queued(tmp_path, spool_section):
    config = tmp_path / "modempool.toml"
    config.write_text(spool_section + "\n[http]\nsidecar_nice = 7\ncallback_allow = [\"127.0.0.1\"]\n", encoding="utf-8")
    made = subprocess.run([sys.executable, "-m", "cli", "accounts", "add", "oa", "--role", "sender",
                           "--json", "--config", str(config)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    key = json.loads(made.stdout)["key"]
    port = free_port()
    callbacks = Receiver()   # the dlr-url's
    daemon = subprocess.Popen([sys.executable, "-m", "cli", "run", "--simulate", "2", "--config",
                               str(config), "--http", f"127.0.0.1:{port}"], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/readyz", daemon)
        headers = {"Authorization": f"Bearer {key}"}
        [queued] = httpx.post(base + "/v1/messages", headers=headers,
                              json={"to": "13800138000", "text": "您好"}).json()["messages"]
        kannel = httpx.get(base + "/cgi-bin/sendsms", params={
            "username": "oa", "password": key, "to": "13800138001", "text": "Nagios: host down",
            "dlr-mask": "8", "dlr-url": f"http://127.0.0.1:{callbacks.port}/dlr?status=%d&to=%p"})
        assert kannel.status_code == 202
        sent = wait_http(f"{base}/v1/messages/{queued['id']}", daemon,
                         ok=lambda r: r.json().get("state") in ("sent", "delivered"),
                         headers=headers)
        assert sent.json()["sim"] in ("m1", "m2") and sent.json()["parts"][0]["sent_at"]
        callbacks.wait_for(1)   # the dlr-url callback
        assert callbacks.paths == ["/dlr?status=8&to=%2B8613800138001"]
        balance = httpx.post(base + "/v1/sims/m2/ussd", headers=headers, json={"code": "*100#"},
                             timeout=90)
        assert balance.status_code == 200 and balance.json()["text"], balance.text
        metrics = httpx.get(base + "/metrics").text
        assert "modempool_sim_messages_total{sim=" in metrics
        [sidecar] = children(daemon.pid)   # the API below the modems' CPU priority
        assert os.getpriority(os.PRIO_PROCESS, sidecar) == os.getpriority(
            os.PRIO_PROCESS, daemon.pid) + 7
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.stderr.read()
        callbacks.stop()
    try:  # the sidecar went with the daemon
        httpx.get(base + "/healthz", timeout=2)
        raise AssertionError("the API still answers after the daemon stopped")
    except httpx.TransportError:
        pass


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def test_run_refuses_a_public_address_unless_declared(tmp_path):
    config = tmp_path / "modempool.toml"
    config.write_text('[spool]\npath = "pool.db"\n', encoding="utf-8")
    refused = subprocess.run([sys.executable, "-m", "cli", "run", "--simulate", "1", "--config",
                              str(config), "--http", "0.0.0.0:8080"], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0:8080" in refused.stderr and "Traceback" not in refused.stderr
