"""A stand-in for the part of xlwings' Book API the Excel macros use, backed by a LibreOffice session.

xlwings' only Excel-free Book implementation (the JSON-backed remote engine of xlwings PRO) needs a
licence key, and it is request/response: writes are queued as actions for Excel to apply after the
Python function returns, so a loop that recalculates between writes cannot run on it. This fake runs
the real macros instead against the real workbook: reads, writes and `app.calculate()` go to the
document open in LibreOffice, and writes are converted the way Excel converts values assigned to
`Range.Value` (a string is parsed like typed input unless it starts with an apostrophe), failing
loudly where Excel would turn text into a formula or a number.

    book.name, book.fullname
    book.names[name].refers_to_range            (KeyError for an unknown name)
    book.sheets[name].range("B4") / sheet["B4"]
    Range.value (get/set), Range.options(ndim=2, ...).value, Range.shape, Range[rows, cols] (slices)
    book.app.calculate()      (Excel's Calculate: what changed since the last calculation; Excel
                               calculates everything when it opens the file, so the first call here does)
"""
from __future__ import annotations

import re
from pathlib import Path

from xlsxwriter.utility import xl_cell_to_rowcol, xl_rowcol_to_cell

from generator.run import defined_names


class ExcelWouldParse(AssertionError):
    """A macro wrote a string that Excel would not store as that text."""


def excel_entry(v):
    """What Excel stores when `v` is assigned to a cell's Value."""
    if isinstance(v, bool) or not (v is None or isinstance(v, (int, float, str))):
        raise TypeError(f"xlwings cannot write {v!r}")
    if not isinstance(v, str):
        return v
    if v.startswith("'"):
        return v[1:]            # the apostrophe is Excel's prefix character, not part of the value
    if v == "":
        return None
    if v[0] in "=+-@":
        raise ExcelWouldParse(f"Excel would enter {v!r} as a formula or a number, not as text")
    try:
        float(v)
    except ValueError:
        return v
    raise ExcelWouldParse(f"Excel would store {v!r} as a number, not as text")


class Range:
    def __init__(self, book: "Book", ref: str, ndim: int | None = None):
        self.book, self.ref, self.ndim = book, ref, ndim

    def options(self, ndim: int | None = None, **_ignored) -> "Range":
        return Range(self.book, self.ref, ndim)

    def __getitem__(self, key) -> "Range":
        """rng[i:j, k:l] (slices with steps of 1; like xlwings, relative to the range)."""
        rows, cols = key
        sheet, first, last = self.address()
        (r0, c0), (r1, c1) = xl_cell_to_rowcol(first), xl_cell_to_rowcol(last)
        i, j, _ = rows.indices(r1 - r0 + 1)
        k, m, _ = cols.indices(c1 - c0 + 1)
        assert i < j and k < m, key
        return Range(self.book, f"{sheet}!{xl_rowcol_to_cell(r0 + i, c0 + k)}:{xl_rowcol_to_cell(r0 + j - 1, c0 + m - 1)}")

    def address(self) -> tuple[str, str, str]:
        """(quoted sheet, first cell, last cell) of this range."""
        ref = self.book.defined.get(self.ref, self.ref).replace("$", "")
        m = re.fullmatch(r"('(?:[^']|'')+'|[^!]+)!([A-Z]+\d+)(?::([A-Z]+\d+))?", ref)
        assert m, ref
        return m.group(1), m.group(2), m.group(3) or m.group(2)

    @property
    def shape(self) -> tuple[int, int]:
        rows = self.book.lo.read(self.ref)[0]
        return len(rows), len(rows[0])

    @property
    def value(self):
        rows = [[None if v == "" else v for v in row] for row in self.book.lo.read(self.ref)[0]]
        if self.ndim == 2:
            return rows
        if len(rows) == 1 and len(rows[0]) == 1:
            return rows[0][0]
        if len(rows) == 1:
            return rows[0]
        if len(rows[0]) == 1:
            return [row[0] for row in rows]
        return rows

    @value.setter
    def value(self, data):
        if not isinstance(data, (list, tuple)):
            data = [[data]]
        elif not data or not isinstance(data[0], (list, tuple)):
            data = [list(data)]
        rows = [[excel_entry(v) for v in row] for row in data]
        self.book.writes.append((self.ref, rows))
        self.book.lo.write(self.ref, rows)


class Name:
    def __init__(self, book: "Book", name: str):
        self.book, self.name = book, name

    @property
    def refers_to_range(self) -> Range:
        return Range(self.book, self.name)


class Names:
    def __init__(self, book: "Book"):
        self.book = book

    def __getitem__(self, name: str) -> Name:
        if name not in self.book.defined:
            raise KeyError(name)
        return Name(self.book, name)

    def __contains__(self, name: str) -> bool:
        return name in self.book.defined


class Sheet:
    def __init__(self, book: "Book", name: str):
        self.book, self.name = book, name

    def range(self, address: str) -> Range:
        return Range(self.book, "'" + self.name.replace("'", "''") + "'!" + address)

    def __getitem__(self, address: str) -> Range:
        return self.range(address)


class Sheets:
    def __init__(self, book: "Book"):
        self.book = book

    def __getitem__(self, name: str) -> Sheet:
        return Sheet(self.book, name)


class App:
    def __init__(self, book: "Book"):
        self.book = book
        self.calculations = 0

    def calculate(self) -> None:
        self.calculations += 1
        self.book.lo.calculate(dirty_only=self.calculations > 1)


class Book:
    """`path` must be the document currently loaded in the LibreOffice session `lo`."""

    def __init__(self, lo, path):
        self.lo = lo
        self.fullname = str(Path(path).resolve())
        self.name = Path(path).name
        self.defined = defined_names(Path(path))
        self.names = Names(self)
        self.sheets = Sheets(self)
        self.app = App(self)
        self.writes: list[tuple[str, list]] = []
