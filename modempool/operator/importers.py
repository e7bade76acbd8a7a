"""Reading and writing contact spreadsheets: CSV, XLSX and TXT, in the encodings Chinese users have.

Reading is two steps: `read_table` turns a file into numbered rows (encoding detected: UTF-8 with or
without BOM, else GB18030, the superset of GBK/GB2312), then `check_rows` maps columns and validates
each row, returning accepted contacts and every rejected row with its line and reason.
`import_contacts` is all-or-nothing: one bad row and nothing is stored, unless the caller asks to
skip the rejected rows (they are still listed in the report).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from modempool.operator.contacts import AddressBook, parse_birthday
from modempool.errors import InvalidNumber, PoolError
from modempool.operator.spreadsheets import read_xlsx, write_table

from modempool.numbers import DEFAULT_REGION
from modempool.spool.plain_text import NUL, refuse_nul, without_nul

# Header names recognised without a mapping, compared after lower-casing and removing spaces.
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "number": ("number", "phone", "mobile", "tel", "msisdn", "手机", "手机号", "手机号码",
               "电话", "电话号码", "号码", "联系电话"),
    "name": ("name", "姓名", "名字", "名称", "联系人"),
    "birthday": ("birthday", "birth", "生日", "出生日期"),
    "groups": ("group", "groups", "分组", "群组", "组"),
    "notes": ("notes", "note", "remark", "备注"),
}


class ImportRejected(PoolError):
    """An import that stored nothing because some rows were rejected; `.report` lists them."""

    code = "import_rejected"

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        super().__init__(f"{len(report.rejected)} row(s) rejected, nothing imported:\n"
                         + report.describe_rejected(), params={"count": len(report.rejected)})


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of a file, each with the line (CSV/TXT) or row (XLSX) number a user sees."""

    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    format: str
    encoding: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out: its line, why in English, and the reason's code and values (as a
    PoolError's) for a front end in another language."""

    line: int
    reason: str
    raw: tuple[str, ...] = ()
    code: str = "error"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowContact:
    line: int
    number: str
    name: str = ""
    birthday: str | None = None
    notes: str = ""
    groups: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportReport:
    path: str
    format: str
    encoding: str | None
    accepted: tuple[RowContact, ...]
    rejected: tuple[Rejected, ...]
    imported: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def describe_rejected(self) -> str:
        return "\n".join(f"  line {r.line}: {r.reason}" for r in self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "encoding": self.encoding,
            "accepted": len(self.accepted), "imported": self.imported,
            "rejected": [{"line": r.line, "reason": r.reason, "raw": list(r.raw)}
                         for r in self.rejected],
        }

    to_dict = as_dict   # the name every result of `Pool` answers to


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Text and the encoding it was in: UTF-8 with BOM, UTF-8, else GB18030 (covers GBK)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise PoolError(f"cannot read the file as UTF-8 or GBK/GB18030 (byte {exc.start})") from None


UPLOAD_FORMATS = (".csv", ".txt", ".xlsx")
MAX_UPLOAD = 5 * 1024 * 1024     # bytes: about 100,000 contacts as CSV


