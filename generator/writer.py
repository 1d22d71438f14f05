"""Plan -> .xlsx file.

XlsxWriter writes the workbook's structure: every compute sheet's formulas and text, defined names,
styles, column widths, frozen panes. The bulk numbers of the weight sheets (~124 M cells for GPT-2 Small,
where per-cell library calls would cost minutes) are streamed afterwards by `weight_rows`, which
formats whole numpy rows at once and splices them into the weight sheets' empty `<sheetData/>`.

Formulas are stored without cached results, so every spreadsheet program computes them on load
(LibreOffice keeps a cached value as it is by default; Excel recalculates because of fullCalcOnLoad).
The file is written next to the target and renamed into place only when complete.
"""
from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import xlsxwriter

from .config import GPT2Error
from .plan.core import Plan, Sheet, cell_ref

STYLES = {
    "title": {"bold": True, "font_size": 13},
    "header": {"bold": True, "bg_color": "#D9E1F2"},
    "heading": {"bold": True, "italic": True},
    "input": {"bg_color": "#FFF2CC", "border": 1},
    "label": {"font_color": "#7F7F7F"},
    "percent": {"num_format": "0.00%"},
}

ROWS_PER_CHUNK = 256


def write_workbook(plan: Plan, params: Mapping[str, np.ndarray], path: str | os.PathLike,
                   progress: Callable[[int], None] | None = None) -> Path:
    """Write `plan` with the weight values from `params` to `path` (atomically)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise GPT2Error(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise GPT2Error(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise GPT2Error(f"cannot write {path}: it is a folder")
    fd, structure = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".structure.xlsx", dir=folder)
    os.close(fd)
    fd, final = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        weight_sheets = write_structure(plan, structure)
        splice_weights(structure, final, weight_sheets, params, progress)
        os.chmod(final, 0o644)
        os.replace(final, path)
    except OSError as e:
        raise GPT2Error(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        for tmp in (structure, final):
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def write_structure(plan: Plan, filename: str) -> dict[str, Sheet]:
    """Everything but the weight values, through XlsxWriter. Returns zip member -> weight sheet."""
    wb = xlsxwriter.Workbook(filename, {
        "constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
        "strings_to_urls": False, "use_zip64": True,
    })
    styles = {name: wb.add_format(spec) for name, spec in STYLES.items()}
    weight_sheets = {}
    for index, sheet in enumerate(plan.sheets, start=1):
        ws = wb.add_worksheet(sheet.name)
        for col, width in sheet.col_widths.items():
            ws.set_column(col, col, width)
        if sheet.freeze:
            ws.freeze_panes(*sheet.freeze)
        if sheet.kind == "weights":
            weight_sheets[f"xl/worksheets/sheet{index}.xml"] = sheet
            continue
        for kind, item in sorted(_entries(sheet), key=lambda e: _position(e[1])):
            style = styles.get(item.style) if item.style else None
            if kind == "array":
                t = item.target
                ws.write_array_formula(t.row, t.col, t.last_row, t.last_col, "{=" + item.formula + "}", style, 0)
            elif item.formula is not None:
                ws.write_formula(item.row, item.col, "=" + item.formula, style, 0)
            elif isinstance(item.value, str):
                ws.write_string(item.row, item.col, item.value, style)
            elif item.value is not None:
                ws.write_number(item.row, item.col, item.value, style)
            elif style is not None:
                ws.write_blank(item.row, item.col, None, style)
    for name, target in plan.names.items():
        wb.define_name(name, "=" + target.a1())
    wb.close()
    return weight_sheets


def _entries(sheet: Sheet):
    yield from (("cell", c) for c in sheet.cells)
    yield from (("array", a) for a in sheet.arrays)


def _position(item):
    return (item.target.row, item.target.col) if hasattr(item, "target") else (item.row, item.col)


# A formula's cached result, `<v>0</v>` after `</f>`: removed so that the file carries no stale values.
_CACHED = re.compile(rb"(</f>)<v>0</v>")


def splice_weights(structure: str, final: str, weight_sheets: Mapping[str, Sheet],
                   params: Mapping[str, np.ndarray], progress=None) -> None:
    with zipfile.ZipFile(structure) as zin, \
            zipfile.ZipFile(final, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            sheet = weight_sheets.get(info.filename)
            if sheet is None:
                if info.filename.startswith("xl/worksheets/sheet"):
                    data = _CACHED.sub(rb"\1", data)
                zout.writestr(info.filename, data)
                continue
            values = np.asarray(params[sheet.weight], dtype=np.float32).reshape(sheet.weight_shape)
            head, tail = data.split(b"<sheetData/>")
            last = cell_ref(values.shape[0] - 1, values.shape[1] - 1)
            head = head.replace(b'<dimension ref="A1"/>', f'<dimension ref="A1:{last}"/>'.encode())
            with zout.open(info.filename, "w", force_zip64=True) as out:
                out.write(head + b"<sheetData>")
                for rows_xml, n in weight_rows(values):
                    out.write(rows_xml)
                    if progress:
                        progress(n)
                out.write(b"</sheetData>" + tail)


def weight_rows(values: np.ndarray) -> Iterator[tuple[bytes, int]]:
    """`<row>` elements for a float32 matrix, a chunk of rows at a time, with the number of cells.

    Each number is the shortest decimal that reads back as the same float32 (numpy's float32 -> str).
    Cells carry no `r` attribute (it is optional in ECMA-376: a cell without one follows the previous).
    """
    for r0 in range(0, values.shape[0], ROWS_PER_CHUNK):
        chunk = values[r0:r0 + ROWS_PER_CHUNK]
        text = chunk.astype("S16").tolist()
        parts = [b'<row r="%d"><c><v>%s</v></c></row>' % (r0 + i + 1, b"</v></c><c><v>".join(row))
                 for i, row in enumerate(text)]
        yield b"".join(parts), chunk.size
