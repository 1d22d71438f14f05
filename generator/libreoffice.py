"""Recalculate workbooks with a headless LibreOffice (the test oracle).

The project's interpreter usually cannot `import uno`, so the UNO work happens in `lo_bridge.py`, run by a
Python that can (Debian: /usr/bin/python3 with python3-uno); we talk to it with JSON lines over a pipe.

    with LibreOffice() as lo:
        lo.load("model.xlsx")
        lo.calculate()
        logits = lo.read_array("logits")          # a defined name or "'Sheet'!A1:B3"

Ranges are workbook-level defined names or sheet addresses ('h.0.attn'!A1:B3).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from generator.config import GPT2Error

BRIDGE = Path(__file__).with_name("lo_bridge.py")
INSTALL_HINT = ("LibreOffice with Python UNO is needed to recalculate workbooks: "
                "apt-get install libreoffice-calc-nogui python3-uno "
                "(or set GPT2_SOFFICE and GPT2_UNO_PYTHON)")


class LibreOfficeError(GPT2Error):
    """LibreOffice is missing, failed to start, or refused a request."""


def _from_env(var: str) -> str | None:
    """The executable named by environment variable `var`, if it is set."""
    env = os.environ.get(var)
    if not env:
        return None
    found = shutil.which(env)
    if not found:
        raise LibreOfficeError(f"{var}={env} is not an executable. {INSTALL_HINT}")
    return found


def find_soffice() -> str:
    """$GPT2_SOFFICE, else `soffice` or `libreoffice` on PATH."""
    found = _from_env("GPT2_SOFFICE")
    if found:
        return found
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    raise LibreOfficeError(f"soffice not found on PATH. {INSTALL_HINT}")


@lru_cache(maxsize=None)
def _can_import_uno(python: str) -> bool:
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return importlib.util.find_spec("uno") is not None
    try:
        return subprocess.run([python, "-c", "import uno"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_uno_python() -> str:
    """$GPT2_UNO_PYTHON, else this interpreter if it can import uno, else /usr/bin/python3 if it can."""
    found = _from_env("GPT2_UNO_PYTHON")
    if found:
        return found
    for python in (sys.executable, "/usr/bin/python3"):
        if python and os.access(python, os.X_OK) and _can_import_uno(python):
            return python
    raise LibreOfficeError(f"no Python that can `import uno` (tried {sys.executable} and /usr/bin/python3). "
                           f"{INSTALL_HINT}")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot send {type(o).__name__} to LibreOffice")


class LibreOffice:
    """One private headless soffice (via lo_bridge.py) with at most one open document."""

    def __init__(self, soffice: str | None = None, uno_python: str | None = None, timeout: float = 60.0):
        soffice = soffice or find_soffice()
        uno_python = uno_python or find_uno_python()
        self._stderr = tempfile.TemporaryFile()
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                [uno_python, str(BRIDGE), "--soffice", soffice, "--timeout", str(timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")
        except OSError as e:
            self._stderr.close()
            raise LibreOfficeError(f"cannot run {uno_python}: {e}. {INSTALL_HINT}") from None
        try:
            self._reply("starting LibreOffice")
        except LibreOfficeError as e:
            message = str(e) if "stderr ends with" in str(e) else f"{e}; stderr:\n{self._stderr_tail()}"
            self.close()
            raise LibreOfficeError(f"{message}\n{INSTALL_HINT}") from None
        self.startup_seconds = time.monotonic() - t0

    # --- protocol ------------------------------------------------------------------------------------
    def _stderr_tail(self, n: int = 2000) -> str:
        self._stderr.flush()
        size = self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, size - n))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def _reply(self, what: str) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            raise LibreOfficeError(f"{what}: the LibreOffice bridge exited (status {self._proc.returncode}); "
                                   f"its stderr ends with:\n{self._stderr_tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise LibreOfficeError(f"{what}: {reply.get('error')}")
        return reply

    def _call(self, op: str, **args) -> dict:
        if self._proc.poll() is not None:
            raise LibreOfficeError(f"{op}: the LibreOffice session is closed")
        try:
            self._proc.stdin.write(json.dumps({"op": op, **args}, default=_json_default) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass   # _reply reports the exit with the bridge's stderr
        return self._reply(op)

    # --- API -----------------------------------------------------------------------------------------
    def load(self, path) -> float:
        """Open an xlsx file (hidden, no macros, no link updates); returns seconds."""
        return self._call("load", path=os.path.abspath(path))["seconds"]

    def calculate(self, dirty_only: bool = False) -> float:
        """Recalculate every formula (doc.calculateAll()), or with dirty_only only those whose inputs
        changed since the last calculation (doc.calculate()); returns seconds."""
        return self._call("calculate", **({"dirty_only": True} if dirty_only else {}))["seconds"]

    def read(self, *ranges: str, what: str = "value") -> list:
        """For each range, its rows as lists: floats, strings, "" for empty, "#NAME?"-style text for errors.

        what="formula" gives the formulas instead (array formulas as "{=...}").
        """
        return self._call("read", ranges=list(ranges), what=what)["values"]

    def read_array(self, range: str) -> np.ndarray:
        """One range as a 2-D float array; empty cells are nan, any other text is an error."""
        return _to_array(range, self.read(range)[0])

    def write(self, range: str, values, first_row: int = 0) -> None:
        """Write numbers/strings (strings stay text, even "=1+1"). A single-cell range is the top-left corner.

        first_row: write the values from this row (0-based) of the range on, into as many rows as they have."""
        if isinstance(values, np.ndarray):
            values = np.atleast_2d(values).tolist()
        self._call("write", range=range, values=values, **({"first_row": first_row} if first_row else {}))

    def save(self, path, filter: str | None = None) -> float:
        """Save as xlsx (or with the export `filter` named, e.g. "Calc MS Excel 2007 VBA XML"); returns seconds."""
        args = {"filter": filter} if filter else {}
        return self._call("save", path=os.path.abspath(path), **args)["seconds"]

    def export_pdf(self, path, range: str) -> float:
        """Print `range` (a defined name or 'Sheet'!A1:B2) to a PDF page of its size at `path`; returns seconds.
        Changes only the loaded copy's page style; the workbook file is never written."""
        return self._call("export_pdf", path=os.path.abspath(path), range=range)["seconds"]

    def auto_calculate(self, on: bool) -> None:
        """Switch the loaded document's automatic calculation (on after loading): when off, edits change
        nothing computed until calculate()."""
        self._call("autocalc", on=bool(on))

    def stats(self) -> dict:
        """{"pid", "peak_rss", "rss"} of the soffice.bin process, in bytes."""
        return {k: v for k, v in self._call("stats").items() if k != "ok"}

    def close(self) -> None:
        """Close the document, stop soffice, remove its profile. Safe to call twice."""
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.write('{"op":"close"}\n')
                proc.stdin.flush()
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.terminate()   # the bridge stops soffice on SIGTERM
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for f in (proc.stdin, proc.stdout, self._stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _to_array(range: str, rows: list) -> np.ndarray:
    out = np.full((len(rows), len(rows[0]) if rows else 0), np.nan)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if isinstance(v, float):
                out[i, j] = v
            elif v != "":
                raise LibreOfficeError(f"{range}: cell at row {i}, column {j} (0-based) is {v!r}, not a number")
    return out


def recalculate(path, ranges) -> dict:
    """Load, calculate and read: {range: float array (or the raw rows if it holds text), "stats": {...}}."""
    with LibreOffice() as lo:
        stats = {"startup_seconds": lo.startup_seconds, "load_seconds": lo.load(path),
                 "calculate_seconds": lo.calculate()}
        out = {}
        for r, rows in zip(ranges, lo.read(*ranges)):
            try:
                out[r] = _to_array(r, rows)
            except LibreOfficeError:
                out[r] = rows
        stats.update(lo.stats())
    out["stats"] = stats
    return out
