"""The sans-I/O core on its own: framing, classification, misuse, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from at_commands.core import (NEED_DATA, AtConnection, Echo, FinalResult, InfoLine, Noise, Prompt,
                              ProtocolError, Urc)
from at_commands.errors import CmsError, ErrorClass
from at_commands.urc import UrcKind, UrcSpec

PDU = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD06"


def feed(core: AtConnection, data: bytes) -> list[object]:
    core.receive_data(data)
    return core.events()


def test_need_data_until_a_line_is_complete() -> None:
    core = AtConnection()
    core.send_command("AT+CSQ", prefixes=("+CSQ",))
    core.receive_data(b"\r\n+CSQ: 2")
    assert core.next_event() is NEED_DATA
    core.receive_data(b"0,99\r\n\r\nO")
    assert core.next_event() == InfoLine("AT+CSQ", "+CSQ: 20,99")
    assert core.next_event() is NEED_DATA
    core.receive_data(b"K\r\n")
    assert core.next_event() == FinalResult("AT+CSQ", "OK", None, ("+CSQ: 20,99",))


def test_echo_on_and_off_give_the_same_result() -> None:
    results = []
    for reply in (b"AT+CGMI\r\r\nSIMCOM_Ltd\r\n\r\nOK\r\n", b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"):
        core = AtConnection()
        core.send_command("AT+CGMI", prefixes=("+CGMI",))
        results.append([e for e in feed(core, reply) if not isinstance(e, Echo)])
    assert results[0] == results[1]
    assert results[0][-1].lines == ("SIMCOM_Ltd",)


def test_prompt_is_only_a_prompt_when_a_command_waits_for_one() -> None:
    core = AtConnection()
    core.send_command("AT+CGMI")
    events = feed(core, b"> hello\r\nOK\r\n")
    assert events == [InfoLine("AT+CGMI", "> hello"), FinalResult("AT+CGMI", "OK", None, ("> hello",))]
    core.send_command("AT+CMGS=10", prefixes=("+CMGS",), expects_prompt=True)
    assert feed(core, b"\r\n> ") == [Prompt("AT+CMGS=10")]


def test_error_before_prompt_ends_the_send() -> None:
    core = AtConnection()
    core.send_command("AT+CMGS=10", prefixes=("+CMGS",), expects_prompt=True)
    (event,) = feed(core, b"\r\n+CMS ERROR: 500\r\n")
    assert isinstance(event, FinalResult) and event.error == CmsError(500)
    assert event.error.meaning == "unknown error"
    assert core.pending_command is None


def test_urc_that_is_also_a_reply_prefix_answers_the_pending_command() -> None:
    core = AtConnection()
    assert feed(core, b"\r\n+CREG: 1\r\n")[0] == Urc("+CREG", ("1",), "+CREG: 1")
    core.send_command("AT+CREG?", prefixes=("+CREG",))
    assert feed(core, b"\r\n+CREG: 0,1\r\n")[0] == InfoLine("AT+CREG?", "+CREG: 0,1")


def test_cmt_without_its_pdu_line_is_still_delivered() -> None:
    core = AtConnection()
    core.send_command("AT")
    events = feed(core, b"\r\n+CMT: ,24\r\nOK\r\n")
    assert events[0] == Urc("+CMT", ("", "24"), "+CMT: ,24", pdu=None)
    assert events[1] == FinalResult("AT", "OK")


def test_results_with_nothing_pending_are_noise() -> None:
    core = AtConnection()
    assert feed(core, b"OK\r\n+CMS ERROR: 500\r\n") == [Noise("OK"), Noise("+CMS ERROR: 500")]


def test_abandoned_command_makes_a_late_answer_noise() -> None:
    core = AtConnection()
    core.send_command("AT+CMGS=10", expects_prompt=True)
    assert core.abandon() == b"\x1b"
    assert feed(core, b"\r\n+CMS ERROR: 500\r\n") == [Noise("+CMS ERROR: 500")]


def test_misuse_is_refused() -> None:
    core = AtConnection()
    core.send_command("AT")
    with pytest.raises(ProtocolError):
        core.send_command("AT")
    with pytest.raises(ProtocolError):
        core.send_pdu("00")


def test_an_endless_line_is_dropped_not_kept() -> None:
    core = AtConnection()
    events = feed(core, b"x" * 20000)
    assert isinstance(events[0], Noise)
    core.send_command("AT")
    assert feed(core, b"\r\nOK\r\n") == [FinalResult("AT", "OK")]


def test_profile_urc_names_become_urcs() -> None:
    core = AtConnection(extra_urcs={"+XBOOT": UrcSpec("+XBOOT", UrcKind.BOOT)})
    core.send_command("AT+CGMI", prefixes=("+CGMI",))
    kinds = [type(e).__name__ for e in feed(core, b"\r\n+XBOOT: 1\r\nACME\r\nOK\r\n")]
    assert kinds == ["Urc", "InfoLine", "FinalResult"]


def test_verbose_error_text_is_mapped_back_to_its_code() -> None:
    core = AtConnection()
    core.send_command("AT+CPIN?")
    (event,) = feed(core, b"\r\n+CME ERROR: SIM not inserted\r\n")
    assert event.error.code == 10 and event.error.error_class is ErrorClass.SIM_OR_MODEM


# ---- fuzzing ---------------------------------------------------------------------------------

COMMANDS = [
    ("AT+CSQ", "+CSQ", ["+CSQ: 17,99"]),
    ("AT+CGMI", "+CGMI", ["SIMCOM_Ltd"]),
    ("AT+CMGL=4", "+CMGL", ["+CMGL: 1,0,,24", PDU, "+CMGL: 2,1,,24", PDU]),
    ("AT+CMGR=1", "+CMGR", ["+CMGR: 0,,24", PDU]),
    ("AT+CREG?", "+CREG", ["+CREG: 0,1"]),
    ("AT+CMGD=1", "", []),
    ("ATE0", "", []),
]
URCS = [
    (["+CMTI: \"SM\",3"], ("+CMTI", None)),
    (["+CMT: ,24", PDU], ("+CMT", PDU)),
    (["+CDS: 25", PDU], ("+CDS", PDU)),
    (["+CDSI: \"SR\",2"], ("+CDSI", None)),
    (["RING"], ("RING", None)),
    (["^RSSI:17"], ("^RSSI", None)),
    (["+CUSD: 0,\"Balance, 1 CNY\",15"], ("+CUSD", None)),
    (["^BOOT:20341674,0,0,0,75"], ("^BOOT", None)),
    (["+PBREADY"], ("+PBREADY", None)),
    (["+WIND: 4"], ("+WIND", None)),
    (["+QIND: SMS DONE"], ("+QIND", None)),
    (["^MODE:5,4"], ("^MODE", None)),
]
FINALS = ["OK", "ERROR", "+CMS ERROR: 500", "+CME ERROR: 10", "NO CARRIER"]

exchange = st.tuples(
    st.sampled_from(COMMANDS),
    st.booleans(),                                          # echo on
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from(URCS)), max_size=3),
    st.sampled_from(FINALS),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
)


def _render(command, echo, urcs, final, eol) -> tuple[bytes, list[tuple[str, str | None]]]:
    """The bytes of one exchange, URCs placed between its lines (never between a +CMGL/+CMGR
    header and its PDU line, where no modem puts them), and the URCs expected, in order."""
    line, prefix, info = command
    items: list[list[str]] = [[text] for text in info]
    merged = 0
    while merged < len(items) - 1:  # a header and its PDU line stay together
        if items[merged][0].startswith(("+CMGL:", "+CMGR:")):
            items[merged:merged + 2] = [items[merged] + items[merged + 1]]
        merged += 1
    for position, (urc_lines, expected) in urcs:
        if prefix and expected[0] == prefix:
            continue  # that line would answer the command, not be a URC
        items.insert(min(position, len(items)), [*urc_lines, expected])
    expected_urcs = [item[-1] for item in items if isinstance(item[-1], tuple)]
    lines = [text for item in items for text in item if isinstance(text, str)]
    body = (line.encode() + b"\r" if echo else b"") + b"".join(
        eol + text.encode() + eol for text in lines) + eol + final.encode() + eol
    return body, expected_urcs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(exchange, min_size=1, max_size=5), st.data())
def test_fuzz_each_command_gets_its_own_result_and_no_urc_is_lost(exchanges, data) -> None:
    core = AtConnection()
    for command, echo, urcs, final, eol in exchanges:
        body, expected_urcs = _render(command, echo, urcs, final, eol)
        core.send_command(command[0], prefixes=(command[1],) if command[1] else ())
        cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
        events = []
        for start, end in zip([0, *cuts], [*cuts, len(body)]):
            core.receive_data(body[start:end])
            events.extend(core.events())
        results = [e for e in events if isinstance(e, FinalResult)]
        assert len(results) == 1
        assert results[0].command == command[0] and results[0].result == final
        assert results[0].lines == tuple(command[2])
        assert [(e.name, e.pdu) for e in events if isinstance(e, Urc)] == expected_urcs
        assert core.pending_command is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40),
                          st.sampled_from([b"OK\r\n", b"\r\n> ", b"+CMT: ,3\r\n", b"ERROR\r",
                                           b"+CMS ERROR: 1\n", b"AT+CSQ\r", b"\x1a", b"\r\n"]),
                          st.sampled_from(["AT+CSQ", "AT+CMGS=5", "AT+CMGL=4"]))))
def test_fuzz_arbitrary_bytes_never_crash_nor_answer_the_wrong_command(steps) -> None:
    """Garbage, stray results and commands in any order: each result names the command that was
    pending, and no command gets two results."""
    core = AtConnection()
    pending: str | None = None
    for step in steps:
        if isinstance(step, str):
            if core.pending_command is None:
                core.send_command(step, expects_prompt=step.startswith("AT+CMGS"))
                pending = step
            continue
        core.receive_data(step)
        for event in core.events():
            if isinstance(event, (FinalResult, InfoLine, Prompt)):
                assert event.command == pending
            if isinstance(event, FinalResult):
                pending = None
            if isinstance(event, Prompt) and core.pending_command == event.command:
                core.send_pdu("0011")
        assert core.pending_command == pending


def test_require_echo_skips_the_tail_of_an_abandoned_command() -> None:
    core = AtConnection()
    core.send_command("AT+CMGL=4", prefixes=("+CMGL",))
    assert feed(core, b"\r\n+CMGL: 1,0,,24\r\n") == [InfoLine("AT+CMGL=4", "+CMGL: 1,0,,24")]
    core.abandon()
    core.send_command("AT", require_echo=True)
    events = feed(core, PDU.encode() + b"\r\n+CMTI: \"SM\",4\r\n\r\nOK\r\nAT\r\r\nOK\r\n")
    assert events == [Noise(PDU), Urc("+CMTI", ("SM", "4"), '+CMTI: "SM",4'), Noise("OK"),
                      Echo("AT"), FinalResult("AT", "OK")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"OK\r\n", b"+CMS ERROR: 500\r\n", b"+CSQ: 1,99\r\n",
                                 b"ERROR\r\n", b"\r\n> ", b"RING\r\n"]), max_size=6),
       st.lists(st.integers(0, 60), max_size=4))
def test_fuzz_stale_answers_before_the_echo_never_count(stale, cuts) -> None:
    core = AtConnection()
    core.send_command("AT+CSQ", prefixes=("+CSQ",))
    core.abandon()
    core.send_command("AT", require_echo=True)
    body = b"".join(stale) + b"AT\r\r\nOK\r\n"
    events = []
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(body)]):
        core.receive_data(body[start:end])
        events.extend(core.events())
    assert [e for e in events if isinstance(e, (FinalResult, InfoLine, Prompt))] == [
        FinalResult("AT", "OK")]
