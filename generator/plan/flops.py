"""The `flops` sheet: the FLOP tally of this workbook's forward pass, live, and a training-cost estimate.

Rows, counting expressions and conventions come from `generator/flops.py` (the `flops` command prints
the same table). Dimensions are formulas of the workbook's own ranges, parameter counts are COUNTs over
the weight sheets, and T is the number of token ids filled in: change the prompt, the tally follows.
"""
from __future__ import annotations

from .. import flops as fl
from ..config import GPT2Config
from .core import Plan, Range, Sheet, cell_ref
from .weights import weight_name

# the tally's columns
STAGE, OP, SHAPES, COUNT, PER, TIMES, TOTAL, MM_COUNT, MM_LAST, MM_ALL, SLOTS = range(11)


def add_flops_sheet(plan: Plan, config: GPT2Config) -> Sheet:
    s = plan.add(Sheet("flops", "compute", title="FLOP tally: the forward pass of this workbook, counted by its "
                                                 "own formulas (and what training costs)",
                       about="how many floating-point operations this forward pass takes, live; what training costs",
                       equation="matmul FLOPs = 2 m n k; training FLOPs = k N D"))
    s.put(0, 0, s.title, style="title")
    s.put(1, 0, fl.CONVENTION)
    s.put(2, 0, "T is the number of token ids filled in on the tokens sheet: change them and every count below "
                "follows. Empty slots compute nothing; the last column of the table counts the work with all "
                "n_ctx slots filled.")

    def named(name: str, row: int, col: int, formula: str, style: str | None = "count") -> str:
        s.put(row, col, formula=formula, style=style)
        return plan.name(name, Range(s.name, row, col))

    # dimensions: formulas of the workbook's own ranges where the ranges tell
    row = 4
    s.put(row, 0, "Dimensions", style="heading")
    sources = {"C": "COLUMNS(wte)", "V": "ROWS(wte)", "L": str(config.n_layer), "H": str(config.n_head),
               "d": "n_embd/n_head", "F": f"COLUMNS({weight_name('h.0.mlp.c_fc.weight')})", "K": "ROWS(top_k)"}
    row += 1
    s.put(row, 0, "T", style="label")
    s.put(row, 1, fl.SYMBOLS["T"][1])
    s.put(row, 2, formula="n_tokens", style="count")
    row += 1
    s.put(row, 0, "n_ctx", style="label")
    s.put(row, 1, "token slots of the workbook")
    named("n_ctx", row, 2, "ROWS(token_ids)")
    for symbol, source in sources.items():
        row += 1
        name, meaning = fl.SYMBOLS[symbol]
        s.put(row, 0, symbol, style="label")
        s.put(row, 1, f"{name}: {meaning}")
        named(name, row, 2, source)

    # parameters: COUNT over the weight sheets
    row += 2
    s.put(row, 0, "Parameters (COUNT over the weight sheets)", style="heading")
    row += 1
    embed = []
    for key in ("wte.weight", "wpe.weight"):
        s.put(row, 1, key)
        embed.append(named(f"params_{weight_name(key)}", row, 2, f"COUNT({weight_name(key)})"))
        row += 1
    keys = list(config.param_shapes())
    first_block = row
    for layer in range(config.n_layer):
        tensors = [weight_name(k) for k in keys if k.startswith(f"h.{layer}.")]
        s.put(row, 1, f"block {layer}")
        s.put(row, 2, formula=f"COUNT({','.join(tensors)})", style="count")
        row += 1
    s.put(row, 1, "ln_f")
    s.put(row, 2, formula=f"COUNT({weight_name('ln_f.weight')},{weight_name('ln_f.bias')})", style="count")
    blocks = f"{cell_ref(first_block, 2)}:{cell_ref(row, 2)}"  # the blocks and ln_f
    row += 1
    s.put(row, 0, "N_ne", style="label")
    s.put(row, 1, fl.SYMBOLS["N_ne"][1])
    n_ne = named("params_nonembed", row, 2, f"SUM({blocks})")
    row += 1
    s.put(row, 0, "N", style="label")
    s.put(row, 1, fl.SYMBOLS["N"][1])
    named("params_total", row, 2, "+".join(embed + [n_ne]))

    # the tally
    row += 2
    s.put(row, 0, "FLOPs of the forward pass, operation by operation", style="heading")
    row += 1
    heads = ["stage", "operation", "shapes", "count (every operation)", "FLOPs per layer, or once", "x",
             "FLOPs", "matrix-multiply part", "matmul only, logits at last position",
             "matmul only, logits at all positions", "FLOPs, all n_ctx slots filled (T = n_ctx)"]
    for col, head in enumerate(heads):
        s.put(row, col, head, style="header")
    first = row + 1
    cells: dict[str, list[str]] = {"dense": [], "attention": [], "logits": []}
    block_rows = []
    for op in fl.OPS:
        row += 1
        times = "n_layer" if op.per_layer else "1"
        slots = fl.formula(op.flops, {"T": "n_ctx"})
        for col, text in ((STAGE, op.stage), (OP, op.name), (SHAPES, op.shapes), (COUNT, fl.pretty(op.flops)),
                          (MM_COUNT, fl.pretty(op.matmul) + (f"; all positions {fl.pretty(op.all_positions)}"
                                                             if op.all_positions else ""))):
            s.put(row, col, text)
        s.put(row, PER, formula=fl.formula(op.flops), style="count")
        s.put(row, TIMES, formula=times)
        s.put(row, TOTAL, formula=f"{times}*{cell_ref(row, PER)}", style="count")
        s.put(row, MM_LAST, formula=f"{times}*({fl.formula(op.matmul)})", style="count")
        s.put(row, MM_ALL, formula=f"{times}*({fl.formula(op.all_positions or op.matmul)})", style="count")
        s.put(row, SLOTS, formula=f"{times}*({slots})", style="count")
        if op.group:
            cells[op.group].append(cell_ref(row, MM_LAST))
        if op.group == "logits":
            cells["logits_all"] = [cell_ref(row, MM_ALL)]
        if op.per_layer:
            block_rows.append(cell_ref(row, PER))
    last = row
    row += 1
    s.put(row, OP, "total", style="header")
    for col, name in ((TOTAL, "flops_total"), (MM_LAST, "flops_matmul_last"), (MM_ALL, "flops_matmul_all"),
                      (SLOTS, "flops_total_all_slots")):
        named(name, row, col, f"SUM({cell_ref(first, col)}:{cell_ref(last, col)})")
    row += 1
    s.put(row, OP, "of which one transformer block")
    s.put(row, PER, formula="+".join(block_rows), style="count")
    for label, name, group in (("matrix multiplies of the dense layers, all blocks", "flops_matmul_dense", "dense"),
                               ("attention score and value products, all blocks", "flops_matmul_attention", "attention"),
                               ("logits, last position", "flops_logits_last", "logits"),
                               ("logits, all positions", "flops_logits_all", "logits_all")):
        row += 1
        s.put(row, OP, label)
        named(name, row, MM_ALL if group == "logits_all" else MM_LAST, "+".join(cells[group]))

    # the conventions side by side
    row += 2
    s.put(row, 0, "Totals in the usual conventions", style="heading")
    row += 1
    for col, head in ((OP, "convention"), (COUNT, "count"), (PER, "FLOPs per token"),
                      (TOTAL, "FLOPs"), (MM_COUNT, "per token per parameter (N)"),
                      (MM_LAST, "per token per parameter (N_ne)"), (MM_ALL, "what it counts")):
        s.put(row, col, head, style="header")
    for c in fl.CONVENTIONS:
        row += 1
        s.put(row, OP, c.label)
        s.put(row, MM_ALL, c.note)
        if c.expr is None:
            s.put(row, COUNT, "sum of the table's column")
            s.put(row, TOTAL, formula=c.name, style="count")
        else:
            s.put(row, COUNT, fl.pretty(c.expr))
            named(c.name, row, TOTAL, fl.formula(c.expr))
        total = cell_ref(row, TOTAL)
        s.put(row, PER, formula=f'IF(n_tokens>0,{total}/n_tokens,"")', style="count")
        s.put(row, MM_COUNT, formula=f'IF(n_tokens>0,{total}/(n_tokens*params_total),"")', style="ratio")
        s.put(row, MM_LAST, formula=f'IF(n_tokens>0,{total}/(n_tokens*params_nonembed),"")', style="ratio")
    row += 1
    for text in fl.WHY:
        row += 1
        s.put(row, 0, text)

    row += 2
    add_training_cost(plan, s, row)
    s.col_widths.update({STAGE: 11, OP: 44, SHAPES: 28, COUNT: 30, PER: 16, TIMES: 8, TOTAL: 18, MM_COUNT: 22,
                         MM_LAST: 20, MM_ALL: 20, SLOTS: 20})
    return s


