"""Layer norm as a block of per-row array formulas (mean and variance are per token)."""
from __future__ import annotations

from . import formulas as f
from .core import Range, Sheet


def add_layer_norm(sheet: Sheet, x: Range, out: Range, g: str, b: str, eps: float) -> Range:
    for t in range(x.rows):
        sheet.array(out.row_range(t), f.layer_norm(x.row_range(t).a1(), g, b, eps))
    return out