def check_upload(filename: str, data: bytes, max_bytes: int = MAX_UPLOAD) -> str:
    """The extension of an uploaded contacts file if it is what it claims to be, else a
    PoolError in one line: too big, an unknown extension, an .xlsx that is not a zip
    workbook, a .csv/.txt that is binary or in no encoding we read."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in UPLOAD_FORMATS:
        raise PoolError(f"{filename or 'the file'}: upload a .csv, .txt or .xlsx file",
                        code="upload_type", params={"file": filename or ""})
    if len(data) > max_bytes:
        raise PoolError(f"{filename}: {len(data) // 1024} KiB is more than the "
                        f"{max_bytes // 1024} KiB allowed; split the file", code="upload_too_big",
                        params={"file": filename, "kib": len(data) // 1024,
                                "max_kib": max_bytes // 1024})
    if not data:
        raise PoolError(f"{filename}: the file is empty", code="upload_empty",
                        params={"file": filename})
    if suffix == ".xlsx":
        if not data.startswith(b"PK\x03\x04"):
            raise PoolError(f"{filename}: not an Excel .xlsx workbook (save it as .xlsx or .csv)",
                            code="upload_not_xlsx", params={"file": filename})
        return suffix
    if b"\x00" in data[:65536]:
        raise PoolError(f"{filename}: not a text file (is it a .xls or an image renamed?)",
                        code="upload_not_text", params={"file": filename})
    try:
        decode_bytes(data)
    except PoolError as exc:
        raise PoolError(f"{filename}: {exc}", code="upload_encoding",
                        params={"file": filename}) from None
    return suffix


def read_table(path: str | Path, *, encoding: str | None = None, sheet: str | None = None,
               header: bool | None = None, name: str | None = None) -> Table:
    """Read CSV, XLSX or TXT into numbered rows; the format comes from the file extension.
    A file that cannot be read is a PoolError naming it as `name` (an upload's own name, not
    where the server keeps it) or else its path."""
    path = Path(path)
    shown = name or str(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet, shown)
    try:
        data = path.read_bytes()
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        raise PoolError(f"cannot read {shown}: {exc.strerror or exc}",
                        code="file_not_found" if missing else "file_unreadable",
                        params={"file": shown, "reason": exc.strerror or str(exc)}) from None
    if encoding:
        try:
            text, used = data.decode(encoding), encoding
        except LookupError:
            raise PoolError(f"unknown encoding {encoding!r} (try utf-8 or gb18030)",
                            code="encoding_unknown", params={"encoding": encoding}) from None
        except UnicodeDecodeError as exc:
            raise PoolError(f"{shown} is not {encoding}: byte {exc.start} cannot be read in it "
                            "(leave --encoding out to detect it)", code="file_not_in_encoding",
                            params={"file": shown, "encoding": encoding,
                                    "byte": exc.start}) from None
    else:
        try:
            text, used = decode_bytes(data)
        except PoolError as exc:
            raise PoolError(f"{shown}: {exc}", code="upload_encoding",
                            params={"file": shown}) from None
    if suffix == ".txt":
        return _read_txt(text, used)
    return _read_csv(text, used, header)


def _read_csv(text: str, encoding: str, header: bool | None) -> Table:
    first = text.split("\n", 1)[0]
    delimiter = max(",\t;，", key=first.count)
    lines: list[tuple[int, tuple[str, ...]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for values in reader:
        if any(v.strip() for v in values):
            lines.append((reader.line_num, tuple(v.strip() for v in values)))
    if not lines:
        return Table((), (), "csv", encoding)
    has_header = header if header is not None else _looks_like_header(lines[0][1])
    if not has_header:
        return Table(("number", "name"), tuple(lines), "csv", encoding)
    return Table(lines[0][1], tuple(lines[1:]), "csv", encoding)


def _read_txt(text: str, encoding: str) -> Table:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = re.split(r"\s*[,，;\t]\s*", stripped, maxsplit=1)
        spaced = re.fullmatch(r"([+\d][\d\s-]*\d)\s+(\D.*)", stripped)
        if len(parts) == 1 and spaced:
            parts = list(spaced.groups())
        rows.append((number, tuple(p.strip() for p in parts)))
    return Table(("number", "name"), tuple(rows), "txt", encoding)


def _read_xlsx(path: Path, sheet: str | None, shown: str) -> Table:
    rows = []
    for number, values in read_xlsx(path, sheet, name=shown):
        cells = tuple(_cell_text(v) for v in values)
        if any(cells):
            rows.append((number, cells))
    if not rows:
        return Table((), (), "xlsx")
    if _looks_like_header(rows[0][1]):
        return Table(rows[0][1], tuple(rows[1:]), "xlsx")
    return Table(("number", "name"), tuple(rows), "xlsx")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 13800138000 as a float
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _looks_like_header(values: Sequence[str]) -> bool:
    return not any(sum(c.isdigit() for c in v) >= 5 for v in values)


def _canon(header: str) -> str:
    return re.sub(r"\s+", "", header).lower()


def resolve_mapping(headers: Sequence[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Which column index holds number/name/birthday/groups/notes; explicit mapping wins."""
    positions = {_canon(h): i for i, h in enumerate(headers)}
    found: dict[str, int] = {}
    for target, column in (mapping or {}).items():
        if target not in KNOWN_COLUMNS:
            raise PoolError(f"unknown target {target!r} in column mapping "
                            f"(use one of {', '.join(KNOWN_COLUMNS)})", code="mapping_target",
                            params={"target": target, "targets": ", ".join(KNOWN_COLUMNS)})
        if _canon(column) not in positions:
            raise PoolError(f"column {column!r} is not in the file (columns: {', '.join(headers)})",
                            code="mapping_column",
                            params={"column": column, "columns": ", ".join(headers)})
        found[target] = positions[_canon(column)]
    for target, names in KNOWN_COLUMNS.items():
        if target not in found:
            for name in names:
                if name in positions and positions[name] not in found.values():
                    found[target] = positions[name]
                    break
    if "number" not in found:
        raise PoolError(f"no phone number column found among {', '.join(headers) or '(none)'}; "
                        "map one, e.g. --map number=手机", code="no_number_column",
                        params={"columns": ", ".join(headers) or "-"})
    return found


