"""Owning a serial port while it is open: the one place where exclusivity is taken.

Two programs talking to one modem steal each other's replies (and a message that went out once
looks ambiguous). So an open port gets, in order:

- an advisory `flock` on the device: a second modempool (or anything that flocks, like pyserial's
  `exclusive=True`) is refused even when it runs as root;
- `TIOCEXCL`: the kernel refuses any further open(2) of the terminal with EBUSY (root excepted),
  which is what gammu and minicom expect of each other.

Both end when the port is closed. Further layers (the UUCP lock file `LCK..ttyUSB0` that minicom
and others look for) belong here too, in `take_port` / `PortInUse`.
"""

from __future__ import annotations

import errno
import fcntl
import termios


class PortInUse(OSError):
    """Another process holds the port: opening it again would share the modem's replies."""

    def __init__(self, port: str, how: str) -> None:
        super().__init__(errno.EBUSY, f"{port} is busy: another process holds it ({how})")
        self.port = port


def take_port(fd: int, port: str) -> None:
    """Make the open port `fd` ours alone; PortInUse if another process already holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PortInUse(port, "it holds a lock on the device") from None
    try:
        fcntl.ioctl(fd, termios.TIOCEXCL)
    except OSError as exc:
        if exc.errno not in (errno.ENOTTY, errno.EINVAL):  # not a terminal: the flock suffices
            raise


def release_port(serial: object) -> None:
    """Give the port back now (the transport closes its file a moment later), so a reopen right
    after a close is not refused by our own lock. A file already closed needs nothing."""
    try:
        fd = serial.fileno()  # type: ignore[attr-defined]
        fcntl.ioctl(fd, termios.TIOCNXCL)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except Exception:  # closed or gone (unplugged): the kernel has released both already
        pass


def is_exclusive(fd: int) -> bool:
    """Whether the terminal `fd` is in exclusive mode (Linux TIOCGEXCL)."""
    flag = bytearray(4)
    fcntl.ioctl(fd, getattr(termios, "TIOCGEXCL", 0x80045440), flag)
    return int.from_bytes(flag, "little") != 0
