"""Issue 12 through real `modempool` subprocesses: bad input and a bad environment give one line
naming the file, option or value (never a traceback, nothing lost), and private files are 0600."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys

import pytest
from openpyxl import Workbook

from modempool.config import load_config
from modempool.errors import ConfigError
from modempool.spool import Spool
from tests.modempool.daemon_harness import REPO

ONE_MODEM = '[spool]\npath = "{spool}"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n'


def cli(*args: str | bytes, cwd, stdin: bytes | None = None,
        preexec=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cli", *args], input=stdin, capture_output=True,
                          cwd=cwd, env=env, timeout=60, preexec_fn=preexec)


def one_error(result: subprocess.CompletedProcess) -> str:
    """The single `Error: ...` line of a failed command (asserting there is nothing else)."""
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode != 0, result
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("Usage:"), err
    return lines[-1]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "m.toml").write_text(ONE_MODEM.format(spool="s.db"), "utf-8")
    return tmp_path


def test_bad_input_is_one_line_naming_what_is_wrong(folder):
    (folder / "bad.txt").write_bytes(b"ab\xffc")
    (folder / "zh.csv").write_text("姓名,手机\n张三,13800138000\n", "utf-8")
    (folder / "broken.xlsx").write_bytes(b"PK\x03\x04 broken")
    book = Workbook()
    book.active.append(["手机", "姓名"])
    book.active.append(["13800138000", "张三"])
    book.save(folder / "c.xlsx")
    config = ("--config", "m.toml")
    cases = [
        (("send", *config, "13800138000", b"a\xffb"), "not valid UTF-8: byte 0xff"),
        (("send", *config, "13800138000", "-"), "not valid UTF-8: byte 0xff", b"a\xffb"),
        (("send", *config, "13800138000", "--file", "bad.txt"), "bad.txt: byte 0xff at position 2"),
        (("send", *config, "13800138000", "hi", "--at", "+99999999d"), "beyond the year 9999"),
        (("send", *config, "13800138000", "hi", "--priority", "99999999999999999999"),
         "priority must be between"),
        (("send", *config, "--", "-13800138000", "hi"), "must begin with a digit"),
        (("send", *config, "13800138000", "   "), "only blank space"),
        (("send", *config, "13800138000", "长" * 20000), "needs 299 parts"),
        (("contacts", "import", "broken.xlsx", *config), "broken.xlsx as an XLSX file"),
        (("contacts", "import", "zh.csv", "--encoding", "bogus", *config), "unknown encoding 'bogus'"),
        (("contacts", "import", "zh.csv", "--encoding", "ascii", *config), "zh.csv is not ascii"),
        (("history", "export", "nowhere/h.csv", *config), "directory nowhere does not exist"),
        (("history", "export", "h.json", *config), "must end in .csv or .xlsx"),
    ]
    for args, expected, *stdin in cases:
        result = cli(*args, cwd=folder, stdin=stdin[0] if stdin else None)
        assert expected in one_error(result), (args, result.stderr)
    assert Spool(folder / "s.db").list() == []                       # nothing was queued
    assert not (folder / "h.json").exists()


def test_a_broken_spool_or_a_full_disk_is_one_line(folder):
    cli("send", "--config", "m.toml", "13800138000", "first", cwd=folder)
    data = (folder / "s.db").read_bytes()
    (folder / "cut.db").write_bytes(data[:5000])
    (folder / "junk.db").write_bytes(b"not a database at all" * 100)
    for name, expected in (("cut.db", "malformed"), ("junk.db", "file is not a database")):
        (folder / "x.toml").write_text(ONE_MODEM.format(spool=name), "utf-8")
        for command in (("queue",), ("send", "13800138000", "hi")):
            error = one_error(cli(*command, "--config", "x.toml", cwd=folder))
            assert name in error and expected in error
    # A spool on a file system nobody may write (read-only, even for root).
    (folder / "ro.toml").write_text(ONE_MODEM.format(spool="/proc/modempool/s.db"), "utf-8")
    error = one_error(cli("send", "13800138000", "hi", "--config", "ro.toml", cwd=folder))
    assert error.startswith("Error: cannot open the spool /proc/modempool/s.db: "), error
    # A disk that takes no more: no file may grow past 4 KiB (RLIMIT_FSIZE, as a full disk).
    def no_room():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    error = one_error(cli("send", "--config", "m.toml", "13800138000", "second", cwd=folder,
                          preexec=no_room))
    assert "full" in error, error
    assert [m.text for m in Spool(folder / "s.db").list()] == ["first"]    # nothing lost


def test_read_only_commands_do_not_create_a_spool(folder):
    (folder / "n.toml").write_text(ONE_MODEM.format(spool="nothere/x.db"), "utf-8")
    for command in ("queue", "status", "inbox"):
        result = cli(command, "--config", "n.toml", "--json", cwd=folder)
        assert result.returncode == 0, result.stderr
    assert json.loads(cli("queue", "--config", "n.toml", "--json", cwd=folder).stdout) == []
    assert not (folder / "nothere").exists()


def test_config_spool_and_log_are_created_private(folder):
    old = os.umask(0o022)
    try:
        assert cli("init", "--config", "new.toml", cwd=folder).returncode == 0
        assert cli("send", "--config", "m.toml", "13800138000", "hi", cwd=folder).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "new.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "s.db").stat().st_mode) == 0o600
    (folder / "r.toml").write_text('[spool]\npath = "r.db"\n[logging]\nfile = "d.log"\n', "utf-8")
    old = os.umask(0o022)
    try:  # no modems: the daemon stops at once, after opening its log
        assert "no modems configured" in one_error(cli("run", "--config", "r.toml", cwd=folder))
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "d.log").stat().st_mode) == 0o600


@pytest.mark.parametrize("table, problem", [
    ('[optout]\nblock_direct = "false"\n', "[optout] key 'block_direct': expected true or false"),
    ('[optout]\nconfirm = "no"\n', "[optout] key 'confirm': expected true or false"),
    ('[optout]\nkeywords = 5\n', "[optout] key 'keywords': expected a list of strings"),
    ('[forward]\ntimeout = "ten"\n', "[forward] key 'timeout': expected a number of seconds"),
    ('[[modem]]\nname = "m1"\nport = "/dev/null"\npin = "12ab"\n', "key 'pin'"),
], ids=["block_direct", "confirm", "keywords", "forward-timeout", "pin"])
def test_operator_options_are_strict_and_errors_name_file_line_key(tmp_path, table, problem):
    path = tmp_path / "m.toml"
    path.write_text('[spool]\npath = "s.db"\n\n' + table, "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line ") and problem in message
    assert "12ab" not in message                                   # a PIN is never echoed


def test_lease_seconds_zero_and_max_parts_over_255_are_refused(tmp_path):
    path = tmp_path / "m.toml"
    for table, problem in (("lease_seconds = 0", "seconds > 0"), ("max_parts = 300",
                                                                  "at most 255")):
        path.write_text(f"[pool]\n{table}\n", "utf-8")
        with pytest.raises(ConfigError, match=problem):
            load_config(path)
