"""The database pulled away under running daemons (a throwaway PostgreSQL cluster stopped and
started again): the modems wait and resume, nothing is marked failed or ambiguous because of it,
and the delivery reports shown while it was away (``+CDS``, kept on no modem) are applied when it
is back; a lease taken while a modem waited for its marker is not sent by that modem. Each test
has its own cluster: stopping it must not disturb the session's."""

from __future__ import annotations

import asyncio
import collections
import re
from pathlib import Path

import psycopg
import pytest

from modempool.spool import Spool
from modempool.spool.postgres_engine import _KEY_LOCKS
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, drained, eventually, kill_leftovers
from tests.pg_cluster import throwaway_cluster

pytestmark = pytest.mark.timeout(600)  # a hang guard; the waits below fail sooner

LONG_TAIL = " with a long tail" * 12  # two parts with the text before and after it


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


@pytest.fixture
def cluster():
    with throwaway_cluster() as cluster:
        yield cluster


FORWARD_TO = "+8613900139000"
#: The sender of the SMS stored just before the database stops (its hooks wait in memory).
BEFORE_STOP = "+8613912345699"
#: What runs on each received SMS: an auto-reply, a forward to a number and to a command.
HOOKS = ["[[autoreply]]", 'keywords = ["hi"]', 'reply = "hello back"', "",
         "[forward]", f'to = ["{FORWARD_TO}"]', 'command = "cat"', "retry_delay = 1", ""]


