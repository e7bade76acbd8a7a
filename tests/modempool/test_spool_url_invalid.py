"""A malformed spool URL (a port that is no number, an sslmode libpq does not know, a query
parameter it does not know) reads as one, through the real CLI: "invalid spool URL", the URL
named by its user, host and database (never its password), the reason, exit 1; not "cannot
reach the spool", as a server away reads (audit20 L4)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PASSWORD = "PoolPw_9q"


def _modempool(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


MALFORMED = [
    (f"postgresql://pool:{PASSWORD}@db.example:notaport/mp",
     'postgresql://pool@db.example:notaport/mp: the port "notaport" is not a number'),
    (f"postgresql://pool:{PASSWORD}@db.example/mp?sslmode=nonsense",
     'postgresql://pool@db.example/mp: sslmode "nonsense" is none of disable, allow, prefer, '
     'require, verify-ca, verify-full'),
    (f"postgresql://pool:{PASSWORD}@db.example:5433/mp?sslmod=require",
     'postgresql://pool@db.example:5433/mp: invalid URI query parameter: "sslmod"'),
    # an @ in the database name is libpq's to read: not taken for one in the password, the
    # host named right (audit22 L6: "must be percent-encoded", host "db")
    (f"postgresql://pool:{PASSWORD}@db.example:notaport/my@db",
     'postgresql://pool@db.example:notaport/my@db: the port "notaport" is not a number'),
]


@pytest.mark.parametrize(("url", "said"), MALFORMED)
def test_a_malformed_config_url_is_named_invalid_with_its_host(tmp_path, url, said):
    (tmp_path / "pool.toml").write_text(
        f'[spool]\nurl = "{url}"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
        encoding="utf-8")
    for command in (["status"], ["run"]):
        done = _modempool(*command, "--config", str(tmp_path / "pool.toml"), cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [
            f"Error: {tmp_path / 'pool.toml'}, line 2: [spool] key 'url': "
            f"invalid spool URL {said}"]), command


@pytest.mark.parametrize(("url", "said"), MALFORMED)
def test_a_malformed_migrate_target_is_named_invalid_with_its_host(tmp_path, url, said):
    from modempool.spool import Spool

    Spool(tmp_path / "spool.db").close()
    done = _modempool("spool", "migrate", "--db", str(tmp_path / "spool.db"), "--to", url,
                      cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (1, [f"Error: invalid spool URL {said}"])
    assert PASSWORD not in done.stdout


#: Passwords written raw with a / (base64-made ones hold it) or an @: libpq would split the
#: URL at the first of them, so pieces of the password would land in its host, port or
#: database name (rev21b M2).
UNENCODED = [
    ("postgresql://pool:Ab3/Xy9+kq@db.example/mp", "Ab3/Xy9+kq", "postgresql://pool@db.example/mp"),
    ("postgresql://pool:Ab3@Xy9kq@db.example:notaport/mp", "Ab3@Xy9kq",
     "postgresql://pool@db.example:notaport/mp"),
]


@pytest.mark.parametrize(("url", "password", "named"), UNENCODED)
def test_a_raw_slash_or_at_in_the_password_is_refused_and_no_piece_of_it_printed(
        tmp_path, url, password, named):
    (tmp_path / "pool.toml").write_text(
        f'[spool]\nurl = "{url}"\n\n[[modem]]\nname = "m1"\nport = "/dev/null"\n',
        encoding="utf-8")
    pieces = {password[i:i + 3] for i in range(len(password) - 2)}
    for command in (["status"], ["run"]):
        done = _modempool(*command, "--config", str(tmp_path / "pool.toml"), cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [
            f"Error: {tmp_path / 'pool.toml'}, line 2: [spool] key 'url': "
            f"invalid spool URL {named}: a / or @ in the user name or password must be "
            "percent-encoded (/ as %2F, @ as %40)"]), command
        assert not [p for p in pieces if p in done.stderr], (command, done.stderr)


def test_an_at_in_the_database_name_beside_a_password_is_a_valid_url():
    """libpq reads `user:password@host/my@db` as the database `my@db` on `host`: the URL is
    valid, and named by that host and database, never its password (audit22 L6)."""
    from modempool.spool.postgres_url import describe, url_problem

    for query in ("", "?sslmode=require"):
        url = f"postgresql://pool:{PASSWORD}@db.example:5433/my@db{query}"
        assert (url_problem(url), describe(url)) == (
            None, "postgresql://pool@db.example:5433/my@db")
