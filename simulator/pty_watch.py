"""Tell when a client closes a pty slave, to undo the exclusive mode (`TIOCEXCL`) it set.

The bank keeps each slave open itself (so the pty survives clients coming and going), so the
master never sees a hang-up when a client leaves. Measured on Linux: the exclusive flag also
survives the last close, and a pty nobody holds reports POLLHUP continuously (a busy loop for
`add_reader`), while only root may reopen an exclusive slave to clear it. inotify, however,
reports every `close()` of `/dev/pts/N` (IN_CLOSE_WRITE / IN_CLOSE_NOWRITE), so the bank clears
the flag on that event. Without inotify (not Linux) the caller falls back to a timer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable

_IN_CLOSE = 0x00000008 | 0x00000010  # IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)


class CloseWatcher:
    """One inotify descriptor; `watch(path, callback)` calls back when `path` is closed."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True)
        self.fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._callbacks: dict[int, Callable[[], None]] = {}

    @classmethod
    def available(cls) -> CloseWatcher | None:
        try:
            return cls()
        except (OSError, AttributeError):  # no libc inotify: not Linux
            return None

    def watch(self, path: str, callback: Callable[[], None]) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_CLOSE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"cannot watch {path}")
        self._callbacks[wd] = callback
        return wd

    def unwatch(self, wd: int) -> None:
        if self._callbacks.pop(wd, None) is not None:
            self._libc.inotify_rm_watch(self.fd, wd)  # fails harmlessly if the pty is gone

    def readable(self) -> None:
        """Read the pending events and run their callbacks (for `loop.add_reader`)."""
        try:
            data = os.read(self.fd, 64 * _EVENT.size)
        except (BlockingIOError, InterruptedError):
            return
        offset, due = 0, []
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if mask & _IN_CLOSE and wd in self._callbacks and wd not in due:
                due.append(wd)
        for wd in due:
            callback = self._callbacks.get(wd)
            if callback:
                callback()

    def close(self) -> None:
        os.close(self.fd)
        self._callbacks.clear()
