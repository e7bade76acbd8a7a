"""A PostgreSQL URL named for people, and what is wrong with a malformed one.

`describe` names a URL without its password (user@host:port/db), for messages and logs;
`url_problem` says why libpq would refuse a URL before reaching any server (a port that is
not a number, an sslmode it does not know, a query parameter it does not know), so that a
typo reads "invalid spool URL", not "cannot reach the spool". Both read the URL only: no
name is looked up, nothing is connected to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from modempool.masked import one_line

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
    parse (an unknown query parameter) is named from its parts as a URL reads them."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return _described_by_its_parts(url)
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{hosts_of(info)}/{info.get('dbname') or ''}"


def _described_by_its_parts(url: str) -> str:
    """user@host:port/db as the URL's own syntax gives them, never its password or query."""
    try:
        parts = urlsplit(url)
        where = parts.netloc.rpartition("@")[2]
        user = parts.username
    except ValueError:
        return "postgresql://(unparsable URL)"
    if not parts.scheme.startswith("postgres") or not where and not parts.path.strip("/"):
        return "postgresql://(unparsable URL)"
    return f"postgresql://{f'{user}@' if user else ''}{where}/{parts.path.lstrip('/')}"


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
    many ports as neither one nor the hosts, a value not among an option's choices."""
    from psycopg.conninfo import conninfo_to_dict

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
