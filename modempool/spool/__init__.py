"""The durable spool (the storage engine): messages, parts, leases, inbound, reports, SIMs.

`from modempool.spool import Spool` reads store.py (and with it every part of the spool) on first
use, not when a leaf module such as `modempool.spool.unavailable` is imported: every `modempool`
command's logging reads that one, and `modempool pdu` or `--help` need no spool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modempool.spool.store import (FINAL_STATES, RETRYABLE_STATES, SUCCESS_STATES,
                                       InboundMessage, LeaseLost, Message, MessageState,
                                       Recovery, ReportMatch, Spool, SpoolTooNew,
                                       SpoolUnreachable, StateConflict, from_text, to_text,
                                       utcnow)

#: What `modempool.spool` offers, all defined in (or brought together by) store.py.
__all__ = [
    "FINAL_STATES",
    "InboundMessage",
    "RETRYABLE_STATES",
    "ReportMatch",
    "SUCCESS_STATES",
    "LeaseLost",
    "Message",
    "MessageState",
    "Recovery",
    "Spool",
    "SpoolTooNew",
    "SpoolUnreachable",
    "StateConflict",
    "from_text",
    "to_text",
    "utcnow",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("modempool.spool.store"), name)
        globals()[name] = value   # found once; later reads are plain attributes
        return value
    raise AttributeError(f"module 'modempool.spool' has no attribute {name!r}")
