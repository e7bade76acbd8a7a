"""Where the HTTP API listens, and whether that address needs a word of warning.

The API answers on loopback unless told otherwise. Listening on any other address needs
`[http] public = true` (or `--public`), and even then a warning is printed unless TLS
(`tls_cert`/`tls_key`) or a reverse proxy (`behind_proxy = true`) is declared: API keys
travel in every request and must not cross a network in clear text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from modempool.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @property
    def text(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_listen(value: str) -> ListenAddress:
    """`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:80`, or `8080` (loopback); ValueError if not."""
    value = value.strip()
    host, port_text = DEFAULT_LISTEN.split(":")[0], value
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
        raise ValueError(f"listen address {value!r}: use HOST:PORT, e.g. 127.0.0.1:8080")
    return ListenAddress(host, int(port_text))


def check_exposure(address: ListenAddress, *, public: bool, tls: bool, behind_proxy: bool) -> str | None:
    """ConfigError if a non-loopback address was not asked for explicitly; else the warning
    to print (None when there is nothing to say)."""
    if address.loopback:
        return None
    if not public:
        raise ConfigError(
            f"refusing to listen on {address.text}: it is not a loopback address. Set "
            "[http] public = true (or --public) to serve other hosts, preferably behind "
            "TLS or a reverse proxy (see docs/http.md)")
    if tls or behind_proxy:
        return None
    return (f"warning: the API listens on {address.text} without TLS; keys travel in clear "
            "text. Put nginx in front (docs/http.md) and set [http] behind_proxy = true, "
            "or give tls_cert and tls_key")


def with_listen(config, listen: str | None):
    """`config` with `[http] listen` set to `listen` (the `run --http` option); unchanged if None."""
    import dataclasses

    if listen is None:
        return config
    try:
        text = parse_listen(listen).text
    except ValueError as exc:
        raise ConfigError(f"--http: {exc}") from None
    return dataclasses.replace(config, http=dataclasses.replace(config.http, listen=text))
