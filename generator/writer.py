"""Plan -> .xlsx file.

XlsxWriter writes the workbook's structure: every compute sheet's formulas and text, defined names,
styles, column widths, frozen panes. The bulk numbers of the weight sheets (~124 M cells for GPT-2 Small,
where per-cell library calls would cost minutes) are added afterwards: `fastxml` formats whole numpy
blocks at once, worker processes deflate the pieces on every core, and `xlsxzip` splices them into the
weight sheets' empty `<sheetData/>` while copying the rest of XlsxWriter's file.

Formulas are stored without cached results, so every spreadsheet program computes them on load
(LibreOffice keeps a cached value as it is by default; Excel recalculates because of fullCalcOnLoad).
The file is written next to the target and renamed into place only when complete.
"""
from __future__ import annotations

import collections
import contextlib
import io
import itertools
import multiprocessing
import os
import re
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import xlsxwriter
from isal import isal_zlib

from . import fastxml
from .config import GPT2Error
from .files import replacing
from .plan.core import Plan, Sheet, cell_ref, quote
from .plan.style import COLOURS, HEATMAP, TAB_COLOURS
from .xlsxzip import ZipWriter, deflate_piece

STYLES = {
    "title": {"bold": True, "font_size": 13},
    "header": {"bold": True, "bg_color": "#D9E1F2"},
    "heading": {"bold": True, "italic": True},
    "input": {"bg_color": COLOURS["input"], "border": 1},
    "label": {"font_color": "#7F7F7F"},
    "percent": {"num_format": "0.000%"},
    "input_text": {"bg_color": COLOURS["input"], "border": 1, "num_format": "@", "text_wrap": True, "valign": "top"},
    "wrap": {"text_wrap": True, "valign": "top"},
    "count": {"num_format": "#,##0"}, "ratio": {"num_format": "0.000"}, "sci": {"num_format": "0.000E+00"}, "money": {"num_format": "$#,##0"},
    "number": {"num_format": "0.0000"},
    "center": {"align": "center"},
    "colhead": {"bold": True, "italic": True, "font_color": "#404040", "bottom": 1},
    "link": {"font_color": "#0563C1", "underline": 1},
    # the colour code (plan/style.py): `title` and `heading` take the sheet's role, `swatch_<role>` fills a cell
    **{f"title_{role}": {"bold": True, "font_size": 13, "bg_color": colour} for role, colour in COLOURS.items()},
    **{f"heading_{role}": {"bold": True, "italic": True, "bg_color": colour} for role, colour in COLOURS.items()},
    **{f"swatch_{role}": {"bg_color": colour, "border": 1} for role, colour in COLOURS.items()},
}


