"""The model's head: final layer norm (`ln_f`), the vocabulary with the logits of the last filled position
(`logits`, vocabulary down the rows) and the top-k next tokens with their probabilities (`predict`)."""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import Chart, Plan, Range, Sheet, Stack
from .embeddings import label_rows
from .layernorm import add_layer_norm

TOP_K = 10


def add_final_norm_sheet(plan: Plan, config: GPT2Config, x: Range, w: dict[str, str]) -> Range:
    s = plan.add(Sheet("ln_f", "compute", title="Final layer norm: ln_f(x)", role="activation",
                       about="the final layer norm of the last layer's output",
                       equation="ln_f(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b"))
    s.put(0, 0, s.title, style="title")
    out = Stack(s).section("ln_f(x) of the last layer's output", x.rows, config.n_embd)
    add_layer_norm(plan, s, x, out, w["ln_f.weight"], w["ln_f.bias"], config.layer_norm_epsilon)
    label_rows(s, out)
    s.freeze = (2, 1)
    plan.name("ln_f", out)
    return out


def add_logits_sheet(plan: Plan, config: GPT2Config, vocab: list[str]) -> Range:
    """The vocabulary and its logits: token id, its text (always stored as text, never as a formula), and
    logits = wte @ ln_f[last]^T, one row per vocabulary entry (GPT-2 ties lm_head to wte)."""
    s = plan.add(Sheet("logits", "compute",
                       title="Logits of the next token: wte @ ln_f(x)[last position]^T (lm_head is tied to wte)",
                       role="output", about="the vocabulary (token id -> its text, control characters and partial "
                                            "UTF-8 made visible) and a score for every entry: the next-token "
                                            "logits of the last filled position",
                       equation="logits = wte ln_f(x)[last]^T"))
    s.put(0, 0, s.title, style="title")
    for col, head in enumerate(["token id", "token", "logit"]):
        s.put(1, col, head, style="header")
    V = config.n_vocab
    for i in range(V):
        s.put(2 + i, 0, i)
        s.put(2 + i, 1, vocab[i])
    plan.name("vocab_text", Range(s.name, 2, 1, V, 1))
    logits = s.array(Range(s.name, 2, 2, V, 1), f.if_tokens(f.unembed("wte", "INDEX(ln_f,last_pos,0)")))
    s.col_widths.update({0: 9, 1: 18, 2: 14})
    s.freeze = (2, 0)
    plan.name("logits", logits)
    return logits


def add_prediction_sheet(plan: Plan, config: GPT2Config) -> Range:
    s = plan.add(Sheet("predict", "compute", title="Prediction: the most likely next tokens", role="output",
                       about=f"the {TOP_K} most likely next tokens and their probabilities (bar chart)",
                       equation="p = softmax(logits) = exp(logit - max) / sum exp(logits - max)"))
    s.put(0, 0, s.title, style="title")
    s.put(1, 0, "max logit", style="header")
    s.put(1, 1, formula=f.if_tokens("MAX(logits)"))
    plan.name("max_logit", Range(s.name, 1, 1))
    s.put(2, 0, "sum of exp(logit - max)", style="header")
    s.arrays.append(_single(s, 2, 1, f.if_tokens("SUM(EXP(logits-max_logit))")))
    plan.name("softmax_denominator", Range(s.name, 2, 1))
    k = min(TOP_K, config.n_vocab)
    head_row = 4
    for col, head in enumerate(["rank", "token id", "token", "logit", "probability"]):
        s.put(head_row, col, head, style="header")
    for r in range(k):
        row = head_row + 1 + r
        logit, token = f"D{row + 1}", f"B{row + 1}"
        s.put(row, 0, r + 1)
        s.put(row, 1, formula=f.if_tokens(f"MATCH({logit},logits,0)-1"))
        s.put(row, 2, formula=f.if_tokens(f"INDEX(vocab_text,{token}+1)"))
        s.put(row, 3, formula=f.if_tokens(f"LARGE(logits,{r + 1})"))
        s.put(row, 4, formula=f.if_tokens(f"EXP({logit}-max_logit)/softmax_denominator"), style="percent")
    top = Range(s.name, head_row + 1, 0, k, 5)
    plan.name("top_k", top)
    plan.name("next_token_id", top.sub(col=1, rows=1, cols=1))
    plan.name("next_token", top.sub(col=2, rows=1, cols=1))
    s.col_widths.update({0: 22, 1: 10, 2: 18, 3: 14, 4: 12})
    s.charts.append(Chart(f"next-token probability, top {k}", top.sub(col=2, cols=1), top.sub(col=4, cols=1),
                          row=1, col=6, x_title="probability"))
    s.freeze = (head_row + 1, 0)
    return top


def _single(sheet: Sheet, row: int, col: int, formula: str):
    from .core import ArrayFormula
    return ArrayFormula(Range(sheet.name, row, col), formula)
