"""modempool: drive a bank of GSM modems to send and receive SMS.

`from modempool import Pool` is the front door (see `modempool.pool`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modempool.errors import PoolError

if TYPE_CHECKING:
    from modempool.pool import Pool

__all__ = ["Pool", "PoolError"]


def __getattr__(name: str) -> Any:
    # Pool is imported on first use, so that `import modempool.numbers` stays light.
    if name == "Pool":
        from modempool.pool import Pool

        return Pool
    raise AttributeError(f"module 'modempool' has no attribute {name!r}")
