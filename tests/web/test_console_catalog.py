"""The console's catalogue: every library error it words has a Chinese wording whose fields
are the English one's (a missing field would fall back to English without a word)."""

from __future__ import annotations

import re

import pytest

from modempool import Pool
from modempool.dispatch.requests import DaemonNotRunning
from modempool.errors import PoolError
from modempool.operator.importers import read_table
from modempool.web.console import i18n
from modempool.web.console.errors import MESSAGES, describe

FIELD = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_error_code_is_worded_in_chinese_with_the_same_fields(code):
    english = MESSAGES[code]
    chinese = i18n.catalog("zh_CN").gettext(english)
    assert chinese != english, f"{code} has no Chinese wording (run scripts/console-messages)"
    assert sorted(FIELD.findall(chinese)) == sorted(FIELD.findall(english)), code


def test_ussd_errors_are_worded_in_chinese_and_stay_english_for_the_cli(config_path):
    with Pool.open(config_path) as pool:
        with pytest.raises(PoolError) as bad:
            pool.ussd("m1", "100; rm -rf /")
        with pytest.raises(DaemonNotRunning) as stopped:
            pool.ussd("m1", "*100#")
    assert "is not a USSD code" in str(bad.value) and "modempool run" in str(stopped.value)
    assert describe(bad.value, "zh_CN") == "100; rm -rf / 不是 USSD 代码：请用数字、* 和 #，例如 *100#。"
    assert describe(stopped.value, "zh_CN").startswith("守护进程没有运行")
    assert describe(stopped.value, "en") == str(stopped.value)


def test_spreadsheet_read_errors_are_worded_in_chinese(tmp_path):
    missing = tmp_path / "家长.csv"
    with pytest.raises(PoolError) as gone:
        read_table(missing)
    assert str(gone.value) == f"cannot read {missing}: No such file or directory"
    assert describe(gone.value, "zh_CN") == f"找不到文件 {missing}。"
    gbk = tmp_path / "名单.csv"
    gbk.write_bytes("姓名,手机\n张三,13800138000\n".encode("gb18030"))
    with pytest.raises(PoolError) as wrong:
        read_table(gbk, encoding="utf-8")
    assert describe(wrong.value, "zh_CN").startswith(f"{gbk} 不是 utf-8 编码：第 0 个字节")
    with pytest.raises(PoolError) as unknown:
        read_table(gbk, encoding="bogus")
    assert describe(unknown.value, "zh_CN") == "不认识编码 bogus（请试 utf-8 或 gb18030）。"
    sheet = tmp_path / "名单.xlsx"
    sheet.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(PoolError) as broken:
        read_table(sheet, name="上传的名单.xlsx")
    assert "上传的名单.xlsx as an XLSX file" in str(broken.value) and str(tmp_path) not in str(
        broken.value)
    assert describe(broken.value, "zh_CN").startswith("上传的名单.xlsx 无法作为 Excel .xlsx 工作簿读取")


def test_a_spreadsheet_refusal_names_its_row_once():
    wide = PoolError("a.xlsx: row 3 has a cell in column 40", code="xlsx_too_many_columns",
                     params={"file": "a.xlsx", "row": 3, "column": 40, "max": 30})
    assert describe(wide, "zh_CN") == "第 3 行：a.xlsx：第 40 列有内容，最多只读取 30 列。"


def test_every_sim_state_has_a_chinese_word():
    """The console's badge of each state a SIM can be in (`SimState`) is worded in Chinese
    (`standby`, `locked` and `stopped` were shown in English)."""
    from modempool.dispatch.sim_slot import SimState
    from modempool.web.console.words import SIM_STATES

    chinese = i18n.catalog("zh_CN")
    for state in [s.value for s in SimState] + ["unknown"]:
        assert state in SIM_STATES, state
        assert chinese.gettext(state) != state, f"{state} has no Chinese word"
