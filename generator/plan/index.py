"""The `index` sheet, first in the workbook: what it is, the model, how to change the prompt, the colour code,
and a hyperlinked table of contents of every sheet in forward-pass order (step, what it computes, equation).

`number_steps` gives the forward pass's sheets their step numbers (shown in their title rows)."""
from __future__ import annotations

from ..config import GPT2Config
from .core import Plan, Sheet
from .style import MEANING

UNNUMBERED = ("control", "flops")   # not steps of the forward pass


def number_steps(plan: Plan) -> None:
    step = 0
    for s in plan.sheets:
        if s.kind == "weights" or s.name in UNNUMBERED:
            continue
        step += 1
        s.step = step
        title = next((c for c in s.cells if (c.row, c.col) == (0, 0) and isinstance(c.value, str)), None)
        if title is not None:
            title.value = f"Step {step} · {title.value}"


def add_index_sheet(plan: Plan, config: GPT2Config, n_ctx: int, prompt: str | None) -> Sheet:
    """Build the index (call last: it lists every sheet) and move it to the front."""
    s = Sheet("index", "info", title="GPT-2 in a spreadsheet: the whole forward pass as formulas you can follow")
    s.put(0, 0, s.title, style="title")
    intro = [
        "This workbook computes GPT-2's next-token prediction with ordinary spreadsheet formulas: token and position "
        "embeddings, every layer's attention and MLP, the layer norms, the logits and the most likely next tokens.",
        "Click a sheet name below to go there. Every block of numbers has a defined name (Formulas > Name Manager), "
        "so formulas read like the math, e.g. {=MMULT(h0_ln_1,h0_attn_c_attn_w)+h0_attn_c_attn_b}.",
    ]
    row = 1
    for line in intro:
        s.put(row, 0, line)
        row += 1

    row += 1
    s.put(row, 0, "The model", style="heading")
    model = [("layers", config.n_layer), ("width (n_embd)", config.n_embd), ("attention heads", config.n_head),
             ("head size", config.head_size), ("MLP width", config.n_inner), ("vocabulary", config.n_vocab),
             ("positions (n_positions)", config.n_positions), ("token slots in this workbook", n_ctx),
             ("layer norm epsilon", config.layer_norm_epsilon)]
    for label, value in model:
        row += 1
        s.put(row, 0, label, style="header")
        s.put(row, 1, value)
    if prompt:
        row += 1
        s.put(row, 0, "built with the prompt", style="header")
        s.put(row, 1, prompt)

    row += 2
    s.put(row, 0, "Change the prompt", style="heading")
    howto = [
        ("tokens", "Type token ids into the yellow cells of column B of the tokens sheet (look ids up in the "
                   "token column of the logits sheet); everything recalculates and the predict sheet shows the next token."),
        ("control", "Or type text into the control sheet's prompt and run `gpt2-workbook run FILE --prompt TEXT` "
                    "(LibreOffice) or press its button (Excel, .xlsm with xlwings): it tokenizes and generates."),
        ("control", "Experiment: set one of the control sheet's attention-head switches to 0 to remove that head's "
                    "output, and watch the prediction change."),
    ]
    if any(sh.name == "logit lens" for sh in plan.sheets):
        howto.append(("logit lens", "The logit lens sheet shows what the model would predict after each layer."))
    for target, text in howto:
        row += 1
        s.put(row, 0, target, style="link", link=target)
        s.put(row, 1, text)

    row += 2
    s.put(row, 0, "Colour code (cell fills and sheet tabs)", style="heading")
    for role, text in MEANING.items():
        row += 1
        s.put(row, 0, role, style=f"swatch_{role}")
        s.put(row, 1, text)

    row += 2
    s.put(row, 0, "Contents, in forward-pass order", style="heading")
    row += 1
    for col, text in enumerate(["sheet", "step", "what it computes", "equation"]):
        s.put(row, col, text, style="header")
    for sheet in plan.sheets:
        row += 1
        s.put(row, 0, sheet.name, style="link", link=sheet.name)
        s.put(row, 1, sheet.step, style="center")
        s.put(row, 2, sheet.about or sheet.title)
        s.put(row, 3, sheet.equation)
    s.col_widths.update({0: 28, 1: 14, 2: 100, 3: 70})
    s.freeze = (1, 0)
    plan.sheets.insert(0, s)
    return s
