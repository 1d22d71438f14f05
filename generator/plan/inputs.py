"""The `tokens` sheet: the token slots a user (or a macro) fills in, their text, how many are filled.

Every computed row of the workbook belongs to one token slot and is one array formula that tests the
slot first (`per_slot`): an empty slot computes nothing, and row t reads only rows 0..t, so a token
written into a slot recalculates that slot's rows (and the prediction), never the earlier ones.
"""
from __future__ import annotations

from typing import Callable

from . import formulas as f
from .core import Plan, Range, Sheet


def add_tokens_sheet(plan: Plan, n_ctx: int, token_ids: list[int]) -> None:
    s = plan.add(Sheet("tokens", "input", title="Input: token ids (type ids into column B, or build with --prompt)",
                       role="input", about="the token slots: type token ids into column B, from the top; their "
                                           "text; how many are filled",
                       equation="n_tokens = COUNT(token ids); empty slots compute nothing"))
    s.put(0, 0, s.title, style="title")
    for col, head in enumerate(["position", "token id", "token text"]):
        s.put(1, col, head, style="header")
    ids = plan.name("token_ids", Range(s.name, 2, 1, n_ctx, 1))
    for t in range(n_ctx):
        row = 2 + t
        s.put(row, 0, t)
        s.put(row, 1, token_ids[t] if t < len(token_ids) else None, style="input")
        b = f"B{row + 1}"
        s.put(row, 2, formula=f'IF({b}="","",INDEX(vocab_text,{b}+1))')
    plan.name("token_text", Range(s.name, 2, 2, n_ctx, 1))
    s.put(1, 4, "tokens filled", style="header")
    s.put(2, 4, formula=f"COUNT({ids})")
    plan.name("n_tokens", Range(s.name, 2, 4))
    s.put(3, 4, "last position (1-based)", style="header")
    s.put(4, 4, formula="MAX(1,n_tokens)")
    plan.name("last_pos", Range(s.name, 4, 4))
    s.col_widths.update({0: 9, 1: 9, 2: 18, 4: 22})
    s.freeze = (2, 0)


def slot(plan: Plan, t: int) -> str:
    """The token id cell of slot t (0-based), e.g. 'tokens'!$B$3."""
    return plan.names["token_ids"].row_range(t).a1()


def per_slot(plan: Plan, sheet: Sheet, block: Range, row_formula: Callable[[int], str],
             causal: bool = False) -> Range:
    """One array formula per row of `block`, row t = `row_formula(t)` when token slot t is filled, else empty.

    `causal`: row t fills only columns 0..t of a T x T block (query t against keys 0..t)."""
    for t in range(block.rows):
        target = block.sub(row=t, rows=1, cols=t + 1) if causal else block.row_range(t)
        sheet.array(target, f.if_filled(slot(plan, t), row_formula(t)))
    return block
