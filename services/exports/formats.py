"""Plane's three export formats (utils/porters/formatters.py), written row by row into a stream.

Plane's formatters take the whole serialised list and return one string; these take rows as they
come and write them to a binary stream (a zip entry), so an export's memory is one page of rows
whatever its size. The bytes are Plane's where Plane's are safe:

- JSON: `json.dumps(rows, indent=2, default=str)`, built one row at a time (each row's own dump
  indented one level; JSON strings hold no raw newline, so indenting lines is exact). "[]" when empty.
- CSV: lists as JSON strings, headers `snake_case` -> `Title Case` from the first row, empty when
  there are no rows; every string cell neutralised against formula injection (below).
- XLSX: lists joined with ", " (str() of each item, as Plane), dicts as JSON, one sheet. Written
  by xlsxwriter in constant_memory mode (a row at a time, through a temporary file), every string
  as a string cell, never a formula, and neutralised as in CSV: Plane's XLSX had no such guard.

Formula injection (R23, OWASP "CSV Injection"): a string cell starting with = + - @ TAB CR or LF
gets a leading `'`, Plane's `sanitize_csv_value` for CSV, now also for XLSX. JSON is unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol

FORMULA_TRIGGERS = frozenset(("=", "+", "-", "@", "\t", "\r", "\n"))
PROVIDERS = ("csv", "json", "xlsx")


def neutralise(value: Any) -> Any:
    """Plane's sanitize_csv_value: a string a spreadsheet would read as a formula is prefixed."""
    if isinstance(value, str) and value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def prettify(header: str) -> str:
    """Plane's `_prettify_header`: 'created_by_name' -> 'Created By Name'."""
    return header.replace("_", " ").title()


class RowWriter(Protocol):
    extension: str

    def write(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonWriter:
    extension = "json"

    def __init__(self, out: IO[bytes]) -> None:
        self._out = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._rows = 0

    def write(self, row: Mapping[str, Any]) -> None:
        body = json.dumps(row, indent=2, default=str).replace("\n", "\n  ")
        self._out.write(("[\n  " if self._rows == 0 else ",\n  ") + body)
        self._rows += 1

    def close(self) -> None:
        self._out.write("\n]" if self._rows else "[]")
        self._out.flush()
        self._out.detach()


class CsvWriter:
    extension = "csv"

    def __init__(self, out: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        self._csv = csv.writer(self._text)
        self._fields: Sequence[str] | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(row)
            self._csv.writerow([prettify(key) for key in self._fields])
        self._csv.writerow([neutralise(_csv_value(row.get(key, ""))) for key in self._fields])

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


def _csv_value(value: Any) -> Any:
    # Plane flattens nested dicts with "__" keys; its issue rows have none, only lists.
    return json.dumps(value) if isinstance(value, list) else value


class XlsxWriter:
    extension = "xlsx"

    def __init__(self, out: IO[bytes]) -> None:
        import xlsxwriter

        # Nothing is converted: a string is written as a string cell, whatever it looks like.
        options = {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        }
        self._book = xlsxwriter.Workbook(out, options)
        self._sheet = self._book.add_worksheet()
        self._fields: Sequence[str] | None = None
        self._row = 0

    def write(self, row: Mapping[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(row)
            self._cells([prettify(key) for key in self._fields])
        self._cells([_xlsx_value(row.get(key, "")) for key in self._fields])

    def _cells(self, values: Sequence[Any]) -> None:
        for col, value in enumerate(values):
            if isinstance(value, bool):
                self._sheet.write_boolean(self._row, col, value)
            elif isinstance(value, int | float):
                self._sheet.write_number(self._row, col, value)
            elif value != "":
                self._sheet.write_string(self._row, col, neutralise(str(value)))
        self._row += 1

    def close(self) -> None:
        self._book.close()


def _xlsx_value(value: Any) -> Any:
    """Plane's XLSXFormatter._format_value."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


WRITERS: dict[str, type[JsonWriter] | type[CsvWriter] | type[XlsxWriter]] = {
    "csv": CsvWriter,
    "json": JsonWriter,
    "xlsx": XlsxWriter,
}


def unsupported(provider: str) -> str:
    """Plane's DataExporter error text, which it stores as the export's `reason`."""
    return f"Unsupported format: {provider}. Available: {list(WRITERS)}"
