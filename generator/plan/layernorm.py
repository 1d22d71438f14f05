"""Layer norm as a block of per-row array formulas (mean and variance are per token)."""
from __future__ import annotations

from . import formulas as f
from .core import Plan, Range, Sheet
from .inputs import per_slot


def add_layer_norm(plan: Plan, sheet: Sheet, x: Range, out: Range, g: str, b: str, eps: float) -> Range:
    return per_slot(plan, sheet, out, lambda t: f.layer_norm(x.row_range(t).a1(), g, b, eps))
