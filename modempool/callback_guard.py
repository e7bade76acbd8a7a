"""Where the box may be made to call: the guard against server-side request forgery.

A Kannel `dlr-url` is given by whoever sends (any sender account), and the box then calls it.
Without a guard, a sender could make the box call its own loopback services, the cloud's
metadata address (169.254.169.254) or the site's private network. So a callback is allowed
only to an http(s) URL whose host's addresses are all public, unless `[http] callback_allow`
says otherwise:

    [http]
    callback_allow = ["https://crm.example.com/dlr/", "10.20.0.0/16"]

- an entry that starts with `http://` or `https://` is a URL prefix: a callback under it (same
  scheme, host and port, its path below the prefix's once dot segments are removed, as the
  client will send it) is allowed wherever its host points; a path with an encoded dot, slash
  or backslash (`%2e`, `%2f`, `%5c`) or a backslash is never under a prefix (a server may
  decode it into `..` and climb out);
- any other entry is an address or network (`10.20.0.0/16`, `fd00::/8`, `192.0.2.7`): a
  callback whose host's addresses all lie in allowed networks or are public is allowed.

Refused unless allowed: loopback, link-local, private (RFC 1918, unique-local), shared
(100.64/10), multicast, unspecified, reserved and documentation addresses, and IPv6 forms that
carry such an IPv4 address (IPv4-mapped `::ffff:127.0.0.1`, 6to4, NAT64). A host is read as the
resolver reads it, so `2130706433` and `0177.0.0.1` are 127.0.0.1 and refused too.

The check is made twice: when the callback is given (`check_callback`, before anything is
queued) and when it is called (`GuardedTransport`): the host is resolved once, each address
checked, and the connection made to those very addresses (each in turn until one answers),
with the URL's host kept in the `Host` header and TLS's SNI, so a name that resolves elsewhere
the second time (DNS rebinding) gains nothing. Callbacks never follow redirects (the delivery
client has them off), never go through an environment proxy, and never reuse a connection:
the connection pool knows a pinned connection by its address only, so a TLS connection
checked for one name could otherwise carry a callback for another name on the same address.

A refusal says only that the address is not allowed: which address a name resolved to, and
why it is refused, is logged on the server, not told to the sender.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modempool.errors import PoolError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_ENCODED_SEPARATORS = ("%2e", "%2f", "%5c", "\\")
RESOLVE_TIMEOUT = 5.0   # seconds a callback's host may take to resolve
# The lookups' own threads: a resolver that hangs holds one of these, not a thread of the
# server's shared pool (which key checks need too), and for RESOLVE_TIMEOUT at most.
_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="callback-dns")

log = logging.getLogger("modempool.callback_guard")

Resolver = Callable[[str, int], Awaitable[list["IpAddress"]]]
Lookup = Callable[..., Sequence[Any]]   # socket.getaddrinfo's signature


class CallbackRefused(PoolError):
    """A callback URL the box may not call (its scheme, or where its host points)."""

    code = "callback_refused"


@dataclass(frozen=True, slots=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str

    def covers(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host, port) != (self.scheme, self.host, self.port):
            return False
        if any(mark in path.lower() for mark in _ENCODED_SEPARATORS):
            return False
        base = self.path if self.path.endswith("/") else self.path + "/"
        return path == self.path or path.startswith(base)


@dataclass(frozen=True, slots=True)
class CallbackAllow:
    """`[http] callback_allow`, read: URL prefixes and networks a callback may reach beyond
    the public Internet. `CallbackAllow()` allows public addresses only."""

    prefixes: tuple[_Prefix, ...] = ()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackAllow:
        """From the config's strings; ValueError naming an entry that is neither."""
        prefixes, networks = [], []
        for entry in entries:
            if entry.lower().startswith(("http://", "https://")):
                where = _split(entry)
                if where is None:
                    raise ValueError(f"{entry!r} is not a URL with a host")
                prefixes.append(_Prefix(*where))
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is neither an http(s):// URL prefix nor an address "
                                 "or network like 10.0.0.0/8") from None
        return cls(tuple(prefixes), tuple(networks))

    def covers_url(self, url: str) -> bool:
        """Whether `url` is under one of the allowed URL prefixes."""
        where = _split(url)
        return where is not None and any(p.covers(*where) for p in self.prefixes)

    def address_problem(self, address: IpAddress) -> str | None:
        """Why the box may not call `address` ("loopback", "private"...), None if it may."""
        if any(address in net for net in self.networks if net.version == address.version):
            return None
        for carried in _carried_ipv4(address):
            if any(carried in net for net in self.networks if net.version == 4):
                return None
        return special_use(address)


def special_use(address: IpAddress) -> str | None:
    """What kind of non-public address this is, None for a public (global unicast) one."""
    for candidate in (address, *_carried_ipv4(address)):
        kind = _kind(candidate)
        if kind is not None:
            return kind
    return None


def _kind(address: IpAddress) -> str | None:
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("shared (carrier-grade NAT)", address.version == 4 and address in _SHARED),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("not public", not address.is_global))
    return next((name for name, hit in checks if hit), None)


