"""JSON-lines bridge to a headless LibreOffice over UNO.

Run this file with a Python that can `import uno` (Debian: /usr/bin/python3 with python3-uno):

    /usr/bin/python3 lo_bridge.py [--soffice /usr/bin/soffice] [--timeout 60]

It starts a private soffice (own temporary profile, own pipe), then reads one JSON request per line on
stdin and writes one JSON reply per line on stdout. Nothing else ever goes to stdout; logs go to stderr.

    {"op":"load","path":"/abs/in.xlsx"}                  -> {"ok":true,"seconds":s}
    {"op":"calculate"[,"dirty_only":true]}               -> {"ok":true,"seconds":s}   (doc.calculateAll(), or
                                                            doc.calculate(): only formulas whose inputs changed)
    {"op":"read","ranges":[r,...],"what":"value"|"formula"}
                                                         -> {"ok":true,"values":[rows, ...]}
    {"op":"write","range":r,"values":[[...],...][,"first_row":i]}
                                                         -> {"ok":true}   (from row i of r on)
    {"op":"save","path":"/abs/out.xlsx"[,"filter":f]}    -> {"ok":true,"seconds":s}   (default: xlsx)
    {"op":"export_pdf","path":"/abs/out.pdf","range":r}  -> {"ok":true,"seconds":s}   (only r, on one page of
                                                            its size; the workbook itself is never saved)
    {"op":"autocalc","on":false}                         -> {"ok":true}   (doc.enableAutomaticCalculation)
    {"op":"stats"}                                       -> {"ok":true,"pid":p,"peak_rss":b,"rss":b}
    {"op":"close"}                                       -> {"ok":true}, then soffice is stopped and we exit
    any failure                                          -> {"ok":false,"error":"..."} (the bridge keeps serving)

A range r is a workbook-level defined name or a sheet address like 'h.0.attn'!A1:B3 (quotes optional
when the sheet name needs none). Read values come as UNO gives them: numbers as floats, text as
strings, empty cells as ""; error cells are reported as their text ("#NAME?", "#DIV/0!", "Err:502").
Written strings are always stored as text ("=1+1" stays a string); None writes an empty cell.

This file must not import the `generator` package: it runs under a different interpreter.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException

NEVER_EXECUTE = 0   # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
NO_UPDATE = 0       # com.sun.star.document.UpdateDocMode.NO_UPDATE

# Pin "recalculate on load: never" for xlsx files (also the 7.4 default; never "ask", which could prompt).
# No .~lock.<name># files beside the documents we open (the profile is private to this bridge).
REGISTRY = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseLocking" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""


def log(*args):
    print("lo_bridge:", *args, file=sys.stderr, flush=True)


def props(**kw):
    out = []
    for k, v in kw.items():
        p = PropertyValue()
        p.Name, p.Value = k, v
        out.append(p)
    return tuple(out)


class Office:
    """One soffice process with a private profile, and at most one open document."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="gpt2_lo_profile_")
        self.proc = self.desktop = self.doc = None

    def start(self, soffice: str, timeout: float):
        (Path(self.profile) / "user").mkdir()
        (Path(self.profile) / "user" / "registrymodifications.xcu").write_text(REGISTRY)
        pipe = "gpt2_lo_" + uuid.uuid4().hex
        cmd = [soffice, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
               "-env:UserInstallation=" + Path(self.profile).as_uri(),
               f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext"]
        # Own session so the whole tree (sh wrapper -> oosplash -> soffice.bin) can be killed at once;
        # soffice's stdout goes to our stderr so it never corrupts the protocol.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                     start_new_session=True)
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        t0, deadline = time.monotonic(), time.monotonic() + timeout
        while True:
            try:
                ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except NoConnectException:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"soffice exited with status {self.proc.returncode} before accepting")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"soffice did not accept a connection within {timeout:.0f} s")
                time.sleep(0.1)
        self.desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        log(f"soffice pid {self.proc.pid} connected after {time.monotonic() - t0:.2f} s")

    # --- document operations -------------------------------------------------------------------
    def load(self, path):
        self.close_doc()
        t0 = time.monotonic()
        doc = self.desktop.loadComponentFromURL(
            Path(path).resolve().as_uri(), "_blank", 0,
            props(Hidden=True, ReadOnly=False, MacroExecutionMode=NEVER_EXECUTE, UpdateDocMode=NO_UPDATE))
        if doc is None or not hasattr(doc, "Sheets"):
            if doc is not None:
                doc.close(True)
            raise RuntimeError(f"could not load {path} as a spreadsheet")
        self.doc = doc
        return {"seconds": time.monotonic() - t0}

    def calculate(self, dirty_only=False):
        t0 = time.monotonic()
        doc = self.need_doc()
        doc.calculate() if dirty_only else doc.calculateAll()
        return {"seconds": time.monotonic() - t0}

    def read(self, ranges, what="value"):
        if what not in ("value", "formula"):
            raise ValueError(f"what must be 'value' or 'formula', not {what!r}")
        out = []
        for r in ranges:
            rng = self.range(r)
            if what == "formula":
                out.append([list(row) for row in rng.getFormulaArray()])
                continue
            rows = [list(row) for row in rng.getDataArray()]
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    if v is None:   # error cells come back void: report their text instead
                        row[j] = rng.getCellByPosition(j, i).getString()
                    elif isinstance(v, str) and "\x01" in v:   # getDataArray shows a tab in text as \x01
                        row[j] = rng.getCellByPosition(j, i).getString()
            out.append(rows)
        return {"values": out}

    def write(self, address, values, first_row=0):
        rng = self.range(address)
        rows = len(values)
        cols = len(values[0]) if rows else 0
        if rows == 0 or cols == 0 or any(len(row) != cols for row in values):
            raise ValueError("values must be a non-empty rectangular list of rows")
        a = rng.getRangeAddress()
        if first_row:   # rows first_row .. first_row + rows - 1 of the range
            if not 0 < first_row <= a.EndRow - a.StartRow or a.StartRow + first_row + rows - 1 > a.EndRow:
                raise ValueError(f"rows {first_row}..{first_row + rows - 1} are outside range {address} "
                                 f"({a.EndRow - a.StartRow + 1} rows)")
            rng = rng.Spreadsheet.getCellRangeByPosition(a.StartColumn, a.StartRow + first_row,
                                                         a.EndColumn, a.StartRow + first_row + rows - 1)
            a = rng.getRangeAddress()
        if a.StartColumn == a.EndColumn and a.StartRow == a.EndRow:   # a single cell: its top-left corner
            rng = rng.Spreadsheet.getCellRangeByPosition(a.StartColumn, a.StartRow,
                                                         a.StartColumn + cols - 1, a.StartRow + rows - 1)
        elif (a.EndRow - a.StartRow + 1, a.EndColumn - a.StartColumn + 1) != (rows, cols):
            raise ValueError(f"range {address} is {a.EndRow - a.StartRow + 1}x{a.EndColumn - a.StartColumn + 1}"
                             f" but values are {rows}x{cols}")
        data = []
        for row in values:
            cells = []
            for v in row:
                if v is None:
                    v = ""
                elif isinstance(v, bool) or not isinstance(v, (int, float, str)):
                    raise ValueError(f"cannot write {v!r}: only numbers, strings and null")
                elif not isinstance(v, str):
                    v = float(v)
                cells.append(v)
            data.append(tuple(cells))
        rng.setDataArray(tuple(data))   # stores str as text, never as a formula (tested)
        return {}

    def save(self, path, filter_name=None):
        t0 = time.monotonic()
        self.need_doc().storeToURL(Path(path).resolve().as_uri(),
                                   props(FilterName=filter_name or "Calc Office Open XML", Overwrite=True))
        return {"seconds": time.monotonic() - t0}

    def export_pdf(self, path, address):
        """One range as a one-page PDF whose page is the range's size (small margins, no header or footer)."""
        t0 = time.monotonic()
        doc = self.need_doc()
        rng = self.range(address)
        style = doc.StyleFamilies.getByName("PageStyles").getByName(rng.Spreadsheet.PageStyle)
        margin = 300   # 1/100 mm
        for key in ("LeftMargin", "RightMargin", "TopMargin", "BottomMargin"):
            setattr(style, key, margin)
        for key in ("HeaderIsOn", "FooterIsOn"):
            setattr(style, key, False)
        size = rng.Size
        width, height = int(size.Width * 1.02) + 2 * margin, int(size.Height * 1.02) + 2 * margin
        style.IsLandscape = width > height
        page = style.Size
        page.Width, page.Height = width, height
        style.Size = page
        style.ScaleToPagesX = 1
        style.ScaleToPagesY = 1
        filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", props(Selection=rng))
        uno.invoke(doc, "storeToURL", (Path(path).resolve().as_uri(),
                                       props(FilterName="calc_pdf_Export", FilterData=filter_data)))
        return {"seconds": time.monotonic() - t0}

    def autocalc(self, on):
        self.need_doc().enableAutomaticCalculation(bool(on))
        return {}

    def stats(self):
        pid = self.soffice_bin_pid()
        status = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, val = line.partition(":")
            status[key] = val.strip()
        kib = lambda key: int(status[key].split()[0]) * 1024   # noqa: E731
        return {"pid": pid, "peak_rss": kib("VmHWM"), "rss": kib("VmRSS")}

    # --- helpers -----------------------------------------------------------------------------------
    def need_doc(self):
        if self.doc is None:
            raise RuntimeError("no document loaded")
        return self.doc

    def range(self, address: str):
        doc = self.need_doc()
        if doc.NamedRanges.hasByName(address):
            rng = doc.NamedRanges.getByName(address).getReferredCells()
            if rng is None:
                raise ValueError(f"defined name {address} does not refer to a cell range")
            return rng
        sheet_name, bang, cells = address.rpartition("!")
        if not bang:
            raise ValueError(f"{address!r} is neither a defined name nor a 'Sheet'!A1:B2 address")
        if len(sheet_name) >= 2 and sheet_name[0] == sheet_name[-1] == "'":
            sheet_name = sheet_name[1:-1].replace("''", "'")
        if not doc.Sheets.hasByName(sheet_name):
            raise ValueError(f"no sheet named {sheet_name!r}")
        return doc.Sheets.getByName(sheet_name).getCellRangeByName(cells.replace("$", ""))

    def soffice_bin_pid(self) -> int:
        """The soffice.bin process in our session (/usr/bin/soffice is a shell script that runs oosplash)."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "soffice.bin" \
                        and os.getsid(int(entry)) == self.proc.pid:
                    return int(entry)
            except (OSError, ProcessLookupError):
                continue
        raise RuntimeError("soffice.bin process not found")

    def close_doc(self):
        doc, self.doc = self.doc, None
        if doc is not None:
            try:
                doc.close(True)
            except Exception as e:   # noqa: BLE001 - a dying office must not stop the shutdown
                log("closing the document failed:", e)

    def shutdown(self):
        self.close_doc()
        if self.desktop is not None:
            try:
                self.desktop.terminate()
            except Exception:   # noqa: BLE001 - the bridge drops when soffice exits; that is expected
                pass
            self.desktop = None
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                log("soffice did not exit; killing it")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # also any soffice.bin left in our session
            except ProcessLookupError:
                pass
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def serve(office: Office, inp, out):
    for line in inp:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "close":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            if op == "load":
                res = office.load(req["path"])
            elif op == "calculate":
                res = office.calculate(bool(req.get("dirty_only")))
            elif op == "read":
                res = office.read(req["ranges"], req.get("what", "value"))
            elif op == "write":
                res = office.write(req["range"], req["values"], req.get("first_row", 0))
            elif op == "save":
                res = office.save(req["path"], req.get("filter"))
            elif op == "export_pdf":
                res = office.export_pdf(req["path"], req["range"])
            elif op == "autocalc":
                res = office.autocalc(req["on"])
            elif op == "stats":
                res = office.stats()
            else:
                raise ValueError(f"unknown op {op!r}")
            reply = {"ok": True, **res}
        except Exception as e:   # noqa: BLE001 - every failure becomes a reply; keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}".strip()}
            log(reply["error"])
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--soffice", default="soffice")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for soffice to accept")
    args = ap.parse_args()

    # The protocol owns the real stdout; everything else (print, C-level writes) goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)

    office = Office()
    try:
        office.start(args.soffice, args.timeout)
        out.write(json.dumps({"ok": True, "ready": True}) + "\n")
        out.flush()
        serve(office, sys.stdin, out)
    except Exception as e:   # noqa: BLE001
        log(f"{type(e).__name__}: {e}")
        try:
            out.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
            out.flush()
        except OSError:
            pass
        return 1
    finally:
        office.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