def add_training_cost(plan: Plan, s: Sheet, row: int) -> None:
    """k N D -> GPU-hours -> dollars, for DeepSeek-V3's published figures and for this workbook's model."""
    s.put(row, 0, "Training cost: FLOPs = k N D; GPU-hours = FLOPs / (peak x utilisation x 3600 s); "
                  "cost = GPU-hours x price. Yellow cells are inputs.", style="heading")
    row += 1
    ds = fl.DEEPSEEK_V3
    columns = {"deepseek": 2, "model": 3}
    s.put(row, 2, ds.label, style="header")
    s.put(row, 3, "this workbook's model", style="header")
    inputs = [  # key, label, DeepSeek-V3, this model (a number, a formula "=...", or None for empty)
        ("N", "N: parameters active per token", ds.params, "=params_total"),
        ("D", f"D: training tokens (this model: Chinchilla-optimal {fl.OWN_TOKENS_PER_PARAM} N)", ds.tokens,
         f"={fl.OWN_TOKENS_PER_PARAM}*params_total"),
        ("k", "k: FLOPs per token per parameter (training: 2 forward + 4 backward)", ds.flops_per_param,
         ds.flops_per_param),
        ("peak", "GPU peak FLOP/s (H800, dense BF16)", ds.peak, ds.peak),
        ("price", "$ per GPU-hour", ds.price, ds.price),
        ("util", "utilisation (used when the pre-training GPU-hours are empty)", None, fl.OWN_UTILISATION),
        ("pre", "GPU-hours, pre-training", ds.hours[0], None),
        ("ctx", "GPU-hours, context extension", ds.hours[1], None),
        ("post", "GPU-hours, post-training", ds.hours[2], None),
    ]
    outputs = [  # key, label, defined name (+ _deepseek / _model), formula over the column's cells, style
        ("flops", "FLOPs = k N D", "train_flops", "{k}*{N}*{D}", "sci"),
        ("hours_pre", "GPU-hours, pre-training (given, or from the utilisation)", "train_gpu_hours_pre",
         "IF(ISNUMBER({pre}),{pre},{flops}/({peak}*{util}*3600))", "count"),
        ("hours", "GPU-hours, all", "train_gpu_hours", "{hours_pre}+SUM({ctx}:{post})", "count"),
        ("cost_pre", "cost, pre-training", "train_cost_pre", "{hours_pre}*{price}", "money"),
        ("cost", "cost, all", "train_cost", "{hours}*{price}", "money"),
        ("util_pre", "utilisation implied by the pre-training GPU-hours", "train_util",
         "{flops}/({hours_pre}*3600*{peak})", "percent"),
        ("util_all", "utilisation implied by all GPU-hours", "train_util_all", "{flops}/({hours}*3600*{peak})",
         "percent"),
    ]
    at = {}
    for key, label, *values in inputs:
        row += 1
        at[key] = row
        s.put(row, OP, label)
        for col, value in zip(columns.values(), values):
            if isinstance(value, str):
                s.put(row, col, formula=value[1:], style="input")
            else:
                s.put(row, col, value, style="input")
    for key, label, *_ in outputs:
        row += 1
        at[key] = row
        s.put(row, OP, label)
    for suffix, col in columns.items():
        cell = {key: cell_ref(r, col) for key, r in at.items()}
        for key, _, name, template, style in outputs:
            s.put(at[key], col, formula=template.format(**cell), style=style)
            plan.name(f"{name}_{suffix}", Range(s.name, at[key], col))
    row += 1
    for note in fl.TRAINING_NOTES:
        row += 1
        s.put(row, 0, note)
