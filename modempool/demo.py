"""`modempool demo`: a simulated bank, the real pool, a handful of messages and their replies.

Everything is real except the modems: the daemon drives simulated modems over pseudo-terminals,
the spool is an SQLite file in a temporary directory, and the display reads that file. Besides
the direct messages, a small campaign (群发) goes to three parents in the address book with their
name and class filled into the template; two of them answer, one with `退订`, which puts the
number on the opt-out list (and is confirmed by SMS), so later campaigns leave it out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from modempool.numbers import carrier_of

# (recipient, text): Chinese, a long one, emoji, plain ASCII, to China Mobile/Unicom/Telecom.
MESSAGES: tuple[tuple[str, str], ...] = (
    ("+8613800138000", "你好！明天上午十点在三楼会议室开会，请准时参加。"),
    ("+8613012345678", "Your verification code is 482913. It expires in 5 minutes."),
    ("+8618912345678", "生日快乐 🎂🎉 祝你天天开心！"),
    ("+8613912345678", "【物流通知】您的包裹已到达小区东门快递柜，取件码 3821，请于今晚八点前取件。"
                       "如有疑问请联系快递员张师傅，电话 13800138000。感谢您的耐心等待，"
                       "祝您生活愉快！回T退订"),
    ("+8618612345678", "Meeting moved to Thursday 15:00, same room. Bring the Q3 figures, "
                       "the supplier list and the draft contract so that we can go through "
                       "everything in one session. Thanks!"),
    ("+8617712345678", "周末一起去爬山吗？⛰️ 天气预报说是晴天 ☀️"),
)
REPLIES: dict[str, str] = {
    "+8613800138000": "收到，我会准时到。",
    "+8618912345678": "谢谢！❤️",
    "+8613912345678": "好的，我下班后去取。麻烦您跟张师傅说一声，如果晚上八点前赶不到，"
                      "能不能请他帮忙把包裹放到门卫室？我大概九点左右到家，到时候再去门卫室拿。"
                      "非常感谢，辛苦了！",
}
# The campaign: parents in the address book group 家长, a template with their fields.
PARENTS: tuple[tuple[str, str, str], ...] = (
    ("+8613700137001", "王芳", "三年级一班"),
    ("+8613100131002", "李强", "三年级二班"),
    ("+8613300133003", "赵敏", "四年级一班"),
)
CAMPAIGN_TEXT = "{name}家长您好：本周五下午3点在{班级}教室开家长会，请准时参加。"
CAMPAIGN_REPLIES: dict[str, str] = {"+8613700137001": "收到，一定准时到。", "+8613300133003": "退订"}
#: The console's width where the output is no terminal (a pipe, a file, CI) and COLUMNS is not
#: set: rich's 80 columns would cut the tables' columns ("deliver…"); the tables take no more
#: than they need.
WIDTH_IN_A_PIPE = 160
STATE_STYLE = {"queued": "dim", "sending": "yellow", "sent": "cyan", "delivered": "green",
               "failed": "red", "ambiguous": "magenta", "expired": "red", "cancelled": "dim"}


async def run_demo(modems: int = 4, live: bool = True, console: Console | None = None,
                   stall: float = 40.0, spool_path: str | Path | None = None) -> int:
    """Run the demo; returns the exit status (0: every message went out, replies came back and
    the opt-out was stored). It gives up when nothing moved for `stall` seconds (a slow or
    busy machine only takes longer). `spool_path` keeps the spool there instead of a
    temporary file."""
    from modempool.config import Config, OptOutConfig
    from modempool.dispatch.daemon import Daemon

    console = console or demo_console()
    logging.getLogger("modempool").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="modempool-demo-") as tmp:
        config = Config(path=None, spool_path=Path(spool_path or Path(tmp) / "demo.db"),
                        simulator=modems, strategy="carrier-affinity",
                        optout=OptOutConfig(confirm=True))
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run(), name="daemon")
        watch = _Stall(lambda: _progress(spool), stall)
        ids: list[int] = []
        campaign: dict[str, Any] = {}
        try:
            await _until(lambda: daemon.ready.is_set() or running.done(), watch)
            if running.done():
                await running
            where = (f"spool {Path(spool_path).resolve()}" if spool_path else
                     "spool in a temporary file, removed at the end (--spool FILE keeps it)")
            console.print(f"[bold]modempool demo[/]: {modems} simulated modems, {where}, "
                          "strategy carrier-affinity")
            ids = [spool.enqueue(to, text).id for to, text in MESSAGES]
            campaign = _start_campaign(spool, config)
            console.print(f"campaign [bold]{campaign['name']}[/] to group 家长: "
                          f"{campaign['recipients']} recipients, template {CAMPAIGN_TEXT!r}")
            with Live(_view(spool, daemon, ids, campaign), console=console, refresh_per_second=8,
                      transient=not live) as screen:
                async def refresh() -> None:
                    if live:
                        screen.update(_view(spool, daemon, ids, campaign))

                everything = lambda: ids + _campaign_ids(spool, campaign)  # noqa: E731
                await _until(lambda: _all_final(spool, everything()), watch, refresh)
                sims = {spool.get(i).to: spool.get(i).sim for i in everything()}
                for sender, reply in {**REPLIES, **CAMPAIGN_REPLIES}.items():
                    if sims.get(sender):
                        await daemon.bank.inject(sims[sender], sender, reply, out_of_order=True)
                await _until(lambda: _replies_in(spool) and _all_delivered(spool, everything())
                             and _confirmed(spool), watch, refresh)
                screen.update(_view(spool, daemon, ids, campaign))
            if not live:
                console.print(_view(spool, daemon, ids, campaign))
        except TimeoutError:
            console.print(f"[red]the demo stopped: nothing moved for {stall:g} s[/]")
        finally:
            daemon.stop()
            await running
            ok = (_all_delivered(spool, ids + _campaign_ids(spool, campaign))
                  and _replies_in(spool) and _confirmed(spool))
            if ok:
                _summary(console, spool, campaign)
            spool.close()
    console.print("[green]all messages delivered, all replies stored[/]" if ok
                  else "[red]some messages or replies are missing[/]")
    return 0 if ok else 1


def demo_console() -> Console:
    """A terminal's own width; elsewhere (no COLUMNS given) `WIDTH_IN_A_PIPE`."""
    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        return Console(width=WIDTH_IN_A_PIPE)
    return console


