"""`PartCall`: an object made of parts keeps a part's call under its own long-standing name
(`spool.claim` is `spool.claims.claim`, `account_pool.get` is `account_pool.messages.get`)."""

from __future__ import annotations

from typing import Any


class PartCall:
    """`Owner.name = PartCall("part", "method")`: `owner.name` is `owner.part.method`."""

    def __init__(self, part: str, method: str) -> None:
        self.part, self.method = part, method

    def __set_name__(self, owner: type, name: str) -> None:
        self.__doc__ = f"`{owner.__name__.lower()}.{self.part}.{self.method}`"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return getattr(getattr(instance, self.part), self.method)
