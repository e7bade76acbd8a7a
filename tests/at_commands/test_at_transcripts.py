"""Recorded sessions replayed into the core: every non-echo event, in order, as written down."""

from __future__ import annotations

import codecs

import pytest

from at_commands.errors import CmeError, CmsError, ErrorClass

from at_transcript import TRANSCRIPTS, replay

ALL = sorted(TRANSCRIPTS.glob("*.txt"))


def test_there_are_transcripts_for_every_vendor() -> None:
    names = " ".join(path.name for path in ALL)
    for vendor in ("simcom", "huawei", "wavecom", "quectel", "zte", "generic"):
        assert vendor in names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_transcript_replays_as_recorded(path) -> None:
    result = replay(path)
    assert result.actual == result.expected


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_transcript_replays_byte_by_byte(path, tmp_path) -> None:
    """The same session with every read split into single bytes gives the same events."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("< "):
            data = codecs.decode(line[2:], "unicode_escape")
            lines.extend("< " + codecs.encode(ch, "unicode_escape").decode("ascii")
                         .replace(" ", "\\x20") for ch in data)
        else:
            lines.append(line)
    split = tmp_path / path.name
    split.write_text("\n".join(lines), encoding="utf-8")
    result = replay(split)
    assert result.actual == result.expected


def test_errors_in_transcripts_carry_code_meaning_and_class() -> None:
    results = replay(TRANSCRIPTS / "wavecom_fastrack_wind.txt").results
    errors = [r.error for r in results if r.error is not None]
    assert errors == [CmsError(38), CmsError(321), CmeError(16)]
    assert errors[0].meaning == "network out of order"
    assert errors[0].error_class is ErrorClass.TEMPORARY
    assert errors[2].meaning == "incorrect password"
    assert errors[2].error_class is ErrorClass.SIM_OR_MODEM


def test_commands_written_are_cr_terminated_and_pdu_ends_with_ctrl_z() -> None:
    written = replay(TRANSCRIPTS / "simcom_send_multipart.txt").written
    assert written[0] == b"AT+CMMS=2\r"
    assert written[2].endswith(b"\x1a") and written[2].startswith(b"0041000B91")
