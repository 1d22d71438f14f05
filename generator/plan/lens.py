"""The `logit lens` sheet (build --logit-lens): what the model would predict if it stopped after layer l.

    lens_l = ln_f(resid_post_l[last position]);  logits_l = wte lens_l^T;  top-k of softmax(logits_l)

The last layer's row is exactly the workbook's own prediction (ln_f of the final residual stream).
"""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import ArrayFormula, Plan, Range, Sheet, Stack, cell_ref

TOP_K = 5


def add_logit_lens_sheet(plan: Plan, config: GPT2Config, w: dict[str, str]) -> Range:
    L, C, V = config.n_layer, config.n_embd, config.n_vocab
    k = min(TOP_K, V)
    s = plan.add(Sheet("logit lens", "compute", title="Logit lens: the prediction after every layer", role="output",
                       about="the residual stream after every layer, read out through ln_f and the unembedding: "
                             "each layer's top tokens for the last filled position",
                       equation="logits_l = wte ln_f(resid_post_l[last])^T"))
    s.put(0, 0, s.title + ": logits_l = wte ln_f(resid_post_l[last position])^T", style="title")
    s.put(1, 0, "Each column is one layer: what GPT-2 would predict for the next token if the network stopped "
                "after that layer. The last column is the workbook's own prediction.", style="label")
    head = 3
    s.put(head, 0, f"top {k} tokens (probability) after each layer, last filled position", style="heading")
    s.put(head + 1, 0, "rank", style="colhead")
    for layer in range(L):
        s.put(head + 1, 1 + 2 * layer, f"after layer {layer}", style="colhead")
        s.put(head + 1, 2 + 2 * layer, "probability", style="colhead")
    stack = Stack(s, first_row=head + 2 + k + 3)
    max_row, den_row = head + 2 + k, head + 3 + k
    ln = stack.section("ln_f(resid_post_l[last position]), one row per layer", L, C)
    logits = stack.section("logits_l = wte ln_f(...)^T: one column per layer, one row per token id (row i+1 = id i)",
                           V, L, number=None)
    for layer in range(L):
        s.put(ln.row + layer, 0, f"layer {layer}", style="label")
        x = f"INDEX(h{layer}_resid_post,last_pos,0)"
        s.array(ln.row_range(layer), f.if_tokens(f.layer_norm(x, w["ln_f.weight"], w["ln_f.bias"],
                                                             config.layer_norm_epsilon)))
    plan.name("lens_ln_f", ln)
    s.array(logits, f.if_tokens(f.unembed("wte", "lens_ln_f")))
    plan.name("lens_logits", logits)
    s.put(max_row, 0, "max logit", style="colhead")
    s.put(den_row, 0, "sum of exp(logit - max)", style="colhead")
    for layer in range(L):
        col = plan.name(f"lens_logits{layer}", logits.sub(col=layer, cols=1))
        mx, den = cell_ref(max_row, 2 + 2 * layer), cell_ref(den_row, 2 + 2 * layer)
        s.put(max_row, 2 + 2 * layer, formula=f.if_tokens(f"MAX({col})"), style="number")
        s.arrays.append(ArrayFormula(Range(s.name, den_row, 2 + 2 * layer), f.if_tokens(f"SUM(EXP({col}-{mx}))"),
                                     "number"))
        for r in range(k):
            row = head + 2 + r
            large = f"LARGE({col},{r + 1})"
            s.put(row, 1 + 2 * layer, formula=f.if_tokens(f"INDEX(vocab_text,MATCH({large},{col},0))"))
            s.put(row, 2 + 2 * layer, formula=f.if_tokens(f"EXP({large}-{mx})/{den}"), style="percent")
    for r in range(k):
        s.put(head + 2 + r, 0, r + 1)
    plan.name("lens_top_k", Range(s.name, head + 2, 1, k, 2 * L))
    s.col_widths.update({0: 22, **{1 + 2 * i: 16 for i in range(L)}, **{2 + 2 * i: 11 for i in range(L)}})
    s.freeze = (head + 2, 1)
    return logits
