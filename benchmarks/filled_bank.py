"""What the benchmarks that fill a spool by SQL share: the config of a bank of 64 modems that
are never opened (`write_config`), and times as the spool stores them (`iso`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

SIMS = [f"m{i}" for i in range(1, 65)]


def write_config(directory: Path, url: str | None = None, sims: list[str] = SIMS) -> Path:
    """`directory/modempool.toml`: the spool at `url` (PostgreSQL) or `directory/spool.db`,
    and one `[[modem]]` (port /dev/null, 500 a day) per SIM name. Returns its path."""
    toml = directory / "modempool.toml"
    where = f'url = "{url}"' if url else f'path = "{directory / "spool.db"}"'
    toml.write_text(f"[spool]\n{where}\n\n" + "".join(
        f'[[modem]]\nname = "{s}"\nport = "/dev/null"\nper_day = 500\n\n' for s in sims),
        encoding="utf-8")
    return toml


def iso(moment: datetime) -> str:
    """A time as the spool stores it (ISO 8601, milliseconds, UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
