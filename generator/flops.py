"""The FLOP tally: one source of truth for the `flops` sheet of every workbook and the `flops` command.

Each operation of the forward pass, as the workbook computes it, is a row whose count is an
expression over a few symbols, written once below. Python evaluates the expression (for the command
and the tests); `formula()` renders the very same text as a spreadsheet formula over the sheet's
named cells, so the sheet and the command cannot drift apart. Expressions are code constants made of
symbols, integers, `+`, `-`, `*`, exact `/` and parentheses: valid Python and valid spreadsheet syntax
alike.

Convention: a multiply-add is 2 FLOPs (a matrix product m x k . k x n is 2*m*k*n); every other
addition, subtraction, multiplication, division and comparison (MAX) is 1; exp, tanh and a square
root count 1 each (one function evaluation); x^3 is 2 multiplications; lookups and data movement
(INDEX, TRANSPOSE, LARGE, MATCH, merging the heads) are free. Counts follow the formulas as written:
the softmax formula evaluates MAX and EXP twice, VAR.P computes its own mean. Query t computes its
scores, softmax and weighted sum over keys 1..t only (the causal half); the matrix-multiply-only
convention (b) counts the full T x T products, as torch.utils.flop_counter does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .config import PUBLISHED, GPT2Config, GPT2Error

# symbol -> (defined name of its cell in the workbook, meaning)
SYMBOLS = {
    "T": ("n_tokens", "tokens filled in (the count of token ids on the tokens sheet)"),
    "C": ("n_embd", "width of the residual stream"),
    "V": ("n_vocab", "vocabulary size"),
    "L": ("n_layer", "transformer blocks"),
    "H": ("n_head", "attention heads"),
    "d": ("head_size", "width of one head, C / H"),
    "F": ("n_inner", "width of the MLP, 4C"),
    "K": ("n_top_k", "next-token probabilities shown on the predict sheet"),
    "N": ("params_total", "parameters, embeddings included"),
    "N_ne": ("params_nonembed", "parameters without the embeddings wte and wpe"),
}

CONVENTION = (
    "Convention: a multiply-add is 2 FLOPs, so a matrix product (m x k)(k x n) is 2*m*k*n. Every other addition, "
    "subtraction, multiplication, division and comparison (MAX) is 1 FLOP; exp, tanh and a square root count "
    "1 FLOP each (one function evaluation, whatever it costs in hardware); x^3 is 2 multiplications. Lookups and "
    "data movement (INDEX, TRANSPOSE, LARGE, MATCH, merging the heads) are free. Counts follow the formulas as "
    "written: the softmax formula evaluates MAX and EXP twice, VAR.P computes its own mean. Query t computes "
    "scores, softmax and weighted sum over keys 1..t only (the causal half); convention (b) counts the full "
    "T x T products, as torch.utils.flop_counter does."
)


@dataclass(frozen=True)
class Op:
    stage: str            # "embedding", "attention", "MLP", "head"
    name: str
    shapes: str
    flops: str            # every operation, as computed: per layer for block operations, else once
    matmul: str = "0"     # the matrix-multiply part (what torch.utils.flop_counter counts)
    all_positions: str | None = None  # matrix multiply with logits at every position (the logits row)
    per_layer: bool = False
    group: str = ""       # "dense", "attention" or "logits": the matrix-multiply breakdown


LAYER_NORM = "T*(9*C + 2)"  # mean C, x - mean C, VAR.P 4C, + eps 1, sqrt 1, divide C, * g C, + b C

OPS = [
    Op("embedding", "token embedding gather wte[id]", "T ids -> T x C", "0"),
    Op("embedding", "add position embedding wpe[t]", "T x C + T x C", "T*C"),
    Op("attention", "layer norm ln_1", "T x C, per row", LAYER_NORM, per_layer=True),
    Op("attention", "q|k|v = a W_attn + b", "(T x C)(C x 3C) + 3C", "2*T*C*3*C + T*3*C", "2*T*C*3*C",
       per_layer=True, group="dense"),
    Op("attention", "scores q k^T / sqrt(d), causal", "H x (1 x d)(d x t), t = 1..T",
       "H*(d*T*(T+1) + T*(T+1)/2 + T)", "H*2*T*T*d", per_layer=True, group="attention"),
    Op("attention", "causal mask", "keys after the query: not computed", "0", per_layer=True),
    Op("attention", "softmax, row by row", "H x rows of t = 1..T", "H*(4*T*(T+1) - 3*T)", per_layer=True),
    Op("attention", "weighted sum P v, x head switch", "H x (1 x t)(t x d), t = 1..T", "H*(d*T*(T+1) + T*d)",
       "H*2*T*T*d", per_layer=True, group="attention"),
    Op("attention", "output projection heads W_proj + b", "(T x C)(C x C) + C", "2*T*C*C + T*C", "2*T*C*C",
       per_layer=True, group="dense"),
    Op("attention", "residual add", "T x C", "T*C", per_layer=True),
    Op("MLP", "layer norm ln_2", "T x C, per row", LAYER_NORM, per_layer=True),
    Op("MLP", "fc = m W_fc + b", "(T x C)(C x F) + F", "2*T*C*F + T*F", "2*T*C*F", per_layer=True, group="dense"),
    Op("MLP", "GELU (tanh form)", "T x F", "9*T*F", per_layer=True),
    Op("MLP", "projection g W_proj + b", "(T x F)(F x C) + C", "2*T*F*C + T*C", "2*T*F*C",
       per_layer=True, group="dense"),
    Op("MLP", "residual add", "T x C", "T*C", per_layer=True),
    Op("head", "final layer norm ln_f", "T x C, per row", LAYER_NORM),
    Op("head", "logits wte ln_f[last]^T", "(V x C)(C x 1), last position", "2*C*V", "2*C*V",
       all_positions="2*T*C*V", group="logits"),
    Op("head", "softmax over the vocabulary", "V logits, top K probabilities", "4*V - 2 + 3*K"),
]


@dataclass(frozen=True)
class Convention:
    name: str    # defined name of its total on the sheet
    label: str
    expr: str | None  # None: the sum of a column of the table (named `name`)
    note: str


CHINCHILLA = ("2*T*V*C + L*(2*3*T*C*(d*H) + 2*T*T*(d*H) + 3*H*T*T + 2*T*T*(d*H) + 2*T*(d*H)*C"
              " + 2*T*(C*F + C*F)) + 2*T*C*V")

CONVENTIONS = [
    Convention("flops_total", "(a) every operation, as computed", None,
               "everything above: biases, norms, softmax, GELU; logits of the last position only"),
    Convention("flops_matmul_all", "(b) matrix multiplies only, logits at all T positions", None,
               "torch.utils.flop_counter: 2*m*n*k per product, all else free; what a training step's forward costs"),
    Convention("flops_matmul_last", "(b) matrix multiplies only, logits at the last position", None,
               "the same, but only the row a generator needs"),
    Convention("flops_2n", "(c) 2 N per token, embeddings included", "2*N*T",
               "every parameter in one multiply-add per token"),
    Convention("flops_2n_nonembed", "(c) 2 N per token, without embeddings", "2*N_ne*T",
               "wte and wpe are looked up, not multiplied"),
    Convention("flops_kaplan", "(d) Kaplan et al. 2020, Table 1: C_forward = 2N + 2 n_layer n_ctx d_attn", "T*(2*N_ne + 2*L*T*C)",
               "N without embeddings, n_ctx = T, d_attn = C; no logits"),
    Convention("flops_chinchilla", "(e) Hoffmann et al. 2022 (Chinchilla), Appendix F", CHINCHILLA,
               "embedding counted as a one-hot matmul 2TVC, softmax 3 per score, logits at all positions, no biases or norms"),
]

WHY = [
    "Why they differ: (b) keeps only the matrix products. At GPT-2's widths they are nearly all the work, so (a) "
    "is only a little above (b) with logits at the last position; at toy widths the norms and softmaxes show.",
    "The logits are one (V x C)(C x 1) product per position. At all positions they are about a third of GPT-2 "
    "Small's forward pass for a few tokens; a generator needs only the last row, and so does this workbook.",
    "(c) assumes every parameter does one multiply-add per token: right for the dense layers and for wte (used "
    "once per position by the tied logits), wrong for wpe (only looked up); it misses the T x T attention "
    "products, which grow with T. With embeddings it lands close to (b) at all positions, without them close "
    "to the blocks alone.",
    "(d) drops embeddings and logits and adds 2 n_layer n_ctx d_attn per token for attention (one of the two "
    "T x T products, or both over the causal half). (e) also counts the embedding lookup as a one-hot matrix "
    "product (2 T V C) and 3 FLOPs per softmax score, so it sits about 2 T V C above (b).",
    "FLOPs per token per parameter is about 2 for a forward pass; training adds a backward pass of about "
    "twice the forward, hence the 6 in 6 N D below.",
]


def pretty(expr: str) -> str:
    """The expression as shown on the sheet: 2*T*C -> 2·T·C."""
    return expr.replace("*", "·")


def formula(expr: str, names: dict[str, str] | None = None) -> str:
    """The expression as a spreadsheet formula over defined names (no leading `=`)."""
    names = {s: n for s, (n, _) in SYMBOLS.items()} | (names or {})
    return re.sub(r"[A-Za-z_]\w*", lambda m: names[m.group()], expr)


def evaluate(expr: str, dims: dict[str, int]) -> int:
    """The expression's value. `expr` is one of the code constants above, never user input."""
    value = eval(expr, {"__builtins__": {}}, dims)  # noqa: S307 (constants of this module only)
    if isinstance(value, float):   # an exact division such as T*(T+1)/2
        assert value.is_integer(), expr
        value = int(value)
    assert isinstance(value, int), expr
    return value


