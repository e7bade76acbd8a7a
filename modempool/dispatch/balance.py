"""Each SIM's credit: asked of its operator now and then, stored in the spool, acted upon.

A `[[balance]]` rule of the config says, per operator, how to ask (a USSD code, or an SMS such
as `CXYE` to 10086 whose reply comes back as an SMS) and how to read the answer. The daemon asks
when a SIM comes up, every `check_every` seconds and after every `check_after` SMS. A balance
below `low` raises a `balance-low` event and a warning; at or below `empty` the SIM leaves the
rotation (`no_credit`) until a later answer shows it topped up: the next check, or any
`modempool ussd SIM CODE` with the rule's code, which is read the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from modempool.config import BalanceRule
from modempool.dispatch.events import first_set
from modempool.dispatch.sim_slot import SimSlot, SimState
from modempool.spool.model import from_text, utcnow
from modempool.spool.unavailable import log_failure

log = logging.getLogger("modempool.dispatch.balance")

LOOK_EVERY = 15.0        # seconds between looks for SIMs whose balance is due
EMPTY_RECHECK = 600.0    # a SIM out of credit is asked again this often (topped up yet?)


class BalanceTracker:
    """The daemon's balance checks; `desk` runs USSD on the modems, `send_sms` the SMS queries."""

    def __init__(self, spool: Any, config: Any, slots: list[SimSlot], desk: Any) -> None:
        self.spool = spool
        self.config = config
        self.slots = {slot.name: slot for slot in slots}
        self.desk = desk
        self.lane = desk.lane  # its spool calls, in turn with the desk's (off the loop on a server)
        self._sent_at_check: dict[str, int] = {}
        self._checking: set[str] = set()
        self.wake = asyncio.Event()   # set when a SIM comes up: check it soon
        for slot in slots:            # out of credit in an earlier run: still out until shown otherwise
            row = spool.sim(slot.name) or {}
            slot.no_credit = bool(row.get("no_credit"))

    def rule_for(self, sim: str) -> BalanceRule | None:
        return self.config.balance_rule(self.slots[sim].operator or None)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: ask every SIM that is due, one SIM at a time per modem."""
        if not self.config.balance:
            return
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                try:
                    rows = await self.lane.run(self._sim_rows)
                except Exception as exc:  # the database away: the next look
                    log_failure(log, "could not read the SIMs' balances", exc)
                    rows = {}
                for name, slot in self.slots.items():
                    if name not in self._checking and name in rows and self.due(slot, rows[name]):
                        self._checking.add(name)
                        task = asyncio.create_task(self._check(name), name=f"balance {name}")
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOOK_EVERY):
                        await first_set(stop, self.wake)
        finally:
            for task in list(tasks):
                task.cancel()

    def _sim_rows(self) -> dict[str, dict[str, Any]]:
        """In the lane: the spool's row of each of our SIMs."""
        return {name: self.spool.sim(name) or {} for name in self.slots}

    def due(self, slot: SimSlot, row: dict[str, Any], now: datetime | None = None) -> bool:
        """Whether the SIM should be asked now (`row`: its row in the spool)."""
        rule = self.rule_for(slot.name)
        if rule is None or slot.state is not SimState.UP:
            return False
        last = from_text(row.get("balance_at"))
        if last is None:
            return True
        age = ((now or utcnow()) - last).total_seconds()
        if age >= (min(rule.check_every, EMPTY_RECHECK) if slot.no_credit else rule.check_every):
            return True
        sent = int(row.get("sent_total") or 0)
        baseline = self._sent_at_check.setdefault(slot.name, sent)
        return rule.check_after is not None and sent - baseline >= rule.check_after

    async def _check(self, sim: str) -> None:
        try:
            await self.check(sim)
        except Exception as exc:
            logging.getLogger(f"modempool.modem.{sim}").warning("balance check failed: %s", exc)
            # not again at once: count it as a check without an amount
            with contextlib.suppress(Exception):  # the database away: asked again sooner
                await self.lane.run(self.spool.upsert_sim, sim, balance_at=utcnow())
        finally:
            self._checking.discard(sim)

    async def check(self, sim: str) -> float | None:
        """Ask the SIM's operator now; returns the amount read (None if the answer had none)."""
        rule = self.rule_for(sim)
        if rule is None:
            return None
        if rule.ussd:
            text = await self.desk.ussd(sim, rule.ussd)  # recorded by `on_ussd`
            return rule.amount(text)
        text = await self._sms_query(sim, rule)
        return await self.record(sim, rule, text)

    async def on_ussd(self, sim: str, code: str, text: str) -> None:
        """Every USSD answer on the daemon's modems: the rule's code is a balance answer."""
        rule = self.rule_for(sim)
        if rule is not None and rule.ussd and rule.ussd == code:
            await self.record(sim, rule, text)

    async def record(self, sim: str, rule: BalanceRule, text: str) -> float | None:
        """Store an answer (in the lane); low balance and out-of-credit follow from it."""
        mlog = logging.getLogger(f"modempool.modem.{sim}")
        slot = self.slots[sim]
        amount = rule.amount(text)
        if amount is None:
            mlog.warning("balance answer not understood (pattern %s): %s", rule.pattern, text)
        empty = amount is not None and amount <= rule.empty
        if amount is None:
            event = None
        elif empty and not slot.no_credit:
            mlog.warning("out of credit (balance %.2f): out of rotation until topped up", amount)
            event = ("balance-empty", {"balance": amount})
        elif not empty and slot.no_credit:
            mlog.info("topped up (balance %.2f): back in rotation", amount)
            event = ("balance-topped-up", {"balance": amount})
        elif rule.low is not None and amount < rule.low:
            mlog.warning("low balance: %.2f (below %.2f)", amount, rule.low)
            event = ("balance-low", {"balance": amount, "low": rule.low})
        else:
            mlog.info("balance %.2f", amount)
            event = None
        self._sent_at_check[sim] = await self.lane.run(self._store_answer, sim, text, amount,
                                                       empty, event)
        if amount is not None:
            slot.no_credit = empty
        return amount

    def _store_answer(self, sim: str, text: str, amount: float | None, empty: bool,
                      event: tuple[str, dict[str, Any]] | None) -> int:
        """In the lane: an answer stored, with its event; the SIM's SMS count so far."""
        row = self.spool.sim(sim) or {}
        if amount is None:
            self.spool.upsert_sim(sim, balance_text=text, balance_at=utcnow())
        else:
            self.spool.upsert_sim(sim, balance=amount, balance_text=text, balance_at=utcnow(),
                                  no_credit=int(empty))
        if event is not None:
            self.spool.record_event(event[0], sim=sim, detail=event[1])
        return int(row.get("sent_total") or 0)

    async def _sms_query(self, sim: str, rule: BalanceRule) -> str:
        """Send the query SMS from the SIM, within its limits and pace and counted against
        them like any other SMS, and wait for the operator's reply to it."""
        from pdu import encode_submit

        assert rule.sms_to and rule.sms_text
        modem = self.desk.modems.get(sim)
        if modem is None or self.slots[sim].state is not SimState.UP:
            raise RuntimeError(f"SIM {sim} is not up")
        slot, parts = self.slots[sim], encode_submit(rule.sms_to, rule.sms_text)
        if not slot.may_send(utcnow(), len(parts)):   # the SIM's quotas hold for our own SMS too
            raise RuntimeError(f"SIM {sim} is at its sending limit; asking again later")
        loop = asyncio.get_running_loop()
        await asyncio.sleep(slot.pace_wait(loop.time()))   # the per-minute pace
        asked = utcnow() - timedelta(seconds=1)
        await modem.send(parts)
        slot.sent_outside_queue(utcnow(), loop.time(), len(parts))
        await self.lane.run(self.spool.count_sent, sim, len(parts))
        deadline = asyncio.get_running_loop().time() + rule.reply_timeout
        wanted = _digits(rule.sms_to)
        while asyncio.get_running_loop().time() < deadline:
            # stored by the inbound path
            for row in reversed(await self.lane.run(self.spool.inbound, since=asked)):
                if row["sim"] == sim and _digits(row["sender"]).endswith(wanted):
                    return str(row["text"])
            await asyncio.sleep(1.0)  # the reply is stored by another task: look again
        raise TimeoutError(f"no reply from {rule.sms_to} within {rule.reply_timeout:g} s")


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())

