"""A failing forward command's stderr, kept in `forward_log.detail` and logged, with the
command's arguments that may be secrets masked (audit21 L2): a real subprocess that echoes its
own arguments, as `curl -v` echoes its credentials."""

from __future__ import annotations

import shlex
import sys

from modempool.operator.forwarding import run_command

ECHOES = ("import sys; print('called with', *sys.argv[1:], file=sys.stderr); "
          "print('Authorization: Bearer', sys.argv[1].partition('=')[2], file=sys.stderr); "
          "sys.exit(3)")
PAYLOAD = {"id": 1, "sender": "+8613800138000", "sim": "m1", "text": "hi"}


async def test_a_failing_commands_stderr_keeps_no_argument_that_may_be_a_secret():
    secrets = ("s3cr3t-api-key", "alice:pa55word", "hunter22")
    command = shlex.join([sys.executable, "-c", ECHOES, f"--api-key={secrets[0]}", "-u",
                          secrets[1], f"https://bob:{secrets[2]}@example.com/hook", "ab"])
    ok, detail = await run_command(command, PAYLOAD, timeout=30)
    assert not ok and detail.startswith("exit status 3: called with")
    assert not [secret for secret in secrets if secret in detail], detail
    assert "-u **** **** ab" in detail and detail.endswith("Authorization: Bearer ****")
