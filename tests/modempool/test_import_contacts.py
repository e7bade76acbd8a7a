"""Contact import from messy CSV / XLSX / TXT files: encodings, mapping, exact rejected-row reports."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import Workbook, load_workbook

from modempool.operator.contacts import AddressBook
from modempool.errors import PoolError
from modempool.operator.importers import (ImportRejected, decode_bytes, export_contacts, import_contacts,
                                 parse_birthday, read_table)
from modempool.spool import Spool


@pytest.fixture
def book(spool_target):
    """An address book on each engine."""
    spool = Spool(spool_target)
    yield AddressBook(spool.db)
    spool.close()


MESSY_GBK = (
    "姓名,手机号码,班级,生日,备注\r\n"
    "张三,13800138000,一班,1990-05-17,班长\r\n"
    "李四,139 0013 9000,二班,5月8日,\r\n"
    "王五,12345,三班,,\r\n"                       # line 4: not a number
    ",,,,\r\n"                                      # blank row: not data, not reported
    "赵六,,一班,,\r\n"                             # line 6: no number
    "钱七,+86 138-0013-8000,一班,,\r\n"            # line 7: duplicate of line 2
    "孙八,13700137000,二班,1990-02-30,\r\n"        # line 8: impossible birthday
    "周九,008613600136000,三班,03/01,\r\n"
)

EXPECTED_REJECTED = [
    (4, "invalid number: '12345' is not a valid number in region CN"),
    (6, "no phone number"),
    (7, "duplicate of line 2 (+8613800138000)"),
    (8, "birthday '1990-02-30' is not a date like 1990-05-17 or 05-17"),
]


def test_gbk_csv_with_bad_rows_is_rejected_whole_with_exact_report(book, tmp_path):
    path = tmp_path / "家长.csv"
    path.write_bytes(MESSY_GBK.encode("gbk"))
    with pytest.raises(ImportRejected) as caught:
        import_contacts(book, path)
    report = caught.value.report
    assert report.encoding == "gb18030"
    assert [(r.line, r.reason) for r in report.rejected] == EXPECTED_REJECTED
    assert len(report.accepted) == 3
    assert book.list() == []          # nothing half-imported
    assert "line 7: duplicate of line 2" in str(caught.value)


def test_skip_rejected_imports_good_rows_and_still_reports(book, tmp_path):
    path = tmp_path / "家长.csv"
    path.write_bytes(MESSY_GBK.encode("gbk"))
    report = import_contacts(book, path, skip_rejected=True, groups=["家长"])
    assert report.imported == 3
    assert [r.line for r in report.rejected] == [4, 6, 7, 8]
    contacts = {c.number: c for c in book.list(group="家长")}
    assert set(contacts) == {"+8613800138000", "+8613900139000", "+8613600136000"}
    zhang = contacts["+8613800138000"]
    assert (zhang.name, zhang.birthday, zhang.notes, zhang.fields) == ("张三", "1990-05-17", "班长",
                                                                      {"班级": "一班"})
    assert contacts["+8613900139000"].birthday == "05-08"
    assert contacts["+8613600136000"].birthday == "03-01"


def test_utf8_bom_semicolons_quotes_and_mapping(book, tmp_path):
    path = tmp_path / "bom.csv"
    text = ('客户;客户电话;门店\n"Wang, Li";13800138000;"朝阳店"\n'
            'Ａｌｉｃｅ;  +8613900139000 ;海淀店\n')
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    with pytest.raises(PoolError, match="no phone number column"):
        import_contacts(book, path)
    report = import_contacts(book, path, mapping={"number": "客户电话", "name": "客户"})
    assert (report.encoding, report.imported, report.rejected) == ("utf-8-sig", 2, ())
    wang = book.get("13800138000")
    assert wang.name == "Wang, Li" and wang.fields == {"门店": "朝阳店"}


def test_mapping_to_a_missing_column_is_an_error(book, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("name,phone\nA,13800138000\n", "utf-8")
    with pytest.raises(PoolError, match="column '手机' is not in the file"):
        import_contacts(book, path, mapping={"number": "手机"})


def test_gb18030_only_characters_are_detected():
    text = "姓名,手机\n𠀾先生,13800138000\n"      # U+2003E is outside GBK, inside GB18030
    decoded, encoding = decode_bytes(text.encode("gb18030"))
    assert (decoded, encoding) == (text, "gb18030")
    assert decode_bytes(text.encode("utf-8")) == (text, "utf-8")


def test_xlsx_with_numbers_as_floats_dates_and_bad_rows(book, tmp_path):
    path = tmp_path / "名单.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "手机", "生日", "分组"])
    ws.append(["张三", 13800138000, dt.datetime(1990, 5, 17), "教师;班主任"])
    ws.append(["李四", 13900139000.0, None, "教师"])
    ws.append([None, None, None, None])                      # row 4: empty, skipped silently
    ws.append(["王五", "1380013800", None, None])            # row 5: one digit short
    ws.append(["赵六", "13900139000", None, None])           # row 6: duplicate of row 3
    wb.save(path)
    with pytest.raises(ImportRejected) as caught:
        import_contacts(book, path)
    assert [(r.line, r.reason) for r in caught.value.report.rejected] == [
        (5, "invalid number: '1380013800' is not a valid number in region CN"),
        (6, "duplicate of line 3 (+8613900139000)"),
    ]
    assert book.list() == []
    import_contacts(book, path, skip_rejected=True)
    zhang = book.get("+8613800138000")
    assert zhang.birthday == "1990-05-17" and zhang.groups == ("教师", "班主任")
    assert [c.number for c in book.list(group="教师")] == ["+8613800138000", "+8613900139000"]


def test_txt_numbers_with_optional_names(book, tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_bytes("# 号码清单\n13800138000\n13900139000,李四\n\n138 0013 7000 王五\n"
                     "13600136000\t赵六\nabc\n".encode("gbk"))
    with pytest.raises(ImportRejected) as caught:
        import_contacts(book, path)
    assert [(r.line, r.reason[:15]) for r in caught.value.report.rejected] == [(7, "invalid number:")]
    report = import_contacts(book, path, skip_rejected=True)
    assert report.imported == 4
    assert {c.number: c.name for c in book.list()} == {
        "+8613800138000": "", "+8613900139000": "李四", "+8613800137000": "王五",
        "+8613600136000": "赵六"}


def test_headerless_csv_reads_number_then_name(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("13800138000,张三\n13900139000,李四\n", "utf-8")
    table = read_table(path)
    assert table.headers == ("number", "name")
    assert [line for line, _ in table.rows] == [1, 2]


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_export_then_import_round_trip(book, tmp_path, other_spool_target, suffix):
    book.upsert("13800138000", "张三", fields={"班级": "一班"}, birthday="05-17", groups=["家长"])
    book.upsert("13900139000", "李四", fields={"门店": "朝阳"}, groups=["家长", "VIP"])
    path = tmp_path / f"out.{suffix}"
    assert export_contacts(book, path) == 2
    if suffix == "csv":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel shows Chinese
    else:
        assert load_workbook(path).active["A1"].value == "number"
    with Spool(other_spool_target) as other:
        copy = AddressBook(other.db)
        assert import_contacts(copy, path).imported == 2
        assert [c.as_dict() | {"id": 0} for c in copy.list()] == [
            c.as_dict() | {"id": 0} for c in book.list()]


def test_parse_birthday_forms():
    assert parse_birthday("1990/5/7") == "1990-05-07"
    assert parse_birthday("1990年5月7日") == "1990-05-07"
    assert parse_birthday("02-29") == "02-29"
    with pytest.raises(ValueError):
        parse_birthday("tomorrow")