def _start_campaign(spool: Any, config: Any) -> dict[str, Any]:
    """Parents into the address book (group 家长), then a notice campaign to the group."""
    from modempool.operator.campaigns import Campaigns
    from modempool.operator.contacts import AddressBook, Selection

    book = AddressBook(spool.db, config.region)
    for number, name, grade in PARENTS:
        book.upsert(number, name, fields={"班级": grade}, groups=["家长"])
    campaigns = Campaigns(spool, config)
    created = campaigns.create("家长会通知", CAMPAIGN_TEXT, groups=Selection(("家长",)),
                               kind="notice")
    started = campaigns.start(created.id)
    return {"id": created.id, "name": created.name, "recipients": started.recipients}


def _campaign_ids(spool: Any, campaign: dict[str, Any]) -> list[int]:
    if not campaign:
        return []
    return [m.id for m in spool.list(campaign_id=campaign["id"])]


def _replies_in(spool: Any) -> bool:
    return len(spool.inbound()) >= len(REPLIES) + len(CAMPAIGN_REPLIES)


def _confirmed(spool: Any) -> bool:
    """The opt-out is stored and its confirmation SMS delivered."""
    from modempool.operator.optout import OptOutList

    opted = OptOutList(spool.db).optouts()
    if not opted:
        return False
    confirmation = spool.get_by_client_id(f"optout-confirm:{opted[0]['inbound_id']}")
    return confirmation is not None and confirmation.state.value == "delivered"


def _summary(console: Console, spool: Any, campaign: dict[str, Any]) -> None:
    from modempool.operator.campaign_report import report
    from modempool.operator.campaigns import Campaigns

    summary = report(spool, campaign["id"]).summary
    console.print(f"campaign {campaign['name']}: {summary.delivered} delivered, "
                  f"{summary.replies} replies, {summary.opt_outs} opt-out")
    later = Campaigns(spool).plan(campaign["id"])
    for row in _optouts(spool):
        console.print(f"opted out: {row['number']} {row['name']} (replied {row['keyword']});"
                      " confirmation sent")
    console.print(f"the same campaign now reaches {len(later.recipients)} of {len(PARENTS)}"
                  f" parents (left out: {', '.join(later.excluded_optout)})")


def _optouts(spool: Any) -> list[dict[str, Any]]:
    from modempool.operator.contacts import AddressBook
    from modempool.operator.optout import OptOutList

    book = AddressBook(spool.db)
    rows = OptOutList(spool.db).optouts()
    for row in rows:
        contact = book.find(row["number"])
        row["name"] = contact.name if contact else ""
    return rows


