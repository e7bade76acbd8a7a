"""What the spool shows of each SIM of this daemon: its `sims` row (state, port, last error,
number, operator, signal) and an audit event for each change of state. Written in the books
lane (`Daemon.books`, one thread, in order), never in a modem's path; a state the database
could not take is logged, and its event is written with the SIM's next state.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from modempool.config import ModemConfig
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.dispatch.spool_lane import SpoolLane
from modempool.spool.unavailable import log_failure

log = logging.getLogger("modempool.dispatch.daemon")


class SimStates:
    """The SIM rows one daemon writes (`Daemon.sim_states`), and the state each was last
    recorded in (the audit log gets changes only)."""

    def __init__(self, spool: Any, books: SpoolLane) -> None:
        self.spool = spool
        self.books = books
        self._recorded: dict[str, SimState] = {}

    def update(self, spec: ModemConfig, slot: SimSlot, state: SimState, *, info: Any = None,
               error: str | None = None, until: datetime | None = None) -> None:
        """`slot` is now in `state`: said to the dispatcher at once (`slot.state`), written to
        its `sims` row in the books lane (with what the modem `info` says of its SIM)."""
        slot.state = state
        fields: dict[str, Any] = {"port": spec.port, "state": state.value}
        if info is not None:
            # not its card's keys: `_name_card` writes those, keeping what a failed read missed
            fields.update(msisdn=info.msisdn, operator=info.operator, signal=info.signal_dbm)
        if error is not None:
            fields["last_error"] = error
        fields["quarantined_until"] = until
        changed = self._recorded.get(spec.name) is not state  # the audit log: changes only
        self._recorded[spec.name] = state

        def write() -> bool:
            try:
                self.spool.upsert_sim(spec.name, **fields)
                if changed:
                    self.spool.record_event(f"sim-{state.value}", sim=spec.name, detail=error)
            except Exception as exc:
                log_failure(log, f"could not record the state of {spec.name}", exc)
                return False
            return True

        def unless_written(done: Any) -> None:  # its event is written with the next state
            if not done.result() and self._recorded.get(spec.name) is state:
                del self._recorded[spec.name]

        self.books.submit(write).add_done_callback(unless_written)

    def signal(self, sim: str, dbm: Any) -> None:
        """A SIM's signal, as its modem reported it, written in the books lane."""
        self.books.submit(self._write_signal, sim, dbm)

    def _write_signal(self, sim: str, dbm: Any) -> None:
        try:
            self.spool.upsert_sim(sim, signal=dbm)
        except Exception as exc:
            log.warning("could not record the signal of %s: %s", sim, exc)
