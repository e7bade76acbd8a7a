"""The tables: error codes and classes, command parsers, signal conversion, profiles."""

from __future__ import annotations

import pytest

from at_commands import (COMMANDS, PROFILES, CmeError, CmsError, ErrorClass, SendAmbiguous,
                         csq_to_bars, csq_to_dbm, detect_profile, get_profile, mask_secrets)
from at_commands.commands import StoreUsage, command_for_line
from at_commands.errors import CME_ERRORS, CMS_ERRORS, error_from_result


def test_every_ts_27005_me_error_is_in_the_table() -> None:
    for code in (300, 301, 302, 303, 304, 305, 310, 311, 312, 313, 314, 315, 316, 317, 318,
                 320, 321, 322, 330, 331, 332, 340, 500):
        assert code in CMS_ERRORS, code
    for code in [*range(0, 8), *range(10, 19), *range(20, 28), 30, 31, 32, *range(40, 49), 100]:
        assert code in CME_ERRORS, code


@pytest.mark.parametrize(("error", "meaning", "error_class"), [
    (CmsError(1), "unassigned (unallocated) number", ErrorClass.PERMANENT),
    (CmsError(38), "network out of order", ErrorClass.TEMPORARY),
    (CmsError(42), "congestion", ErrorClass.TEMPORARY),
    (CmsError(332), "network timeout", ErrorClass.TEMPORARY),
    (CmsError(331), "no network service", ErrorClass.SIM_OR_MODEM),
    (CmsError(310), "(U)SIM not inserted", ErrorClass.SIM_OR_MODEM),
    (CmsError(316), "(U)SIM PUK required", ErrorClass.SIM_OR_MODEM),
    (CmsError(304), "invalid PDU mode parameter", ErrorClass.PERMANENT),
    (CmsError(500), "unknown error", ErrorClass.TEMPORARY),
    (CmeError(11), "SIM PIN required", ErrorClass.SIM_OR_MODEM),
    (CmeError(16), "incorrect password", ErrorClass.SIM_OR_MODEM),
])
def test_errors_carry_code_meaning_and_class(error, meaning, error_class) -> None:
    assert error.meaning == meaning and error.error_class is error_class
    assert str(error.code) in str(error) and meaning in str(error)


def test_unknown_codes_get_a_meaning_and_a_class() -> None:
    assert CmsError(600).meaning == "manufacturer specific error 600"
    assert CmsError(600).error_class is ErrorClass.TEMPORARY
    assert CmsError(500, "unknown error") == CmsError(500)
    assert SendAmbiguous(references=(3, 4)).error_class is ErrorClass.AMBIGUOUS


def test_final_result_lines_become_errors() -> None:
    assert error_from_result("OK") is None
    assert error_from_result("+CMS ERROR: 322") == CmsError(322)
    assert error_from_result("+CMS ERROR: memory full").code == 322   # AT+CMEE=2 text form
    assert error_from_result("ERROR").result == "ERROR"


@pytest.mark.parametrize(("rssi", "dbm", "bars"), [
    (0, -113, 0), (1, -111, 0), (2, -109, 1), (9, -95, 1), (10, -93, 2), (15, -83, 3),
    (20, -73, 4), (31, -51, 4), (99, None, 0), (None, None, 0),
])
def test_csq_to_dbm_and_bars(rssi, dbm, bars) -> None:
    assert csq_to_dbm(rssi) == dbm and csq_to_bars(rssi) == bars


def test_reply_parsers() -> None:
    assert COMMANDS["revision"].parse(("Revision:1308B06SIM800M32",)) == "1308B06SIM800M32"
    assert COMMANDS["manufacturer"].parse(("+CGMI: \"Quectel\"",)) == "Quectel"
    assert COMMANDS["iccid_huawei"].parse(("^ICCID: 89860112345678901234",)) == "89860112345678901234"
    assert COMMANDS["iccid"].parse(("89860012345678901234",)) == "89860012345678901234"
    assert COMMANDS["own_number"].parse(('+CNUM: "Me","+8613800000001",145',)) == "+8613800000001"
    assert COMMANDS["own_number"].parse(()) is None
    assert COMMANDS["store_usage"].parse(('+CPMS: "SM",3,50,"ME",0,255,"SM",3,50',)) == (
        StoreUsage("SM", 3, 50), StoreUsage("ME", 0, 255), StoreUsage("SM", 3, 50))
    listed = COMMANDS["list"].parse(("+CMGL: 0,1,,24", "0791AB", "+CMGL: 7,0,,24", "0791CD"))
    assert [(m.index, m.status, m.pdu) for m in listed] == [(0, 1, "0791AB"), (7, 0, "0791CD")]
    assert COMMANDS["send"].parse(("+CMGS: 12",)) == 12
    assert COMMANDS["operator"].parse(('+COPS: 0,0,"CHINA MOBILE",0',))[2] == "CHINA MOBILE"


def test_command_lines_and_lookup() -> None:
    assert COMMANDS["read"].line(index=3) == "AT+CMGR=3"
    assert command_for_line("AT+CMGS=23").expects_prompt
    assert command_for_line('AT+CPIN="1234"').secret
    assert command_for_line("AT+CNMI=2,1,0,2,0").name == "raw"


def test_pins_are_masked_in_logs() -> None:
    assert mask_secrets('AT+CPIN="1234"') == "AT+CPIN=****"
    assert mask_secrets('AT+CPIN="12345678","4321"') == "AT+CPIN=****"
    assert mask_secrets("AT+CSQ") == "AT+CSQ"


def test_profiles_are_detected_from_the_manufacturer() -> None:
    assert set(PROFILES) == {"generic", "wavecom", "simcom", "huawei", "zte", "quectel"}
    assert detect_profile("SIMCOM_Ltd").name == "simcom"
    assert detect_profile("huawei").name == "huawei"
    assert detect_profile("ZTE INCORPORATED").name == "zte"
    assert detect_profile("Acme Modems").name == "generic"
    assert get_profile("quectel").timeout("send_result", 60.0) == 120.0
    assert get_profile("simcom").timeout("send_result", 60.0) == 60.0
    with pytest.raises(KeyError, match="known: generic"):
        get_profile("nokia")
    for profile in PROFILES.values():
        assert profile.new_message_routing.startswith("AT+CNMI=") and profile.stores
