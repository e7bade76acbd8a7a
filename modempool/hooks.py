"""Where operator features (opt-out, auto-reply, forwarding) plug into the daemon's inbound path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

InboundHandler = Callable[..., Any]


def inbound_handlers(config: Any) -> list[InboundHandler]:
    """Handlers the daemon calls, in order, for each complete inbound message it has stored."""
    return []
