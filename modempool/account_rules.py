"""Who may do what, for one API account: the rules every part of its pool asks
(`modempool/account_pool.py`). An admin does everything and sees everything; a sender sends
and changes contacts, and sees its own messages; a viewer looks and changes nothing. An
account bound to some SIMs sees what came in on them.
"""

from __future__ import annotations

from datetime import datetime, time, tzinfo

from modempool.accounts import Account, Forbidden

#: what a viewer may look at and not change, as the refusal names it
SUBJECTS = {"messages": "messages", "contacts": "contacts", "groups": "groups",
            "optouts": "opt-outs and the blacklist"}


class AccountRules:
    """The rules of one account (`account_pool.rules`)."""

    def __init__(self, account: Account) -> None:
        self.account = account

    @property
    def owner(self) -> str | None:
        """Whose messages the account sees: its own (its name), or every one (None)."""
        return None if self.account.sees_all else self.account.name

    @property
    def seen_sims(self) -> tuple[str, ...] | None:
        """The SIMs the account sees (their state, what came in on them); None: every SIM."""
        if self.account.sees_all or self.account.sims is None:
            return None
        return tuple(self.account.sims)

    def sees_sim(self, name: str) -> bool:
        sims = self.seen_sims
        return sims is None or name in sims

    def require_sender(self, subject: str = "messages") -> None:
        """Forbidden unless the account may change things (admin or sender); the refusal
        names the `subject` (`messages`, `contacts`, `groups`, `optouts`) and its code is
        `may_not_change` or `may_not_change_<subject>`, for the console to word it."""
        if not self.account.may_send:
            code = "may_not_change" if subject == "messages" else f"may_not_change_{subject}"
            raise Forbidden(f"account {self.account.name!r} is a viewer: it may look at "
                            f"{SUBJECTS[subject]}, not change them",
                            code=code, params={"account": self.account.name})

    def require_admin(self) -> None:
        """Forbidden unless the account is an admin (the bank's own features)."""
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} is not an admin", code="admin_only",
                            params={"account": self.account.name})

    def require_lifting(self) -> None:
        """Forbidden unless an admin: others may add opt-outs and blacklist entries (that only
        stops sends), not lift them."""
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} may add opt-outs and blacklist "
                            "entries, not lift them (an admin does)", code="may_not_lift_optouts",
                            params={"account": self.account.name})

    def require_autoreply_admin(self) -> None:
        """Forbidden unless an admin: everyone may look at the auto-reply rules, not change
        them."""
        if not self.account.sees_all:
            raise Forbidden(f"account {self.account.name!r} may look at auto-reply rules, not "
                            "change them (an admin does)", code="may_not_change_autoreplies",
                            params={"account": self.account.name})

    def permissions(self) -> dict[str, bool]:
        """What the account may do, for a front end to offer only that (the methods check
        again): send and change contacts (senders, admins); run campaigns (its own, or all for
        an admin); add opt-outs and blacklist entries; remove them, change auto-replies and
        forwarding, manage accounts (admins)."""
        sender, admin = self.account.may_send, self.account.sees_all
        return {"send": sender, "change_contacts": sender, "run_campaigns": sender,
                "add_optouts": sender, "remove_optouts": admin, "change_autoreplies": admin,
                "forwarding": admin, "templates": admin, "accounts": admin}


def quota_day_start(now: datetime, tz: tzinfo | None) -> datetime:
    """When the day of an account's per-day quota began: local midnight in `tz`."""
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(0), tzinfo=local.tzinfo)
