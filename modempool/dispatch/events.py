"""Waiting for the first of several asyncio events (a stop, a wake-up, a commit)."""

from __future__ import annotations

import asyncio


async def first_set(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Until one of `events` is set, or `timeout` seconds have passed (None: no limit)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=None if timeout is None else max(0.0, timeout),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