def _config(path: Path, url: str, prefix: str, devices: list[str], lease: int,
            extra: list[str] = ()) -> Path:
    lines = ["[spool]", f'url = "{url}"', "", "[pool]", f"lease_seconds = {lease}", "",
             "[retry]", "backoff = 0.2", "backoff_max = 1.0", "", *extra]
    for device in devices:
        lines += ["[[modem]]", f'name = "{prefix}{Path(device).name[1:]}"', f'port = "{device}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _parts(bank: SimulatedBank) -> list[dict]:
    return [e for e in bank.network_log() if e["kind"] == "part"]


def _reports(bank: SimulatedBank) -> list[dict]:
    return [e for e in bank.network_log() if e["kind"] == "report"]


def _key(message) -> tuple[str, int | str]:
    """How the network log names a message's parts: recipient and concatenation reference
    (the message id modulo 256, unique among the few here) or, for one part, its text."""
    if message.parts_total and message.parts_total > 1:
        return (message.to, message.id % 256)
    return (message.to, message.text)


def _parts_by_message(banks) -> dict[tuple, list[dict]]:
    found = collections.defaultdict(list)
    for n, bank in enumerate(banks):
        for part in _parts(bank):
            key = (part["to"], part["concat"][0] if part["concat"] else part["text"])
            found[key].append({**part, "bank": n})
    return found


def _unapplied(messages, banks) -> list:
    """Messages still `sent` although the network handed a modem the report of each part."""
    reported = {(n, e["modem"], e["reference"], e["to"]) for n, bank in enumerate(banks)
                for e in _reports(bank) if e["fate"] != "dropped"}
    by_key = _parts_by_message(banks)
    return [m for m in messages if m.state.value == "sent" and by_key[_key(m)] and all(
        (p["bank"], p["modem"], p["reference"], p["to"]) in reported for p in by_key[_key(m)])]


async def test_a_part_whose_marker_cannot_be_committed_waits_unsent_then_goes_out(
        tmp_path, cluster):
    """The database stops while a short message is on the air: its confirmation cannot be
    recorded, and the marker of the next message's first part (committed with it) cannot
    either, so that part's PDU is not written. The modem keeps the message, its port open and
    its SIM up, tries again until the database is back, then sends every part from the same
    SIM. Both messages end delivered (the reports shown meanwhile were held and applied), none
    ambiguous, each part once on the network."""
    url = cluster.new_schema()
    async with SimulatedBank(modems=1, directory=tmp_path / "a", seed=5) as bank:
        bank.set_fault("m1", "sms_latency", seconds=1.0)
        config = _config(tmp_path / "a.toml", url, "a", bank.devices, lease=120)
        with Spool(url) as spool:
            short, long = spool.enqueue_many([
                {"to": "+8613800138000", "text": "short first"},
                {"to": "+8613800138000", "text": "then a long one" + LONG_TAIL * 3 + " end."}])
        daemon = await DaemonProcess(config, args=("-vv",)).start()  # -vv: AT traffic
        await daemon.wait_for_log("<Ctrl-Z>")  # the short one's PDU written, its +CMGS 1 s away
        cluster.stop()  # the simulator's +CMGS comes after: this call holds up the test's loop
        await daemon.wait_for_log(f"message {long} part 1/")
        assert len(_parts(bank)) == 1  # the long one's first PDU waits, unwritten
        cluster.start()
        with Spool(url) as spool:
            def states() -> list[str]:
                return [spool.get(short).state.value, spool.get(long).state.value]

            await eventually(lambda: states() == ["delivered", "delivered"], progress=states,
                             what="both sent and their reports applied")
        assert await daemon.stop() == 0
    assert [e["text"] for e in _parts(bank)][0] == "short first"
    parts = [e["concat"][2] for e in _parts(bank)[1:]]
    total = _parts(bank)[1]["concat"][1]
    assert total > 2 and sorted(parts) == list(range(1, total + 1)), parts  # each part once
    output = daemon.output()
    assert "its PDU was not written" in output
    assert "unexpected error" not in output, output
    assert "down (" not in output, output  # the port stayed open, the SIM up


async def test_two_daemons_wait_out_ten_seconds_without_the_database(tmp_path, cluster):
    """Two daemons on two banks share the cluster; it stops for 10 s while long and short
    messages are on the air and their reports (2 s after each part) arrive while it is away,
    SMS come in (each answered, forwarded to a number and to a command; one stored just before
    the stop, its hooks cut short by it, waits in the daemon's memory) and a USSD request
    waits. Then: nothing failed, nothing is ambiguous, every report the
    network handed to a modem is applied (no message left `sent` whose every part the network
    reported delivered), every SMS that came in is stored and its hooks ran, the request is
    answered, the network logs and the spool agree, and the daemons' logs have no traceback."""
    url = cluster.new_schema()
    async with SimulatedBank(modems=2, directory=tmp_path / "a", seed=3) as bank_a, \
            SimulatedBank(modems=2, directory=tmp_path / "b", seed=4) as bank_b:
        banks = (bank_a, bank_b)
        for bank in banks:
            bank.network.report_delay = 2.0
            for name in ("m1", "m2"):
                bank.set_fault(name, "sms_latency", seconds=0.2)
        daemons = [await DaemonProcess(_config(tmp_path / f"{p}.toml", url, p, bank.devices,
                                               lease=120, extra=HOOKS)).start()
                   for p, bank in (("a", bank_a), ("b", bank_b))]
        # queued once both are up: queued before, a had sent about half of the 80 parts by
        # the time b was ready (load 4.5); a busier machine could let it send them all
        with Spool(url) as spool:
            spool.enqueue_many({"to": f"+86138001380{i % 4:02d}",
                                "text": f"away {i}" + (LONG_TAIL + f" end {i}." if i % 3 == 0
                                                       else "")}
                               for i in range(60))
        await eventually(lambda: all(len(_parts(b)) >= 4 for b in banks),
                         what="both banks sending")
        with Spool(url) as spool:
            request = spool.requests.add("a1", "ussd", "*100#")  # taken now or after the outage
        # One SMS stored just before the stop whose hooks the stop cuts short: they wait for
        # the database in the daemon's memory (its Backlog), not on the SIM. Its sender's lock
        # is held here, so its auto-reply is still waiting when the cluster stops.
        holder = psycopg.connect(url, autocommit=True)
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))",
                       (_KEY_LOCKS, f"sender:{BEFORE_STOP}"))
        await bank_a.inject(to="m2", sender=BEFORE_STOP, text="hi before the stop")
        await daemons[0].wait_for_log(f"SMS from {BEFORE_STOP} stored")
        cluster.stop()
        holder.close()
        at_stop = sum(len(_parts(b)) for b in banks)
        senders = [f"+86139123456{i:02d}" for i in range(4)]
        for i, sender in enumerate(senders):  # kept on the SIM: stored once it is back
            await banks[i % 2].inject(to=f"m{1 + i // 2}", sender=sender, text=f"hi {i}")
        await asyncio.sleep(10)  # the outage itself
        assert all(d.proc.returncode is None for d in daemons)  # waited, did not die
        # Nothing claimed or begun meanwhile: at most the part each modem had on the air.
        assert sum(len(_parts(b)) for b in banks) - at_stop <= 4
        cluster.start()
        with Spool(url) as spool:
            def hooked() -> list[str]:
                """The senders whose SMS is stored, answered and forwarded."""
                queued = {(m.to, m.text.split("] ")[-1]) for m in spool.list()}
                return [r["sender"] for r in spool.inbound() if r["text"].startswith("hi ")
                        and (r["sender"], "hello back") in queued
                        and (FORWARD_TO, r["text"]) in queued]

            await eventually(lambda: sorted(hooked()) == sorted([*senders, BEFORE_STOP]),
                             progress=hooked, what="every SMS stored, answered and forwarded")
            await eventually(lambda: spool.requests.get(request)["state"] != "running",
                             what="the USSD request answered")
            assert spool.requests.get(request)["state"] == "done", spool.requests.get(request)
            await drained(spool)
            await eventually(lambda: all(len(_reports(b)) == len(_parts(b)) for b in banks),
                             what="the network's report of every part")
            # Then the spool applies each report that a modem was handed: those shown while the
            # database was away once it is back (held in memory, stored within a few seconds).
            await eventually(lambda: not _unapplied(spool.list(), banks), timeout=30,
                             progress=lambda: [m.id for m in _unapplied(spool.list(), banks)],
                             what="every report that arrived applied")
            messages = spool.list()
            assert [m.text for m in messages if m.to == BEFORE_STOP] == ["hello back"]  # once
            for daemon in daemons:
                assert await daemon.stop() == 0
            counts = spool.counts()

    by_key = _parts_by_message(banks)
    for message in messages:
        mine = by_key[_key(message)]
        # none failed, none ambiguous: no daemon died, and a part whose marker could not be
        # committed was not written (it waited), its answer's record kept until written
        assert message.state.value in ("sent", "delivered"), message
        assert len(mine) == (message.parts_total or 1), (message, mine)  # each part once
    assert len(by_key) == len(messages)  # nothing on the network the spool does not know
    assert "held in memory" in "".join(d.output() for d in daemons), \
        "no report arrived while the database was away: the test proved nothing"
    assert "the hooks of a stored SMS wait for the database" in daemons[0].output(), \
        "no SMS's hooks waited in memory: the test proved nothing about them"
    assert sum(e["to"] == BEFORE_STOP for e in _parts(bank_a) + _parts(bank_b)) == 1
    assert counts["failed"] == counts["ambiguous"] == 0
    for daemon in daemons:  # an outage is no bug: one line per failure, no traceback
        assert "unexpected error" not in daemon.output(), daemon.output()
        assert "Traceback" not in daemon.output(), daemon.output()
        # nor a record over several lines (libpq's "\n\tIs the server running..." folded)
        assert not [line for line in daemon.output().splitlines()
                    if line.startswith(("\t", " "))], daemon.output()
    print(f"\ndatabase away 10 s under two daemons: {counts}")


