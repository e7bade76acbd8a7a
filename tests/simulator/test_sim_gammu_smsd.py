"""Acceptance: gammu-smsd (Debian package `gammu-smsd`), files backend, against the bank.

A message dropped in its outbox reaches the virtual network with the same text; an SMS injected
from outside lands in its inbox directory. gammu-smsd runs as a real subprocess.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tests.programs import require_program
from simulator import SimulatedBank

LONG_CHINESE = ("各位用户您好：本周六凌晨两点至六点将进行系统维护，届时短信发送功能可能会受到影响。"
                "给您带来的不便敬请谅解，如有疑问请致电客服热线，我们将竭诚为您服务。谢谢！")  # 83 chars


def _config(directory, device) -> str:
    folders = {name: directory / name for name in ("inbox", "outbox", "sent", "error")}
    for folder in folders.values():
        folder.mkdir()
    return (f"[gammu]\ndevice = {device}\nconnection = at\nmodel = at\n\n"
            f"[smsd]\nservice = files\n"
            f"inboxpath = {folders['inbox']}/\noutboxpath = {folders['outbox']}/\n"
            f"sentsmspath = {folders['sent']}/\nerrorsmspath = {folders['error']}/\n"
            "inboxformat = standard\noutboxformat = unicode\ntransmitformat = auto\n"
            f"logfile = {directory / 'smsd.log'}\ndebuglevel = 1\n"
            "checksecurity = 0\ncheckbattery = 0\nchecksignal = 0\ncheckNetwork = 0\n"
            "statusfrequency = 0\nreceivefrequency = 1\nloopsleep = 1\ncommtimeout = 1\n")


async def test_gammu_smsd_files_backend_sends_and_receives(tmp_path):
    require_program("gammu-smsd")
    async with SimulatedBank(1, tmp_path / "bank", personality="simcom", seed=12,
                             chatter=0) as bank:
        work = tmp_path / "smsd"
        work.mkdir()
        config = work / "smsdrc"
        config.write_text(_config(work, bank.devices[0]), encoding="utf-8")
        to = "+8613511112222"
        # The files backend's outbox: OUT<priority><date>_<time>_<serial>_<number>_<x>.txt,
        # here UTF-16 text (outboxformat = unicode). Its inbox is written as "standard" text in
        # the locale's charset (UTF-8 below): "unicode" inbox files get trailing NULs from
        # gammu-smsd 1.42 itself (the PDU it read has the right length).
        outgoing = work / "outbox" / f"OUTC20261125_120000_00_{to}_sms0.txt"
        outgoing.write_bytes(LONG_CHINESE.encode("utf-16"))
        daemon = await asyncio.create_subprocess_exec(
            "gammu-smsd", "-c", str(config), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C.UTF-8"})
        try:
            [message] = await bank.wait_for_messages(1, timeout=20)
            assert message["text"] == LONG_CHINESE
            assert message["from"] == bank.modems[0].msisdn and message["to"] == to
            assert len(message["message_references"]) == 2  # sent as two UCS2 parts

            await bank.inject("m1", "+8613912345678", "验证码 4711，五分钟内有效")
            deadline = time.monotonic() + 15  # it polls the modem every receivefrequency s
            while not (arrived := list((work / "inbox").glob("IN*_+8613912345678_*.txt"))):
                assert time.monotonic() < deadline, (work / "smsd.log").read_text("utf-8")
                await asyncio.sleep(0.1)
            assert arrived[0].read_bytes().decode("utf-8") == "验证码 4711，五分钟内有效"
            assert [p.name for p in (work / "sent").iterdir()] == [outgoing.name]
            assert not list((work / "error").iterdir())
        finally:
            daemon.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await daemon.wait()
