"""The `control` sheet: prompt in, text out. The second sheet, after the index.

Input cells (yellow) hold the generation settings, output cells the continuation and a per-step
table; both are written by `generator.generate` (the one generation loop), driven from Excel by the
xlwings macros (`generator.xlwings_macros`) or from the command line by `gpt2-workbook run`
(LibreOffice). Nothing here is a formula except the live preview of the next token; the only cells the
model reads are the attention-head switches (1 = on, 0 = that head's output removed).

The sheet also carries the workbook's format marker (`gpt2_workbook_format`, an integer that changes
whenever the names and layout the loop relies on change) and the model's shape.
"""
from __future__ import annotations

from importlib import metadata

from ..config import GPT2Config
from .core import Button, Plan, Range, Sheet

FORMAT_VERSION = 1

# Module1 of xlwings' standalone quickstart VBA project (see generator/xlsm.py):
#     RunPython "import <workbook name>; <workbook name>.main()"
MAIN_MACRO = "SampleCall"

ACTIONS = ["generate", "predict", "tokenize"]
DEFAULTS = {"tokens": 5, "temperature": 0, "top_k": 0}
ALTERNATIVES = 5     # alternatives listed per step
STEP_COLUMNS = ["step", "token", "token id", "probability", f"top {ALTERNATIVES} alternatives (probability)"]


def generator_version() -> str:
    try:
        return "gpt2-workbook " + metadata.version("gpt2-workbook")
    except metadata.PackageNotFoundError:
        return "gpt2-workbook (version unknown)"


def add_control_sheet(plan: Plan, config: GPT2Config, n_ctx: int, token_ids: list[int],
                      prompt: str | None = None) -> None:
    s = plan.add(Sheet("control", "input", title="GPT-2 text generation: prompt in, text out", role="input",
                       about="prompt in, text out (generation settings, continuation, one row per token); "
                             "one on/off switch per attention head",
                       equation="next token = argmax (or a sample of) softmax(logits / temperature)"))
    s.put(0, 0, s.title, style="title")
    s.put(1, 0, "Type a prompt into the yellow cell, then press the button (Excel, macro-enabled .xlsm "
                "with xlwings) or run `gpt2-workbook run THIS_FILE --prompt TEXT` (LibreOffice).")

    def setting(row: int, label: str, value=None, style: str | None = "input") -> Range:
        s.put(row, 0, label, style="header")
        s.put(row, 1, value, style=style)
        return Range(s.name, row, 1)

    s.put(2, 0, "settings", style="heading")
    plan.name("gen_prompt", setting(3, "prompt", prompt or "", style="input_text"))
    plan.name("gen_tokens", setting(4, "tokens to generate", DEFAULTS["tokens"]))
    plan.name("gen_temperature", setting(5, "temperature (0 = greedy)", DEFAULTS["temperature"]))
    plan.name("gen_top_k", setting(6, "top-k (0 = whole vocabulary)", DEFAULTS["top_k"]))
    plan.name("gen_seed", setting(7, "seed (empty = random)"))
    action = setting(8, "button / Run main does", ACTIONS[0])
    s.choices[(action.row, action.col)] = list(ACTIONS)
    plan.name("gen_action", action)
    s.put(8, 2, "generate: tokenize the prompt, then predict N tokens · predict: one more token · "
                "tokenize: only write the prompt's token ids", style="label")
    s.buttons.append(Button(3, 3, "Run GPT-2 (the action in B9)", MAIN_MACRO))

    s.put(10, 0, "results", style="heading")
    plan.name("gen_status", setting(11, "status", "", style="wrap"))
    plan.name("gen_prompt_tokens", setting(12, "prompt tokens", len(token_ids) if token_ids else None, style=None))
    plan.name("gen_continuation", setting(13, "continuation", "", style="wrap"))
    plan.name("gen_text", setting(14, "prompt + continuation", "", style="wrap"))
    s.put(15, 0, "next token now", style="header")
    s.put(15, 1, formula='IF(n_tokens=0,"",next_token)')

    head = 17
    s.put(head - 1, 0, "steps (one row per generated token)", style="heading")
    for col, text in enumerate(STEP_COLUMNS):
        s.put(head, col, text, style="header")
    plan.name("gen_steps", Range(s.name, head + 1, 0, n_ctx, len(STEP_COLUMNS)))

    info = 6   # column G: what this workbook is
    s.put(2, info, "workbook", style="heading")
    rows = [("format", "gpt2_workbook_format", FORMAT_VERSION),
            ("made by", "gpt2_workbook_version", generator_version()),
            ("layers", "model_layers", config.n_layer),
            ("width", "model_width", config.n_embd),
            ("heads", "model_heads", config.n_head),
            ("vocabulary", "model_vocab", config.n_vocab),
            ("token slots", "model_slots", n_ctx)]
    for i, (label, name, value) in enumerate(rows):
        s.put(3 + i, info, label, style="header")
        s.put(3 + i, info + 1, value)
        plan.name(name, Range(s.name, 3 + i, info + 1))
    add_head_switches(plan, s, config, row=11, col=info)
    s.col_widths.update({0: 28, 1: 34, 2: 10, 3: 12, 4: 70, info: 12, info + 1: 22})


def add_head_switches(plan: Plan, s: Sheet, config: GPT2Config, row: int, col: int) -> None:
    """One cell per layer x head: 1 keeps the head, 0 removes its output (the heads block multiplies by it)."""
    from .attention import head_switch
    s.put(row, col, "attention head switches: 1 = on, 0 = the head's output removed (knock a head out and "
                    "watch the prediction change)", style="heading")
    s.put(row + 1, col, "layer ↓  head →", style="header")
    for h in range(config.n_head):
        s.put(row + 1, col + 1 + h, h, style="header")
    for layer in range(config.n_layer):
        s.put(row + 2 + layer, col, f"layer {layer}", style="header")
        for h in range(config.n_head):
            s.put(row + 2 + layer, col + 1 + h, 1, style="input")
            plan.name(head_switch(layer, h), Range(s.name, row + 2 + layer, col + 1 + h))
    plan.name("head_switches", Range(s.name, row + 2, col + 1, config.n_layer, config.n_head))
