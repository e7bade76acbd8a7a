"""Sending, receiving, stores and listings, through real ptys."""

from __future__ import annotations

import re

import pdu
from sim_client import info_lines

LONG_CHINESE = "短信猫模拟器测试：这是一条很长的中文短信，用来检查多段短信在两张模拟卡之间的传递。" * 4


async def send_pdu(port, part) -> bytes:
    prompt = await port.command(f"AT+CMGS={part.tpdu_length}")
    assert prompt == b"\r\n> "
    return await port.send(part.hex.encode() + b"\x1a", timeout=5)


async def test_prompt_is_exactly_crlf_greater_space_and_esc_cancels(bank, ports):
    port = ports[0]
    await port.command("ATE1")
    assert await port.command("AT+CMGS=20") == b"AT+CMGS=20\r\r\n> "
    assert await port.send(b"0011\x1b") == b"0011\r\nOK\r\n"  # PDU line echoed, then cancelled
    assert bank.network_log() == []
    assert await port.command("AT") == b"AT\r\r\nOK\r\n"


async def test_cmgs_puts_the_message_on_the_network(bank, ports):
    part = pdu.encode_submit("+8613511112222", "hello network")[0]
    reply = await send_pdu(ports[0], part)
    match = re.search(rb"\r\n\+CMGS: (\d+)\r\n\r\nOK\r\n$", reply)
    assert match, reply
    [message] = await bank.wait_for_messages(1)
    assert message["from"] == bank.modems[0].msisdn
    assert message["to"] == "+8613511112222" and message["text"] == "hello network"
    assert message["message_references"] == [int(match.group(1))]
    assert message["delivered_to"] is None
    lines = (bank.directory / "network.jsonl").read_text(encoding="utf-8").splitlines()
    assert [line.count('"kind"') for line in lines] == [1, 1]


async def test_wrong_length_or_bad_pdu_is_cms_304(bank, ports):
    part = pdu.encode_submit("+8613511112222", "x")[0]
    assert await ports[0].command(f"AT+CMGS={part.tpdu_length + 1}") == b"\r\n> "
    reply = await ports[0].send(part.hex.encode() + b"\x1a")
    assert reply.endswith(b"\r\n+CMS ERROR: 304\r\n")
    assert await ports[0].command("AT+CMGS=3") == b"\r\n> "
    assert (await ports[0].send(b"00ZZ11\x1a")).endswith(b"+CMS ERROR: 304\r\n")
    assert bank.network_log() == []


async def test_multipart_between_two_simulated_sims(bank, ports):
    sender, receiver = ports
    await receiver.command("AT+CNMI=2,1,0,0,0")
    parts = pdu.encode_submit(bank.modems[1].msisdn, LONG_CHINESE)
    assert len(parts) == 3
    await sender.command("AT+CMMS=2")
    for part in parts:
        assert b"+CMGS: " in await send_pdu(sender, part)
    [message] = await bank.wait_for_messages(1)
    assert message["text"] == LONG_CHINESE and message["delivered_to"] == "m2"
    notices = await receiver.expect(rb'(?s)(\+CMTI: "SM",\d+\r\n.*){3}', timeout=5)
    assert re.findall(rb'\+CMTI: "SM",(\d+)', notices) == [b"1", b"2", b"3"]
    received = []
    for index in (1, 2, 3):
        header, hex_pdu = info_lines(await receiver.command(f"AT+CMGR={index}"))
        assert header.startswith("+CMGR: 0,,")
        received.append(pdu.decode_pdu(hex_pdu))
    assert {d.concat.reference for d in received} == {parts[0].reference}
    assert [d.concat.seq for d in received] == [1, 2, 3]
    assert all(d.sender == bank.modems[0].msisdn for d in received)
    assert "".join(d.text for d in received) == LONG_CHINESE
    # read now: listed as REC READ (1)
    assert info_lines(await receiver.command("AT+CMGR=1"))[0].startswith("+CMGR: 1,,")


