"""Model description -> workbook plan, in forward-pass order.

    index, control, tokens -> embed -> [h0 attn -> h0 mlp] ... -> ln_f -> logits -> predict    (+ flops, weight sheets)
"""
from __future__ import annotations

from ..config import GPT2Config
from .attention import add_attention_sheet
from .control import add_control_sheet
from .core import ArrayFormula, Cell, Plan, Range, Sheet
from .embeddings import add_embedding_sheet
from .flops import add_flops_sheet
from .index import add_index_sheet, number_steps
from .inputs import add_tokens_sheet
from .lens import add_logit_lens_sheet
from .mlp import add_mlp_sheet
from .output import add_final_norm_sheet, add_logits_sheet, add_prediction_sheet
from .weights import add_weight_sheets, weight_name

__all__ = ["build_plan", "Plan", "Sheet", "Range", "Cell", "ArrayFormula", "weight_name"]


def build_plan(config: GPT2Config, n_ctx: int, vocab: list[str], token_ids: list[int] = (),
               prompt: str | None = None, logit_lens: bool = False) -> Plan:
    """The whole workbook for `config` with `n_ctx` token slots, the first ones filled with `token_ids`.

    `logit_lens`: add the `logit lens` sheet (each layer's prediction for the last position)."""
    plan = Plan(n_ctx=n_ctx)
    add_control_sheet(plan, config, n_ctx, list(token_ids), prompt)
    add_tokens_sheet(plan, n_ctx, list(token_ids))
    compute = Plan()  # weight sheets go last in the tab order, but their names are needed first
    w = add_weight_sheets(compute, config)
    plan.names.update(compute.names)
    x = add_embedding_sheet(plan, config, n_ctx)
    for layer in range(config.n_layer):
        x = add_attention_sheet(plan, config, layer, x, w)
        x = add_mlp_sheet(plan, config, layer, x, w)
    add_final_norm_sheet(plan, config, x, w)
    add_logits_sheet(plan, config, vocab)
    add_prediction_sheet(plan, config)
    if logit_lens:
        add_logit_lens_sheet(plan, config, w)
    add_flops_sheet(plan, config)
    plan.sheets.extend(compute.sheets)
    number_steps(plan)
    add_index_sheet(plan, config, n_ctx, prompt)
    return plan
