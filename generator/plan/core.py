"""The workbook plan: which sheet, which range, which formula. Pure data, no I/O.

The writer turns a `Plan` into an .xlsx file; the tests and the FLOP tally read the same plan.
Rows and columns are 0-based here (the writer and `ref()` convert to A1 notation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from xlsxwriter.utility import xl_col_to_name

Value = Union[float, int, str, None]


def quote(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"


def cell_ref(row: int, col: int, absolute: bool = False) -> str:
    d = "$" if absolute else ""
    return f"{d}{xl_col_to_name(col)}{d}{row + 1}"


@dataclass(frozen=True)
class Range:
    """A rectangle on one sheet."""
    sheet: str
    row: int
    col: int
    rows: int = 1
    cols: int = 1

    @property
    def last_row(self) -> int:
        return self.row + self.rows - 1

    @property
    def last_col(self) -> int:
        return self.col + self.cols - 1

    def a1(self, absolute: bool = True) -> str:
        """`'sheet'!$A$1:$B$2` (the form formulas and defined names use)."""
        first = cell_ref(self.row, self.col, absolute)
        if self.rows == 1 and self.cols == 1:
            return f"{quote(self.sheet)}!{first}"
        return f"{quote(self.sheet)}!{first}:{cell_ref(self.last_row, self.last_col, absolute)}"

    def ref(self, on: str) -> str:
        """The reference a formula on sheet `on` uses: `B5:Q5` on the same sheet, else `'sheet'!$B$5:$Q$5`."""
        if on != self.sheet:
            return self.a1()
        return self.a1(absolute=False).split("!", 1)[1]

    def sub(self, row: int = 0, col: int = 0, rows: int | None = None, cols: int | None = None) -> "Range":
        """A sub-rectangle, offsets relative to this one."""
        return Range(self.sheet, self.row + row, self.col + col,
                     self.rows - row if rows is None else rows, self.cols - col if cols is None else cols)

    def row_range(self, i: int) -> "Range":
        return self.sub(row=i, rows=1)

    def __str__(self) -> str:
        return self.a1()


@dataclass
class ArrayFormula:
    """One legacy (Ctrl+Shift+Enter) array formula filling `target`."""
    target: Range
    formula: str  # without the leading "="
    style: str | None = None


@dataclass
class Cell:
    row: int
    col: int
    value: Value = None     # a number or text (text is always stored as text, never parsed)
    formula: str | None = None
    style: str | None = None
    link: str | None = None  # a sheet name: the cell is a hyperlink to that sheet's A1


@dataclass
class Chart:
    """A bar chart of `values` (one column) labelled by `categories`, anchored at (row, col)."""
    title: str
    categories: Range
    values: Range
    row: int
    col: int
    x_title: str = ""


@dataclass
class Button:
    """A form button at (row, col) that runs a VBA macro; written only into macro-enabled (.xlsm) workbooks."""
    row: int
    col: int
    caption: str
    macro: str
    width: int = 220
    height: int = 36


@dataclass
class Sheet:
    name: str
    kind: str  # "input", "compute", "weights"
    title: str = ""
    cells: list[Cell] = field(default_factory=list)
    arrays: list[ArrayFormula] = field(default_factory=list)
    weight: str | None = None  # for kind "weights": the tensor key, written at A1
    weight_shape: tuple[int, int] | None = None
    col_widths: dict[int, float] = field(default_factory=dict)
    freeze: tuple[int, int] | None = None
    choices: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (row, col) -> drop-down list
    buttons: list[Button] = field(default_factory=list)
    # teaching: what the sheet computes (index), its colour-code role (a key of plan/style.py COLOURS), its step number
    about: str = ""
    equation: str = ""
    role: str | None = None
    step: int | None = None
    heatmaps: list[Range] = field(default_factory=list)      # colour scale 0..1 (attention probabilities)
    charts: list[Chart] = field(default_factory=list)
    row_styles: dict[int, str] = field(default_factory=dict)  # row -> style of its cells without one (number format)

    def put(self, row: int, col: int, value: Value = None, formula: str | None = None, style: str | None = None,
            link: str | None = None):
        self.cells.append(Cell(row, col, value, formula, style, link))

    def array(self, target: Range, formula: str, style: str | None = None) -> Range:
        assert target.sheet == self.name
        self.arrays.append(ArrayFormula(target, formula, style))
        return target


@dataclass
class Plan:
    sheets: list[Sheet] = field(default_factory=list)
    names: dict[str, Range] = field(default_factory=dict)  # workbook-level defined names
    n_ctx: int = 0

    def add(self, sheet: Sheet) -> Sheet:
        if any(s.name == sheet.name for s in self.sheets):
            raise ValueError(f"duplicate sheet {sheet.name!r}")
        self.sheets.append(sheet)
        return sheet

    def name(self, name: str, target: Range) -> str:
        """Define a workbook-level name for `target` and return it, for use inside formulas."""
        if name in self.names:
            raise ValueError(f"duplicate name {name!r}")
        self.names[name] = target
        return name

    def sheet(self, name: str) -> Sheet:
        return next(s for s in self.sheets if s.name == name)


class Stack:
    """Lays out sections top to bottom on a compute sheet: a heading row, then the block."""

    def __init__(self, sheet: Sheet, first_row: int = 2, label_col: int = 0):
        self.sheet = sheet
        self.next_row = first_row
        self.label_col = label_col

    def section(self, heading: str, rows: int, cols: int, col: int = 1, gap: int = 1,
                col_labels: dict[int, str] | None = None, number: str | None = "number") -> Range:
        """A heading row, optionally a row of column-group labels (offset in the block -> text), the block.

        The block's rows get the number format `number` (cells of an array formula carry no style of
        their own)."""
        self.sheet.put(self.next_row, self.label_col, heading, style="heading")
        if col_labels:
            self.next_row += 1
            for offset, text in sorted(col_labels.items()):
                self.sheet.put(self.next_row, col + offset, text, style="colhead")
        block = Range(self.sheet.name, self.next_row + 1, col, rows, cols)
        if number:
            for r in range(block.row, block.row + rows):
                self.sheet.row_styles[r] = number
        self.next_row += 1 + rows + gap
        return block
