"""A failing forward command's stderr, kept in `forward_log.detail` and logged, with the
command's arguments that may be secrets masked (audit21 L2): a real subprocess that echoes its
own arguments, as `curl -v` echoes its credentials."""

from __future__ import annotations

import shlex
import sys

from modempool.operator.forward_command import run_command

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


async def test_a_urls_password_is_masked_whatever_its_length_and_however_it_is_printed():
    """The URL's password is found as `modempool.masked` finds a database URL's: short, and
    percent-decoded when the command prints it decoded (its other short arguments stay)."""
    echoes = ("import sys; from urllib.parse import unquote; "
              "print('user', sys.argv[1], 'password', unquote('p%40ss'), file=sys.stderr); "
              "sys.exit(2)")
    command = shlex.join([sys.executable, "-c", echoes, "https://bob:p%40ss@example.com/h"])
    ok, detail = await run_command(command, PAYLOAD, timeout=30)
    assert not ok and detail.startswith("exit status 2: user"), detail
    assert "p@ss" not in detail and "p%40ss" not in detail, detail


async def test_a_secret_inside_an_argument_is_masked_when_it_is_printed_alone():
    """audit22: a header argument (`-H "Authorization: Bearer <token>"`) or `-uuser:password`
    is cut into pieces; each long enough is masked where stderr prints it alone."""
    echoes = ("import sys; print('token', sys.argv[2].split()[-1], 'password', "
              "sys.argv[3].split(':')[1], file=sys.stderr); sys.exit(4)")
    command = shlex.join([sys.executable, "-c", echoes, "-H",
                          "Authorization: Bearer t0k3n-abcdef", "-ualice:pa55w0rd"])
    ok, detail = await run_command(command, PAYLOAD, timeout=30)
    assert not ok and detail.startswith("exit status 4: token"), detail
    assert "t0k3n-abcdef" not in detail and "pa55w0rd" not in detail, detail
