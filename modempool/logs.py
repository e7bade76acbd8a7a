"""The daemon's log: where it goes and in what form (`[logging]` in the config).

- `file = "/var/log/modempool/modempool.log"`: written through a WatchedFileHandler, which
  reopens the file when logrotate has moved it away (no `copytruncate`, no signal, no loss).
- No file, run by systemd (`$JOURNAL_STREAM` set): plain lines on stderr with the syslog
  priority prefix (`<4>`) that journald reads as the level, and no time stamp (journald adds it).
- Otherwise lines with a time stamp on stderr.
- `format = "json"`: one JSON object per line (time, level, logger, modem, message) for log
  shippers, whichever of the above it goes to.

The steady state is quiet at INFO: one line per message sent, per SMS received, and state
changes of modems; AT traffic is DEBUG (`modempool run -vv`).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from modempool.masked import one_line
from modempool.private_files import create_private
from modempool.spool.unavailable import RepeatedLines

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "<%(priority)d>%(name)s: %(message)s"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name.startswith("modempool.modem."):
            entry["modem"] = record.name.removeprefix("modempool.modem.")
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """`<priority>logger: message` for journald (it stamps the time itself)."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # journald takes each line as a record: keep a traceback's lines at the same priority
        return text.replace("\n", f"\n<{record.priority}>")


def under_journald(environ: dict[str, str] | None = None) -> bool:
    """Whether stderr goes to the journal (systemd sets JOURNAL_STREAM for its services)."""
    env = os.environ if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:  # the variable is device:inode of the journal's socket; check it is our stderr
        device, inode = (int(x) for x in stream.split(":"))
        info = os.fstat(sys.stderr.fileno())
        return (info.st_dev, info.st_ino) == (device, inode)
    except (ValueError, OSError):
        return False


#: Libraries whose INFO lines hold whole URLs: a webhook's or a Kannel dlr-url's password
#: and query token would reach the log.
URL_LOGGERS = ("httpx", "httpcore")


def quiet_url_loggers() -> None:
    """Keep the HTTP client's request lines (full URLs, secrets in them) out of every log, at
    any verbosity: only its warnings and errors pass."""
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


#: Libraries whose messages run over several lines (libpq's "...\n\tIs the server running...").
DRIVER_LOGGERS = ("psycopg",)   # and the pool's: `FoldedPoolLines`


class OneLine(logging.Filter):
    """A driver's record as one line without a password (`one_line`): its warnings during a
    database outage stay one line each, and a conninfo or URL it quotes shows no secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        folded = one_line(message)
        if folded != message:
            record.msg = folded
            record.args = None
        return True


#: The PostgreSQL connection pool's logger (psycopg_pool).
POOL_LOGGER = "psycopg.pool"


class FoldedPoolLines(logging.Filter):
    """The connection pool's warnings as one line each (libpq's run over several), with no
    password, and at most one every `every` seconds (the next one says how many were held
    back). During an outage the pool warns at every connection attempt of each of its
    threads (24 warnings of 5 lines in 10 s); the outage itself is said by the engine's
    server watch (`spool/server_watch.py`: as it begins, once a minute, as it ends), so the
    pool adds at most the driver's own detail once a minute (too many connections, a node
    read-only). Its INFO lines (each connection handed out and returned) are left out."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.lines = RepeatedLines(every, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        held_back = self.lines.due((record.name, ""))
        if held_back is None:
            return False
        record.msg = one_line(record.getMessage()) + (
            f" ({held_back} more from the connection pool since the last such line)"
            if held_back else "")
        record.args = ()
        return True


def one_line_driver_logs() -> None:
    """The database driver's own log lines, one line each; its pool's folded too (once,
    whoever sets up logging)."""
    for name, kind in (*((name, OneLine) for name in DRIVER_LOGGERS),
                       (POOL_LOGGER, FoldedPoolLines)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def setup_logging(config: Any, *, verbose: int = 0, environ: dict[str, str] | None = None) -> logging.Handler:
    """Configure the root logger for the daemon; returns the handler installed."""
    level = "DEBUG" if verbose > 1 else "INFO" if verbose else config.log_level
    if config.log_file:
        create_private(config.log_file)  # a log names numbers and texts: 0600 (issue 12)
        handler: logging.Handler = logging.handlers.WatchedFileHandler(config.log_file,
                                                                      encoding="utf-8")
        formatter: logging.Formatter = logging.Formatter(TEXT_FORMAT)
    else:
        handler = logging.StreamHandler(sys.stderr)
        formatter = JournalFormatter() if under_journald(environ) else logging.Formatter(TEXT_FORMAT)
    if config.log_format == "json":
        formatter = JsonFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet_url_loggers()
    one_line_driver_logs()
    return handler