def dims(config: GPT2Config, tokens: int) -> dict[str, int]:
    """The symbols' values for `config` with `tokens` filled positions."""
    from .plan.output import TOP_K
    embeddings = (config.n_vocab + config.n_positions) * config.n_embd
    n = config.n_params()
    return {"T": tokens, "C": config.n_embd, "V": config.n_vocab, "L": config.n_layer, "H": config.n_head,
            "d": config.head_size, "F": config.n_inner, "K": min(TOP_K, config.n_vocab),
            "N": n, "N_ne": n - embeddings}


@dataclass(frozen=True)
class Row:
    op: Op
    times: int       # n_layer for block operations, else 1
    flops: int       # per layer (block operations) or once
    total: int       # flops * times
    matmul: int      # matrix-multiply FLOPs, total, logits at the last position
    matmul_all: int  # the same with logits at all positions


def tally(config: GPT2Config, tokens: int) -> list[Row]:
    v = dims(config, tokens)
    rows = []
    for op in OPS:
        times = config.n_layer if op.per_layer else 1
        flops, matmul = evaluate(op.flops, v), evaluate(op.matmul, v)
        matmul_all = evaluate(op.all_positions, v) if op.all_positions else matmul
        rows.append(Row(op, times, flops, times * flops, times * matmul, times * matmul_all))
    return rows


