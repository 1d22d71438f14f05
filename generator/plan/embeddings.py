"""The `embed` sheet: x = wte[token] + wpe[position], one row per token slot."""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import Plan, Range, Sheet, Stack
from .inputs import per_slot, slot


def add_embedding_sheet(plan: Plan, config: GPT2Config, n_ctx: int) -> Range:
    s = plan.add(Sheet("embed", "compute", title="Embeddings: x = wte[token] + wpe[position]", role="activation",
                       about="each token slot's vector: its token's row of wte plus its position's row of wpe",
                       equation="x_t = wte[id_t] + wpe[t]"))
    s.put(0, 0, s.title, style="title")
    x = Stack(s).section("x (token + position embedding)", n_ctx, config.n_embd)
    label_rows(s, x)
    per_slot(plan, s, x, lambda t: f.embedding("wte", slot(plan, t), "wpe", t))
    plan.name("embed", x)
    s.freeze = (2, 1)
    return x


def label_rows(sheet: Sheet, block: Range) -> None:
    """Position number and token text ("2: world") in the label column beside a block of token rows."""
    sheet.col_widths.setdefault(0, 14)
    for t in range(block.rows):
        sheet.put(block.row + t, 0, formula=f'"{t}: "&INDEX(token_text,{t + 1})', style="label")
