"""Prompt in, text out: the one generation loop, for every spreadsheet program.

    read the prompt -> tokenize -> write the ids into the token slots -> recalculate -> read the
    predictions -> choose the next token -> append it -> repeat

It stops after N tokens, at <|endoftext|>, or when the token slots are full, and says which. Greedy by
default (the workbook's own top token); with a temperature it samples softmax(logits / temperature)
restricted to the top-k logits, computed from the workbook's own `logits` column.

The loop talks to a spreadsheet through a tiny adapter with three methods:

    read(name)        -> rows of the workbook-level defined name: floats, str, "" for empty cells
                         (raises KeyError when the workbook has no such name)
    write(name, rows, first=0)
                      -> write rows into the named range from its row `first` (0-based) on; str values
                         are always stored as text
    recalculate()     -> recalculate what changed since the last recalculation (the formulas that
                         depend on written cells; Excel's Calculate, LibreOffice's calculate())

Each step writes only the new token's slot, and every computed row of the workbook reads only its own
and earlier slots, so a step recalculates one row per sheet plus the prediction (plan/inputs.py).

Two adapters exist: LibreOffice over UNO (`generator.run.LibreOfficeAdapter`, used by
`gpt2-workbook run`) and an xlwings Book (`generator.xlwings_macros.XlwingsAdapter`, Excel).
`Workbook` below adds what the loop needs on top: the format check, the token slots, the
predictions and the control sheet's settings and outputs (see generator/plan/control.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from . import tokenizer
from .config import GPT2Error
from .plan.control import ALTERNATIVES, DEFAULTS, FORMAT_VERSION, STEP_COLUMNS

FORMAT_NAME = "gpt2_workbook_format"
# Every defined name the loop reads or writes (checked when a workbook is opened).
REQUIRED_NAMES = ("token_ids", "logits", "top_k", "next_token_id", "model_vocab",
                  "gen_prompt", "gen_tokens", "gen_temperature", "gen_top_k", "gen_seed", "gen_action",
                  "gen_status", "gen_prompt_tokens", "gen_continuation", "gen_text", "gen_steps")
COMPUTED = ("logits", "top_k", "next_token_id")


class Adapter(Protocol):
    def read(self, name: str) -> list[list]: ...

    def write(self, name: str, rows: list[list], first: int = 0) -> None: ...

    def recalculate(self) -> None: ...


# ----------------------------------------------------------------------------- choosing a token

def choose(logits, temperature: float = 0.0, top_k: int = 0, seed: int | None = None, position: int = 0) -> int:
    """The next token id from one row of logits.

    temperature 0: greedy, the largest logit (the lowest id among equal ones, like the workbook's
    MATCH(LARGE(...))). Otherwise a sample of softmax(logits / temperature) over the `top_k` largest
    logits (0: the whole vocabulary), drawn with numpy's default_rng((seed, position)), where
    `position` is the number of tokens the prediction saw: the same seed gives the same token at the
    same position whether the tokens were generated in one run or one at a time.
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if temperature <= 0:
        return int(np.argmax(logits))
    keep = np.arange(logits.size)
    if 0 < top_k < logits.size:
        keep = np.sort(np.argsort(-logits, kind="stable")[:top_k])
    z = logits[keep] / temperature
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    rng = np.random.default_rng(None if seed is None else (seed, position))
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(keep[min(i, keep.size - 1)])


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    p = np.exp(z - z.max())
    return p / p.sum()


# ----------------------------------------------------------------------------- settings and results

