"""A PostgreSQL URL named for people, and what is wrong with a malformed one.

`describe` names a URL without its password (user@host:port/db), for messages and logs;
`url_problem` says why libpq would refuse a URL before reaching any server (a port that is
not a number, an sslmode it does not know, a query parameter it does not know), so that a
typo reads "invalid spool URL", not "cannot reach the spool". Both read the URL only: no
name is looked up, nothing is connected to.

A `/` or `@` written raw in a URL's user name or password (base64-made passwords hold `/`)
makes libpq split the URL elsewhere than its writer meant (at the first `/` or `@`), so that
parts of the password land in the host, port or database name it reports, and the "host"
piece goes to the resolver. Such a URL is refused here ("percent-encode / as %2F and @ as
%40") and named without anything that lies between `://` and its last `@` but the user name
(rev21b M2). Beside a password, an `@` after the first one is allowed in the query alone:
`user:pw@host/my@db` and a password `pw@host/my` before `@db` read alike, so a raw `@` in
the database name is refused too (rev22b R1).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from modempool.masked import masked, one_line

#: What `url_problem` says of a URL with a password and a raw / or @ where libpq would split.
UNENCODED = ("percent-encode / as %2F and @ as %40 in the user name, password and "
             "database name")

#: The options whose value libpq checks against a list of its own before it connects
#: (libpq 15 to 18; an option this libpq does not know is refused by its parser first).
CHOSEN_VALUES: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby",
                             "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "sslcertmode": ("disable", "allow", "require"),
}


def describe(url: str) -> str:
    """user@host:port/db of a URL, without its password (for messages and logs); the hosts
    of a multi-host URL each with its own port (`db1:5432,db2:5433`). A URL libpq cannot
    parse (an unknown query parameter) is named from its parts as a URL reads them, and one
    whose user name or password holds a raw / or @ by its user name and what follows its last
    @; either way the text is masked with the URL's password as a last guard."""
    from psycopg.conninfo import conninfo_to_dict

    if _unencoded(url):
        return masked(_described_after_last_at(url), url)
    try:
        info = conninfo_to_dict(url)
    except Exception:
        return masked(_described_by_its_parts(url), url)
    user = f"{info['user']}@" if info.get("user") else ""
    return masked(f"postgresql://{user}{hosts_of(info)}/{info.get('dbname') or ''}", url)


def _unencoded(url: str) -> bool:
    """Whether a URL with a password (a colon before its last `@`) holds a raw / or @ that
    libpq would split it at: a / before the first @, or an @ after the first one anywhere
    but in the query's values. The query is what follows the first ? after the first @ (a ?
    in a password is no query's start): libpq's host ends at a / or a ?; with a / after the
    first @, at the first ? after that / (a password's raw @ then / stays refused);
    `?application_name=a@b` after a clean `user:password@host/db` or `@host` passes (rev21b
    M2, rev22b R1, audit23 F3)."""
    _, mark, rest = url.partition("://")
    userinfo = rest[:rest.rfind("@")] if mark and "@" in rest else ""
    if ":" not in userinfo or "/" not in userinfo and "@" not in userinfo:
        return False
    first = rest.find("@")
    slash = rest.find("/", first)
    query = rest.find("?", slash if slash >= 0 else first)
    before = rest[:query] if query >= 0 else rest
    keys = [piece.split("=", 1)[0] for piece in rest[query + 1:].split("&")] if query >= 0 else []
    return ("/" in rest[:first] or "@" in before[first + 1:]
            or any("@" in key or "/" in key for key in keys))


def _described_after_last_at(url: str) -> str:
    """postgresql://user@host/db of a URL whose user:password holds a raw / or @: the user
    name (the text before the first colon, when it holds none of / @ ? #) and what follows
    the last @ (host and port, database), never what lies between."""
    rest = url.partition("://")[2]
    userinfo, _, where = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    user = f"{user}@" if user and not any(c in user for c in "/@?#") else ""
    host, _, dbname = where.split("?", 1)[0].partition("/")
    return f"postgresql://{user}{host}/{dbname}"


def _described_by_its_parts(url: str) -> str:
    """user@host:port/db as the URL's own syntax gives them, never its password or query.
    The authority ends at the first / (as libpq reads it), so a ? in a password is not
    taken for the query's start."""
    try:
        parts = urlsplit(url)   # for its checks: the scheme, a bracket left open
    except ValueError:
        return "postgresql://(unparsable URL)"
    authority, _, tail = url.partition("://")[2].partition("/")
    userinfo, at, where = authority.rpartition("@")
    where = where.split("?", 1)[0]
    user = userinfo.split(":", 1)[0] if at else ""
    dbname = tail.split("?", 1)[0]
    if not parts.scheme.startswith("postgres") or not where and not dbname:
        return "postgresql://(unparsable URL)"
    return f"postgresql://{f'{user}@' if user else ''}{where}/{dbname}"


def hosts_of(info: dict[str, Any]) -> str:
    """The hosts of a parsed conninfo paired with their ports: libpq's `host` and `port` are
    lists in step (one port alone is every host's; an empty one the default)."""
    hosts = str(info.get("host") or info.get("hostaddr") or "localhost").split(",")
    ports = str(info.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    shown = []
    for host, port in zip(hosts, ports + [""] * (len(hosts) - len(ports))):
        host = host or "localhost"
        if ":" in host and port:   # an IPv6 address before its port
            host = f"[{host}]"
        shown.append(f"{host}:{port}" if port else host)
    return ",".join(shown)


def url_problem(url: str) -> str | None:
    """Why libpq would refuse `url` as written (one line, its password masked), or None: a
    syntax or parameter its parser refuses, a port that is no number from 1 to 65535, as
    many ports as neither one nor the hosts, a value not among an option's choices, a raw /
    or @ in the user name or password."""
    from psycopg.conninfo import conninfo_to_dict

    if _unencoded(url):   # before libpq, which would quote a piece of the password
        return UNENCODED
    try:
        info = conninfo_to_dict(url)
    except Exception as exc:   # psycopg's ProgrammingError: libpq's parser's message
        return one_line(exc, url)
    problem = _value_problem(info)
    return None if problem is None else one_line(problem, url)


def _value_problem(info: dict[str, Any]) -> str | None:
    """What `url_problem` finds in the values of a parsed URL."""
    ports = str(info.get("port") or "").split(",")
    for port in ports:
        if port and not port.isdecimal():
            return f'the port "{port}" is not a number'
        if port and not 1 <= int(port) <= 65535:
            return f"the port {port} is not between 1 and 65535"
    hosts = str(info.get("host") or info.get("hostaddr") or "").split(",")
    if len(ports) > 1 and len(ports) != len(hosts):
        return f"{len(ports)} ports for {len(hosts)} hosts (one port for all, or one each)"
    for option, choices in CHOSEN_VALUES.items():
        value = info.get(option)
        if value is not None and value not in choices:
            return f'{option} "{value}" is none of {", ".join(choices)}'
    return None