def _carried_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one stands for (IPv4-mapped, 6to4, NAT64 well-known)."""
    if address.version != 6:
        return []
    carried = [address.ipv4_mapped, address.sixtofour]
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in carried if a is not None]


def _split(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) URL, None if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    path = without_dot_segments(parts.path or "/")
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], path


def without_dot_segments(path: str) -> str:
    """`path` with its `.` and `..` segments removed (RFC 3986 5.2.4), as the HTTP client
    sends it: `/dlr/../admin` is `/admin`."""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")
    joined = "/".join(kept)
    return joined if joined.startswith("/") else "/" + joined


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT,
            lookup: Lookup = socket.getaddrinfo) -> list[IpAddress]:
    """Every address `lookup` (the system's resolver; a test gives its own) gives for `host`
    (as a connection would ask it); OSError if it does not answer within `timeout` seconds."""
    pending = _RESOLVER.submit(lookup, host, port, type=socket.SOCK_STREAM)
    try:
        infos = pending.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        pending.cancel()
        raise OSError(f"no answer within {timeout:g} s") from None
    return _addresses(infos)


async def resolve_async(host: str, port: int) -> list[IpAddress]:
    """`resolve` for the event loop (the guarded transport's resolver, which limits its time)."""
    import asyncio

    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _addresses(infos)


def _addresses(infos: Sequence[Any]) -> list[IpAddress]:
    out: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])   # fe80::1%eth0
        if address not in out:
            out.append(address)
    return out


def _refused(what: str, url: str) -> CallbackRefused:
    return CallbackRefused(
        f"{what}: not an allowed callback address (its host must resolve to public addresses "
        "only, or be listed in [http] callback_allow)", params={"url": url})


def check_addresses(url: str, host: str, addresses: Sequence[IpAddress], allow: CallbackAllow,
                    what: str) -> None:
    """A `CallbackRefused` unless the box may call every one of `addresses` for `url`. Why
    is logged, not said: the refusal would tell a sender where internal names point."""
    if not addresses:
        log.warning("%s refused: host %s has no address", what, host)
        raise _refused(what, url)
    for address in addresses:
        problem = allow.address_problem(address)
        if problem is not None:
            log.warning("%s refused: host %s has the %s address %s", what, host, problem, address)
            raise _refused(what, url)


def check_callback(url: str, allow: CallbackAllow, what: str = "dlr-url", *,
                   timeout: float = RESOLVE_TIMEOUT, lookup: Lookup = socket.getaddrinfo) -> None:
    """Refuse (`CallbackRefused`, one line) a callback URL the box may not call: not http(s),
    or a host that does not resolve (by `lookup` within `timeout` seconds) or resolves to an
    address that is not allowed. Resolves the host (blocking: call it off the event loop)."""
    where = _split(url)
    if where is None:
        raise CallbackRefused(f"{what} {url!r}: give an http:// or https:// URL with a host",
                              params={"url": url})
    if allow.covers_url(url):
        return
    _, host, port, _ = where
    try:
        addresses = resolve(host, port, timeout, lookup)
    except (OSError, UnicodeError, ValueError) as exc:
        log.warning("%s refused: host %s does not resolve (%s)", what, host, exc)
        raise _refused(what, url) from None
    check_addresses(url, host, addresses, allow, what)


def guarded_transport(allow: CallbackAllow, resolver: Resolver = resolve_async, *,
                      resolve_timeout: float = RESOLVE_TIMEOUT, **options: Any) -> Any:
    """An httpx transport that calls only allowed addresses (`GuardedTransport`). `resolver`
    gives a host's addresses (the system's, by default; a test gives its own), within
    `resolve_timeout` seconds, else the callback is refused."""
    import asyncio

    import httpx

    class GuardedTransport(httpx.AsyncBaseTransport):
        """Resolves each request's host once, checks every address, and connects to them in
        turn until one answers; the URL's host stays in the Host header and the TLS server
        name. No connection is kept alive (the module's docstring says why)."""

        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_keepalive_connections=0), trust_env=False, **options)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            url = str(request.url)
            if allow.covers_url(url):
                return await self.inner.handle_async_request(request)
            where = _split(url)
            if where is None:
                raise CallbackRefused("the callback is not an http(s) URL")
            _, host, port, _ = where
            try:
                async with asyncio.timeout(resolve_timeout):
                    addresses = await resolver(host, port)
            except TimeoutError:
                log.warning("callback refused: host %s does not resolve (no answer within "
                            "%g s)", host, resolve_timeout)
                raise _refused("callback", url) from None
            except (OSError, UnicodeError, ValueError) as exc:
                log.warning("callback refused: host %s does not resolve (%s)", host, exc)
                raise _refused("callback", url) from None
            check_addresses(url, host, addresses, allow, "callback")
            for address in addresses[:-1]:
                try:
                    return await self._call(request, host, address)
                except httpx.ConnectError as exc:   # nothing sent yet: the next address
                    log.info("callback to %s: %s did not answer (%s); trying the next address",
                             host, address, exc)
            return await self._call(request, host, addresses[-1])

        async def _call(self, request: httpx.Request, host: str,
                        address: IpAddress) -> httpx.Response:
            pinned = httpx.Request(
                request.method, request.url.copy_with(host=str(address)),
                headers=request.headers, stream=request.stream,
                extensions={**request.extensions, "sni_hostname": host})
            return await self.inner.handle_async_request(pinned)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return GuardedTransport()
