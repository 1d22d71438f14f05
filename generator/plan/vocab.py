"""The `vocab` sheet: token id -> readable token text (always stored as text, never as a formula)."""
from __future__ import annotations

from .core import Plan, Range, Sheet


def add_vocab_sheet(plan: Plan, vocab: list[str]) -> None:
    s = plan.add(Sheet("vocab", "vocab", title="Vocabulary",
                       about="token id -> its text (control characters and partial UTF-8 made visible)"))
    s.put(0, 0, "token id", style="header")
    s.put(0, 1, "token", style="header")
    for i, text in enumerate(vocab):
        s.put(1 + i, 0, i)
        s.put(1 + i, 1, text)
    s.col_widths.update({0: 9, 1: 24})
    s.freeze = (1, 0)
    plan.name("vocab_text", Range(s.name, 1, 1, len(vocab), 1))
