"""Each AT command's replies, byte for byte where clients depend on the framing."""

from __future__ import annotations

import pytest

from simulator import SimulatedBank
from simulator.personalities import PERSONALITIES

from sim_client import AtPort, info_lines


async def test_echo_is_on_at_power_on_and_switchable(bank):
    port = AtPort(bank.devices[0])
    try:
        assert await port.command("AT") == b"AT\r\r\nOK\r\n"
        assert await port.command("ATE0") == b"ATE0\r\r\nOK\r\n"
        assert await port.command("AT") == b"\r\nOK\r\n"
        assert await port.command("ATE1") == b"\r\nOK\r\n"
        assert await port.command("AT+CMGF=0") == b"AT+CMGF=0\r\r\nOK\r\n"
    finally:
        port.close()


async def test_atz_restores_echo_and_verbose_codes(ports):
    port = ports[0]
    assert await port.send(b"ATV0\r", b"0\r") == b"0\r"
    assert await port.send(b"AT+FOO\r", b"4\r") == b"4\r"
    assert await port.send(b"ATZ\r", b"\r\nOK\r\n") == b"\r\nOK\r\n"
    assert await port.command("AT") == b"AT\r\r\nOK\r\n"


async def test_identity_commands(bank, ports):
    port, modem = ports[0], bank.modems[0]
    assert info_lines(await port.command("AT+CGMI")) == ["SIMCOM_Ltd"]
    assert info_lines(await port.command("AT+CGMM")) == ["SIMCOM_SIM800"]
    assert info_lines(await port.command("AT+CGMR")) == ["Revision:1308B06SIM800M32"]
    assert info_lines(await port.command("AT+CGSN")) == [modem.imei]
    assert info_lines(await port.command("AT+GSN")) == [modem.imei]
    assert info_lines(await port.command("AT+CIMI")) == [modem.imsi]
    assert info_lines(await port.command("AT+CCID")) == [modem.iccid]
    assert info_lines(await port.command("ATI")) == ["SIM800 R13.08"]
    assert info_lines(await port.command("AT+CNUM")) == [f'+CNUM: "","{modem.msisdn}",145']
    assert len(modem.imei) == 15 and modem.imsi.startswith("46000")
    assert modem.iccid.startswith("8986") and len(modem.iccid) == 20
    assert modem.msisdn == "+8613800000001" and bank.modems[1].msisdn == "+8618600000002"


@pytest.mark.parametrize("name", sorted(PERSONALITIES))
async def test_each_personality_identifies_itself(tmp_path, name):
    vendor = PERSONALITIES[name]
    async with SimulatedBank(1, tmp_path, personality=name, seed=3) as bank:
        port = AtPort(bank.devices[0])
        try:
            await port.command("ATE0")
            assert info_lines(await port.command("AT+CGMI")) == [vendor.manufacturer]
            assert info_lines(await port.command("AT+CGMM")) == [vendor.model]
            assert bank.modems[0].imei.startswith(vendor.imei_tac)
            for query, prefix in vendor.iccid_commands.items():
                line = f"AT{query}?" if query.startswith("^") else f"AT{query}"
                assert info_lines(await port.command(line)) == [prefix + bank.modems[0].iccid]
            cpms = info_lines(await port.command("AT+CPMS?"))[0]
            store = vendor.default_store
            assert cpms == f'+CPMS: "{store}",0,{vendor.stores[store]},' \
                           f'"{store}",0,{vendor.stores[store]},"{store}",0,{vendor.stores[store]}'
            assert info_lines(await port.command("AT+CNMI?")) == [
                "+CNMI: " + ",".join(map(str, vendor.default_cnmi))]
        finally:
            port.close()


async def test_a_modem_given_no_iccid_answers_error_to_every_iccid_command(tmp_path):
    """`iccids={name: None}`: a firmware with no ICCID command; its IMSI as given."""
    async with SimulatedBank(1, tmp_path, personality="quectel", seed=3, iccids={"m1": None},
                             imsis={"m1": "460001234567890"}) as bank:
        port = AtPort(bank.devices[0])
        try:
            await port.command("ATE0")
            for line in ("AT+CCID", "AT+QCCID", "AT^ICCID?", "AT+ZGETICCID", "AT+ICCID"):
                assert await port.command(line) == b"\r\nERROR\r\n", line
            assert info_lines(await port.command("AT+CIMI")) == ["460001234567890"]
            assert (bank.modems[0].iccid, bank.modems[0].imsi) == ("", "460001234567890")
        finally:
            port.close()


async def test_network_state_queries(bank, ports):
    port = ports[0]
    assert info_lines(await port.command("AT+CSQ")) == ["+CSQ: 20,99"]
    assert info_lines(await port.command("AT+CREG?")) == ["+CREG: 0,1"]
    assert info_lines(await port.command("AT+CREG=2;+CREG?")) == ['+CREG: 2,1,"2540","0E1F"']
    assert info_lines(await port.command("AT+COPS?")) == ['+COPS: 0,0,"China Mobile",0']
    assert info_lines(await port.command("AT+COPS=3,2;+COPS?")) == ['+COPS: 0,2,"46000",0']
    assert "China Unicom" in info_lines(await port.command("AT+COPS=?"))[0]
    assert info_lines(await ports[1].command("AT+COPS?")) == ['+COPS: 0,0,"China Unicom",0']
    assert info_lines(await port.command("AT+CPIN?")) == ["+CPIN: READY"]
    assert info_lines(await port.command("AT+CFUN?")) == ["+CFUN: 1"]


