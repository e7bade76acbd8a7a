"""`modempool accounts`, `modempool webhooks` and `modempool serve` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from http_harness import both_engines, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_accounts_add_list_rotate_remove(config_path):
    made = cli("accounts", "add", "shop", "--role", "sender", "--sims", "m1,m2", "--per-day", "500",
               "--json", config=config_path)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    assert json.loads(made.stdout)["name"] == "shop" and key.startswith("mpk_")
    listed = json.loads(cli("accounts", "list", "--json", config=config_path).stdout)
    assert listed[0]["sims"] == ["m1", "m2"] and listed[0]["per_day"] == 500
    assert key not in (config_path.parent / "pool.db").read_bytes().decode("latin-1")  # digest only

    from modempool.accounts import Accounts
    from modempool.config import load_config

    with load_config(config_path).open_spool() as spool:
        assert Accounts(spool).authenticate(key).name == "shop"
        rotated = json.loads(cli("accounts", "rotate", "shop", "--json", config=config_path).stdout)["key"]
        assert Accounts(spool).authenticate(key) is None
        assert Accounts(spool).authenticate(rotated).name == "shop"
    unknown = cli("accounts", "add", "branch", "--role", "sender", "--sims", "m1,m9",
                  config=config_path)
    assert unknown.returncode == 1 and unknown.stderr.startswith("Error: no modem named m9 in ")
    assert len(unknown.stderr.strip().splitlines()) == 1 and "Traceback" not in unknown.stderr
    twice = cli("accounts", "add", "shop", "--role", "admin", config=config_path)
    assert twice.returncode == 1 and twice.stderr.strip() == \
        "Error: account 'shop' exists (use rotate for a new key)"
    assert cli("accounts", "remove", "shop", config=config_path).returncode == 0
    gone = cli("accounts", "remove", "shop", config=config_path)
    assert gone.returncode == 1 and "no account named 'shop'" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_webhooks_add_list_remove(config_path):
    made = cli("webhooks", "add", "https://crm.example/hook", "--events", "sms.received,message.failed",
               "--json", config=config_path)
    assert made.returncode == 0, made.stderr
    webhook = json.loads(made.stdout)
    assert webhook["secret"].startswith("whsec_")
    assert oct((config_path.parent / "pool.db").stat().st_mode & 0o777) == "0o600"
    listed = json.loads(cli("webhooks", "list", "--json", config=config_path).stdout)
    assert listed[0]["events"] == ["sms.received", "message.failed"]
    assert "secret" not in listed[0]
    wrong = cli("webhooks", "add", "https://x.example", "--events", "message.lost", config=config_path)
    assert wrong.returncode == 1 and "unknown event(s) message.lost" in wrong.stderr
    assert cli("webhooks", "remove", webhook["id"], config=config_path).returncode == 0
    assert json.loads(cli("webhooks", "list", "--json", config=config_path).stdout) == []


def test_serve_refuses_a_public_address_unless_asked(config_path):
    refused = cli("serve", "--listen", "0.0.0.0:8080", config=config_path)
    assert refused.returncode == 1
    assert "refusing to listen on 0.0.0.0:8080" in refused.stderr and "Traceback" not in refused.stderr


@both_engines
def test_serve_answers_on_loopback(config_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--listen", f"127.0.0.1:{port}",
                                "--config", str(config_path)], cwd=REPO, stderr=subprocess.PIPE,
                               text=True, env={**os.environ})
    try:
        answer = wait_http(f"http://127.0.0.1:{port}/healthz", process)
        assert answer.json() == {"status": "ok"}
    finally:
        process.terminate()
        assert process.wait(30) == 0
    assert f"modempool API on http://127.0.0.1:{port} (docs at /docs)" in process.stderr.read()


def test_serve_refusing_a_too_new_spool_never_says_it_listens(config_path):
    import sqlite3

    from modempool.config import load_config
    from modempool.spool.schema import SCHEMA_VERSION

    load_config(config_path).open_spool().close()
    with sqlite3.connect(config_path.parent / "pool.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    refused = cli("serve", "--listen", f"127.0.0.1:{free_port()}", config=config_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "upgrade modempool" in refused.stderr
    assert "modempool API on" not in refused.stderr


def test_webhooks_log_shows_each_delivery_and_its_last_answer(config_path):
    from datetime import datetime, timedelta, timezone

    from modempool.config import load_config
    from modempool.webhooks import Webhooks

    made = json.loads(cli("webhooks", "add", "https://crm.example/hook", "--events", "sms.received",
                          "--json", config=config_path).stdout)
    with load_config(config_path).open_spool() as spool:
        spool.store_inbound("+8613900000001", "在吗", sim="m1", received_at=datetime.now(timezone.utc))
        spool.store_inbound("+8613900000002", "好的", sim="m1", received_at=datetime.now(timezone.utc))
        hooks = Webhooks(spool)
        first, second = hooks.claim_due(timedelta(seconds=60), per_endpoint=2, busy=[])
        hooks.failed(first["id"], 503, "HTTP 503", datetime.now(timezone.utc) + timedelta(hours=1))
        hooks.delivered(second["id"], 204)
    shown = cli("webhooks", "log", config=config_path)
    assert shown.returncode == 0, shown.stderr
    by_event = {word: line for line in shown.stdout.splitlines()
                for word in line.split() if word.startswith("msg_")}
    assert "kept 30 days ([webhooks] keep_days)" in shown.stdout
    assert set(by_event) == {first["event_id"], second["event_id"]}
    assert "pending" in by_event[first["event_id"]] and "last: HTTP 503" in by_event[first["event_id"]]
    assert "delivered" in by_event[second["event_id"]] and "last:" not in by_event[second["event_id"]]
    rows = json.loads(cli("webhooks", "log", "--id", made["id"], "--json", config=config_path).stdout)
    assert [(r["event_id"], r["state"], r["attempts"]) for r in rows] == [
        (second["event_id"], "delivered", 1), (first["event_id"], "pending", 1)]
    assert json.loads(cli("webhooks", "log", "--id", "wh_none", "--json", config=config_path).stdout) == []
