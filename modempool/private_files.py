"""Files that hold secrets or people's messages are created readable by their owner only (0600),
whatever the umask: the config (SIM PINs), the spool (every SMS and contact) and the log."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_MODE = 0o600


def create_private(path: str | Path, mode: int = PRIVATE_MODE) -> None:
    """Create `path` (and its directory) empty with `mode` if it does not exist; an existing
    file keeps its mode (the owner may have chosen one, e.g. 0640 for a group)."""
    path = Path(path)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    except FileExistsError:  # created meanwhile by another process
        pass


def write_private(path: str | Path, content: str | bytes, mode: int = PRIVATE_MODE) -> None:
    """Write `content` (text as UTF-8, or bytes) to `path`, which ends up with `mode` (a new
    file, or one replaced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(descriptor, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content.encode("utf-8") if isinstance(content, str) else content)
