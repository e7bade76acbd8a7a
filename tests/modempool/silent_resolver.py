"""Run a command where host names are looked up from a name server that never answers: a
private network and mount namespace (`unshare -n -m`, as root), its loopback up, a UDP and TCP
server on 127.0.0.1:53 that reads queries and answers none, and an /etc/resolv.conf of its own
pointing there (with a resolver timeout of 60 s). The machine's own resolver is untouched.

    unshare -n -m --propagation private python silent_resolver.py -- CMD ARGS...

Exits with the command's status."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


def _swallow_udp(server: socket.socket) -> None:
    while True:
        server.recvfrom(4096)


def _swallow_tcp(server: socket.socket) -> None:
    held = []   # accepted and never answered
    while True:
        held.append(server.accept()[0])


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 53))
    tcp.listen()
    threading.Thread(target=_swallow_udp, args=(udp,), daemon=True).start()
    threading.Thread(target=_swallow_tcp, args=(tcp,), daemon=True).start()
    with tempfile.TemporaryDirectory() as directory:
        resolv = Path(directory) / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:60 attempts:1\n", "ascii")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
