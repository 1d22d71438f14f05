"""Excel macros through xlwings: "tokenize prompt", "predict next token", "generate N tokens".

Each macro takes the calling workbook (an xlwings Book, `xw.Book.caller()` in the companion module
that `gpt2-workbook build --xlsm` writes), reads its settings from the control sheet (prompt, tokens
to generate, temperature, top-k, seed), runs the generation loop of `generator.generate` and writes
back the continuation, the full text, a status line and the per-step table (chosen token, its
probability, the top alternatives). Excel computes every prediction with the workbook's formulas;
Python only tokenizes, writes token ids and chooses among the workbook's logits.

This module imports without xlwings (only `caller()` needs it). The macros use this much of the
xlwings Book API, which is all the adapter needs:

    book.name
    book.names[name].refers_to_range          -> Range
    Range.options(ndim=2, err_to_str=True).value   (read: rows; numbers float, empty None)
    Range.value = rows                          (write)
    book.app.calculate()

User errors (empty or too long prompt, bad settings) end up in the control sheet's status cell
(`gen_status`, "error: ...") and are returned; nothing else is written then.
"""
from __future__ import annotations

from typing import Callable

from .config import GPT2Error
from .generate import Workbook, generate, predict_one, start


class XlwingsAdapter:
    """The loop's adapter (see generator/generate.py) on an xlwings Book."""

    def __init__(self, book):
        self.book = book

    def _range(self, name: str):
        try:
            return self.book.names[name].refers_to_range
        except Exception:   # noqa: BLE001 - xlwings raises COM/AppleScript/KeyError flavours per platform
            raise KeyError(name) from None

    def read(self, name: str) -> list[list]:
        rows = self._range(name).options(ndim=2, err_to_str=True).value
        return [["" if v is None else v for v in row] for row in rows]

    def write(self, name: str, rows: list[list], first: int = 0) -> None:
        rng = self._range(name)
        if first:
            rng = rng[first:first + len(rows), :]
        rng.value = [[excel_value(v) for v in row] for row in rows]

    def recalculate(self) -> None:
        self.book.app.calculate()


def excel_value(v):
    """Excel reads a string written to a cell like typed input ("=1+1" becomes a formula, "1/2" a date,
    "+5" a number); a leading apostrophe makes it text and is not part of the cell's value."""
    if isinstance(v, str) and v:
        return "'" + v
    return v


def _macro(book, body: Callable[[Workbook], str]) -> str:
    """Runs `body` on the workbook; user errors go to the status cell. Returns the status."""
    wb = Workbook(XlwingsAdapter(book), getattr(book, "name", "the workbook"))   # format errors propagate
    try:
        return body(wb)
    except GPT2Error as e:
        message = f"error: {e}"
        wb.status(message)
        return message


def _tokenize(wb: Workbook) -> str:
    gen = start(wb, wb.read_settings())
    wb.recalculate()   # the predict sheet and "next token now" show the prompt's prediction
    status = f"tokenized: {len(gen.prompt_ids)} of {wb.n_ctx} token slots filled"
    wb.status(status)
    return status


def _predict(wb: Workbook) -> str:
    gen = predict_one(wb, wb.read_settings())
    return wb.cell("gen_status") or gen.stop


def _generate(wb: Workbook) -> str:
    gen = generate(wb, wb.read_settings())
    return wb.cell("gen_status") or gen.stop


ACTIONS = {"generate": _generate, "predict": _predict, "tokenize": _tokenize}


def _chosen_action(wb: Workbook) -> str:
    action = wb.action()
    if action not in ACTIONS:
        raise GPT2Error(f"unknown action {action!r} on the control sheet: choose {', '.join(ACTIONS)}")
    return ACTIONS[action](wb)


def tokenize_prompt(book) -> str:
    """The control sheet's prompt -> token ids in the token slots (the per-step table is cleared)."""
    return _macro(book, _tokenize)


def predict_next_token(book) -> str:
    """One more token after whatever the token slots hold, appended to them and to the step table."""
    return _macro(book, _predict)


def generate_tokens(book) -> str:
    """Tokenize the prompt, then predict and append the requested number of tokens."""
    return _macro(book, _generate)


def run_action(book) -> str:
    """The action chosen on the control sheet (gen_action: generate, predict or tokenize)."""
    return _macro(book, _chosen_action)


def caller():
    """The workbook that called the macro (xlwings' `Book.caller()`)."""
    try:
        import xlwings
    except ImportError:
        raise GPT2Error("the Excel macros need xlwings: pip install 'gpt2-workbook[excel]'") from None
    return xlwings.Book.caller()


def main() -> None:
    """xlwings' "Run main" convention, for the calling workbook."""
    run_action(caller())
