"""A connection to PostgreSQL lost at COMMIT: the server may have committed, so the error must
never say "nothing was changed" (a client repeating the request without its Idempotency-Key
would send the SMS twice). A connection lost before COMMIT was sent rolls back: that one may
say so. A real cluster behind a small Unix-socket proxy that cuts the client off at the chosen
message."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import quote

import psycopg
import pytest

from modempool.spool import Spool
from modempool.spool.unavailable import SpoolOutcomeUnknown, SpoolUnavailable, unavailable


class CuttingProxy:
    """Forwards a client's connections to the cluster's socket; once armed with a marker, the
    client message holding it still reaches the server, but the server's answer to it does not
    reach the client: its connection is closed instead."""

    def __init__(self, directory: str, target: str) -> None:
        self.directory = directory
        self.target = target
        self.marker: bytes | None = None
        self.cut = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(os.path.join(directory, ".s.PGSQL.5432"))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.target)
            sent = threading.Event()   # this connection's marked message went to the server
            threading.Thread(target=self._up, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, sent), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, sent: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.marker is not None and self.marker in data:
                    self.marker = None
                    sent.set()
                server.sendall(data)
        except OSError:
            pass

    def _down(self, server: socket.socket, client: socket.socket, sent: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if sent.is_set():   # the server's answer to the marked message: never delivered
                    self.cut.set()
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    server.close()
                    return
                client.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def behind_proxy(pg_cluster, tmp_path):
    direct = pg_cluster.new_schema()
    schema = direct.split("search_path%3D")[1]
    directory = tmp_path / "proxy"
    directory.mkdir()
    proxy = CuttingProxy(str(directory), os.path.join(str(pg_cluster.directory), ".s.PGSQL.5432"))
    via = (f"postgresql://postgres@/postgres?host={quote(str(directory))}&options="
           + quote(f"-csearch_path={schema}"))
    spool = Spool(via)
    yield spool, proxy, direct
    spool.close()
    proxy.close()


def _probed(spool: Spool) -> None:
    """Wait for the server watch's probe (started when the connection was lost) to end: the
    calls after it reach the server again."""
    for probe in [t for t in threading.enumerate() if t.name == "modempool-db-probe"]:
        probe.join(timeout=60)
        assert not probe.is_alive(), "the probe never reached the server"
    assert spool.engine.server.away is None


def _stored(direct: str) -> list[str]:
    with psycopg.connect(direct) as conn:
        return [row[0] for row in conn.execute("SELECT text FROM messages ORDER BY id")]


def test_a_connection_lost_at_commit_says_the_request_may_have_been_stored(behind_proxy):
    spool, proxy, direct = behind_proxy
    proxy.marker = b"COMMIT\x00"
    with pytest.raises(SpoolOutcomeUnknown) as lost:
        spool.enqueue("+8613800138000", "stored, but the answer was lost")
    assert proxy.cut.is_set()
    assert _stored(direct) == ["stored, but the answer was lost"]   # the server did commit
    found = unavailable(lost.value)
    assert isinstance(found, SpoolOutcomeUnknown) and found.retry_after == 5
    assert "nothing was changed" not in str(found)
    assert "may have been stored" in str(found) and "Idempotency-Key" in str(found)


def test_a_connection_lost_before_commit_says_nothing_was_changed(behind_proxy):
    spool, proxy, direct = behind_proxy
    proxy.marker = b"INSERT INTO messages"   # the server runs it; COMMIT is never sent
    with pytest.raises(Exception) as refused:
        spool.enqueue("+8613800138000", "never stored")
    assert proxy.cut.is_set()
    assert _stored(direct) == []
    found = unavailable(refused.value)
    assert isinstance(found, SpoolUnavailable) and not isinstance(found, SpoolOutcomeUnknown)
    assert "nothing was changed" in str(found)
    _probed(spool)   # the lost connection made the server look away until a probe reaches it
    spool.enqueue("+8613800138000", "after the cut")   # the pool replaces the lost connection
    assert _stored(direct) == ["after the cut"]


def test_a_batch_of_markers_cut_off_after_its_commit_was_sent_may_have_been_written(
        behind_proxy):
    """The markers' batch goes in one round trip (`Engine.one_trip`: BEGIN, statements and
    COMMIT sent together): its answer lost, the server may have committed it all, so the
    batch fails as an unknown outcome (never written again blindly, nor said undone)."""
    from modempool.spool.records import SentPart

    spool, proxy, direct = behind_proxy
    previous = spool.enqueue("+8613800138000", "previous").id
    spool.claim(previous, "m1", "o", 60)
    spool.mark_part_writing(previous, 1, 1, lease_owner="o")
    following = spool.enqueue("+8613800138000", "following").id
    spool.claim(following, "m1", "o", 60)
    proxy.marker = b"COMMIT\x00"
    with pytest.raises(SpoolOutcomeUnknown):
        spool.mark_sent_then_writing_each(
            [([SentPart(previous, 1, None, 42, lease_owner="o")], following, 1, 1, "o")])
    assert proxy.cut.is_set()
    with psycopg.connect(direct) as conn:   # the server did commit the record and the marker
        assert conn.execute("SELECT state FROM messages WHERE id = %s",
                            (previous,)).fetchone()[0] == "sent"
        assert [row[0] for row in conn.execute(
            "SELECT state FROM parts WHERE message_id = %s", (following,))] == ["writing"]
