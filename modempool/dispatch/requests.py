"""Asking the running daemon to use a SIM's modem: `modempool ussd SIM CODE`, `Pool.ussd`, and
`POST /v1/sims/{name}/ussd` all end here.

While the daemon runs it owns every port (UUCP lock, TIOCEXCL), so nothing else may talk to a
modem. A front end files a request in the spool's `requests` table and waits for its answer; the
daemon's `RequestDesk` looks for requests of its SIMs as often as the dispatcher looks for new
messages, runs each on the SIM's modem (between two sends: the driver serialises commands) and
writes the answer back. Why a table and not a socket: the spool is already what every front end
and the daemon share, with its permissions; it works whichever host the daemon runs on (a shared
PostgreSQL spool) and leaves a record of who asked what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modempool.dispatch.backlog import Backlog
from modempool.dispatch.liveness import daemon_liveness
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.dispatch.spool_lane import SpoolLane
from modempool.errors import PoolError
from modempool.spool.model import from_text
from modempool.spool.unavailable import database_failed, log_failure

log = logging.getLogger("modempool.dispatch.requests")

USSD_CODE = re.compile(r"[0-9*#+]{2,40}")
REQUEST_POLL = 0.2   # seconds between looks at the requests table (as the dispatcher's poll)


class DaemonNotRunning(PoolError):
    """The request needs the daemon, and none runs on this spool."""


class RequestFailed(PoolError):
    """The daemon could not answer (SIM down, network refused, no answer in time)."""


@dataclass(frozen=True, slots=True)
class UssdAnswer:
    """The network's answer to a USSD code, decoded to text."""

    sim: str
    code: str
    text: str
    answered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"sim": self.sim, "code": self.code, "text": self.text,
                "answered_at": self.answered_at.isoformat() if self.answered_at else None}


def check_ussd_code(code: str) -> str:
    """The code, stripped; PoolError when it is not a USSD code (digits, *, # and +)."""
    code = code.strip()
    if not USSD_CODE.fullmatch(code):
        raise PoolError(f"{code!r} is not a USSD code: use digits, * and #, such as *100#",
                        code="ussd_code", params={"code": code})
    return code


def ask_ussd(spool: Any, sim: str, code: str, *, silent_after: float,
             timeout: float = 60.0) -> UssdAnswer:
    """Run USSD `code` on `sim` through the running daemon and return the decoded answer.

    DaemonNotRunning when no daemon serves the spool (by the rule of `status`: one elsewhere
    whose heartbeat stood still for `silent_after`, `[pool] silent_after`, is silent);
    RequestFailed when it could not answer within `timeout` seconds or the SIM or network
    refused.
    """
    code = check_ussd_code(code)
    liveness = daemon_liveness(spool, stale_after=silent_after)
    if not liveness.running:
        raise DaemonNotRunning(
            f"{liveness.describe(spool.tz)}; USSD goes through the daemon that owns the modems: start "
            f"it (`modempool run`, or `systemctl start modempool`), or with it stopped use "
            f"`modempool probe PORT --ussd {code}`", code="daemon_not_running",
            params={"code": code})
    request_id = spool.requests.add(sim, "ussd", code)
    row = _wait(spool, request_id, timeout)
    if row["state"] == "done":
        return UssdAnswer(sim, code, row["answer"] or "", from_text(row["updated_at"]))
    params = {"code": code, "sim": sim, "error": row["error"], "seconds": f"{timeout:g}"}
    raise RequestFailed(f"USSD {code} on {sim}: {row['error']}", params=params,
                        code="ussd_no_answer" if row["error"] == _no_answer(timeout)
                        else "ussd_failed")


def _no_answer(timeout: float) -> str:
    return (f"no answer within {timeout:g} s (is the SIM served by a daemon? `modempool status` "
            "shows its state)")


