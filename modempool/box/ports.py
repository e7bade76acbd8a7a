"""Who owns a serial port: UUCP lock files and the processes that hold a device open.

The daemon takes the UUCP lock `/run/lock/LCK..ttyUSB0` (the HDB form: the pid as ten characters
and a newline) for every port it drives, and the driver sets `TIOCEXCL` on the open port, so
minicom, cu, ModemManager and a second modempool leave it alone. A lock whose process is gone is
stale and is taken over. `port_holders` reads /proc to say which process holds a device open.

    lock = PortLock("/dev/serial/by-path/...-port0")
    lock.acquire()          # PortBusy("... held by pid 812 (minicom)") when another process has it
    ...
    lock.release()
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from modempool.errors import PoolError

DEFAULT_LOCK_DIR = "/run/lock"
LOCK_DIR_ENV = "MODEMPOOL_LOCK_DIR"   # tests and unusual systems point this elsewhere


class PortBusy(PoolError):
    """Another process holds the port (its UUCP lock, or the device open)."""

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True, slots=True)
class Holder:
    """A process holding a port: its pid and command line."""

    pid: int
    command: str

    @property
    def is_modempool(self) -> bool:
        return "modempool" in self.command or " -m cli " in f" {self.command} "

    @property
    def is_daemon(self) -> bool:
        """`modempool run` (not a probe, a discover or the simulator)."""
        return self.is_modempool and " run" in f" {self.command} "

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command or 'unknown command'})"


def lock_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The UUCP lock directory: `explicit`, else $MODEMPOOL_LOCK_DIR, else /run/lock."""
    return Path(explicit or os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def lock_path(port: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> Path:
    """`LCK..<device>` for the device a port name leads to (symlinks followed): the name minicom
    and cu use, so that every program locks the same file whatever path it was given."""
    real = os.path.realpath(port)
    name = real[len("/dev/"):] if real.startswith("/dev/") else os.path.basename(real)
    return lock_dir(directory) / f"LCK..{name.replace('/', '_')}"


def process_start(pid: int, proc: Path = Path("/proc")) -> int | None:
    """When process `pid` started, in clock ticks after boot (/proc/<pid>/stat, field 22); None
    when it cannot be read, or when `proc` is not this process's pid namespace's (its `self`
    names another pid: a /proc mounted outside, where `pid` is another process). With the pid
    it names one process: a pid the kernel gave again, to another process, comes with another
    start."""
    try:
        if os.readlink(proc / "self") != str(os.getpid()):
            return None
        raw = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # field 2, the command, is in parentheses and may hold spaces and ')': count after the last
    after = raw[raw.rfind(b")") + 1:].split()
    try:
        return int(after[22 - 3])
    except (IndexError, ValueError):
        return None


def command_of(pid: int, proc: Path = Path("/proc")) -> str:
    """The command line of process `pid` ('' when it cannot be read)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def lock_holder(port: str, directory: str | os.PathLike[str] | None = None) -> Holder | None:
    """The live process named in the port's UUCP lock file; None when unlocked or stale."""
    pid = _read_pid(lock_path(port, directory))
    if pid is None or not process_exists(pid):
        return None
    return Holder(pid, command_of(pid))


def port_holders(port: str, proc: Path = Path("/proc")) -> list[Holder]:
    """Processes with the port's device open (from /proc/<pid>/fd; others' processes are
    visible to root only)."""
    real = os.path.realpath(port)
    found = []
    for entry in _pids(proc):
        fd_dir = proc / entry / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:   # gone, or another user's process
            continue
        if any(_link(fd_dir / fd) == real for fd in fds):
            found.append(Holder(int(entry), command_of(int(entry), proc)))
    return found


def other_holders(port: str, proc: Path = Path("/proc")) -> list[Holder]:
    """Other processes with the port open. A pseudo-terminal's slave is always held by the
    program that made it (a simulated bank), so for those only the lock file tells."""
    if os.path.realpath(port).startswith("/dev/pts/"):
        return []
    return [h for h in port_holders(port, proc) if h.pid != os.getpid()]


class PortLock:
    """The UUCP lock of one port, held by this process."""

    def __init__(self, port: str, directory: str | os.PathLike[str] | None = None) -> None:
        self.port = port
        self.path = lock_path(port, directory)
        self.held = False
        self.unwritable = False   # set by `own` on finding the lock directory read-only

    def own(self, log: logging.Logger) -> None:
        """Take the lock for a daemon that owns the port (PortBusy when a live process holds
        it). A lock directory it may not write is no reason to stop: TIOCEXCL still guards
        the port; said once on `log`."""
        if self.held or self.unwritable:
            return
        try:
            self.acquire()
        except PortBusy:
            raise
        except OSError as exc:
            self.unwritable = True
            log.warning("cannot write the UUCP lock %s (%s): minicom and others will not see "
                        "that modempool owns %s", self.path, exc.strerror or exc, self.port)

    def acquire(self) -> None:
        """Take the lock; a stale one (its process gone) is removed first. PortBusy when a live
        process holds it."""
        if self.held:
            return
        me = os.getpid()
        for _ in range(3):  # a stale lock removed under us by another taker: look again
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid == me:
                    raise PortBusy(f"{self.port} is configured twice in this daemon "
                                   f"(lock {self.path} is already ours)")
                if pid is not None and process_exists(pid):
                    holder = Holder(pid, command_of(pid))
                    raise PortBusy(busy_message(self.port, holder), holder)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()   # stale: its process is gone (or the file is garbage)
                continue
            with os.fdopen(fd, "w") as file:
                file.write(f"{me:10d}\n")
            self.held = True
            return
        raise PortBusy(f"{self.port}: could not take {self.path} (it keeps coming back)")

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if self.held and _read_pid(self.path) == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.held = False

    def __enter__(self) -> PortLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    try:
        return int(text.split()[0]) if text else None
    except ValueError:   # ASCII pid expected; a binary (old UUCP) lock is treated as stale
        return None


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:   # closed meanwhile (such as the one listdir used)
        return None


def _pids(proc: Path) -> list[str]:
    try:
        return [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return []


def ensure_free(port: str, directory: str | os.PathLike[str] | None = None) -> None:
    """PortBusy, in words a user can act on, when another process owns `port` (for `probe` and
    `discover`, which must never compete with the daemon)."""
    holder = lock_holder(port, directory)
    if holder is None:
        return
    raise PortBusy(busy_message(port, holder), holder)


def busy_message(port: str, holder: Holder) -> str:
    """Why `port` cannot be used now, and what to do instead."""
    if holder.is_daemon:
        return (f"{port} is driven by the running modempool daemon ({holder}); ask the daemon "
                f"instead: `modempool status` (identity, signal, balance), `modempool ussd SIM "
                f"CODE`, `modempool send`; or stop the daemon to probe the port directly")
    return f"{port} is in use by {holder}; close that program first"


def exclusive_message(port: str, proc: Path = Path("/proc")) -> str:
    """Why opening `port` failed with EBUSY (another process set TIOCEXCL), naming it if /proc
    lets us see it."""
    holders = other_holders(port, proc)
    if any(h.is_daemon for h in holders):
        return busy_message(port, next(h for h in holders if h.is_daemon))
    who = ", ".join(str(h) for h in holders) or "another process (run as root to see which)"
    return f"{port} is held exclusively by {who}; close that program first"
