"""USSD text in every form modems use, registration events, the SR store in sweeps, and the
background task parked on an event while the modem is not ready."""

from __future__ import annotations

import pytest

from at_commands import AtConnection, ModemState, RegistrationChanged, Urc
from at_commands.commands import COMMANDS
from at_commands.core import NEED_DATA
from at_commands.events import InboundSms
from at_commands.ussd import UssdAlphabet, decode_ussd_text, unpack_gsm7_hex, ussd_alphabet

from at_helpers import next_event, opened, profile, until

# "Your balance is 12.34 CNY." as a Huawei E173 in IRA sends it: hex of the packed septets
PACKED_BALANCE = "D9775D0E1287D961F7B80C4ACF4131996B46030D9D5917"


def _events(connection: AtConnection, *chunks: bytes) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        connection.receive_data(chunk)
        while (event := connection.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def test_packed_septet_ussd_reply_in_a_recorded_session() -> None:
    """A transcript: the reply comes after OK, and again in the middle of another command."""
    connection = AtConnection()
    connection.send_command('AT+CUSD=1,"*100#",15')
    first = _events(connection, b'AT+CUSD=1,"*100#",15\r\r\nOK\r\n',
                    f'\r\n+CUSD: 0,"{PACKED_BALANCE}",15\r\n'.encode())
    connection.send_command("AT+CSQ", prefixes=("+CSQ",))
    second = _events(connection, b"\r\n+CSQ: 20,99\r\n",
                     b'\r\n+CUSD: 1,"C2303BEC1E9775A01AA8589502",15\r\n', b"\r\nOK\r\n")
    replies = [event for event in first + second if isinstance(event, Urc)]
    assert [urc.name for urc in replies] == ["+CUSD", "+CUSD"]
    texts = [decode_ussd_text(urc.fields[1], int(urc.fields[2]), packed_septets=True)
             for urc in replies]
    assert texts == ["Your balance is 12.34 CNY.", "Balance: 5 EUR"]
    assert [urc.fields[0] for urc in replies] == ["0", "1"]


@pytest.mark.parametrize("dcs, alphabet", [
    (15, UssdAlphabet.GSM7), (0x00, UssdAlphabet.GSM7), (0x10, UssdAlphabet.GSM7),
    (0x11, UssdAlphabet.UCS2), (72, UssdAlphabet.UCS2), (0x44, UssdAlphabet.EIGHT_BIT),
    (0x40, UssdAlphabet.GSM7), (0xF4, UssdAlphabet.EIGHT_BIT), (0xF0, UssdAlphabet.GSM7),
    (None, UssdAlphabet.GSM7),
])
def test_ussd_alphabet_follows_the_cbs_data_coding_scheme(dcs, alphabet) -> None:
    assert ussd_alphabet(dcs) is alphabet


def test_ussd_text_forms() -> None:
    # plain text in the TE character set stays as it came, even from a packed-septet vendor
    assert decode_ussd_text("Your balance is 1.00 CNY.", 15, packed_septets=True) == \
        "Your balance is 1.00 CNY."
    # hex-looking plain text is left alone for vendors that send plain text
    assert decode_ussd_text("CAFE", 15) == "CAFE"
    assert decode_ussd_text(PACKED_BALANCE, 15) == PACKED_BALANCE
    assert decode_ussd_text("4F60597D", 72) == "你好"
    assert decode_ussd_text("4F60597D", 0x11) == "你好"
    # 8 septets in 7 octets: the spare 7 bits are padding (zeros or CR), not an "@"
    assert unpack_gsm7_hex("31D98C56B3DD00") == "1234567"
    assert unpack_gsm7_hex("31D98C56B3DD1A") == "1234567"
    # the extension table: € and braces come as escape pairs
    assert unpack_gsm7_hex("9B326883C26F52") == "€ {x}"
    # not valid hex of the claimed form: kept raw rather than lost
    assert decode_ussd_text("ABC", 15, packed_septets=True) == "ABC"


async def test_simulator_ussd_reply_is_plain_text_for_a_packed_septet_profile(bank) -> None:
    """The simulator answers ``AT+CUSD=1,"*100#",15`` with plain text and DCS 15."""
    async with opened(bank, profile=profile("simcom", ussd_packed_septets=True)) as modem:
        text = await modem.ussd("*100#")
    balance = bank.modem("m1").sim.balance
    assert text == f"Your balance is {balance:.2f} CNY."


def test_cpms_test_answer_lists_the_read_stores() -> None:
    parse = COMMANDS["store_choices"].parse
    assert parse(('+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")',)) == ("SM", "ME", "SR")
    assert parse(('+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM"),("SM")',))[-1] == "SR"


async def test_status_report_store_is_swept_only_where_the_modem_offers_it(bank) -> None:
    async with opened(bank) as modem:              # the simulated SIMCom offers SM and ME only
        assert modem.profile.status_report_store == "SR"
        assert modem.sweep_stores == ("SM", "ME")
    # a profile whose report store is one the modem does offer gets it added to the sweep
    async with opened(bank, profile=profile("simcom", stores=("SM",),
                                            status_report_store="ME")) as modem:
        assert modem.sweep_stores == ("SM", "ME")
        await bank.inject(to="m1", sender="+8613912345678", text="in ME?")
        sms = await next_event(modem, InboundSms)
        assert sms.store == "SM"
        assert await modem.sweep() == 0            # both stores listed, nothing new


async def test_registration_urcs_give_events(bank) -> None:
    async with opened(bank) as modem:
        assert modem.registration == 1
        bank.set_fault("m1", "no_registration")
        lost = await next_event(modem, RegistrationChanged)
        assert (lost.status, lost.registered) == (2, False)
        bank.clear_fault("m1", "no_registration")
        back = await next_event(modem, RegistrationChanged)
    assert back == RegistrationChanged("m1", 1, "2540", "0E1F")
    assert back.registered


async def test_registration_polling_gives_events_without_urcs(bank) -> None:
    quiet = profile("simcom", registration_reports=None)
    async with opened(bank, profile=quiet, poll_interval=0.2) as modem:
        bank.set_fault("m1", "no_registration")
        lost = await next_event(modem, RegistrationChanged)
        bank.clear_fault("m1", "no_registration")
        back = await next_event(modem, RegistrationChanged)
    assert (lost.status, back.status) == (2, 1)
    assert bank.modem("m1").settings.creg == 0      # the URCs were never turned on


async def test_background_work_waits_for_the_modem_to_be_ready(bank) -> None:
    async with opened(bank) as modem:
        modem.state = ModemState.OPEN                # as while initialising or reconnecting
        await bank.inject(to="m1", sender="+8613912345678", text="wait for me")
        # the +CMTI read is kept, and the background task parks on the state event
        await until(lambda: modem._work.qsize() == 1 and not modem._state_changed.is_set())
        assert modem.event_nowait() is None
        modem.state = ModemState.READY
        sms = await next_event(modem, InboundSms)
    assert sms.decoded.text == "wait for me"
