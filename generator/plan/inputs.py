"""The `tokens` sheet: the token slots a user (or a macro) fills in, their text, and the causal mask."""
from __future__ import annotations

from .core import Plan, Range, Sheet

MASKED = -1e9  # added to scores of future positions: exp(-1e9 - max) is exactly 0


def add_tokens_sheet(plan: Plan, n_ctx: int, token_ids: list[int]) -> None:
    s = plan.add(Sheet("tokens", "input", title="Input: token ids (type ids into column B, or build with --prompt)",
                       role="input", about="the token slots: type token ids into column B; their text; the causal mask",
                       equation="mask[i, j] = 0 if j <= i else -1E9"))
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

    mask_col = 6
    s.put(1, mask_col, "causal mask: 0 where key position <= query position, -1E9 above the diagonal", style="header")
    mask = Range(s.name, 2, mask_col, n_ctx, n_ctx)
    for i in range(n_ctx):
        for j in range(n_ctx):
            s.put(mask.row + i, mask.col + j, MASKED if j > i else 0)
    plan.name("causal_mask", mask)
    s.col_widths.update({0: 9, 1: 9, 2: 18, 4: 22})
    s.freeze = (2, 0)