def check_rows(table: Table, mapping: dict[str, str] | None = None, *, region: str = DEFAULT_REGION,
               path: str = "") -> ImportReport:
    """Validate every row; duplicates of an earlier line are rejected, naming that line."""
    from modempool.numbers import normalise

    columns = resolve_mapping(table.headers, mapping)
    extra = [(i, h) for i, h in enumerate(table.headers) if i not in columns.values() and h]
    accepted: list[RowContact] = []
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    for line, values in table.rows:
        def cell(target: str) -> str:
            index = columns.get(target)
            return values[index].strip() if index is not None and index < len(values) else ""

        spoiled = next((i for i, value in enumerate(values) if NUL in value), None)
        if spoiled is not None:   # a cell PostgreSQL cannot store (SQLite would)
            column = (table.headers[spoiled] if spoiled < len(table.headers)
                      and table.headers[spoiled] else f"column {spoiled + 1}")
            rejected.append(Rejected(
                line, f"{column} contains the NUL character (U+0000), which cannot be stored",
                tuple(without_nul(v) for v in values), "text_nul", {"field": column}))
            continue
        raw_number = cell("number")
        if not raw_number:
            rejected.append(Rejected(line, "no phone number", values, "row_no_number"))
            continue
        try:
            number = normalise(raw_number, region)
        except InvalidNumber as exc:
            rejected.append(Rejected(line, f"invalid number: {exc}", values, exc.code, exc.params))
            continue
        if number in seen:
            rejected.append(Rejected(line, f"duplicate of line {seen[number]} ({number})", values,
                                     "row_duplicate", {"first": seen[number], "number": number}))
            continue
        try:
            birthday = parse_birthday(cell("birthday"))
        except ValueError as exc:
            rejected.append(Rejected(line, str(exc), values, "row_birthday",
                                     {"birthday": cell("birthday")}))
            continue
        seen[number] = line
        groups = tuple(g for g in re.split(r"[;,，；|、]\s*", cell("groups")) if g.strip())
        fields = {h: values[i] for i, h in extra if i < len(values) and values[i] != ""}
        accepted.append(RowContact(line, number, cell("name"), birthday, cell("notes"),
                                   groups, fields))
    return ImportReport(path, table.format, table.encoding, tuple(accepted), tuple(rejected))


def import_contacts(book: AddressBook, path: str | Path, *, mapping: dict[str, str] | None = None,
                    groups: Iterable[str] = (), encoding: str | None = None,
                    sheet: str | None = None, skip_rejected: bool = False,
                    dry_run: bool = False) -> ImportReport:
    """Import a file into the address book in one transaction; raises ImportRejected if any row is
    bad (unless `skip_rejected`), so a file is never half-imported."""
    table = read_table(path, encoding=encoding, sheet=sheet)
    report = check_rows(table, mapping, region=book.region, path=str(path))
    if report.rejected and not skip_rejected:
        raise ImportRejected(report)
    if dry_run:
        return report
    extra_groups = tuple(groups)
    rows = [{"number": r.number, "name": r.name, "fields": r.fields, "birthday": r.birthday,
             "notes": r.notes, "groups": r.groups + extra_groups} for r in report.accepted]
    book.upsert_many(rows, normalised=True)
    return ImportReport(report.path, report.format, report.encoding, report.accepted,
                        report.rejected, imported=len(report.accepted))


# ---- writing


def export_contacts(book: AddressBook, path: str | Path, *, group: str | None = None,
                    encoding: str = "utf-8-sig") -> int:
    """Write contacts (all, or one group) with their extra fields as columns; returns the count."""
    contacts = book.list(group=group)
    extra: list[str] = []
    for contact in contacts:
        extra += [k for k in contact.fields if k not in extra]
    headers = ["number", "name", "birthday", "groups", "notes", *extra]
    rows = ([c.number, c.name, c.birthday or "", ";".join(c.groups), c.notes,
             *[c.fields.get(k, "") for k in extra]] for c in contacts)
    return write_table(path, headers, rows, encoding=encoding)
