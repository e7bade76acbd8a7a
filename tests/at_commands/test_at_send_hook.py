"""`Modem.send(before_pdu=...)`: the pool's last chance to record a part before its PDU leaves."""

from __future__ import annotations

import pytest

import pdu

from at_helpers import opened


class Refused(Exception):
    pass


async def test_before_pdu_runs_at_the_prompt_and_a_refusal_sends_nothing(bank) -> None:
    to = bank.modems[1].msisdn
    async with opened(bank) as modem:
        seen: list[str | None] = []
        first = pdu.encode_submit(to, "recorded first")
        await modem.send(first, before_pdu=lambda part: seen.append(modem.pending_command))

        def refuse(part: object) -> None:
            raise Refused

        with pytest.raises(Refused):
            await modem.send(pdu.encode_submit(to, "never sent"), before_pdu=refuse)
        await modem.send(pdu.encode_submit(to, "after the refusal"))
        messages = await bank.wait_for_messages(2, timeout=10)
    assert seen == [f"AT+CMGS={first[0].tpdu_length}"]  # at the prompt of that very command
    assert [m["text"] for m in messages] == ["recorded first", "after the refusal"]
