"""`modempool demo`: a simulated bank, the real pool, a handful of messages and their replies.

Everything is real except the modems: the daemon drives simulated modems over pseudo-terminals,
the spool is an SQLite file in a temporary directory, and the display reads that file.
"""

from __future__ import annotations

import asyncio
import logging
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
STATE_STYLE = {"queued": "dim", "sending": "yellow", "sent": "cyan", "delivered": "green",
               "failed": "red", "ambiguous": "magenta", "expired": "red", "cancelled": "dim"}


async def run_demo(modems: int = 4, live: bool = True, console: Console | None = None,
                   timeout: float = 40.0) -> int:
    """Run the demo; returns the exit status (0: every message went out and replies came back)."""
    from modempool.config import Config
    from modempool.daemon import Daemon

    console = console or Console()
    logging.getLogger("modempool").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="modempool-demo-") as tmp:
        config = Config(path=None, spool_path=Path(tmp) / "demo.db", simulator=modems,
                        strategy="carrier-affinity")
        spool = config.open_spool()
        daemon = Daemon(config, spool=spool, install_signals=False)
        running = asyncio.create_task(daemon.run(), name="daemon")
        deadline = time.monotonic() + timeout
        try:
            await _until(lambda: daemon.ready.is_set() or running.done(), deadline)
            if running.done():
                await running
            console.print(f"[bold]modempool demo[/]: {modems} simulated modems, "
                          f"spool {spool.path.name}, strategy carrier-affinity")
            ids = [spool.enqueue(to, text).id for to, text in MESSAGES]
            with Live(_view(spool, daemon, ids), console=console, refresh_per_second=8,
                      transient=not live) as screen:
                async def refresh() -> None:
                    if live:
                        screen.update(_view(spool, daemon, ids))

                await _until(lambda: _all_final(spool, ids), deadline, refresh)
                senders = {spool.get(i).to: spool.get(i).sim for i in ids}
                for sender, reply in REPLIES.items():
                    sim = senders.get(sender)
                    if sim:
                        await daemon.bank.inject(sim, sender, reply, out_of_order=True)
                await _until(lambda: len(spool.inbound()) >= len(REPLIES)
                             and _all_delivered(spool, ids), deadline, refresh)
                screen.update(_view(spool, daemon, ids))
            if not live:
                console.print(_view(spool, daemon, ids))
        except TimeoutError:
            console.print("[red]the demo did not finish in time[/]")
        finally:
            daemon.stop()
            await running
            ok = _all_delivered(spool, ids if "ids" in locals() else []) and \
                len(spool.inbound()) >= len(REPLIES)
            spool.close()
    console.print("[green]all messages delivered, all replies stored[/]" if ok
                  else "[red]some messages or replies are missing[/]")
    return 0 if ok else 1


async def _until(condition: Any, deadline: float, tick: Any = None) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        if tick is not None:
            await tick()
        await asyncio.sleep(0.1)
    if tick is not None:
        await tick()


def _all_final(spool: Any, ids: list[int]) -> bool:
    return all(spool.get(i).state.value not in ("queued", "sending") for i in ids)


def _all_delivered(spool: Any, ids: list[int]) -> bool:
    return bool(ids) and all(spool.get(i).state.value == "delivered" for i in ids)


def _view(spool: Any, daemon: Any, ids: list[int]) -> Group:
    messages = [spool.get(i) for i in ids]
    outgoing = Table(title="outgoing", box=box.SIMPLE_HEAD)
    for column in ("#", "to", "carrier", "text", "parts", "SIM", "state"):
        outgoing.add_column(column, overflow="ellipsis", no_wrap=True,
                            max_width=22 if column == "text" else None)
    for m in messages:
        carrier = carrier_of(m.to).replace("China ", "")
        outgoing.add_row(str(m.id), m.to, carrier, _short(m.text, 22), str(m.parts_total or ""),
                         m.sim or "", f"[{STATE_STYLE.get(m.state.value, '')}]{m.state.value}[/]")
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
    inbound = Table(title="what came back", box=box.SIMPLE_HEAD)
    for column in ("from", "SIM", "parts", "text"):
        inbound.add_column(column, overflow="ellipsis", no_wrap=True,
                           max_width=36 if column == "text" else None)
    for row in spool.inbound():
        inbound.add_row(row["sender"], row["sim"] or "", str(row["parts"]), _short(row["text"], 36))
    return Group(outgoing, sims, inbound)


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