async def test_a_lease_taken_while_its_marker_waited_is_not_sent_by_the_modem_that_waited(
        tmp_path, cluster):
    """A modem waits for its part's marker (the database does not answer it: here a row lock
    the test holds past the daemon's lock_timeout, as a server away would), and meanwhile its
    lease is taken (another daemon judged this one dead). When the database answers, the
    marker's owner check refuses: the rest of the message is not sent from this modem, nothing
    is written twice, and the log says why in one line."""
    import psycopg

    url = cluster.new_schema() + "%20-clock_timeout%3D300"   # the daemon's lock waits end
    async with SimulatedBank(modems=1, directory=tmp_path / "a", seed=6) as bank:
        bank.set_fault("m1", "sms_latency", seconds=1.0)
        config = _config(tmp_path / "a.toml", url, "a", bank.devices, lease=120)
        with Spool(url) as spool:
            [long] = spool.enqueue_many([{"to": "+8613800138000",
                                          "text": "taken" + LONG_TAIL * 3 + " end."}])
        daemon = await DaemonProcess(config, args=("-vv",)).start()
        await daemon.wait_for_log("<Ctrl-Z>")  # part 1 on the air, its +CMGS 1 s away
        with psycopg.connect(cluster.url(), autocommit=False) as other:
            schema = url.split("search_path%3D")[1].split("%20")[0]
            other.execute(f"SELECT 1 FROM {schema}.messages WHERE id = %s FOR UPDATE", (long,))
            await daemon.wait_for_log(f"message {long} part 2/")  # its marker waits
            other.execute(f"UPDATE {schema}.messages SET lease_owner = 'box-b:1:0:0/b1' "
                          "WHERE id = %s", (long,))
        # committed: the lease is box-b's now
        await daemon.wait_for_log(f"message {long} not sent")
        assert await daemon.stop() == 0
    assert [e["concat"][2] for e in _parts(bank)] == [1]  # part 2 never written
    output = daemon.output()
    assert "its PDU was not written" in output
    assert not re.search(rf"message {long} part 2/\d+ goes out", output), output
    assert "Traceback" not in output and "unexpected error" not in output, output
