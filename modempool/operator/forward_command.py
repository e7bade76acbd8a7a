"""One run of the forward command (`[forward] command`): its environment, the subprocess,
and the tail of its stderr with what may be a secret masked. `forwarding.py` decides when it
runs, retries it and records each attempt; this module only runs it once.

The command gets the message as JSON on stdin, gammu-style variables (`SMS_MESSAGES=1`,
`SMS_1_NUMBER`, `SMS_1_TEXT`, `MODEMPOOL_SIM`, `MODEMPOOL_INBOUND_ID`), and of the daemon's
environment only what a program needs to run plus what the operator names (`pass_env`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from modempool.masked import masked


#: What the command inherits from the daemon's environment: what a program needs to run and
#: print (the search path, home, user, locale, time zone, temporary files), and where systemd
#: put the unit's credentials (`LoadCredential=`: a directory's path, no secret itself; the way
#: to give such a script a token), and no more.
INHERITED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                       "CREDENTIALS_DIRECTORY"})


def command_environment(payload: dict[str, Any], pass_env: tuple[str, ...] = (),
                        environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The command's environment: the message's variables, `INHERITED` and `LC_*` from the
    daemon's, and the variables the operator names (`[forward] pass_env`). Never the whole of
    the daemon's: a failing script that dumps its environment (`env`, `set -x`) would copy a
    PGPASSWORD or a cloud key into `forward_log` and the log."""
    environ = os.environ if environ is None else environ
    inherited = {name: value for name, value in environ.items()
                 if name in INHERITED or name.startswith("LC_") or name in pass_env}
    return {**inherited, "SMS_MESSAGES": "1", "SMS_1_NUMBER": env_value(payload["sender"]),
            "SMS_1_TEXT": env_value(payload["text"]), "MODEMPOOL_SIM": env_value(payload["sim"]),
            "MODEMPOOL_INBOUND_ID": env_value(payload["id"])}


async def run_command(command: str, payload: dict[str, Any], timeout: float,
                      pass_env: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Run `command` once with the message on stdin and `command_environment`; (ok, what
    happened, its stderr's tail masked: the values of `pass_env` count as its arguments)."""
    env = command_environment(payload, pass_env)
    try:
        process = await asyncio.create_subprocess_exec(
            *shlex.split(command), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
    except (OSError, ValueError) as exc:
        return False, f"cannot start: {exc}"
    data = json.dumps(payload, ensure_ascii=False).encode()
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate(data)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, f"timed out after {timeout:g} s"
    if process.returncode != 0:
        passed = [env[name] for name in pass_env if name in env]
        tail = masked_output(stderr.decode(errors="replace"),
                             [*shlex.split(command)[1:], *passed]).strip()[-200:]
        return False, f"exit status {process.returncode}" + (f": {tail}" if tail else "")
    return True, "exit status 0"


#: An argument, or a piece of one, this long may be a secret.
SECRET_LENGTH = 6
#: Where an argument is cut into pieces that may each be a secret on their own: a header's
#: `Authorization: Bearer <token>`, a `-uuser:password`, a `--key=value`.
_PIECES = re.compile(r"[\s:=]+")


def masked_output(text: str, candidates: list[str]) -> str:
    """`text` (a command's stderr, kept in `forward_log` and logged) with each of `candidates`
    (the command's arguments), and each piece of one (`_PIECES`), that may be a secret shown
    as `****`: a command that fails may echo its own `--api-key=...`, `-u user:password` or
    `-H "Authorization: Bearer ..."`, whole or in part (its line is never kept: a digest names
    it). A URL's password, and any password `modempool.masked` finds by its shape, are masked
    whatever their length."""
    secrets = {part for candidate in candidates
               for part in (candidate, candidate.partition("=")[2], *_PIECES.split(candidate))
               if len(part) >= SECRET_LENGTH}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "****")
    return masked(text, *candidates)


def env_value(value: Any) -> str:
    """`value` as an environment variable can hold it. Any sender can put U+0000 in a UCS2 SMS,
    and no environment string can carry it: it becomes U+FFFD there (stdin's JSON keeps it)."""
    return str(value if value is not None else "").replace("\0", "\ufffd")