async def test_cfun_zero_deregisters_with_creg_urc(ports):
    port = ports[0]
    await port.command("AT+CREG=1")
    # A real modem finishes its reply first: the URC the command caused follows the OK.
    assert await port.command("AT+CFUN=0") == b"\r\nOK\r\n"
    assert await port.expect(rb"\r\n\+CREG: \d\r\n") == b"\r\n+CREG: 2\r\n"
    assert info_lines(await port.command("AT+CSQ")) == ["+CSQ: 99,99"]
    assert await port.command("AT+CFUN=1") == b"\r\nOK\r\n"
    assert await port.expect(rb"\r\n\+CREG: \d\r\n") == b"\r\n+CREG: 1\r\n"
    assert info_lines(await port.command("AT+CREG?")) == ["+CREG: 1,1"]


async def test_sms_settings(ports):
    port = ports[0]
    assert info_lines(await port.command("AT+CSCA?")) == ['+CSCA: "+8613800100500",145']
    await port.command('AT+CSCA="+8613800755500",145')
    assert info_lines(await port.command("AT+CSCA?")) == ['+CSCA: "+8613800755500",145']
    assert info_lines(await port.command("AT+CMGF?")) == ["+CMGF: 0"]
    assert info_lines(await port.command("AT+CMGF=?")) == ["+CMGF: (0,1)"]
    assert (await port.command("AT+CMGF=7")).endswith(b"\r\nERROR\r\n")
    assert info_lines(await port.command('AT+CSCS="UCS2";+CSCS?')) == ['+CSCS: "UCS2"']
    assert info_lines(await port.command("AT+CSCS=?")) == ['+CSCS: ("GSM","IRA","UCS2")']
    await port.command("AT+CNMI=2,1,0,1,0")
    assert info_lines(await port.command("AT+CNMI?")) == ["+CNMI: 2,1,0,1,0"]
    assert info_lines(await port.command("AT+CMMS=2;+CMMS?")) == ["+CMMS: 2"]
    assert info_lines(await port.command("AT+CSMS=?")) == ["+CSMS: (0,1)"]


async def test_cpms_selects_stores_with_capacities(ports):
    port = ports[0]
    assert info_lines(await port.command("AT+CPMS=?")) == [
        '+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")']
    assert info_lines(await port.command('AT+CPMS="ME","ME","ME"')) == ["+CPMS: 0,50,0,50,0,50"]
    assert info_lines(await port.command("AT+CPMS?")) == [
        '+CPMS: "ME",0,50,"ME",0,50,"ME",0,50']
    assert (await port.command('AT+CPMS="XX"')).endswith(b"+CMS ERROR: 302\r\n")


async def test_unknown_commands_answer_error_at_once(ports):
    port = ports[0]
    assert await port.command("AT+CPROT=?") == b"\r\nERROR\r\n"
    assert await port.command("AT$TSSPCSW=?") == b"\r\nERROR\r\n"
    await port.command("AT+CMEE=1")
    assert await port.command("AT+SYNCML=?") == b"\r\n+CME ERROR: 100\r\n"
    await port.command("AT+CMEE=2")
    await port.command("AT+CFUN=0")
    assert await port.command("AT+CUSD=1,\"*100#\",15") == \
        b"\r\n+CME ERROR: no network service\r\n"


async def test_lines_without_at_and_escape_are_ignored(ports):
    port = ports[0]
    assert await port.send(b"\x1b\rhello\rAT\r") == b"\r\nOK\r\n"


async def test_several_commands_on_one_line(bank, ports):
    reply = await ports[0].command("AT+CGMI;+CIMI;+CSQ")
    assert info_lines(reply) == ["SIMCOM_Ltd", bank.modems[0].imsi, "+CSQ: 20,99"]


async def test_clac_lists_commands(ports):
    listed = info_lines(await ports[0].command("AT+CLAC"))
    for name in ("AT+CMGS", "AT+CMGL", "AT+CPMS", "AT+CNMI", "AT+CUSD", "AT+CPIN"):
        assert name in listed


async def test_ussd_balance_reply_follows_ok(ports):
    port = ports[0]
    assert await port.command('AT+CUSD=1,"*100#",15') == b"\r\nOK\r\n"
    urc = await port.expect(rb'\+CUSD: 0,"[^"]*",15\r\n')
    assert b"50.00" in urc
    await port.command('AT+CSCS="UCS2"')
    await port.command('AT+CUSD=1,"002A0031003000300023",15')
    urc = await port.expect(rb'\+CUSD: 0,"([0-9A-F]+)",72\r\n')
    hex_text = urc.split(b'"')[1].decode()
    assert "余额为50.00元" in bytes.fromhex(hex_text).decode("utf-16-be")
