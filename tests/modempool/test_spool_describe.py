"""How a PostgreSQL URL is named in messages and logs (`postgres_conn.describe`): user, each
host with its own port, the database; never the password."""

from __future__ import annotations

import pytest

from modempool.spool.postgres_conn import describe


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://pool:s3cret@db1:5432,db2:5433/modempool?target_session_attrs=read-write",
     "postgresql://pool@db1:5432,db2:5433/modempool"),
    ("postgresql://pool@db1,db2,db3/modempool", "postgresql://pool@db1,db2,db3/modempool"),
    ("postgresql://pool@db1:5432,db2,db3:5433/modempool",
     "postgresql://pool@db1:5432,db2,db3:5433/modempool"),
    ("postgresql://pool@/modempool?host=db1,db2&port=6432",   # one port: every host's
     "postgresql://pool@db1:6432,db2:6432/modempool"),
    ("postgresql://pool@[2001:db8::1]:5432,db2/modempool",
     "postgresql://pool@[2001:db8::1]:5432,db2/modempool"),
    ("host=db1,db2 port=5432,5433 dbname=modempool user=pool password=s3cret",
     "postgresql://pool@db1:5432,db2:5433/modempool"),
    ("postgresql://db.example/modempool", "postgresql://db.example/modempool"),
    # a query parameter libpq does not know: named from the URL's parts (was "unparsable")
    ("postgresql://pool:s3cret@db1:5433/modempool?sslmod=require",
     "postgresql://pool@db1:5433/modempool"),
    ("postgresql://pool:s3cret@[::1/modempool", "postgresql://(unparsable URL)"),
    # a raw / or @ in the password (rev21b M2): the user, then what follows the last @
    ("postgresql://pool:s3/cret@db1/modempool", "postgresql://pool@db1/modempool"),
    ("postgresql://pool:s3@cret@db1:5433/modempool", "postgresql://pool@db1:5433/modempool"),
    # a ? in the password is no query's start; an @ in the query alone is no password's
    ("postgresql://pool:s3?cret@db1/modempool?x=y", "postgresql://pool@db1/modempool"),
    ("postgresql://pool:s3cret@db1/modempool?application_name=a@b",
     "postgresql://pool@db1/modempool"),
])
def test_each_host_is_shown_with_its_own_port_and_no_password(url, shown):
    assert describe(url) == shown
    assert not [p for p in ("s3c", "cret", "s3/", "s3@", "s3?") if p in describe(url)]
