"""Spreadsheet files from and for people outside: written so no cell runs as a formula, read so a
forged file cannot exhaust memory. Every problem is one PoolError naming the file.

Exports: text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a
tab or a carriage return, after OWASP's advice on CSV injection) get a leading `'` in CSV, and are
stored as plain strings in XLSX (never formulas). A cell that is just a number, such as
`+8613800138000` or `-5`, is left alone: it cannot carry a formula. Control characters that XLSX
cannot hold become U+FFFD. A file is written under a temporary name and renamed when complete, so
a failed export leaves nothing behind.

Imports: an XLSX is read with its declared `<dimension>` ignored (openpyxl pads every row to the
declared width), with at most MAX_COLUMNS columns and MAX_ROWS rows, and at most MAX_UNPACKED bytes
once unzipped; larger files are refused with a clear error.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from modempool.errors import PoolError

EXPORT_FORMATS = (".csv", ".xlsx")
MAX_ROWS = 1_048_576        # what Excel itself can hold
MAX_COLUMNS = 256
MAX_UNPACKED = 512 * 2**20  # bytes of XML inside one XLSX

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d[\d ()./-]*")
_XLSX_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def csv_cell(value: Any) -> Any:
    """A value as it may be written to CSV: a would-be formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not (
            _PLAIN_NUMBER.fullmatch(value)):
        return "'" + value
    return value


def xlsx_text(value: str) -> str:
    """A string as XLSX can hold it (control characters become U+FFFD)."""
    return _XLSX_ILLEGAL.sub("\ufffd", value)


def write_table(path: str | Path, headers: Sequence[str], rows: Iterable[Sequence[Any]], *,
                encoding: str = "utf-8-sig") -> int:
    """Write rows to CSV (UTF-8 with BOM by default, so Excel shows Chinese) or XLSX, by the
    file's extension; returns the number of rows. All or nothing: on any error no file is left."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise PoolError(f"cannot export to {path}: the file name must end in .csv or .xlsx")
    if not path.parent.is_dir():
        raise PoolError(f"cannot export to {path}: directory {path.parent} does not exist")
    if suffix == ".csv":
        _check_encoding(encoding)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        if suffix == ".xlsx":
            count = _write_xlsx(Path(temporary), headers, rows)
        else:
            count = _write_csv(Path(temporary), headers, rows, encoding)
        os.replace(temporary, path)
    except UnicodeEncodeError as exc:
        raise PoolError(f"cannot export to {path} in {encoding}: {exc.object[exc.start]!r} has no "
                        f"code there (use utf-8-sig or gb18030)") from None
    except OSError as exc:
        raise PoolError(f"cannot export to {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return count


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise PoolError(f"unknown encoding {encoding!r} (use utf-8-sig, utf-8 or gb18030)") from None


def _write_csv(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]],
               encoding: str) -> int:
    count = 0
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([csv_cell(h) for h in headers])
        for row in rows:
            writer.writerow(["" if v is None else csv_cell(v) for v in row])
            count += 1
    return count


def _write_xlsx(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet()

    def cells(values: Iterable[Any]) -> list[Any]:
        out = []
        for value in values:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, xlsx_text(value))
                cell.data_type = "s"  # text, even when it starts with '=': never a formula
                out.append(cell)
            else:
                out.append("" if value is None else value)
        return out

    sheet.append(cells(headers))
    count = 0
    for row in rows:
        sheet.append(cells(row))
        count += 1
    book.save(path)
    return count


def read_xlsx(path: Path, sheet: str | None = None, *, max_rows: int = MAX_ROWS,
              max_columns: int = MAX_COLUMNS,
              name: str | None = None) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(row number, cell values) of each row of an XLSX sheet, trailing empty cells dropped.
    PoolError for a file that is no XLSX, a missing sheet, or one over the limits; it names
    the file as `name` (an upload's own name) or else its path."""
    from openpyxl import load_workbook

    shown = name or str(path)
    _check_unpacked_size(path, shown)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise _unreadable(shown, str(exc)) from None
    except Exception as exc:  # openpyxl raises many kinds on broken XML
        raise _unreadable(shown, f"{type(exc).__name__}: {exc}") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise PoolError(f"{shown} has no sheet named {sheet!r} "
                            f"(sheets: {', '.join(book.sheetnames)})", code="xlsx_no_sheet",
                            params={"file": shown, "sheet": sheet,
                                    "sheets": ", ".join(book.sheetnames)})
        ws = book[sheet] if sheet else book.worksheets[0]
        ws.reset_dimensions()  # the declared <dimension> may be forged: read what is there
        try:
            for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
                if number > max_rows:
                    raise PoolError(f"{shown} has more than {max_rows} rows; split it",
                                    code="xlsx_too_many_rows", params={"file": shown,
                                                                       "max": max_rows})
                if len(values) > max_columns:
                    if any(v is not None for v in values[max_columns:]):
                        raise PoolError(f"{shown}: row {number} has a cell in column "
                                        f"{len(values)}; at most {max_columns} columns are read",
                                        code="xlsx_too_many_columns",
                                        params={"file": shown, "row": number,
                                                "column": len(values), "max": max_columns})
                    values = values[:max_columns]
                yield number, values
        except PoolError:
            raise
        except Exception as exc:
            raise _unreadable(shown, f"{type(exc).__name__}: {exc}") from None
    finally:
        book.close()


def _unreadable(shown: str, detail: str) -> PoolError:
    return PoolError(f"cannot read {shown} as an XLSX file: {detail}", code="xlsx_unreadable",
                     params={"file": shown})


def _check_unpacked_size(path: Path, shown: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise _unreadable(shown, str(exc)) from None
    if unpacked > MAX_UNPACKED:
        raise PoolError(f"{shown} unpacks to {unpacked // 2**20} MB; at most "
                        f"{MAX_UNPACKED // 2**20} MB are read", code="xlsx_too_big",
                        params={"file": shown, "mb": unpacked // 2**20,
                                "max_mb": MAX_UNPACKED // 2**20})
