"""The AT interpreter without any I/O: bytes in, outputs collected."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.at_syntax import Form, parse_command_line, split_args
from simulator.modem import InputMode, VirtualModem
from simulator.network import Network, make_sim
from simulator.personalities import PERSONALITIES
from simulator.sms_commands import TABLE


def offline_modem(personality: str = "simcom") -> tuple[VirtualModem, list[bytes]]:
    vendor = PERSONALITIES[personality]
    network = Network()
    sim = make_sim(1, random.Random(1), vendor.stores["SM"])
    modem = VirtualModem("m1", vendor, sim, network, imei="865457020008062",
                         rng=random.Random(2), table=TABLE.commands)
    network.attach(sim, modem)
    written: list[bytes] = []
    modem.output = lambda output: written.append(output.data)
    modem.connected = True
    return modem, written


def test_command_line_splits_into_commands():
    assert parse_command_line('E0V1+CMGF=0;+CPMS="SM","ME";+CSQ;&F') == [
        ("E", Form.SET, "0"), ("V", Form.SET, "1"), ("+CMGF", Form.SET, "0"),
        ("+CPMS", Form.SET, '"SM","ME"'), ("+CSQ", Form.EXEC, ""), ("&F", Form.SET, "")]
    assert parse_command_line("+CMGL=?;^ICCID?") == [("+CMGL", Form.TEST, ""),
                                                    ("^ICCID", Form.READ, "")]
    assert parse_command_line('+CUSD=1,"*100#;x",15') == [("+CUSD", Form.SET, '1,"*100#;x",15')]
    assert parse_command_line("S0=2") == [("S0", Form.SET, "2")]


def test_arguments_split_outside_quotes():
    assert split_args('1,"SM",,2') == ["1", "SM", "", "2"]
    assert split_args('"a,b",3') == ["a,b", "3"]


def test_bytes_may_arrive_one_at_a_time():
    modem, written = offline_modem()
    for byte in b"AT+CGMI\r":
        modem.feed(bytes([byte]))
    assert b"".join(written) == b"AT+CGMI\r\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"


def test_backspace_edits_the_line():
    modem, written = offline_modem()
    modem.feed(b"ATE0\r")
    written.clear()
    modem.feed(b"AT+CSX\x08Q\r")
    assert b"".join(written) == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_input_leaves_the_modem_answering(noise):
    modem, written = offline_modem()
    modem.feed(noise)
    written.clear()
    modem.feed(b"\x1b\rATZ\r")  # ESC leaves a half-entered PDU; ATZ undoes ATV0 and the like
    assert b"".join(written).endswith(b"\r\nOK\r\n")


# A session touching every input path: command lines with echo on and off, a backspace, a PDU
# after the prompt (echoed by some personalities), a text-mode entry across lines, an ESC.
_SESSION = (b"ATE1\rAT+CSX\x08Q\rAT+CMGF=0\rAT+CMGS=24\r"
            b"0011000B916407281553F80000AA0AE8329BFD4697D9EC37\x1a"
            b"AT+CMGF=1\rAT+CMGS=\"+8613800138000\"\rhello\rworld\x1a"
            b"AT+CMGS=\"+8613800138000\"\rdropped\x1bATE0\rAT+CSQ\r")


@settings(max_examples=60, deadline=None)
@given(personality=st.sampled_from(sorted(PERSONALITIES)),
       cuts=st.lists(st.integers(min_value=1, max_value=len(_SESSION) - 1), max_size=12))
def test_chunks_answer_as_bytes_one_at_a_time(personality, cuts):
    """The interpreter takes runs of printable bytes at once: however the input is split, the
    modem says exactly what it says to the same bytes fed one by one."""
    by_byte, expected = offline_modem(personality)
    for byte in _SESSION:   # the reference: every byte through the interpreter's per-byte path
        if by_byte._mode is InputMode.ENTRY:
            by_byte._feed_entry(byte)
        else:
            by_byte._feed_command(byte)
    chunked, written = offline_modem(personality)
    edges = [0, *sorted(set(cuts)), len(_SESSION)]
    for start, end in zip(edges, edges[1:]):
        chunked.feed(_SESSION[start:end])
    assert b"".join(written) == b"".join(expected)
    assert b"> " in b"".join(expected) and b"+CSQ:" in b"".join(expected)