def totals(config: GPT2Config, tokens: int) -> dict[str, int]:
    """Every total of the sheet, keyed by its defined name there."""
    rows, v = tally(config, tokens), dims(config, tokens)
    out = {
        "flops_total": sum(r.total for r in rows),
        "flops_matmul_all": sum(r.matmul_all for r in rows),
        "flops_matmul_last": sum(r.matmul for r in rows),
        "flops_matmul_dense": sum(r.matmul for r in rows if r.op.group == "dense"),
        "flops_matmul_attention": sum(r.matmul for r in rows if r.op.group == "attention"),
        "flops_logits_all": sum(r.matmul_all for r in rows if r.op.group == "logits"),
        "flops_logits_last": sum(r.matmul for r in rows if r.op.group == "logits"),
        "params_total": v["N"], "params_nonembed": v["N_ne"],
    }
    for c in CONVENTIONS:
        if c.expr is not None:
            out[c.name] = evaluate(c.expr, v)
    return out


# ----------------------------------------------------------------------------- training cost

H800_BF16_PEAK = 989e12  # dense BF16 FLOP/s of an H800 (SXM; the same tensor cores as the H100)


@dataclass(frozen=True)
class Training:
    """Inputs of the training-cost estimate. Give the GPU-hours, or the utilisation to derive them."""
    label: str
    params: float                 # N: active parameters per token
    tokens: float                 # D: training tokens
    flops_per_param: float = 6    # per token per parameter: forward 2 + backward 4
    peak: float = H800_BF16_PEAK  # FLOP/s per GPU
    utilisation: float | None = None
    price: float = 2.0            # $ per GPU-hour
    hours: tuple[float, float, float] | None = None  # pre-training, context extension, post-training


# DeepSeek-V3 Technical Report (arXiv 2412.19437), Table 1 and section 3: H800 GPU-hours at $2 per hour.
DEEPSEEK_V3 = Training("DeepSeek-V3 (published)", 37e9, 14.8e12, hours=(2_664_000, 119_000, 5_000))
OWN_UTILISATION = 0.4       # prefilled utilisation for this workbook's model (typical 30-50 %)
OWN_TOKENS_PER_PARAM = 20   # prefilled D for this workbook's model: Chinchilla-optimal 20 tokens per parameter

EXCLUDED = ("What the $5.576 M leaves out: prior research and ablation experiments on architectures, algorithms "
            "and data (the DeepSeek-V3 report says so itself); failed and exploratory runs; buying or building the cluster "
            "(2,048 H800s, rented here at $2/hour); collecting and cleaning data; staff. It is the rental price "
            "of the GPU-hours of the final run only.")
TRAINING_NOTES = [
    EXCLUDED,
    "6 N D uses the 37 B parameters active per token (of 671 B in the mixture of experts) and the 14.8 T "
    "pre-training tokens; it leaves out attention's T x T products, the multi-token-prediction module and the "
    "context-extension and post-training tokens, so the true FLOPs are somewhat higher.",
    "DeepSeek-V3 ran most matrix products in FP8, whose dense peak on an H800 is about twice the BF16 one: "
    "against that peak the implied utilisation halves.",
]


