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


async def test_a_coroutine_before_pdu_is_awaited_with_the_modem_at_its_prompt(bank) -> None:
    """The pool records its marker in a thread (a database server): the PDU waits for it, and
    a marker that fails sends nothing."""
    import asyncio

    to = bank.modems[1].msisdn
    async with opened(bank) as modem:
        recorded = asyncio.Event()
        order: list[str] = []

        async def record(part: object) -> None:
            order.append(f"asked at {modem.pending_command}")
            await asyncio.sleep(0)  # the loop turns while the modem waits at its prompt
            await recorded.wait()
            order.append("recorded")

        async def release() -> None:
            while not order:
                await asyncio.sleep(0)
            assert bank.network_log() == []  # nothing left before the marker was written
            recorded.set()

        part = pdu.encode_submit(to, "after its marker")
        await asyncio.gather(modem.send(part, before_pdu=record), release())

        async def fail(part: object) -> None:
            await asyncio.sleep(0)
            raise Refused

        with pytest.raises(Refused):
            await modem.send(pdu.encode_submit(to, "never sent"), before_pdu=fail)
        await modem.send(pdu.encode_submit(to, "then this"))
        messages = await bank.wait_for_messages(2, timeout=10)
    assert order == [f"asked at AT+CMGS={part[0].tpdu_length}", "recorded"]
    assert [m["text"] for m in messages] == ["after its marker", "then this"]


async def test_a_modem_that_leaves_its_prompt_while_the_marker_is_written_gets_no_pdu(bank) -> None:
    """Its final result came while `before_pdu` ran (no waiter then): the PDU is not written
    (the modem would read it as a command line), the send fails as the modem's trouble
    (never permanent: no PDU was judged), and nothing went out."""
    import asyncio

    from at_commands import AtError, ErrorClass

    to = bank.modems[1].msisdn
    virtual = bank.modem(bank.modems[0].name)
    async with opened(bank) as modem:
        async def record(part: object) -> None:
            virtual.give_up_prompt(304)              # its entry timer ran out meanwhile
            while modem.pending_command is not None:  # until its answer reached the channel
                await asyncio.sleep(0)

        with pytest.raises(AtError, match=r"ended at the prompt \(\+CMS ERROR: 304\)") as failed:
            await modem.send(pdu.encode_submit(to, "never sent"), before_pdu=record)
        assert failed.value.error_class is ErrorClass.SIM_OR_MODEM
        assert failed.value.references == ()
        assert bank.network_log() == []
        await modem.send(pdu.encode_submit(to, "the next one goes"))
        messages = await bank.wait_for_messages(1, timeout=10)
    assert [m["text"] for m in messages] == ["the next one goes"]


async def test_a_port_that_closes_while_the_marker_is_written_sends_nothing_and_says_so(bank) -> None:
    """The port went while `before_pdu` ran: no PDU can have left, so the send fails as a lost
    modem (the pool requeues it), not as "PDU written, then ..." (which it would mark
    ambiguous)."""
    from at_commands import ModemDisconnected, SendAmbiguous

    to = bank.modems[1].msisdn
    async with opened(bank) as modem:
        def unplugged(part: object) -> None:
            modem.channel.close()

        with pytest.raises(ModemDisconnected, match="closed at the prompt") as failed:
            await modem.send(pdu.encode_submit(to, "never sent"), before_pdu=unplugged)
        assert not isinstance(failed.value, SendAmbiguous)
        assert failed.value.references == ()
    assert bank.network_log() == []
