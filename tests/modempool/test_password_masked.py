"""A database password never reaches a message or a log: not from a config value, not from
`spool migrate --to`, not from libpq's quotation of a URL it could not parse (`masked`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modempool.masked import masked

PASSWORD = "PoolPw_9q"


@pytest.mark.parametrize("text", [
    f"postgresql://pool:{PASSWORD}@127.0.0.1/mp",
    f"got 'mysql://pool:{PASSWORD}@127.0.0.1/mp' (an SQLite spool is [spool] path)",
    f"host=127.0.0.1 password={PASSWORD} dbname=mp",
    f"host=127.0.0.1 password = '{PASSWORD} x' dbname=mp",
    f"postgresql://127.0.0.1/mp?user=pool&password={PASSWORD}",
    f'in URI: "postgresql://pool:{PASSWORD}@[::1/mp"',
])
def test_a_password_in_a_url_or_a_conninfo_is_masked_by_its_shape(text):
    shown = masked(text)
    assert PASSWORD not in shown and "***" in shown


def test_what_libpq_quotes_of_a_password_is_masked_by_knowing_the_url():
    url = "postgresql://pool:Pool%zzPw_9q@127.0.0.1/mp"
    assert masked('invalid percent-encoded token: "Pool%zzPw_9q"', url) == \
        'invalid percent-encoded token: "***"'
    assert "Pw@x" not in masked('token "Pw@x"', "postgresql://u:Pw@x@host/db")
    assert masked("user pool at host db", "postgresql://pool@host/db") == "user pool at host db"


def _modempool(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("url", [
    f"mysql://pool:{PASSWORD}@127.0.0.1/mp",
    f"postgresql://pool:{PASSWORD}@[::1/mp",
    "postgresql://pool:Pool%zzPw_9q@127.0.0.1/mp",
    f"postgresql://pool:{PASSWORD}@127.0.0.1:1/mp",
    f"postgresql://127.0.0.1:1/mp?password={PASSWORD}&sslmode=bogus",
])
def test_a_config_url_with_a_password_is_never_shown_by_any_command(tmp_path, url):
    log = tmp_path / "modempool.log"
    (tmp_path / "pool.toml").write_text(
        f'[spool]\nurl = "{url}"\n\n[logging]\nfile = "{log}"\n\n'
        '[[modem]]\nname = "m1"\nport = "/dev/null"\n', encoding="utf-8")
    secrets = {PASSWORD, "Pool%zzPw_9q", "zzPw"}
    for command in (["status"], ["run"], ["send", "13800138000", "hi"]):
        done = _modempool(*command, "--config", str(tmp_path / "pool.toml"), cwd=tmp_path)
        assert done.returncode != 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip(), (command, done.stderr)
        written = done.stdout + done.stderr + (log.read_text() if log.exists() else "")
        assert not [s for s in secrets if s in written], (command, written)


@pytest.mark.parametrize("target", [
    "mysql://weak:WeakPw_1@127.0.0.1/mp",
    "postgresql://weak:WeakPw_1@[::1/mp",
    "postgresql://weak:Weak%zzPw_1@127.0.0.1/mp",
    "postgresql://weak:WeakPw_1@127.0.0.1:1/mp",
])
def test_spool_migrate_never_shows_the_target_password(tmp_path, target):
    from modempool.spool import Spool

    Spool(tmp_path / "spool.db").close()
    done = _modempool("spool", "migrate", "--db", str(tmp_path / "spool.db"), "--to", target,
                      cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "WeakPw_1" not in done.stdout + done.stderr
    assert "Weak%zzPw_1" not in done.stdout + done.stderr


def test_one_line_folds_a_drivers_lines_and_masks_every_password_in_them():
    """`one_line`: what every database error and driver log line goes through (the
    unavailable reason, a refused statement, the engine's connection errors, the driver's and
    its pool's log lines)."""
    import psycopg

    from modempool.masked import one_line
    from modempool.spool.database_errors import database_error
    from modempool.spool.unavailable import unavailable

    text = (f'connection to "postgresql://pool:{PASSWORD}@db1/mp" failed\n\tIs the server up?'
            f"\n  host=db1 password={PASSWORD}\n\tIs the server up?")
    assert one_line(text) == ('connection to "postgresql://pool:***@db1/mp" failed; Is the '
                              "server up?; host=db1 password=***")
    assert one_line(psycopg.OperationalError()) == "OperationalError"
    lost = psycopg.OperationalError(text)
    assert PASSWORD not in unavailable(lost).reason and "\n" not in unavailable(lost).reason
    refused = psycopg.ProgrammingError(text)
    assert PASSWORD not in str(database_error(refused)) and "\n" not in str(database_error(refused))


def test_the_drivers_own_log_lines_show_no_password(caplog):
    """psycopg's logger (not only its pool's) quotes a conninfo: one line, masked."""
    import logging

    from modempool.logs import one_line_driver_logs

    one_line_driver_logs()
    with caplog.at_level(logging.WARNING, logger="psycopg"):
        logging.getLogger("psycopg").warning("could not connect: %s",
                                             f"host=db1 password={PASSWORD} port=5432")
    assert PASSWORD not in caplog.records[-1].getMessage()
    assert "password=***" in caplog.records[-1].getMessage()


def test_a_password_in_a_drivers_error_never_shows_through_the_other_paths(pg_cluster, caplog):
    """The other paths a driver's error takes to a person or a log: a COMMIT of unknown
    outcome (`outcome_unknown`), a right refused (`forbidden`), the server watch's reason for
    a server away, and the kept counts' warning when a fold fails. One line, masked, each."""
    import logging

    import psycopg

    from modempool.spool import Spool
    from modempool.spool.database_errors import forbidden
    from modempool.spool.postgres_counts import FOLD_AFTER_ROWS
    from modempool.spool.server_watch import _reason
    from modempool.spool.unavailable import outcome_unknown

    text = (f'connection to "postgresql://pool:{PASSWORD}@db1/mp" failed\n\tIs the server up?'
            f"\n  host=db1 password={PASSWORD}\n")
    shown = [outcome_unknown(psycopg.OperationalError(text)).reason,
             str(forbidden(psycopg.errors.InsufficientPrivilege(text), "weak", "s1")),
             _reason(psycopg.errors.InvalidPassword(text))]   # not "not now": its own words
    assert "password=***" in shown[-1]

    def fold() -> bool:
        raise psycopg.OperationalError(text)

    with Spool(pg_cluster.new_schema()) as spool, caplog.at_level(logging.WARNING):
        spool.engine.counts.fold = fold
        spool.engine.counts._fold_if_many(FOLD_AFTER_ROWS + 1)
    shown += [record.getMessage() for record in caplog.records]
    assert any("the kept counts were read but not folded" in line for line in shown), shown
    assert not [line for line in shown if PASSWORD in line or "\n" in line], shown