def _wait(spool: Any, request_id: int, timeout: float) -> dict[str, Any]:
    """The request once answered; after `timeout` it is withdrawn and fails."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        row = spool.requests.get(request_id)
        if row["state"] in ("done", "failed"):
            return row
        if time.monotonic() >= deadline:
            spool.requests.answer(request_id, error=_no_answer(timeout))
            return spool.requests.get(request_id)
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))  # another process: poll
        delay = min(delay * 1.5, 0.5)


class RequestDesk:
    """The daemon's side: answers the requests of its own SIMs."""

    def __init__(self, spool: Any, owner: str, slots: list[SimSlot],
                 on_ussd: Callable[[str, str, str], Awaitable[None]] | None = None,
                 lane: SpoolLane | None = None) -> None:
        self.spool = spool
        self.lane = lane or SpoolLane()  # where it looks for requests (off the loop on a server)
        self.owner = owner
        self.slots = {slot.name: slot for slot in slots}
        self.modems: dict[str, Any] = {}   # filled by the modem tasks as they open their ports
        self.on_ussd = on_ussd              # told of every USSD answer (the balance tracker)
        self._running: set[asyncio.Task[None]] = set()
        # answers the database could not take when they came: written when it answers again
        self.unwritten = Backlog("request answers", self._write_answer, self._answer_lost, log,
                                 limit=1000, done_line="%d answers to requests written")

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: look for requests, answer each in a task of its own."""
        try:   # our SIMs' earlier run: nobody answers them
            await self.lane.run(self.spool.requests.abandon, sims=self.slots)
        except Exception as exc:   # the database away: their askers give up in time
            log_failure(log, "could not end the requests of an earlier run", exc)
        try:
            while not stop.is_set():
                try:
                    for row in await self.lane.run(self._take_pending):
                        task = asyncio.create_task(self._answer(row), name=f"request {row['id']}")
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                except Exception as exc:
                    log_failure(log, "could not read the requests", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REQUEST_POLL):
                        await stop.wait()
        finally:
            for task in list(self._running):
                task.cancel()
            for task in list(self._running):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.unwritten.close()
            try:
                await self.lane.run(self.spool.requests.abandon, self.owner)
            except Exception as exc:  # the database away: the next run abandons them
                log_failure(log, "could not abandon the requests taken", exc)

    def _take_pending(self) -> list[Any]:
        """The requests of our SIMs that nobody answers yet, each taken by this daemon."""
        return [row for row in self.spool.requests.pending(self.slots)
                if self.spool.requests.take(row["id"], self.owner)]

    async def _answer(self, row: dict[str, Any]) -> None:
        sim, code = row["sim"], row["argument"] or ""
        try:
            text = await self.ussd(sim, code)
        except RequestFailed as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # AtError and friends: the network's or the modem's refusal
            answer = {"error": str(exc) or type(exc).__name__}
        else:
            answer = {"answer": text}
        try:
            await self._write_answer((row["id"], answer))
        except Exception as exc:   # the database away: written when it answers again
            log_failure(log, "could not write the answer to a request; it waits in memory", exc)
            if database_failed(exc):
                self.unwritten.add((row["id"], answer))

    async def _write_answer(self, item: tuple[int, dict[str, str]]) -> None:
        request_id, answer = item   # (an asker that gave up meanwhile keeps its own ending)
        await self.lane.run(self.spool.requests.answer, request_id, **answer)

    @staticmethod
    def _answer_lost(item: tuple[int, dict[str, str]], why: str) -> None:
        log.error("the answer to request %s was not written (%s): %s", item[0], why, item[1])

    async def ussd(self, sim: str, code: str) -> str:
        """Run `code` on the SIM's modem now (RequestFailed when the SIM is not up)."""
        slot, modem = self.slots[sim], self.modems.get(sim)
        if slot.state is not SimState.UP or modem is None:
            row = await self.lane.run(self.spool.sim, sim) or {}
            why = f" ({row['last_error']})" if row.get("last_error") else ""
            raise RequestFailed(f"SIM {sim} is {slot.state.value}{why}")
        text = await modem.ussd(code)
        logging.getLogger(f"modempool.modem.{sim}").info("USSD %s answered: %s", code, text)
        if self.on_ussd is not None:
            try:
                await self.on_ussd(sim, code, text)
            except Exception as exc:   # the answer is the asker's all the same
                log_failure(log, f"could not record the USSD answer of {sim}", exc)
        return text