@dataclass
class Settings:
    prompt: str = ""
    tokens: int = DEFAULTS["tokens"]
    temperature: float = float(DEFAULTS["temperature"])
    top_k: int = DEFAULTS["top_k"]
    seed: int | None = None

    def check(self) -> "Settings":
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1:
            raise GPT2Error(f"tokens to generate must be a whole number of at least 1, not {self.tokens!r}")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature >= 0):
            raise GPT2Error(f"the temperature must be a number of at least 0 (0 = greedy), not {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise GPT2Error(f"top-k must be a whole number of at least 0 (0 = whole vocabulary), not {self.top_k!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise GPT2Error(f"the seed must be a whole number of at least 0, not {self.seed!r}")
        return self

    @property
    def mode(self) -> str:
        if self.temperature <= 0:
            return "greedy"
        k = f"top-{self.top_k}" if self.top_k else "whole vocabulary"
        return f"sampling at temperature {self.temperature:g}, {k}, seed {'random' if self.seed is None else self.seed}"


@dataclass
class Candidate:
    token_id: int
    text: str          # as the vocabulary sheet shows it (control characters escaped)
    probability: float


@dataclass
class Step:
    position: int      # tokens the prediction saw; the chosen token goes into slot `position` (0-based)
    token_id: int
    text: str
    probability: float  # softmax(logits) of the chosen token
    alternatives: list[Candidate]
    seconds: float     # recalculate + read + choose + write


@dataclass
class Generation:
    prompt_ids: list[int]
    n_ctx: int
    steps: list[Step] = field(default_factory=list)
    earlier_ids: list[int] = field(default_factory=list)   # generated by earlier calls (predict one at a time)
    earlier_rows: list[list] = field(default_factory=list)  # their rows of the step table
    stop: str = ""

    @property
    def new_ids(self) -> list[int]:
        return self.earlier_ids + [s.token_id for s in self.steps]

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.new_ids

    @property
    def continuation(self) -> str:
        return decode(self.new_ids)

    @property
    def text(self) -> str:
        return decode(self.ids)

    @property
    def seconds_per_token(self) -> float | None:
        return sum(s.seconds for s in self.steps) / len(self.steps) if self.steps else None

    def step_rows(self) -> list[list]:
        rows = list(self.earlier_rows)
        for s in self.steps:
            alternatives = " · ".join(f"{quoted(c.text)} {percent(c.probability)}" for c in s.alternatives)
            rows.append([len(rows) + 1, s.text, s.token_id, s.probability, alternatives])
        return rows


def decode(ids) -> str:
    return tokenizer.decode([i for i in ids if i < tokenizer.N_VOCAB])


def token_text(i: int) -> str:
    return tokenizer.vocabulary()[i] if 0 <= i < tokenizer.N_VOCAB else f"<{i}>"


def quoted(text: str) -> str:
    return "'" + text + "'"


def percent(p: float) -> str:
    """Three significant digits: 12.3%, 0.00512% (a random model spreads its probability thin)."""
    return f"{100 * p:.3g}%"


# ----------------------------------------------------------------------------- the workbook

class Workbook:
    """A workbook made by `gpt2-workbook build`, seen through an adapter."""

    def __init__(self, adapter: Adapter, where: str = "the workbook"):
        self.io = adapter
        self.where = where
        self.check_format()
        self.n_ctx = len(self.read("token_ids"))
        self.n_vocab = int(self.number("model_vocab", "the vocabulary size"))

    # --- reading and writing through the adapter ---------------------------------------------------
    def read(self, name: str) -> list[list]:
        try:
            return self.io.read(name)
        except KeyError:
            raise GPT2Error(f"{self.where} has no defined name {name}: it was not made by this version of "
                            f"gpt2-workbook; rebuild it with `gpt2-workbook build`") from None

    def write(self, name: str, rows: list[list], first: int = 0) -> None:
        try:
            self.io.write(name, rows, first)
        except KeyError:
            raise GPT2Error(f"{self.where} has no defined name {name}: it was not made by this version of "
                            f"gpt2-workbook; rebuild it with `gpt2-workbook build`") from None

    def cell(self, name: str):
        return self.read(name)[0][0]

    def number(self, name: str, what: str) -> float:
        v = self.cell(name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise GPT2Error(f"{self.where}: {what} ({name}) should be a number but is {v!r}")
        return float(v)

    def check_format(self) -> None:
        try:
            marker = self.io.read(FORMAT_NAME)[0][0]
        except KeyError:
            raise GPT2Error(f"{self.where} was not made by gpt2-workbook (it has no {FORMAT_NAME} name), or by a "
                            f"version older than text generation: build it with `gpt2-workbook build`") from None
        if marker != FORMAT_VERSION:
            try:
                made_by = self.io.read("gpt2_workbook_version")[0][0]
            except KeyError:
                made_by = "another version"
            raise GPT2Error(f"{self.where} was made by {made_by or 'another version'} in workbook format {marker!r}; "
                            f"this gpt2-workbook reads format {FORMAT_VERSION}: rebuild it with `gpt2-workbook build`")
        missing = []
        for name in REQUIRED_NAMES:
            if name in COMPUTED:   # reading them could start a recalculation: checked when first read
                continue
            try:
                self.io.read(name)
            except KeyError:
                missing.append(name)
        if missing:
            raise GPT2Error(f"{self.where} claims workbook format {FORMAT_VERSION} but lacks the defined names "
                            f"{', '.join(missing)}: rebuild it with `gpt2-workbook build`")

    # --- token slots -------------------------------------------------------------------------------
    def read_ids(self) -> list[int]:
        """The filled token slots (filled from the top, no gaps)."""
        ids = []
        column = [row[0] for row in self.read("token_ids")]
        for t, v in enumerate(column):
            if v == "" or v is None:
                if any(w not in ("", None) for w in column[t:]):
                    raise GPT2Error(f"token slot {t + 1} is empty but later ones are filled: "
                                    f"fill the token slots from the top, without gaps")
                break
            if not isinstance(v, float | int) or v != int(v) or not 0 <= v < self.n_vocab:
                raise GPT2Error(f"token slot {t + 1} holds {v!r}, not a token id from 0 to {self.n_vocab - 1}")
            ids.append(int(v))
        return ids

    def write_ids(self, ids: list[int], start: int = 0) -> None:
        """Slots `start`.. get ids[start:], the rest are emptied; earlier slots are not touched (writing a
        cell, even with its own value, makes everything computed from it recalculate)."""
        if len(ids) > self.n_ctx:
            raise GPT2Error(f"{len(ids)} tokens do not fit into {self.n_ctx} token slots")
        rows = [[i] for i in ids] + [[None]] * (self.n_ctx - len(ids))
        self.write("token_ids", rows[start:], start)

    def tokenize(self, prompt) -> list[int]:
        """The prompt's token ids, checked against the slots and the vocabulary (nothing is written)."""
        if prompt is not None and not isinstance(prompt, str):
            raise GPT2Error(f"the prompt must be text, not {prompt!r}")
        return tokenizer.encode_prompt(prompt, self.n_ctx, n_vocab=self.n_vocab)

    # --- predictions -------------------------------------------------------------------------------
    def recalculate(self) -> None:
        self.io.recalculate()

    def read_logits(self) -> np.ndarray:
        rows = self.read("logits")
        try:
            logits = np.array([row[0] for row in rows], dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(row[0] for row in rows if not isinstance(row[0], (int, float)))
            raise GPT2Error(f"{self.where}: the logits column holds {bad!r} instead of numbers; check the token "
                            f"ids on the tokens sheet") from None
        if not np.isfinite(logits).all():
            raise GPT2Error(f"{self.where}: the logits column holds non-finite values")
        return logits

    def read_top_k(self) -> list[Candidate]:
        return [Candidate(int(row[1]), str(row[2]), float(row[4])) for row in self.read("top_k")
                if isinstance(row[1], (int, float))]

    # --- the control sheet -------------------------------------------------------------------------
    def read_settings(self) -> Settings:
        prompt = self.cell("gen_prompt")
        if isinstance(prompt, float):   # a number typed into a cell that is not formatted as text
            prompt = str(int(prompt)) if prompt == int(prompt) else repr(prompt)
        return Settings(prompt=prompt,
                        tokens=self.setting("gen_tokens", "tokens to generate", DEFAULTS["tokens"], whole=True),
                        temperature=self.setting("gen_temperature", "the temperature", 0.0),
                        top_k=self.setting("gen_top_k", "top-k", 0, whole=True),
                        seed=self.setting("gen_seed", "the seed", None, whole=True)).check()

    def setting(self, name: str, what: str, default, whole: bool = False):
        v = self.cell(name)
        if v == "" or v is None:
            return default
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                raise GPT2Error(f"{what} (control sheet, {name}) must be a number, not {v!r}") from None
        if whole:
            if v != int(v):
                raise GPT2Error(f"{what} (control sheet, {name}) must be a whole number, not {v!r}")
            return int(v)
        return float(v)

    def write_settings(self, s: Settings) -> None:
        self.write("gen_prompt", [[s.prompt]])
        self.write("gen_tokens", [[s.tokens]])
        self.write("gen_temperature", [[s.temperature]])
        self.write("gen_top_k", [[s.top_k]])
        self.write("gen_seed", [[s.seed]])

    def action(self) -> str:
        v = self.cell("gen_action")
        return v.strip().lower() if isinstance(v, str) and v.strip() else "generate"

    def status(self, text: str) -> None:
        self.write("gen_status", [[text]])

    def write_outputs(self, gen: Generation, status: str) -> None:
        rows = gen.step_rows()[: self.n_ctx]
        blank = [None] * len(STEP_COLUMNS)
        self.write("gen_steps", rows + [blank] * (self.n_ctx - len(rows)))
        self.write("gen_prompt_tokens", [[len(gen.prompt_ids)]])
        self.write("gen_continuation", [[gen.continuation]])
        self.write("gen_text", [[gen.text]])
        self.status(status)

    def resume(self) -> Generation:
        """The state the control sheet and the token slots describe (for one more step)."""
        ids = self.read_ids()
        n = self.cell("gen_prompt_tokens")
        n = int(n) if isinstance(n, (int, float)) and 0 < n <= len(ids) else len(ids)
        rows = [row for row in self.read("gen_steps") if row[0] not in ("", None)]
        if len(rows) != len(ids) - n:   # the slots were edited by hand since: start the table afresh
            rows = []
        return Generation(prompt_ids=ids[:n], n_ctx=self.n_ctx, earlier_ids=ids[n:], earlier_rows=rows)

    # --- one step ----------------------------------------------------------------------------------
    def step(self, ids: list[int], settings: Settings) -> Step:
        """Recalculate with `ids` in the slots, choose the next token, append it to the slots."""
        t0 = time.perf_counter()
        self.recalculate()
        logits = self.read_logits()
        if logits.size != self.n_vocab:
            raise GPT2Error(f"{self.where}: the logits column has {logits.size} rows, the vocabulary {self.n_vocab}")
        top = self.read_top_k()
        greedy = int(np.argmax(logits))
        shown = int(self.number("next_token_id", "the predicted token id"))
        if shown != greedy:
            raise GPT2Error(f"{self.where}: the predict sheet says token {shown} but the largest logit is token "
                            f"{greedy}: the workbook did not recalculate")
        token = choose(logits, settings.temperature, settings.top_k, settings.seed, len(ids))
        self.write_ids(ids + [token], start=len(ids))
        p = softmax(logits)
        return Step(position=len(ids), token_id=token, text=token_text(token), probability=float(p[token]),
                    alternatives=top[:ALTERNATIVES], seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- the loop

def start(book: Workbook, settings: Settings) -> Generation:
    """Tokenize the prompt and write its ids into the slots (nothing is written if it does not fit)."""
    settings.check()
    ids = book.tokenize(settings.prompt)
    book.write_ids(ids)
    gen = Generation(prompt_ids=ids, n_ctx=book.n_ctx)
    book.write_outputs(gen, f"tokenized: {len(ids)} of {book.n_ctx} token slots filled")
    return gen


def run_steps(book: Workbook, gen: Generation, settings: Settings, tokens: int,
              on_step: Callable[[Step], None] | None = None) -> Generation:
    """Predict and append up to `tokens` tokens; `gen.stop` says why it stopped."""
    asked = tokens
    for _ in range(tokens):
        if len(gen.ids) >= book.n_ctx:
            gen.stop = (f"stopped after {len(gen.steps)} of {asked} tokens: all {book.n_ctx} token slots are full "
                        f"(build with a larger --context for longer text)")
            break
        step = book.step(gen.ids, settings)
        gen.steps.append(step)
        if on_step:
            on_step(step)
        if step.token_id == tokenizer.EOT_ID:
            gen.stop = f"stopped after {len(gen.steps)} of {asked} tokens at <|endoftext|>"
            break
        book.write_outputs(gen, f"step {len(gen.steps)} of {asked}: {quoted(step.text)} ({percent(step.probability)})")
    else:
        gen.stop = f"generated {asked} token{'s' * (asked != 1)}"
    spt = gen.seconds_per_token
    timing = f"; {spt:.2f} s per token" if spt is not None else ""
    book.write_outputs(gen, f"{gen.stop} ({settings.mode}{timing})")
    return gen


def generate(book: Workbook, settings: Settings, on_step: Callable[[Step], None] | None = None) -> Generation:
    """The whole loop: tokenize the prompt, then predict and append `settings.tokens` tokens."""
    gen = start(book, settings)
    return run_steps(book, gen, settings, settings.tokens, on_step)


def predict_one(book: Workbook, settings: Settings, on_step=None) -> Generation:
    """One more token after whatever the slots hold now."""
    settings.check()
    gen = book.resume()
    if not gen.ids:
        raise GPT2Error("the token slots are empty: type a prompt and tokenize it (or generate) first")
    return run_steps(book, gen, settings, 1, on_step)
