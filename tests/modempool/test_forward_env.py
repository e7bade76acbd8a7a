"""The forward command's environment (rev21b L4): the message's variables and what a program
needs to run, never the daemon's whole environment (a PGPASSWORD a failing script dumps would
reach `forward_log.detail` and the WARNING line); `[forward] pass_env` names what else it
gets, and those values are masked in its stderr's tail. Real subprocesses, a real SQLite spool."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys

import pytest

from modempool.config import load_config
from modempool.errors import ConfigError
from modempool.operator.forward_command import run_command
from modempool.operator.forwarding import make_forward_handler

PAYLOAD = {"id": 1, "sender": "+8613800138000", "sim": "m1", "text": "hi"}

#: Writes its environment to the file named by its argument, then fails printing two secrets.
DUMPS = ("import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w')); "
         "print('pg:', os.environ.get('PGPASSWORD', '-'), "
         "'crm:', os.environ.get('CRM_TOKEN', '-'), file=sys.stderr); sys.exit(1)")


async def test_the_command_does_not_get_the_daemons_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret-9")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/modempool.service")
    dumped = tmp_path / "env.json"
    ok, detail = await run_command(shlex.join([sys.executable, "-c", DUMPS, str(dumped)]),
                                   PAYLOAD, timeout=30)
    assert not ok and "pg-s3cret-9" not in detail and detail.endswith("pg: - crm: -"), detail
    env = json.loads(dumped.read_text())
    assert "PGPASSWORD" not in env
    assert env["PATH"] and env["LC_TIME"] == "C" and env["SMS_1_NUMBER"] == "+8613800138000"
    # systemd's LoadCredential directory: a path, how such a script is given a token (rev22b R5)
    assert env["CREDENTIALS_DIRECTORY"] == "/run/credentials/modempool.service"


async def test_pass_env_hands_named_variables_on_and_masks_their_values(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret-9")
    monkeypatch.setenv("CRM_TOKEN", "crm-t0ken-7")
    dumped = tmp_path / "env.json"
    command = shlex.join([sys.executable, "-c", DUMPS, str(dumped)])
    (tmp_path / "pool.toml").write_text(
        f'[spool]\npath = "{tmp_path / "pool.db"}"\n[forward]\ncommand = {json.dumps(command)}\n'
        'pass_env = ["CRM_TOKEN", "NOT_SET"]\nretries = 0\n', "utf-8")
    config = load_config(tmp_path / "pool.toml")
    spool = config.open_spool()
    try:
        (task,) = await make_forward_handler(config)(
            spool, spool.store_inbound("13800138000", "hi", sim="m1"))
        assert await asyncio.wait_for(task, 30) is False
        env = json.loads(dumped.read_text())
        assert env["CRM_TOKEN"] == "crm-t0ken-7" and "PGPASSWORD" not in env
        assert "NOT_SET" not in env
        (detail,) = [row[0] for row in spool.db.execute(
            "SELECT detail FROM forward_log WHERE outcome = 'failed'").fetchall()]
        assert "crm-t0ken-7" not in detail and "pg-s3cret" not in detail, detail
        assert detail.endswith("pg: - crm: ****"), detail
    finally:
        spool.close()


def test_pass_env_takes_only_variable_names(tmp_path):
    (tmp_path / "pool.toml").write_text('[forward]\ncommand = "cat"\npass_env = ["HTTPS PROXY"]\n',
                                        "utf-8")
    with pytest.raises(ConfigError, match="pass_env.*HTTPS PROXY") as info:
        load_config(tmp_path / "pool.toml")
    assert "\n" not in str(info.value)
