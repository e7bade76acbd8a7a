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
#: database name (rev21b M2), and the "host" piece would be looked up.
UNENCODED = [
    ("postgresql://pool:Ab3/Xy9+kq@db.example/mp", "Ab3/Xy9+kq", "postgresql://pool@db.example/mp"),
    ("postgresql://pool:Ab3@Xy9kq@db.example:notaport/mp", "Ab3@Xy9kq",
     "postgresql://pool@db.example:notaport/mp"),
    # an @ then a /: libpq reads host "Qz", database "Wv9k@db.example.org/spool" (rev22b R1)
    ("postgresql://pool:Xy7@Qz/Wv9k@db.example.org/spool", "Xy7@Qz/Wv9k",
     "postgresql://pool@db.example.org/spool"),
    ("postgresql://pool:ab@cd/ef@gh@db.example.org:5432/spool?sslmode=require", "ab@cd/ef@gh",
     "postgresql://pool@db.example.org:5432/spool"),
    # a raw @ in the database name beside a password reads the same as the one above: refused
    # as well, for the writer to percent-encode
    ("postgresql://pool:Zq8_kW3x@db.example:5433/my@db", "Zq8_kW3x", "postgresql://pool@db/"),
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
            f"invalid spool URL {named}: percent-encode / as %2F and @ as %40 in the user "
            "name, password and database name"]), command
        shown = done.stderr.replace("database name", "")   # the message's own words
        assert not [p for p in pieces if p in shown], (command, done.stderr)


def test_an_at_in_the_database_name_or_query_is_libpqs_when_no_password_can_hold_it():
    """With no password, an @ in the database name can only be the database's; with one, an
    @ in the query's values after a clean `user:password@host/db` is the query's, and after
    a clean `user:password@host` with no database too (libpq's host ends at the ?; it was
    refused and named by host "b": audit23 F3): valid URLs, named by their true host (audit22
    L6, within rev22b R1)."""
    from modempool.spool.postgres_url import describe, url_problem

    for url, named in [
            ("postgresql://pool@db.example/my@db?sslmode=require",
             "postgresql://pool@db.example/my@db"),
            (f"postgresql://pool:{PASSWORD}@db.example/mp?application_name=a@b",
             "postgresql://pool@db.example/mp"),
            (f"postgresql://pool:{PASSWORD}@db.example?application_name=a@b",
             "postgresql://pool@db.example/"),
            (f"postgresql://pool:{PASSWORD}@db.example:5433?application_name=a@b&sslmode=require",
             "postgresql://pool@db.example:5433/"),
            # a ? in the password, before the first @, starts no query
            ("postgresql://pool:Pw?9q@db.example?application_name=a@b",
             "postgresql://pool@db.example/")]:
        assert (url_problem(url), describe(url)) == (None, named)


#: Raw / or @ in a password where the URL has no database: refused as with one (the CLI's
#: path is `UNENCODED`'s test; these are the library's reading of a URL without a /).
UNENCODED_WITHOUT_DATABASE = [
    ("postgresql://pool:Ab3@Xy9kq@db.example", "Ab3@Xy9kq"),
    ("postgresql://pool:Ab3@Xy9kq@db.example:5433?sslmode=require", "Ab3@Xy9kq"),
    # libpq reads host "Zk" and a query key "Wv9k@db.example"
    ("postgresql://pool:Qx7@Zk?Wv9k@db.example", "Qx7@Zk?Wv9k"),
    ("postgresql://pool:Ab3/Xy9kq@db.example?application_name=a@b", "Ab3/Xy9kq"),
]


@pytest.mark.parametrize(("url", "password"), UNENCODED_WITHOUT_DATABASE)
def test_a_raw_slash_or_at_in_the_password_is_refused_without_a_database_too(url, password):
    from modempool.spool.postgres_url import UNENCODED as SAID, describe, url_problem

    pieces = {password[i:i + 3] for i in range(len(password) - 2)}
    assert url_problem(url) == SAID
    assert describe(url).startswith("postgresql://pool@")
    assert not [p for p in pieces if p in describe(url)], describe(url)
