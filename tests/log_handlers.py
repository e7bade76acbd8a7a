"""A handler on one logger for a block: how a test reacts to (or waits for) a line that another
thread or task logs, where that is the only sign the test can see."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

H = TypeVar("H", bound=logging.Handler)


@contextmanager
def handler_on(name: str, handler: H, level: int) -> Iterator[H]:
    """`handler` on the logger `name`, which passes records from `level` on, for the block."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
