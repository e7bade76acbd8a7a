"""Sending alone: a `Sending` over a `Channel` (no `Modem`) against a simulated modem."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

import pdu
from at_commands import CmsError, SendAmbiguous
from at_commands.sending import Sending
from simulator import SimulatedBank

from at_helpers import channel_on


@contextlib.asynccontextmanager
async def sending_on(bank: SimulatedBank, **changes) -> AsyncIterator[Sending]:
    async with channel_on(bank, setup=("pdu_mode",), profile_changes=changes) as channel:
        yield Sending(channel)


def sent_lines(caplog) -> list[str]:
    return [r.getMessage()[3:] for r in caplog.records
            if r.getMessage().startswith((">> AT+CMMS", ">> AT+CMGS"))]


async def test_a_multipart_message_goes_out_with_the_link_kept_between_parts(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    parts = pdu.encode_submit(bank.modems[1].msisdn, "Three parts, back to back. " * 12)
    async with sending_on(bank) as sending:
        references = await sending.send(parts)
        messages = await bank.wait_for_messages(1)
        assert not sending.link_kept
    assert messages[0]["message_references"] == references and len(references) == len(parts)
    lines = sent_lines(caplog)
    assert lines[0] == "AT+CMMS=2" and lines[-1] == "AT+CMMS=0"
    assert len([line for line in lines if line.startswith("AT+CMGS")]) == len(parts)


async def test_without_cmms_in_the_profile_the_link_is_not_asked_for(bank, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="modempool.modem.m1")
    parts = pdu.encode_submit(bank.modems[1].msisdn, "Two parts without AT+CMMS. " * 6)
    async with sending_on(bank, supports_cmms=False) as sending:
        await sending.send(parts)
    assert not any(line.startswith("AT+CMMS") for line in sent_lines(caplog))


async def test_a_network_refusal_is_a_definite_failure_naming_what_went_out(bank) -> None:
    parts = pdu.encode_submit(bank.modems[1].msisdn, "refused")
    async with sending_on(bank) as sending:
        bank.set_fault("m1", "cms_error", code=38)
        with pytest.raises(CmsError) as caught:
            await sending.send(parts)
    assert caught.value.code == 38 and caught.value.references == ()


async def test_a_failing_before_pdu_hook_cancels_the_prompt_and_nothing_is_sent(bank) -> None:
    parts = pdu.encode_submit(bank.modems[1].msisdn, "never sent")

    def refuse(part) -> None:
        raise RuntimeError("the spool is full")

    async with sending_on(bank) as sending:
        with pytest.raises(RuntimeError, match="spool is full"):
            await sending.send(parts, before_pdu=refuse)
        after = await sending.send(pdu.encode_submit(bank.modems[1].msisdn, "after"))
        messages = await bank.wait_for_messages(1)
    assert [m["text"] for m in messages] == ["after"] and len(after) == 1


async def test_silence_after_the_pdu_is_ambiguous(bank) -> None:
    async with sending_on(bank, timeouts={"send_result": 0.3}) as sending:
        bank.set_fault("m1", "hang_after_pdu")
        with pytest.raises(SendAmbiguous) as caught:
            await sending.send(pdu.encode_submit(bank.modems[1].msisdn, "in doubt"))
    assert caught.value.references == ()
