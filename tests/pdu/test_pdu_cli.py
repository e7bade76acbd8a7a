"""`modempool pdu encode/decode`, run as a real subprocess."""

import json
import shutil
import subprocess
import sys

import pytest

from pdu import decode_pdu


def modempool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("modempool")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_encode_json_chinese():
    r = modempool("pdu", "encode", "+8613800138000", "你好，世界😀", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["alphabet"] == "ucs2" and out["total"] == 1 and out["reference"] is None
    [part] = out["parts"]
    assert part["hex"].startswith("0001000D91683108108300F00008")
    assert part["tpdu_length"] == len(part["hex"]) // 2 - 1
    assert decode_pdu(part["hex"]).text == "你好，世界😀"
    assert r.stdout == json.dumps(out, ensure_ascii=False, indent=2) + "\n"


def test_encode_long_with_options_human_output():
    text = "x" * 170
    r = modempool("pdu", "encode", "13800138000", text, "--reference", "9", "--report",
                  "--16bit-ref", "--smsc", "+8613800100500", "--validity", "1d")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("2 part(s), gsm7") and "reference 9" in lines[0]
    assert lines[1].startswith("part 1/2  AT+CMGS=")
    hexes = [lines[2], lines[4]]
    msgs = [decode_pdu(h) for h in hexes]
    assert "".join(m.text for m in msgs) == text
    assert msgs[0].concat.ref16 and msgs[0].concat.reference == 9
    assert msgs[0].status_report_requested and msgs[0].smsc == "+8613800100500"
    assert int(lines[1].split("=")[1]) == len(hexes[0]) // 2 - 9


def test_encode_flash_and_alphabet():
    r = modempool("pdu", "encode", "+8613800138000", "hello", "--alphabet", "ucs2", "--flash", "--json")
    part = json.loads(r.stdout)["parts"][0]
    msg = decode_pdu(part["hex"])
    assert msg.alphabet.value == "ucs2" and msg.message_class == 0


def test_encode_error_is_a_clear_message():
    r = modempool("pdu", "encode", "+8613800138000", "你好", "--alphabet", "gsm7")
    assert r.returncode == 1
    assert "cannot be coded in GSM-7" in r.stderr and "Traceback" not in r.stderr


def test_decode_json_shape():
    pdu = "0891683108100005F0440BD041761A1ECE030008621152618270230E" "050003070201" "4F60597DD83DDE00"
    r = modempool("pdu", "decode", pdu, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["type"] == "deliver" and out["sender"] == "Alipay" and out["smsc"] == "+8613800100500"
    assert out["alphabet"] == "ucs2" and out["text"] == "你好😀"
    assert out["concat"] == {"reference": 7, "total": 2, "seq": 1, "ref16": False}
    assert out["timestamp"] == "2026-11-25T16:28:07+08:00"
    assert out["udh"] == [{"iei": 0, "data": "070201"}]
    # the CLI's one JSON style (modempool/commands/output.py), as every other --json
    assert r.stdout == json.dumps(out, ensure_ascii=False, indent=2) + "\n"


def test_decode_no_smsc_human():
    r = modempool("pdu", "decode", "11000B916407281553F80000AA0AE8329BFD4697D9EC37", "--no-smsc")
    assert r.returncode == 0, r.stderr
    assert "hellohello" in r.stdout and "+46708251358" in r.stdout and "submit" in r.stdout


@pytest.mark.parametrize("bad,what", [("0011G0", "non-hex"), ("001", "odd number"),
                                      ("0004", "PDU ends before")])
def test_decode_malformed_exits_1_with_reason(bad, what):
    r = modempool("pdu", "decode", bad)
    assert r.returncode == 1 and what in r.stderr and "Traceback" not in r.stderr


def test_encode_8bit_hex_data_and_bad_validity():
    r = modempool("pdu", "encode", "+8613800138000", "0102FF", "--hex-data", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["alphabet"] == "8bit" and out["parts"][0]["text"] == "0102FF"
    assert decode_pdu(out["parts"][0]["hex"]).data == b"\x01\x02\xff"
    r = modempool("pdu", "encode", "+8613800138000", "hi", "--validity", "soon")
    assert r.returncode == 2 and "--validity" in r.stderr