async def test_cnmi_2_2_delivers_directly_with_cmt(bank, ports):
    await ports[0].command("AT+CNMI=2,2,0,0,0")
    await bank.inject("m1", "+8613912345678", "直接送达")
    urc = await ports[0].expect(rb"\+CMT: ,(\d+)\r\n([0-9A-F]+)\r\n")
    hex_pdu = re.search(rb"\+CMT: ,\d+\r\n([0-9A-F]+)", urc).group(1).decode()
    decoded = pdu.decode_pdu(hex_pdu)
    assert decoded.text == "直接送达" and decoded.sender == "+8613912345678"
    assert info_lines(await ports[0].command("AT+CPMS?"))[0].startswith('+CPMS: "SM",0,')


async def test_out_of_order_injection_arrives_last_part_first(bank, ports):
    await ports[0].command("AT+CNMI=2,1,0,0,0")
    await bank.inject("+8613800000001", "+8613912345678", LONG_CHINESE, out_of_order=True)
    await ports[0].expect(rb'(?s)(\+CMTI: "SM",\d\r\n.*){3}')
    seqs = []
    for index in (1, 2, 3):
        _, hex_pdu = info_lines(await ports[0].command(f"AT+CMGR={index}"))
        seqs.append(pdu.decode_pdu(hex_pdu).concat.seq)
    assert seqs == [3, 2, 1]
    inbound = [e for e in bank.network_log() if e["kind"] == "inbound"]
    assert inbound[0]["text"] == LONG_CHINESE and inbound[0]["parts"] == 3


async def test_cmgl_lists_each_store_and_cmgd_flags(bank, ports):
    port = ports[0]
    await port.command("AT+CNMI=0,0,0,0,0")  # stored silently
    await bank.inject("m1", "+8613911110000", "in SIM one")
    await bank.inject("m1", "+8613911110000", "in SIM two")
    await port.command('AT+CPMS="ME","ME","ME"')
    await bank.inject("m1", "+8613922220000", "in phone")
    written = pdu.encode_submit("+8613533334444", "draft")[0]
    assert await port.command(f"AT+CMGW={written.tpdu_length}") == b"\r\n> "
    assert info_lines(await port.send(written.hex.encode() + b"\x1a")) == ["+CMGW: 2"]

    me = info_lines(await port.command("AT+CMGL=4"))
    assert [line.split(",")[0:2] for line in me[::2]] == [["+CMGL: 1", "0"], ["+CMGL: 2", "2"]]
    assert pdu.decode_pdu(me[1]).text == "in phone" and pdu.decode_pdu(me[3]).text == "draft"
    assert info_lines(await port.command("AT+CMGL=0")) == []  # listing marked it read
    await port.command('AT+CPMS="SM"')
    sm = info_lines(await port.command("AT+CMGL=4"))
    assert [pdu.decode_pdu(h).text for h in sm[1::2]] == ["in SIM one", "in SIM two"]

    await port.command("AT+CMGF=1")
    text_listing = info_lines(await port.command('AT+CMGL="ALL"'))
    assert re.fullmatch(r'\+CMGL: 1,"REC READ","\+8613911110000",,"\d\d/\d\d/\d\d,[\d:]+[+-]\d\d"',
                        text_listing[0])
    assert text_listing[1] == "in SIM one"
    await port.command("AT+CMGF=0")
    await port.command("AT+CMGD=1")
    assert len(info_lines(await port.command("AT+CMGL=4"))) == 2
    await port.command('AT+CPMS="ME"')
    await port.command("AT+CMGD=1,1")  # all read ones: the draft stays
    remaining = info_lines(await port.command("AT+CMGL=4"))
    assert len(remaining) == 2 and remaining[0].startswith("+CMGL: 2,2,")
    await port.command("AT+CMGD=1,4")
    assert info_lines(await port.command("AT+CMGL=4")) == []
    assert (await port.command("AT+CMGR=999")).endswith(b"+CMS ERROR: 321\r\n")


