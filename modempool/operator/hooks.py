"""Where operator features (opt-out, auto-reply, forwarding) plug into the daemon's inbound path,
and the opt-out rules into its send path (`send_refusal`).

The daemon calls `inbound_handlers(config, lane.run)` once, then, for every complete inbound
message it has stored, `handler(spool, message, config)` for each handler in order, in its
inbound lane (a worker thread on a database server: a handler may wait on the database, never
holding up the modems); one sender's messages take their turns one after the other, in the
order they were stored. If a handler returns an awaitable, the daemon awaits it on its event
loop (where it may start tasks). A failing handler is logged and never stops the pool. The
daemon calls the handlers of an SMS inside one transaction that also marks them run (its row
of `inbound_hooks`: `spool/inbound_hooks.py`):
what a handler writes through `spool` or `spool.db` joins it, so a crash leaves the hooks
either done and marked or undone and pending (run at the next start), never done twice. A
handler lets the database's errors (`SpoolFailure`) out: caught and carried on, its writes
would commit without the ones that failed. Order matters: the opt-out handler runs
first, and the auto-reply handler never answers an opt-out keyword. Both decide under the
sender's lock (`operator.db.locked`), which holds across daemons on one database. The forward
command is a step of its own after the handlers (`inbound_command`), pending until its final
outcome is recorded: run again after a kill, at least once (`operator/forwarding.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

InboundHandler = Callable[..., Any]
#: `(spool, message, passed)`: runs the forward command to its final outcome, recorded in one
#: transaction with `passed()` (the SMS's last step passed); True when it exited 0.
InboundCommand = Callable[[Any, Any, Callable[[], bool]], Awaitable[bool]]


#: How many handlers `inbound_handlers` gives (opt-out, auto-reply, forwarding's record): an
#: SMS's steps past them are its forward command's (`status` tells the two apart).
HANDLER_STEPS = 3


def inbound_handlers(config: Any,
                     run_spool_work: Callable[..., Awaitable[Any]] | None = None, *,
                     command: bool = True) -> list[InboundHandler]:
    """Handlers the daemon calls, in order, for each complete inbound message it has stored.
    `run_spool_work(work, *args)`: the daemon's inbound lane, for what a handler later writes
    from the event loop (a forward command's outcome). `command` False: the forward handler
    does not start the forward command (the daemon runs it as the last step: `inbound_command`)."""
    from modempool.operator.autoreply import make_autoreply_handler
    from modempool.operator.forwarding import make_forward_handler
    from modempool.operator.optout import make_optout_handler

    return [make_optout_handler(config), make_autoreply_handler(config),
            make_forward_handler(config, run_spool_work, command=command)]


def inbound_command(config: Any, run_spool_work: Callable[..., Awaitable[Any]]
                    ) -> InboundCommand | None:
    """The forward command (`run_on_receive`) as the last step of each stored SMS's hooks,
    durable until its final outcome (`forwarding.command_step`); None when none is configured."""
    from modempool.operator.forwarding import command_step

    return command_step(config, run_spool_work)


def send_refusal(spool: Any, config: Any) -> Callable[[Sequence[Any]], list[str | None]]:
    """The check the dispatcher makes as it claims a round's messages: why each must not go
    out, or None (one query for the round)."""
    from modempool.operator.optout import send_time_check

    return send_time_check(spool.db, config).many
