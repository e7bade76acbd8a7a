"""Where in a config file a mistake is: the line of a key (found by scanning the text, as
tomllib gives no positions), and the ConfigError that names file, line, table and key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modempool.errors import ConfigError


class Locator:
    """Checks tables against `sections` (each key's converter) and finds the line of a key by
    scanning the file text."""

    def __init__(self, text: str, path: Path,
                 sections: dict[str, dict[str, Callable[[Any], Any]]]) -> None:
        self.lines = text.splitlines()
        self.path = path
        self.sections = sections

    def check(self, section: str, index: int | None, table: dict[str, Any]) -> dict[str, Any]:
        checks = self.sections[section]
        out = {}
        for key, value in table.items():
            if key not in checks:
                hint = difflib.get_close_matches(key, list(checks), n=1)
                raise self.error(section, index, key, "unknown key"
                                 + (f" (did you mean '{hint[0]}'?)" if hint else "")
                                 + f"; known keys: {', '.join(checks)}")
            try:
                out[key] = checks[key](value)
            except ValueError as exc:
                raise self.error(section, index, key, str(exc)) from None
        return out

    def error(self, section: str | None, index: int | None, key: str | None, problem: str) -> ConfigError:
        line = self.line_of(section, index, key)
        return config_error(self.path, line, key, problem, table_name(section, index))

    def line_of(self, section: str | None, index: int | None, key: str | None) -> int | None:
        """1-based line of `key` in table `section` (its `index`-th [[array]] entry), or of
        the table header when key is None; None when it cannot be found (inline tables)."""
        current, seen, header_line = None, {}, None
        for number, raw_line in enumerate(self.lines, start=1):
            line = raw_line.strip()
            header = re.fullmatch(r"\[\[\s*([^\]]+?)\s*\]\]\s*(#.*)?", line) or re.fullmatch(
                r"\[\s*([^\]]+?)\s*\]\s*(#.*)?", line)
            if header:
                name = header.group(1).strip('"\'')
                position = seen.get(name, 0)
                seen[name] = position + 1
                current = (name, position if line.startswith("[[") else None)
                if section is not None and current == (name, index) and name == section:
                    header_line = number
                    if key is None:
                        return number
                elif section is None and key is not None and name == key:
                    return number  # an unknown section: point at its header
                continue
            in_table = (section is None and current is None) or (
                current is not None and current == (section, index))
            if in_table and key is not None and re.match(
                    rf"""\s*["']?{re.escape(key)}["']?\s*=""", raw_line):
                return number
        return header_line


def table_name(section: str | None, index: int | None) -> str:
    if section is None:
        return ""
    if index is not None:
        return f"[[{section}]] #{index + 1}"
    return f"[{section}]"


def key_on_line(text: str, line: int | None) -> str | None:
    if line is None:
        return None
    lines = text.splitlines()
    if 0 < line <= len(lines):
        match = re.match(r"""\s*["']?([A-Za-z0-9_\-.]+)["']?\s*=""", lines[line - 1])
        if match:
            return match.group(1)
    return None


def config_error(path: Path, line: int | None, key: str | None, problem: str,
                 table: str = "") -> ConfigError:
    where = str(path) + (f", line {line}" if line else "")
    what = " ".join(p for p in (table, f"key '{key}'" if key else "") if p)
    error = ConfigError(f"{where}: {what + ': ' if what else ''}{problem}")
    error.file, error.line, error.key = str(path), line, key  # type: ignore[attr-defined]
    return error
