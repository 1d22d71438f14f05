"""The `hN attn` sheet of layer N: layer norm 1, Q/K/V, per-head causal scores and softmax,
weighted values, output projection + residual.

    a = ln_1(x);  q|k|v = a @ W_attn + b_attn
    head_h[t] = softmax(q_h[t] k_h[0..t]^T / sqrt(d)) @ v_h[0..t]      (query t sees keys 0..t only)
    x' = x + concat(heads) @ W_proj + b_proj

Every block is one array formula per token row (see plan/inputs.py `per_slot`); the scores and
probabilities of query t fill columns 0..t only, so the causal mask is the blank upper triangle.
"""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import Plan, Range, Sheet, Stack
from .embeddings import label_rows
from .inputs import per_slot
from .layernorm import add_layer_norm


def head_switch(layer: int, head: int) -> str:
    """The defined name of the control sheet's on/off cell of one attention head."""
    return f"h{layer}_head{head}_on"


def add_attention_sheet(plan: Plan, config: GPT2Config, layer: int, x: Range, w: dict[str, str]) -> Range:
    T, C, H, d = x.rows, config.n_embd, config.n_head, config.head_size
    p = f"h.{layer}."
    n = f"h{layer}_"
    s = plan.add(Sheet(f"h{layer} attn", "compute", title=f"Layer {layer} attention", role="activation",
                       about=f"layer {layer}: layer norm 1, q/k/v, each head's causal softmax attention (heatmaps), "
                             "head switches, output projection, plus the residual",
                       equation="x'[t] = x[t] + concat_h(on_h softmax(q_h[t] k_h[..t]^T / sqrt(d)) v_h[..t]) W_proj "
                                "+ b_proj"))
    s.put(0, 0, f"{s.title}: x'[t] = x[t] + concat_h(softmax(q_h[t] k_h[0..t]^T / sqrt({d})) v_h[0..t]) W_proj + b_proj",
          style="title")
    stack = Stack(s)
    row = lambda block, t, cols=None: block.sub(row=t, rows=1, cols=cols).ref(s.name)  # row t (its first cols)
    upto = lambda block, t: block.sub(rows=t + 1).ref(s.name)                          # rows 0..t

    ln = stack.section(f"a = ln_1(x): layer norm of {x.sheet}", T, C)
    add_layer_norm(plan, s, x, ln, w[p + "ln_1.weight"], w[p + "ln_1.bias"], config.layer_norm_epsilon)
    plan.name(n + "ln_1", ln)

    qkv = stack.section("q | k | v = a W_attn + b_attn", T, 3 * C,
                        col_labels={off + h * d: f"{part}{h} (head {h})" for part, off in
                                    (("q", 0), ("k", C), ("v", 2 * C)) for h in range(H)})
    per_slot(plan, s, qkv, lambda t: f.linear(row(ln, t), w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]))
    plan.name(n + "qkv", qkv)
    for part, offset in (("q", 0), ("k", C), ("v", 2 * C)):
        for h in range(H):
            plan.name(f"{n}{part}{h}", qkv.sub(col=offset + h * d, cols=d))

    probs = []
    for h in range(H):
        q, k, v = (qkv.sub(col=off + h * d, cols=d) for off in (0, C, 2 * C))
        band = stack.section(f"head {h}: scores = q{h} k{h}^T / sqrt({d}), query t against keys 0..t (causal)   |   "
                             f"probabilities = softmax(scores) row by row (query position down, key position "
                             f"across)", T, 2 * T + 1,
                             col_labels={0: f"head {h} scores", T + 1: f"head {h} attention probabilities"})
        scores, prob = band.sub(cols=T), band.sub(col=T + 1, cols=T)
        per_slot(plan, s, scores, lambda t: f.attention_scores(row(q, t), upto(k, t), d), causal=True)
        per_slot(plan, s, prob, lambda t: f.softmax(row(scores, t, cols=t + 1)), causal=True)
        plan.name(f"{n}scores{h}", scores)
        probs.append(prob)
        plan.name(f"{n}probs{h}", prob)
        s.heatmaps.append(prob)
        label_rows(s, band)

    heads = stack.section("heads: concat_h(probabilities_h v_h) x switch_h (control sheet: 1 = on, 0 = removed)",
                          T, C, col_labels={h * d: f"head {h}" for h in range(H)})
    for h in range(H):
        v = qkv.sub(col=2 * C + h * d, cols=d)
        per_slot(plan, s, heads.sub(col=h * d, cols=d),
                 lambda t: f"{f.mmult(row(probs[h], t, cols=t + 1), upto(v, t))}*{head_switch(layer, h)}")
    plan.name(n + "heads", heads)

    out = stack.section("x' = x + heads W_proj + b_proj (attention output + residual)", T, C)
    per_slot(plan, s, out, lambda t: f.residual(
        x.row_range(t).ref(s.name), f.linear(row(heads, t), w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])))
    for block in (ln, qkv, heads, out):
        label_rows(s, block)
    s.freeze = (1, 1)
    plan.name(n + "resid_mid", out)
    return out