async def test_cmss_sends_a_stored_message(bank, ports):
    port = ports[0]
    draft = pdu.encode_submit("+8613533334444", "stored then sent")[0]
    await port.command(f"AT+CMGW={draft.tpdu_length}")
    assert info_lines(await port.send(draft.hex.encode() + b"\x1a")) == ["+CMGW: 1"]
    assert re.fullmatch(r"\+CMSS: \d+", info_lines(await port.command("AT+CMSS=1"))[0])
    [message] = await bank.wait_for_messages(1)
    assert message["text"] == "stored then sent" and message["to"] == "+8613533334444"
    assert info_lines(await port.command("AT+CMGL=3"))[0].startswith("+CMGL: 1,3,")


async def test_text_mode_send_with_multiline_prompt(bank, ports):
    port = ports[0]
    await port.command("AT+CMGF=1")
    assert await port.command('AT+CMGS="+8613566667777"') == b"\r\n> "
    assert await port.send(b"line one\r", b"\r\n> ") == b"\r\n> "
    reply = await port.send(b"line two\x1a")
    assert re.search(rb"\+CMGS: \d+\r\n\r\nOK\r\n$", reply)
    [message] = await bank.wait_for_messages(1)
    assert message["text"] == "line one\rline two"


async def test_status_report_comes_back_as_cds_or_cdsi(bank, ports):
    port = ports[0]
    await port.command("AT+CNMI=2,1,0,1,0")
    part = pdu.encode_submit("+8613511112222", "report me", status_report=True)[0]
    reply = await send_pdu(port, part)
    reference = int(re.search(rb"\+CMGS: (\d+)", reply).group(1))
    urc = await port.expect(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n")
    report = pdu.decode_pdu(re.search(rb"\+CDS: \d+\r\n([0-9A-F]+)", urc).group(1).decode())
    assert report.type == "status-report" and report.message_reference == reference
    assert report.recipient == "+8613511112222" and report.delivered
    await port.command("AT+CNMI=2,1,0,2,0")
    await send_pdu(port, part)
    notice = await port.expect(rb'\+CDSI: "SM",(\d+)\r\n')
    index = re.search(rb'\+CDSI: "SM",(\d+)', notice).group(1).decode()
    _, hex_pdu = info_lines(await port.command(f"AT+CMGR={index}"))
    assert pdu.decode_pdu(hex_pdu).type == "status-report"


async def test_parts_delay_spaces_the_parts_of_an_injected_message(bank, ports):
    import asyncio

    delivery = asyncio.create_task(
        bank.inject("m1", "+8613912345678", LONG_CHINESE, parts_delay=0.5))
    await ports[0].expect(rb'\+CMTI: "SM",1\r\n')
    assert not delivery.done()  # the other parts are still on their way
    assert len(await delivery) == 3
    await ports[0].expect(rb'(?s)\+CMTI: "SM",3\r\n')


async def test_text_mode_direct_delivery_and_reading(bank, ports):
    port = ports[0]
    await port.command("AT+CMGF=1;+CNMI=2,2,0,0,0")
    await bank.inject("m1", "+8613912345678", "plain text arrives")
    urc = await port.expect(rb'\+CMT: "[^"]*",,"[^"]*"\r\n[^\r]*\r\n')
    assert re.search(rb'\+CMT: "\+8613912345678",,"\d\d/\d\d/\d\d,[\d:]+[+-]\d\d"\r\n'
                     rb"plain text arrives\r\n", urc)
    await port.command("AT+CNMI=2,1,0,0,0")
    await bank.inject("m1", "+8613912345678", "你好")
    await port.expect(rb'\+CMTI: "SM",1\r\n')
    header, text = info_lines(await port.command("AT+CMGR=1"))
    assert header.startswith('+CMGR: "REC UNREAD","+8613912345678",,"')
    assert text == "4F60597D"  # UCS2 data is shown as hex in text mode (TS 27.005 3.1)
