"""How a command fails: one line that names the file, option or value, never a traceback.

`OneLineErrors` is the class of the top-level `modempool` group: what the libraries raise for bad
input or a bad environment (a PoolError, an unreadable file, a full or read-only disk, a broken
database, a database role without the rights it needs) becomes `Error: ...` and exit status 1.
Programming errors still show their traceback.
"""

from __future__ import annotations

import errno
import io
from typing import Any

import click

_DISK_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EFBIG: "the file is larger than this process may write"}


def one_line(exc: BaseException) -> str | None:
    """What to tell the user about `exc`, or None if it is no input or environment problem."""
    from modempool.spool.database_errors import database_error   # the spool only on a failure

    found = database_error(exc)   # a PoolError, or a database's error in one line
    if found is not None:
        return str(found)
    if isinstance(exc, UnicodeDecodeError):
        return (f"the input is not valid {exc.encoding}: byte 0x{exc.object[exc.start]:02x} at "
                f"position {exc.start} (save it as UTF-8)")
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return where + (_DISK_FULL.get(exc.errno) or exc.strerror or str(exc))
    return None


class OneLineErrors(click.Group):
    """A click group whose commands fail with one clear line (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        from modempool.logs import one_line_driver_logs

        one_line_driver_logs()   # a database gone mid-command: its error line, no pool chatter
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = one_line(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


class Utf8File(click.File):
    """`--file` read whole as UTF-8 when the command line is read; a file that is not UTF-8 is
    one error naming it."""

    def __init__(self) -> None:
        super().__init__("r", encoding="utf-8")

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        handle = super().convert(value, param, ctx)
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise click.ClickException(
                f"{value}: byte 0x{exc.object[exc.start]:02x} at position {exc.start} is not "
                f"valid UTF-8 (save the file as UTF-8)") from None
        finally:
            if value != "-":
                handle.close()
        return io.StringIO(text)