class _Stall:
    """Gives up (TimeoutError) when `progress()` has not changed for `seconds`."""

    def __init__(self, progress: Any, seconds: float) -> None:
        self.progress, self.seconds = progress, seconds
        self.seen, self.deadline = progress(), time.monotonic() + seconds

    def check(self) -> None:
        now = self.progress()
        if now != self.seen:
            self.seen, self.deadline = now, time.monotonic() + self.seconds
        elif time.monotonic() > self.deadline:
            raise TimeoutError


def _progress(spool: Any) -> tuple[Any, ...]:
    """What changes while the demo moves: messages by state, replies, the SIMs' states."""
    return (tuple(sorted(spool.counts().items())), len(spool.inbound()),
            tuple(row.get("state") for row in spool.sims()))


async def _until(condition: Any, watch: _Stall, tick: Any = None) -> None:
    while not condition():
        watch.check()
        if tick is not None:
            await tick()
        await asyncio.sleep(0.1)
    if tick is not None:
        await tick()


def _all_final(spool: Any, ids: list[int]) -> bool:
    return all(spool.get(i).state.value not in ("queued", "sending") for i in ids)


def _all_delivered(spool: Any, ids: list[int]) -> bool:
    return bool(ids) and all(spool.get(i).state.value == "delivered" for i in ids)


def _view(spool: Any, daemon: Any, ids: list[int], campaign: dict[str, Any]) -> Group:
    from modempool.operator.contacts import AddressBook

    book = AddressBook(spool.db)
    names = {c.number: c for c in book.list()}
    messages = [spool.get(i) for i in ids]
    outgoing = Table(title="outgoing", box=box.SIMPLE_HEAD)
    for column in ("#", "to", "carrier", "text", "parts", "SIM", "state"):
        outgoing.add_column(column, overflow="ellipsis", no_wrap=True,
                            max_width=22 if column == "text" else None)
    for m in messages:
        carrier = carrier_of(m.to).replace("China ", "")
        outgoing.add_row(str(m.id), m.to, carrier, _short(m.text, 22), str(m.parts_total or ""),
                         m.sim or "", _state(m.state.value))
    sims = Table(title="how they spread over the SIMs", box=box.SIMPLE_HEAD)
    for column in ("SIM", "operator", "number", "state", "sent", ""):
        sims.add_column(column)
    counts: dict[str, int] = {}
    for m in messages:
        if m.sim and m.state.value in ("sent", "delivered"):
            counts[m.sim] = counts.get(m.sim, 0) + 1
    for row in spool.sims():
        sent = counts.get(row["name"], 0)
        sims.add_row(row["name"], row.get("operator") or "", row.get("msisdn") or "",
                     row.get("state") or "", str(sent), "█" * (2 * sent))
    parts = [outgoing, sims]
    if campaign:
        table = Table(title=f"campaign {campaign['name']} (群发, template with {{name}} {{班级}})",
                      box=box.SIMPLE_HEAD)
        for column in ("to", "name", "text", "SIM", "state"):
            table.add_column(column, overflow="ellipsis", no_wrap=True,
                             max_width=40 if column == "text" else None)
        for m in spool.list(campaign_id=campaign["id"]):
            contact = names.get(m.to)
            table.add_row(m.to, contact.name if contact else "", _short(m.text, 40), m.sim or "",
                          _state(m.state.value))
        parts.append(table)
    inbound = Table(title="what came back", box=box.SIMPLE_HEAD)
    for column in ("from", "name", "SIM", "parts", "text"):
        inbound.add_column(column, overflow="ellipsis", no_wrap=True,
                           max_width=36 if column == "text" else None)
    for row in spool.inbound():
        contact = names.get(row["sender"])
        inbound.add_row(row["sender"], contact.name if contact else "", row["sim"] or "",
                        str(row["parts"]), _short(row["text"], 36))
    parts.append(inbound)
    optouts = _optouts(spool)
    if optouts:
        table = Table(title="opt-out list (退订)", box=box.SIMPLE_HEAD)
        for column in ("number", "name", "keyword", "source"):
            table.add_column(column)
        for row in optouts:
            table.add_row(row["number"], row["name"], row["keyword"], row["source"])
        parts.append(table)
    return Group(*parts)


def _state(value: str) -> str:
    return f"[{STATE_STYLE.get(value, '')}]{value}[/]"


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
