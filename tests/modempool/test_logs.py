"""The daemon's log: a file that logrotate can move away without losing a line, JSON lines for
shippers, journald's priority prefix under systemd, and a quiet steady state (one INFO line per
message sent, AT traffic only at DEBUG)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from modempool.logs import JournalFormatter, JsonFormatter, one_line_driver_logs, under_journald
from modempool.spool import Spool
from simulator import SimulatedBank
from tests.modempool.daemon_harness import DaemonProcess, eventually, kill_leftovers, write_config

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(autouse=True)
async def no_leftover_daemons():
    yield
    await kill_leftovers()


def record(level: int, name: str, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_json_and_journal_forms():
    entry = json.loads(JsonFormatter().format(record(logging.WARNING, "modempool.modem.m1",
                                                     "quarantined: 短信")))
    assert (entry["level"], entry["modem"], entry["message"]) == ("warning", "m1", "quarantined: 短信")
    assert entry["time"].endswith("Z")
    line = JournalFormatter().format(record(logging.ERROR, "modempool.dispatch", "boom\nsecond"))
    assert line == "<3>modempool.dispatch: boom\n<3>second"


def test_the_database_drivers_lines_stay_one_line_each(caplog):
    """libpq's messages run over several lines ("...failed: No such file or directory" then
    "\tIs the server running locally..."): psycopg's pool logs them as they are, a dozen
    times in an outage. The daemon's log has each as one line."""
    one_line_driver_logs()
    one_line_driver_logs()   # once is enough: no second filter
    pool_log = logging.getLogger("psycopg.pool")
    assert len(pool_log.filters) == 1
    pool_log.filters[0].lines.forget()   # a pool line of an earlier test held none back
    with caplog.at_level(logging.WARNING, logger="psycopg.pool"):
        pool_log.warning("error connecting in %r: %s", "modempool-spool",
                         'connection to server on socket "/tmp/x/.s.PGSQL.5432" failed: No '
                         "such file or directory\n\tIs the server running locally?")
    assert caplog.records[-1].getMessage() == (
        "error connecting in 'modempool-spool': connection to server on socket "
        '"/tmp/x/.s.PGSQL.5432" failed: No such file or directory; Is the server running '
        "locally?")


def test_journald_is_recognised_by_the_stream_systemd_names(tmp_path, monkeypatch):
    with open(tmp_path / "stream", "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        info = os.fstat(stream.fileno())
        assert under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        assert not under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
        assert not under_journald({})
    monkeypatch.setattr(sys, "stderr", io.StringIO())          # no file descriptor at all
    assert not under_journald({"JOURNAL_STREAM": "1:2"})


async def test_the_log_file_rotates_without_loss_and_is_quiet_in_steady_state(tmp_path):
    async with SimulatedBank(modems=2, directory=tmp_path / "bank", seed=8, chatter=0) as bank:
        config = write_config(tmp_path / "pool.toml", bank.devices,
                              extra='\n[logging]\nfile = "log/modempool.log"\nformat = "json"\n')
        log_file = tmp_path / "log" / "modempool.log"
        daemon = await DaemonProcess(config).start(wait_ready=False)
        await eventually(lambda: log_file.exists() and "pool ready" in log_file.read_text(),
                         what="pool ready in the log file")
        spool = Spool(tmp_path / "spool.db")

        async def send(count: int, start: int) -> None:
            ids = [spool.enqueue("+8613800138000", f"第{n}条").id for n in range(start, start + count)]
            await eventually(lambda: all(spool.get(i).state.value in ("sent", "delivered")
                                         for i in ids), what=f"{count} sent")

        await send(4, 1)
        log_file.rename(log_file.with_suffix(".log.1"))             # what logrotate does
        await send(4, 5)
        assert await daemon.stop() == 0

        old = log_file.with_suffix(".log.1").read_text().splitlines()
        new = log_file.read_text().splitlines()
        entries = [json.loads(line) for line in old + new]          # every line one JSON object
        sent = [e for e in entries if " sent (" in e["message"]]
        assert len(sent) == 8 and len({e["message"] for e in sent}) == 8   # none lost, none twice
        assert any(" sent (" in json.loads(line)["message"] for line in new)  # the new file is used
        ready = next(i for i, e in enumerate(entries) if "pool ready" in e["message"])
        steady = [e for e in entries[ready + 1:] if e["level"] == "info"
                  and "stopping" not in e["message"] and "stopped" not in e["message"]]
        assert steady == sent                                        # one INFO line per message
        assert not any(e["level"] == "debug" for e in entries)       # no AT traffic by default
