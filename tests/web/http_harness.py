"""Helpers of the HTTP tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sims_up(spool, **sims: int) -> None:
    """Record a live daemon (this process) and SIMs up with these signals, as `run` would."""
    import os
    import socket as _socket
    from datetime import datetime, timezone

    spool.beat("test-daemon", host=_socket.gethostname(), pid=os.getpid(),
               started_at=datetime.now(timezone.utc))
    for name, signal in sims.items():
        spool.upsert_sim(name, state="up", signal=signal)
