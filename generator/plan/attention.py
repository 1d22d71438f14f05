"""The `hN attn` sheet of layer N: layer norm 1, Q/K/V, per-head masked scores and softmax,
weighted values, output projection + residual.

    a = ln_1(x);  q|k|v = a @ W_attn + b_attn
    head_h = softmax(q_h k_h^T / sqrt(d) + mask) @ v_h
    x' = x + concat(heads) @ W_proj + b_proj
"""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import Plan, Range, Sheet, Stack
from .embeddings import label_rows
from .layernorm import add_layer_norm


def head_switch(layer: int, head: int) -> str:
    """The defined name of the control sheet's on/off cell of one attention head."""
    return f"h{layer}_head{head}_on"


def add_attention_sheet(plan: Plan, config: GPT2Config, layer: int, x: Range, w: dict[str, str]) -> Range:
    T, C, H, d = x.rows, config.n_embd, config.n_head, config.head_size
    p = f"h.{layer}."
    n = f"h{layer}_"
    s = plan.add(Sheet(f"h{layer} attn", "compute", title=f"Layer {layer} attention", role="activation",
                       about=f"layer {layer}: layer norm 1, q/k/v, each head's masked softmax attention (heatmaps), "
                             "head switches, output projection, plus the residual",
                       equation="x' = x + concat_h(on_h softmax(q_h k_h^T / sqrt(d) + mask) v_h) W_proj + b_proj"))
    s.put(0, 0, f"{s.title}: x' = x + concat_h(softmax(q_h k_h^T / sqrt({d}) + mask) v_h) W_proj + b_proj",
          style="title")
    stack = Stack(s)

    ln = stack.section(f"a = ln_1(x): layer norm of {x.sheet}", T, C)
    add_layer_norm(s, x, ln, w[p + "ln_1.weight"], w[p + "ln_1.bias"], config.layer_norm_epsilon)
    a = plan.name(n + "ln_1", ln)

    qkv_block = stack.section("q | k | v = a W_attn + b_attn", T, 3 * C,
                              col_labels={off + h * d: f"{part}{h} (head {h})" for part, off in
                                          (("q", 0), ("k", C), ("v", 2 * C)) for h in range(H)})
    s.array(qkv_block, f.linear(a, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]))
    plan.name(n + "qkv", qkv_block)
    for part, offset in (("q", 0), ("k", C), ("v", 2 * C)):
        for h in range(H):
            plan.name(f"{n}{part}{h}", qkv_block.sub(col=offset + h * d, cols=d))

    probs = []
    for h in range(H):
        band = stack.section(f"head {h}: scores = q{h} k{h}^T / sqrt({d}) + mask   |   "
                             f"probabilities = softmax(scores) row by row (query position down, key position "
                             f"across)", T, 2 * T + 1,
                             col_labels={0: f"head {h} scores", T + 1: f"head {h} attention probabilities"},
                             number="score")
        scores = s.array(band.sub(cols=T), f.attention_scores(f"{n}q{h}", f"{n}k{h}", d, "causal_mask"))
        plan.name(f"{n}scores{h}", scores)
        prob = band.sub(col=T + 1, cols=T)
        for t in range(T):
            s.array(prob.row_range(t), f.softmax(scores.row_range(t).a1()))
        probs.append(plan.name(f"{n}probs{h}", prob))
        s.heatmaps.append(prob)
        label_rows(s, band)

    heads = stack.section("heads: concat_h(probabilities_h v_h) x switch_h (control sheet: 1 = on, 0 = removed)",
                          T, C, col_labels={h * d: f"head {h}" for h in range(H)})
    for h in range(H):
        s.array(heads.sub(col=h * d, cols=d), f"{f.mmult(probs[h], f'{n}v{h}')}*{head_switch(layer, h)}")
    plan.name(n + "heads", heads)

    out = stack.section("x' = x + heads W_proj + b_proj (attention output + residual)", T, C)
    s.array(out, f.residual(plan.name_of(x), f.linear(n + "heads", w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])))
    for block in (ln, qkv_block, heads, out):
        label_rows(s, block)
    s.freeze = (1, 1)
    plan.name(n + "resid_mid", out)
    return out
