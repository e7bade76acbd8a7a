"""One simulated modem's pseudo-terminal: a pty pair whose master is read with
`loop.add_reader` (no thread or busy task per modem), a symlink re-pointed to the slave, bytes
written by the client fed to the interpreter, and the interpreter's outputs written back in
order, each after its delay (`simulator/modem_output.py`). A client's exclusive mode is undone
when it closes the port (`clear_exclusive`, called by `simulator/pty_watch.py`)."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import grp
import logging
import os
import termios
import tty
from pathlib import Path

from simulator.at_syntax import Output
from simulator.modem import VirtualModem, mask_pin
from simulator.pty_watch import CloseWatcher


class ModemPort:
    """One modem's pseudo-terminal: bytes in to the interpreter, its outputs out, in order."""

    def __init__(self, modem: VirtualModem, link: Path, loop: asyncio.AbstractEventLoop,
                 watcher: CloseWatcher | None = None) -> None:
        self.modem, self.link, self.loop, self.watcher = modem, link, loop, watcher
        self._watch = -1
        self.master = self.slave = -1
        self.pts = ""
        self._queue: collections.deque[Output] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._waited = False
        self._draining = False

    @property
    def is_open(self) -> bool:
        return self.master >= 0

    def open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR/LF translation: the interpreter does it all
        os.set_blocking(self.master, False)
        self.pts = os.ttyname(self.slave)
        os.chmod(self.pts, 0o660)
        try:
            os.chown(self.pts, -1, grp.getgrnam("dialout").gr_gid)
        except (KeyError, PermissionError):
            pass
        temporary = self.link.with_name(f".{self.link.name}.new")
        temporary.unlink(missing_ok=True)
        os.symlink(self.pts, temporary)
        os.replace(temporary, self.link)  # re-pointed atomically when the modem comes back
        self.loop.add_reader(self.master, self._readable)
        if self.watcher:
            self._watch = self.watcher.watch(self.pts, self.clear_exclusive)
        self.modem.output = self._enqueue
        self.modem.connected = True

    def close(self) -> None:
        self.modem.connected = False
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._waited = False
        if self.watcher and self._watch >= 0:
            self.watcher.unwatch(self._watch)
            self._watch = -1
        if self.master >= 0:
            self.loop.remove_reader(self.master)
            os.close(self.master)
            os.close(self.slave)
            self.master = self.slave = -1
        if self.link.is_symlink() and os.readlink(self.link) == self.pts:
            self.link.unlink()

    def clear_exclusive(self) -> None:
        """A client closed the port: undo its TIOCEXCL so the next client (not root) can open
        it; until a client talks again, nobody would read an unsolicited code."""
        self.modem.client_attached = False
        if self.slave >= 0:
            try:
                fcntl.ioctl(self.slave, termios.TIOCNXCL)
            except OSError:
                pass

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            if self.modem.log.isEnabledFor(logging.DEBUG):  # masking costs, on every read
                self.modem.log.debug("rx %r", mask_pin(data.decode("latin-1")))
            self.modem.client_attached = True
            self.modem.feed(data)

    def _enqueue(self, output: Output) -> None:
        if not self.is_open:
            return
        if output.urc:
            self._write(output.data)  # unsolicited codes do not wait for a delayed reply
            return
        self._queue.append(output)
        self._drain()

    def _drain(self) -> None:
        if self._draining or self._timer is not None:
            return
        self._draining = True
        try:
            while self._queue and self.is_open:
                head = self._queue[0]
                if head.delay > 0 and not self._waited:
                    self._waited = True
                    self._timer = self.loop.call_later(head.delay, self._resume)
                    return
                self._queue.popleft()
                self._waited = False
                if head.action:
                    try:
                        head.action()
                    except Exception:  # keep the port alive; the reply still goes out
                        self.modem.log.exception("network action failed")
                if head.data:
                    self._write(head.data)
        finally:
            self._draining = False

    def _resume(self) -> None:
        self._timer = None
        self._drain()

    def _write(self, data: bytes) -> None:
        self.modem.log.debug("tx %r", data)
        view = memoryview(data)
        while view and self.is_open:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                self.modem.log.debug("nobody reads the port: %d bytes dropped", len(view))
                return
            except OSError:
                return
            view = view[written:]


__all__ = ["ModemPort"]
