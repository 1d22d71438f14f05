"""`gpt2-workbook run`: the generation loop (generator/generate.py) on LibreOffice headless over UNO.

The workbook is loaded and calculated once; then every token recalculates only the formulas its slot
changes (its own rows and the prediction: LibreOffice's calculate(), not calculateAll()). Without `save` the
input file is never written; with it the final state is stored to a temporary file beside the
workbook and renamed over it.
"""
from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Callable
from xml.etree import ElementTree

from .config import GPT2Error
from .files import replacing
from .generate import FORMAT_NAME, Generation, Settings, Step, Workbook, generate, percent, quoted
from .libreoffice import INSTALL_HINT, LibreOffice, LibreOfficeError

XLSM_FILTER = "Calc MS Excel 2007 VBA XML"   # keeps the xlwings VBA project of an .xlsm


class LibreOfficeAdapter:
    """The loop's adapter (see generator/generate.py) on a `generator.libreoffice.LibreOffice` session."""

    def __init__(self, lo: LibreOffice):
        self.lo = lo
        self.calculated = False

    def read(self, name: str) -> list[list]:
        try:
            return self.lo.read(name)[0]
        except LibreOfficeError as e:
            if "neither a defined name" in str(e):
                raise KeyError(name) from None
            raise

    def write(self, name: str, rows: list[list], first: int = 0) -> None:
        try:
            self.lo.write(name, rows, first)   # the bridge stores str as text, never as a formula
        except LibreOfficeError as e:
            if "neither a defined name" in str(e):
                raise KeyError(name) from None
            raise

    def recalculate(self) -> None:
        """Everything once (whatever the file's cached values), then only what the writes changed."""
        self.lo.calculate(dirty_only=self.calculated)
        self.calculated = True


# ----------------------------------------------------------------------------- checks before LibreOffice

def defined_names(path: Path) -> dict[str, str]:
    """Workbook-level defined names of an .xlsx/.xlsm file, read from its xl/workbook.xml."""
    if not path.exists():
        raise GPT2Error(f"{path}: no such file")
    if path.is_dir():
        raise GPT2Error(f"{path} is a folder, not a workbook")
    try:
        with zipfile.ZipFile(path) as z:
            root = ElementTree.fromstring(z.read("xl/workbook.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError):
        raise GPT2Error(f"{path} is not an .xlsx workbook (build one with `gpt2-workbook build`)") from None
    names = {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "definedName" and "localSheetId" not in el.attrib:
            names[el.attrib.get("name", "")] = el.text or ""
    return names


def check_file(path: Path) -> int:
    """Fails fast, before LibreOffice starts, on files this generator did not make; returns the token slots."""
    names = defined_names(path)
    if FORMAT_NAME not in names:
        raise GPT2Error(f"{path.name} was not made by gpt2-workbook (it has no {FORMAT_NAME} name), or by a "
                        f"version older than text generation: build it with `gpt2-workbook build`")
    m = re.search(r"\$?[A-Z]+\$?(\d+):\$?[A-Z]+\$?(\d+)$", names.get("token_ids", ""))
    if not m:
        raise GPT2Error(f"{path.name} has no token_ids range: it was not made by this version of gpt2-workbook; "
                        f"rebuild it with `gpt2-workbook build`")
    return int(m.group(2)) - int(m.group(1)) + 1


def start_libreoffice() -> LibreOffice:
    try:
        return LibreOffice()
    except LibreOfficeError as e:
        raise LibreOfficeError(one_line(e, "LibreOffice failed to start")) from None


def one_line(e: Exception, what: str) -> str:
    """A LibreOffice error (which may quote soffice's stderr over several lines) as one line."""
    text = str(e)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and INSTALL_HINT not in line and not line.startswith("lo_bridge:")]
    if len(lines) <= 1 and INSTALL_HINT in text:
        return " ".join(text.split())
    detail = lines[0].rstrip(":; ") if lines else "unknown error"
    detail = detail.removesuffix("stderr").rstrip(":; ")
    if len(lines) > 1:
        quoted_stderr = " | ".join(lines[1:])
        detail += f" (stderr: {quoted_stderr[-300:]})"
    return f"{what}: {detail}. {INSTALL_HINT}"


# ----------------------------------------------------------------------------- the command

def run(path, settings: Settings, save: bool = False, out: Callable[[str], None] = print,
        lo: LibreOffice | None = None) -> Generation:
    """Generate text with the workbook at `path` in LibreOffice; prints progress through `out`.

    `lo`: an open session to use (it is left open); by default a private one is started and stopped.
    """
    path = Path(path)
    settings.check()
    slots = check_file(path)
    from . import tokenizer
    n_prompt = len(tokenizer.encode_prompt(settings.prompt, slots, where=path.name))  # before LibreOffice starts
    own = lo is None
    t0 = time.perf_counter()
    if own:
        lo = start_libreoffice()
    try:
        started = time.perf_counter() - t0
        try:
            loaded = lo.load(path)
        except LibreOfficeError as e:
            raise GPT2Error(f"LibreOffice could not open {path.name}: {str(e).splitlines()[0]}") from None
        book = Workbook(LibreOfficeAdapter(lo), path.name)
        book.tokenize(settings.prompt)         # every check before anything is written
        book.write_settings(settings)
        layers = book.cell("model_layers")
        out(f"{path.name}: {int(layers) if isinstance(layers, float) else layers} layers, {book.n_ctx} token slots; "
            f"LibreOffice {'started in ' + format(started, '.1f') + ' s, ' if own else ''}loaded in {loaded:.1f} s")
        out(f"prompt: {quoted(settings.prompt)} ({n_prompt} tokens); {settings.mode}")
        out(f"{'step':>4}  {'token':<20} {'probability':>11}   top alternatives")

        def show(step: Step) -> None:
            alternatives = "  ".join(f"{quoted(c.text)} {percent(c.probability)}" for c in step.alternatives)
            out(f"{step.position - n_prompt + 1:>4}  {quoted(step.text):<20} {percent(step.probability):>11}   "
                f"{alternatives}   ({step.seconds:.2f} s)")

        gen = generate(book, settings, on_step=show)
        out(f"continuation: {gen.continuation}")
        out(f"text: {gen.text}")
        out(gen.stop)
        if gen.steps:
            out(f"{gen.seconds_per_token:.2f} s per token (LibreOffice recalculating the new token's rows and the "
                f"prediction, the first token the whole workbook; reading {book.n_vocab:,} logits; writing the token)")
        if save:
            book.recalculate()   # the saved file's cached values show the final state
            seconds = save_over(lo, path)
            out(f"saved {path} in {seconds:.1f} s")
        return gen
    except LibreOfficeError as e:
        raise LibreOfficeError(one_line(e, "LibreOffice failed")) from None
    finally:
        if own:
            lo.close()


def save_over(lo: LibreOffice, path: Path) -> float:
    """Store the open document over `path`: to a temporary file beside it, then renamed into place."""
    with replacing(path, path.stat().st_mode & 0o777) as tmp:
        return lo.save(tmp, XLSM_FILTER if path.suffix.lower() == ".xlsm" else None)
