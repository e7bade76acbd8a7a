"""One API account's messages, received SMS and SIMs (`account_pool.messages`): it sees and
decides only its own messages (another account's is "not found", never "forbidden": its
existence is not revealed), what came in on its SIMs, and those SIMs' state and counters.
The spool answers through `spool.scoped`; the account's rules are `AccountRules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from modempool.account_rules import AccountRules
from modempool.accounts import sims_for_send
from modempool.errors import NotFound
from modempool.spool.model import Message, utcnow

if TYPE_CHECKING:
    from modempool.pool_history import Received
    from modempool.pool_status import SimStatus


@dataclass(frozen=True, slots=True)
class AccountSim:
    """One SIM an account may use, as `GET /v1/sims` shows it (`to_dict()`): its counters
    grouped under `sent`, its quotas under `quota`."""

    name: str
    state: str
    signal: int | None
    operator: str | None
    number: str | None
    sent_minute: int
    sent_today: int
    sent_month: int
    sent_total: int
    per_minute: int | None
    per_day: int | None
    per_month: int | None
    errors: int
    last_error: str | None
    updated_at: str | None

    @classmethod
    def of(cls, sim: SimStatus) -> AccountSim:
        return cls(name=sim.name, state=sim.state, signal=sim.signal, operator=sim.operator,
                   number=sim.details.get("msisdn"), sent_minute=sim.sent_minute,
                   sent_today=sim.sent_today, sent_month=sim.sent_month,
                   sent_total=sim.details.get("sent_total", 0), per_minute=sim.per_minute,
                   per_day=sim.per_day, per_month=sim.per_month, errors=sim.errors,
                   last_error=sim.last_error, updated_at=sim.details.get("updated_at"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "signal": self.signal,
                "operator": self.operator, "number": self.number,
                "sent": {"minute": self.sent_minute, "today": self.sent_today,
                         "month": self.sent_month, "total": self.sent_total},
                "quota": {"per_minute": self.per_minute, "per_day": self.per_day,
                          "per_month": self.per_month},
                "errors": self.errors, "last_error": self.last_error,
                "updated_at": self.updated_at}


class AccountMessages:
    """Messages, received SMS and SIMs as one account sees them."""

    def __init__(self, pool: Any, rules: AccountRules) -> None:
        self.pool = pool            # the front door, modempool.Pool
        self.spool = pool.spool
        self.rules = rules
        self.account = rules.account

    # ---- its messages -----------------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """The message if this account may see it, else NotFound."""
        if not self.spool.scoped.has_message(message_id, self.rules.owner):
            raise NotFound(f"no message with id {message_id}")
        return self.spool.get(message_id)

    def parts(self, message_id: int) -> list[dict[str, Any]]:
        self.get(message_id)
        return self.spool.parts(message_id)

    def list(self, *, state: str | None = None, to: str | None = None, after: int | None = None,
             limit: int = 100) -> tuple[list[Message], int | None]:
        """The account's messages in id order after the cursor `after`; returns them and the
        next cursor (None at the end)."""
        messages, more = self.spool.scoped.messages(
            owner=self.rules.owner, state=state, to=self._number(to), after=after, limit=limit)
        return messages, (messages[-1].id if more else None)

    def page(self, *, state: str | None = None, to: str | None = None,
             before: int | None = None, limit: int = 50) -> tuple[list[Message], int | None]:
        """The account's messages newest first, before the cursor `before`; returns them and
        the next (older) cursor, None at the end."""
        messages, more = self.spool.scoped.messages(
            owner=self.rules.owner, state=state, to=self._number(to), before=before,
            newest_first=True, limit=limit)
        return messages, (messages[-1].id if more else None)

    def _number(self, to: str | None) -> str | None:
        from modempool.numbers import normalise

        return normalise(to, self.pool.config.region) if to else None

    def many(self, ids: Iterable[int]) -> list[Message]:
        """The messages of `ids` the account may see (others are left out, as not found)."""
        out = []
        for message_id in ids:
            try:
                out.append(self.get(int(message_id)))
            except (NotFound, ValueError):
                continue
        return out

    def cancel(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.pool.cancel(message_id)

    def retry(self, message_id: int) -> Message:
        self._may_decide(message_id)
        return self.pool.retry(message_id)

    def _may_decide(self, message_id: int) -> None:
        self.get(message_id)
        self.rules.require_sender("messages")

    def client_id(self, message: Message) -> str | None:
        """The idempotency key as the account gave it (stored in its namespace)."""
        prefix = f"{self.account.name}:"
        if message.client_id and message.client_id.startswith(prefix):
            return message.client_id[len(prefix):]
        return message.client_id if self.account.sees_all else None

    def counts(self) -> dict[str, int]:
        """Messages in each state (every state, zeros included) among those the account sees."""
        owner = self.rules.owner
        return self.spool.counts() if owner is None else self.spool.scoped.counts(owner)

    # ---- received SMS and SIMs --------------------------------------------------------------

    def inbound(self, *, since: datetime | None = None, after: int | None = None,
                limit: int = 100) -> tuple[list[Received], int | None]:
        """Received SMS after the cursor, with the sender's contact name, and the cursor of
        the next page (None: no more); an account bound to some SIMs sees what arrived on
        them."""
        found, more = self.spool.scoped.inbound(sims=self.rules.seen_sims, since=since,
                                                after=after, limit=limit)
        received = self.pool.with_contacts(found)
        return received, (received[-1].message.id if more else None)

    def ussd(self, sim: str, code: str, *, timeout: float = 60.0) -> Any:
        """Run a USSD code on one of the account's SIMs through the daemon (`Pool.ussd`);
        a viewer may not (a USSD code can spend the SIM's credit)."""
        sims_for_send(self.account, [sim])
        return self.pool.ussd(sim, code, timeout=timeout)

    def sims(self) -> list[AccountSim]:
        """Each SIM the account may use: state (unknown while no daemon runs), signal,
        operator, own number, counters against its quotas, last error."""
        return [AccountSim.of(sim) for sim in self.pool.status().sims
                if self.rules.sees_sim(sim.name)]

    def throughput(self, sims: Iterable[str], minutes: int = 60,
                   now: datetime | None = None) -> list[int]:
        """Parts sent through `sims` in each of the last `minutes` minutes, oldest first."""
        now = now or utcnow()
        start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
        buckets = [0] * minutes
        for minute, count in self.spool.sims.parts_per_minute(list(sims), start).items():
            index = int((minute - start).total_seconds() // 60)
            if 0 <= index < minutes:
                buckets[index] += count
        return buckets
