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
from .plan.core import Plan, Sheet, cell_ref
from .xlsxzip import ZipWriter, deflate_piece

STYLES = {
    "title": {"bold": True, "font_size": 13},
    "header": {"bold": True, "bg_color": "#D9E1F2"},
    "heading": {"bold": True, "italic": True},
    "input": {"bg_color": "#FFF2CC", "border": 1},
    "label": {"font_color": "#7F7F7F"},
    "percent": {"num_format": "0.00%"},
    "input_text": {"bg_color": "#FFF2CC", "border": 1, "num_format": "@", "text_wrap": True, "valign": "top"},
    "wrap": {"text_wrap": True, "valign": "top"},
    "count": {"num_format": "#,##0"}, "ratio": {"num_format": "0.000"}, "sci": {"num_format": "0.000E+00"}, "money": {"num_format": "$#,##0"},
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
    fd, structure = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".structure.xlsx", dir=folder)
    os.close(fd)
    fd, final = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        weight_sheets = write_structure(plan, structure, vba_project)
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


def write_structure(plan: Plan, filename: str, vba_project: bytes | None = None) -> dict[str, Sheet]:
    """Everything but the weight values, through XlsxWriter. Returns zip member -> weight sheet."""
    wb = xlsxwriter.Workbook(filename, {
        "constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
        "strings_to_urls": False, "use_zip64": True,
    })
    if vba_project is not None:
        wb.add_vba_project(io.BytesIO(vba_project), is_stream=True)
    styles = {name: wb.add_format(spec) for name, spec in STYLES.items()}
    weight_sheets = {}
    for index, sheet in enumerate(plan.sheets, start=1):
        ws = wb.add_worksheet(sheet.name)
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
    """Copy the structure file's parts into `final`, filling the weight sheets' `<sheetData/>`.

    The weight XML is made and deflated in pieces on every core (`_weight_piece`), in order."""
    tasks = [(sheet.weight, r0, min(r0 + step, sheet.weight_shape[0]))
             for sheet in weight_sheets.values()
             for step in [max(1, PIECE_CELLS // sheet.weight_shape[1])]
             for r0 in range(0, sheet.weight_shape[0], step)]
    global _PARAMS
    _PARAMS = params
    try:
        with zipfile.ZipFile(structure) as zin, open(final, "wb") as fh, _pool() as pool:
            pieces = _in_order(pool, _weight_piece, tasks, window=4 * (os.cpu_count() or 1))
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
    finally:
        _PARAMS = None


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
