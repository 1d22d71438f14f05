"""The `hN mlp` sheet of layer N: layer norm 2, MLP (fc, GELU, projection) + residual.

    m = ln_2(x);  x' = x + gelu(m W_fc + b_fc) W_proj + b_proj

One array formula per token row (see plan/inputs.py `per_slot`).
"""
from __future__ import annotations

from ..config import GPT2Config
from . import formulas as f
from .core import Plan, Range, Sheet, Stack
from .embeddings import label_rows
from .inputs import per_slot
from .layernorm import add_layer_norm


def add_mlp_sheet(plan: Plan, config: GPT2Config, layer: int, x: Range, w: dict[str, str]) -> Range:
    T, C = x.rows, config.n_embd
    p = f"h.{layer}."
    n = f"h{layer}_"
    s = plan.add(Sheet(f"h{layer} mlp", "compute", title=f"Layer {layer} MLP", role="activation",
                       about=f"layer {layer}: layer norm 2, the MLP (fc, GELU, projection), plus the residual",
                       equation="x' = x + gelu(ln_2(x) W_fc + b_fc) W_proj + b_proj"))
    s.put(0, 0, f"{s.title}: x' = x + gelu(ln_2(x) W_fc + b_fc) W_proj + b_proj", style="title")
    stack = Stack(s)

    row = lambda block, t: block.row_range(t).ref(s.name)  # noqa: E731
    ln = stack.section(f"m = ln_2(x): layer norm of the attention output", T, C)
    add_layer_norm(plan, s, x, ln, w[p + "ln_2.weight"], w[p + "ln_2.bias"], config.layer_norm_epsilon)
    plan.name(n + "ln_2", ln)

    fc_block = stack.section("fc = m W_fc + b_fc", T, config.n_inner)
    per_slot(plan, s, fc_block, lambda t: f.linear(row(ln, t), w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]))
    plan.name(n + "fc", fc_block)

    gelu_block = stack.section("g = gelu(fc) = 0.5 fc (1 + tanh(sqrt(2/pi) (fc + 0.044715 fc^3)))", T, config.n_inner)
    per_slot(plan, s, gelu_block, lambda t: f.gelu(row(fc_block, t)))
    plan.name(n + "gelu", gelu_block)

    out = stack.section("x' = x + g W_proj + b_proj (MLP output + residual)", T, C)
    per_slot(plan, s, out, lambda t: f.residual(
        x.row_range(t).ref(s.name), f.linear(row(gelu_block, t), w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])))
    for block in (ln, fc_block, gelu_block, out):
        label_rows(s, block)
    s.freeze = (1, 1)
    plan.name(n + "resid_post", out)
    return out
