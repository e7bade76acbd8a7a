"""The bank's own features as one API account may use them (`account_pool.bank`): campaigns
(an admin's all, a sender's own: `campaign_desk`), opt-outs and the blacklist (everyone looks;
senders and admins add, admins remove), history (an admin's all, anyone else's own messages
and what came in on its SIMs), auto-replies, forwarding, accounts, console sessions and
webhooks (admins only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modempool.account_rules import AccountRules

if TYPE_CHECKING:
    from modempool.account_campaigns import AccountCampaigns
    from modempool.operator.forwarding import ForwardTargets
    from modempool.operator.history import Query
    from modempool.operator.templates import CampaignTemplates
    from modempool.spool.history import HistoryEntry


class AccountBank:
    """The bank's features, each behind the account's rules."""

    def __init__(self, pool: Any, rules: AccountRules) -> None:
        self.pool = pool            # the front door, modempool.Pool
        self.spool = pool.spool
        self.config = pool.config
        self.rules = rules

    # ---- campaigns --------------------------------------------------------------------------

    def templates(self) -> CampaignTemplates:
        """Saved campaign templates (the bank's, as its campaigns are)."""
        self.rules.require_admin()
        return self.pool.templates

    def campaign_desk(self) -> AccountCampaigns:
        """The campaigns this account sees and runs (`AccountCampaigns`): all for an admin,
        its own for a sender, all to look at for a viewer."""
        from modempool.account_campaigns import AccountCampaigns

        return AccountCampaigns(self.pool, self.rules.account)

    # ---- opt-outs and the blacklist ---------------------------------------------------------

    def add_optouts(self, numbers: Iterable[str], *, source: str = "api") -> int:
        """`Pool.add_optouts` (all or none), for senders and admins (it only stops sends)."""
        self.rules.require_sender("optouts")
        return self.pool.add_optouts(numbers, source=source)

    def optout_list(self) -> list[dict[str, Any]]:
        """Opted-out numbers (everyone signed in may look), with the contact's name."""
        rows = []
        for optout in self.pool.optout_list():
            contact = self.pool.contacts.find(optout.number)
            rows.append({**optout.to_dict(), "name": contact.name if contact else ""})
        return rows

    def blacklist(self) -> list[dict[str, Any]]:
        """Blacklisted numbers with why (everyone signed in may look): `Pool.blacklist`."""
        return [entry.to_dict() for entry in self.pool.blacklist()]

    def add_optout(self, number: str, *, source: str = "console") -> None:
        """Opt a number out (a request phoned in): senders and admins, as it only stops sends."""
        self.rules.require_sender("optouts")
        self.pool.optouts.add(number, source=source)

    def add_to_blacklist(self, numbers: Iterable[str], reason: str = "") -> int:
        self.rules.require_sender("optouts")
        return self.pool.add_to_blacklist(numbers, reason)

    def remove_optout(self, number: str) -> None:
        """Lift an opt-out (the person asked again): admins only."""
        self.rules.require_lifting()
        self.pool.remove_optout(number)

    def remove_from_blacklist(self, number: str) -> None:
        self.rules.require_lifting()
        self.pool.remove_from_blacklist(number)

    # ---- history ----------------------------------------------------------------------------

    def history(self, query: Query) -> list[HistoryEntry]:
        """Sent and received messages matching `query` (history.Query), newest first: for an
        admin all of them, for anyone else its own messages and what came in on its SIMs."""
        return self.pool.history(self._scoped(query))

    def export_history(self, query: Query, path: Path) -> int:
        return self.pool.export_history(self._scoped(query), path)

    def _scoped(self, query: Query) -> Query:
        account = self.rules.account
        if account.sees_all:
            return query
        return replace(query, owner=account.name, inbound_sims=account.sims)

    # ---- auto-replies, forwarding, accounts, sessions, webhooks -----------------------------

    def autoreply_rules(self) -> tuple[list[Any], list[Any]]:
        """The auto-reply rules, the config's (`config:N`) and the stored (`db:N`): everyone
        may look."""
        from modempool.operator.autoreply import rules_from_config

        return rules_from_config(self.config), self.pool.autoreplies.rules()

    def add_autoreply(self, reply: str, **rule: Any) -> Any:
        """`Pool.add_autoreply` (a SIM the bank does not have is refused there): admins."""
        self.rules.require_autoreply_admin()
        return self.pool.add_autoreply(reply, **rule)

    def remove_autoreply(self, rule_id: int) -> None:
        """`Pool.remove_autoreply`: admins (everyone may look at the rules, `autoreply_rules`)."""
        self.rules.require_autoreply_admin()
        self.pool.remove_autoreply(rule_id)

    def autoreply_log(self, limit: int = 50) -> list[Any]:
        """`Pool.autoreply_log`: what was answered to whom, admins only."""
        self.rules.require_autoreply_admin()
        return self.pool.autoreply_log(limit)

    def autoreply_rules_from_config(self) -> list[Any]:
        from modempool.operator.autoreply import rules_from_config

        self.rules.require_admin()
        return rules_from_config(self.config)

    def forwarding(self) -> tuple[Any, ForwardTargets]:
        """`[forward]` of the config (format, command), and the numbers forwarded to (the
        config's, and those added and removed through `ForwardTargets`)."""
        self.rules.require_admin()
        return self.config.forward, self.pool.forwarding

    def accounts(self) -> Any:
        from modempool.accounts import Accounts

        self.rules.require_admin()
        return Accounts(self.spool, config=self.config)

    def sessions(self) -> Any:
        from modempool.sessions import Sessions

        self.rules.require_admin()
        return Sessions(self.spool)

    def webhooks(self) -> Any:
        from modempool.webhooks import Webhooks

        self.rules.require_admin()
        return Webhooks(self.spool)
