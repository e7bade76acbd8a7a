"""Fixtures shared by the modempool tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ONE_MODEM_CONFIG = """\
[spool]
path = "pool.db"

[[modem]]
name = "m1"
port = "/dev/null"
"""


@pytest.fixture
def config(tmp_path) -> Path:
    """A config file for one modem `m1` (never opened) and the spool `pool.db` beside it."""
    path = tmp_path / "modempool.toml"
    path.write_text(ONE_MODEM_CONFIG, encoding="utf-8")
    return path