def write_workbook(plan: Plan, params: Mapping[str, np.ndarray], path: str | os.PathLike,
                   progress: Callable[[int], None] | None = None, vba_project: bytes | None = None) -> Path:
    """Write `plan` with the weight values from `params` to `path` (atomically).

    With `vba_project` (a vbaProject.bin) the file is a macro-enabled workbook with the plan's buttons."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise GPT2Error(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise GPT2Error(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise GPT2Error(f"cannot write {path}: it is a folder")
    # XlsxWriter stores the n-th worksheet as xl/worksheets/sheet<n>.xml
    weight_sheets = {f"xl/worksheets/sheet{index}.xml": sheet
                     for index, sheet in enumerate(plan.sheets, start=1) if sheet.kind == "weights"}
    with replacing(path) as final, tempfile.TemporaryDirectory(dir=folder, prefix=f".{path.name}.") as tmp:
        structure = os.path.join(tmp, "structure.xlsx")
        with weight_pieces(weight_sheets.values(), params) as pieces:  # the workers start on the weights
            write_structure(plan, structure, vba_project)               # while this core does the rest
            splice_weights(structure, final, weight_sheets, pieces, progress)
    return path


def write_structure(plan: Plan, filename: str, vba_project: bytes | None = None) -> None:
    """Everything but the weight values, through XlsxWriter (weight sheets are left empty)."""
    wb = xlsxwriter.Workbook(filename, {
        "constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
        "strings_to_urls": False, "use_zip64": True,
    })
    if vba_project is not None:
        wb.add_vba_project(io.BytesIO(vba_project), is_stream=True)
    styles = {name: wb.add_format(spec) for name, spec in STYLES.items()}
    for sheet in plan.sheets:
        ws = wb.add_worksheet(sheet.name)
        if sheet.role in TAB_COLOURS:
            ws.set_tab_color(TAB_COLOURS[sheet.role])
        for col, width in sheet.col_widths.items():
            ws.set_column(col, col, width)
        if sheet.freeze:
            ws.freeze_panes(*sheet.freeze)
        for (row, col), choices in sheet.choices.items():
            ws.data_validation(row, col, row, col, {"validate": "list", "source": choices})
        for b in sheet.buttons if vba_project is not None else ():
            ws.insert_button(b.row, b.col, {"macro": b.macro, "caption": b.caption,
                                            "width": b.width, "height": b.height})
        if sheet.kind == "weights":
            continue
        for row, name in sheet.row_styles.items():
            ws.set_row(row, None, styles[name])
        for target in sheet.heatmaps:
            ws.conditional_format(target.row, target.col, target.last_row, target.last_col, {
                "type": "2_color_scale", "min_type": "num", "min_value": 0, "min_color": HEATMAP["min"],
                "max_type": "num", "max_value": 1, "max_color": HEATMAP["max"]})
        for chart in sheet.charts:
            ws.insert_chart(chart.row, chart.col, _bar_chart(wb, chart), {"x_scale": 1.3, "y_scale": 1.2})
        for kind, item in sorted(_entries(sheet), key=lambda e: _position(e[1])):
            name = item.style
            if name in ("title", "heading") and sheet.role in COLOURS:
                name = f"{name}_{sheet.role}"
            style = styles.get(name) if name else None
            if kind == "array":
                t = item.target
                ws.write_array_formula(t.row, t.col, t.last_row, t.last_col, "{=" + item.formula + "}", style, 0)
            elif item.link is not None:
                ws.write_url(item.row, item.col, f"internal:{quote(item.link)}!A1", style or styles["link"],
                             string=str(item.value if item.value is not None else item.link))
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


def _bar_chart(wb, chart):
    """A horizontal bar chart, first category on top."""
    c = wb.add_chart({"type": "bar"})
    c.add_series({"name": chart.title, "categories": "=" + chart.categories.a1(), "values": "=" + chart.values.a1(),
                  "fill": {"color": TAB_COLOURS["output"]}, "data_labels": {"value": True, "num_format": "0.000%"}})
    c.set_title({"name": chart.title, "name_font": {"size": 12}})
    c.set_legend({"none": True})
    c.set_y_axis({"reverse": True})
    c.set_x_axis({"name": chart.x_title, "num_format": "0.000%", "min": 0})
    return c


def _entries(sheet: Sheet):
    yield from (("cell", c) for c in sheet.cells)
    yield from (("array", a) for a in sheet.arrays)


def _position(item):
    return (item.target.row, item.target.col) if hasattr(item, "target") else (item.row, item.col)


# A formula's cached result, `<v>0</v>` after `</f>`: removed so that the file carries no stale values.
_CACHED = re.compile(rb"(</f>)<v>0</v>")


@contextlib.contextmanager
def weight_pieces(sheets, params: Mapping[str, np.ndarray]):
    """The weight sheets' rows as deflated XML pieces (see `_weight_piece`), in sheet and row order,
    made on every core by worker processes that start right away."""
    tasks = [(sheet.weight, r0, min(r0 + step, sheet.weight_shape[0]))
             for sheet in sheets
             for step in [max(1, PIECE_CELLS // sheet.weight_shape[1])]
             for r0 in range(0, sheet.weight_shape[0], step)]
    global _PARAMS
    _PARAMS = params
    try:
        with _pool() as pool:
            yield _in_order(pool, _weight_piece, tasks, window=4 * (os.cpu_count() or 1))
    finally:
        _PARAMS = None


def splice_weights(structure: str, final: str, weight_sheets: Mapping[str, Sheet], pieces, progress=None) -> None:
    """Copy the structure file's parts into `final`, filling each weight sheet's `<sheetData/>` with
    the next pieces from `weight_pieces`."""
    with zipfile.ZipFile(structure) as zin, open(final, "wb") as fh:
        out = ZipWriter(fh)
        for info in zin.infolist():
            data = zin.read(info.filename)
            sheet = weight_sheets.get(info.filename)
            if sheet is None:
                if info.filename.startswith("xl/worksheets/sheet"):
                    data = _CACHED.sub(rb"\1", data)
                out.write(info.filename, data)
                continue
            rows, cols = sheet.weight_shape
            head, tail = data.split(b"<sheetData/>")
            head = head.replace(b'<dimension ref="A1"/>', f'<dimension ref="A1:{cell_ref(rows - 1, cols - 1)}"/>'.encode())
            parts = [deflate_piece(head + b"<sheetData>")]
            done = 0
            while done < rows * cols:
                part, cells = next(pieces)
                parts.append(part)
                done += cells
                if progress:
                    progress(cells)
            parts.append(deflate_piece(b"</sheetData>" + tail))
            crc, size = parts[0][1], parts[0][2]
            for _, piece_crc, piece_size in parts[1:]:
                crc = isal_zlib.crc32_combine(crc, piece_crc, piece_size)
                size += piece_size
            out.write_deflated(info.filename, [p[0] for p in parts], crc, size)
        out.close()


PIECE_CELLS = 1 << 20   # weight cells per piece of work (~25 MB of XML)
_PARAMS: Mapping[str, np.ndarray] | None = None  # the weights, for the workers (inherited by fork)


def _weight_piece(key: str, r0: int, r1: int):
    """Rows r0..r1 of a weight sheet as deflated XML (runs in a worker)."""
    shape = _PARAMS[key].shape
    values = np.asarray(_PARAMS[key], dtype=np.float32).reshape(-1 if len(shape) == 2 else 1, shape[-1])
    return deflate_piece(fastxml.row_blocks(values[r0:r1], r0 + 1)), (r1 - r0) * values.shape[1]


def _pool():
    """Worker processes sharing the weights by fork where the platform has it, threads elsewhere
    (numpy and ISA-L release the GIL for most of the work)."""
    workers = os.cpu_count() or 1
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(workers)


def _in_order(pool, fn, tasks, window):
    """fn(*task) for each task, run on `pool` with at most `window` in flight; results in task order."""
    queue = collections.deque()
    tasks = iter(tasks)
    for task in itertools.islice(tasks, window):
        queue.append(pool.submit(fn, *task))
    while queue:
        result = queue.popleft().result()
        for task in itertools.islice(tasks, 1):
            queue.append(pool.submit(fn, *task))
        yield result