def training_cost(t: Training) -> dict[str, float]:
    """Total FLOPs, GPU-hours, cost, and the utilisation (given, or implied by the GPU-hours)."""
    flops = t.flops_per_param * t.params * t.tokens
    if t.hours is not None:
        pre, extra = t.hours[0], t.hours[1] + t.hours[2]
    else:
        pre, extra = flops / (t.peak * t.utilisation * 3600), 0.0
    return {"flops": flops, "gpu_hours_pre": pre, "gpu_hours": pre + extra, "cost_pre": pre * t.price,
            "cost": (pre + extra) * t.price, "utilisation": flops / (pre * 3600 * t.peak),
            "utilisation_all": flops / ((pre + extra) * 3600 * t.peak)}


# ----------------------------------------------------------------------------- the command's table

def command(weights=None, model: str | None = None, layers: int | None = None, tokens: int = 6) -> str:
    """`gpt2-workbook flops`: the tally of a published configuration, a checkpoint, or the embedded demo."""
    if model is not None:
        config, label = PUBLISHED[model], model
        if layers is not None:
            if not 1 <= layers <= config.n_layer:
                raise GPT2Error(f"--layers {layers} is out of range: {model} has {config.n_layer} layers "
                                f"(choose 1 to {config.n_layer})")
            config = config.with_layers(layers)
    else:
        from .build import load_model
        loaded = load_model(weights, layers)
        config, label = loaded.config, "the embedded demo" if weights is None else str(weights)
    if not 1 <= tokens <= config.n_positions:
        raise GPT2Error(f"--tokens {tokens} is out of range: this model has {config.n_positions} positions "
                        f"(choose 1 to {config.n_positions})")
    return report(config, tokens, label)


def report(config: GPT2Config, tokens: int, label: str) -> str:
    rows, t = tally(config, tokens), totals(config, tokens)
    out = [f"FLOP tally of {label}: {config.n_layer} layers, width {config.n_embd}, {config.n_head} heads, "
           f"MLP {config.n_inner}, vocabulary {config.n_vocab:,}; T = {tokens} tokens",
           f"parameters N = {t['params_total']:,} ({t['params_nonembed']:,} without embeddings)", "",
           CONVENTION, ""]
    head = f"{'stage':<10} {'operation':<36} {'count':<24} {'FLOPs':>15} {'x':>3} {'total':>17} " \
           f"{'matmul, last':>17} {'matmul, all pos.':>17}"
    out += [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.op.stage:<10} {r.op.name:<36} {pretty(r.op.flops):<24} {r.flops:>15,} {r.times:>3} "
                   f"{r.total:>17,} {r.matmul:>17,} {r.matmul_all:>17,}")
    out += ["-" * len(head),
            f"{'':<10} {'total':<36} {'':<24} {'':>15} {'':>3} {t['flops_total']:>17,} "
            f"{t['flops_matmul_last']:>17,} {t['flops_matmul_all']:>17,}", "",
            f"matrix multiplies: dense layers {t['flops_matmul_dense']:,}, attention scores and values "
            f"{t['flops_matmul_attention']:,}, logits {t['flops_logits_all']:,} at all positions "
            f"({t['flops_logits_last']:,} at the last)", "",
            f"{'convention':<72} {'FLOPs':>17} {'per token':>15} {'per token per param':>20}"]
    for c in CONVENTIONS:
        value = t[c.name]
        per_token = value / tokens if tokens else float("nan")
        out.append(f"{c.label:<72} {value:>17,} {per_token:>15,.0f} {per_token / t['params_total']:>20.3f}")
    out += ["", *WHY, "", "Training cost (6 N D), DeepSeek-V3's published figures:"]
    ds = training_cost(DEEPSEEK_V3)
    out += [f"  N = 37 B active parameters, D = 14.8 T tokens: 6 N D = {ds['flops']:.4g} FLOPs",
            f"  2,664 K + 119 K + 5 K = {ds['gpu_hours']:,.0f} H800 GPU-hours x $2 = ${ds['cost']:,.0f} "
            f"(pre-training alone ${ds['cost_pre']:,.0f})",
            f"  implied utilisation at {H800_BF16_PEAK / 1e12:.0f} TFLOP/s dense BF16: {ds['utilisation']:.1%} "
            f"of the pre-training GPU-hours ({ds['utilisation_all']:.1%} of all)",
            *(f"  {note}" for note in TRAINING_NOTES)]
    own = training_cost(Training(label, t["params_total"], OWN_TOKENS_PER_PARAM * t["params_total"],
                                 utilisation=OWN_UTILISATION))
    out += [f"Training cost of {label} on {OWN_TOKENS_PER_PARAM} tokens per parameter at {OWN_UTILISATION:.0%} "
            f"utilisation: {own['flops']:.4g} FLOPs, {own['gpu_hours']:,.1f} H800 GPU-hours, ${own['cost']:,.2f}"]
    return "\n".join(out)
