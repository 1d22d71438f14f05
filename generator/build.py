"""checkpoint -> model description -> workbook plan -> writer: the `build` command as a function."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import tokenizer
from .checkpoint import demo_checkpoint, load_checkpoint
from .config import GPT2Config, GPT2Error
from .plan import Plan, build_plan
from .writer import write_workbook

DEFAULT_CONTEXT = 10


@dataclass
class Model:
    config: GPT2Config
    params: dict[str, np.ndarray]
    source: str


def load_model(weights: str | os.PathLike | None = None, layers: int | None = None) -> Model:
    """The checkpoint at `weights` (or the embedded demo) cut to its first `layers` blocks."""
    config, params = demo_checkpoint() if weights is None else load_checkpoint(weights)
    if layers is not None:
        if not 1 <= layers <= config.n_layer:
            raise GPT2Error(f"--layers {layers} is out of range: this checkpoint has {config.n_layer} layers "
                            f"(choose 1 to {config.n_layer})")
        config = config.with_layers(layers)
        params = {k: v for k, v in params.items() if k in config.param_shapes()}
    for key, value in params.items():
        if not np.isfinite(value).all():
            raise GPT2Error(f"{weights}: tensor {key} contains NaN or infinite values")
    return Model(config, params, "demo" if weights is None else str(weights))


def vocabulary_for(config: GPT2Config) -> list[str]:
    """The display text of every id of the model's vocabulary (ids past GPT-2's 50,257 show as <id>)."""
    vocab = list(tokenizer.vocabulary()[: config.n_vocab])
    vocab += [f"<{i}>" for i in range(len(vocab), config.n_vocab)]
    return vocab


def prompt_ids(prompt: str | None, config: GPT2Config, n_ctx: int) -> list[int]:
    return [] if prompt is None else tokenizer.encode_prompt(prompt, n_ctx, n_vocab=config.n_vocab)


def check_context(context: int, config: GPT2Config) -> None:
    if not 1 <= context <= config.n_positions:
        raise GPT2Error(f"--context {context} is out of range: this model has {config.n_positions} positions "
                        f"(choose 1 to {config.n_positions})")


def plan_workbook(model: Model, context: int, prompt: str | None = None, logit_lens: bool = False) -> Plan:
    check_context(context, model.config)
    ids = prompt_ids(prompt, model.config, context)
    return build_plan(model.config, context, vocabulary_for(model.config), ids, prompt, logit_lens)


def default_output(model: Model, context: int) -> Path:
    stem = "gpt2-demo" if model.source == "demo" else Path(model.source).stem
    if stem == "model":  # model.safetensors: name it after its folder
        stem = Path(model.source).parent.name or "gpt2"
    return Path("workbooks") / f"{stem}-{model.config.n_layer}L-{context}T.xlsx"


def build(weights=None, layers=None, context=None, prompt=None, output=None, progress=False,
          xlsm=False, logit_lens=False) -> Path:
    """Build a workbook; returns its path. Raises GPT2Error on bad input, leaving any existing file intact.

    `context` (token slots) defaults to 10, or the model's n_positions when that is smaller.
    `xlsm` (or an .xlsm output): a macro-enabled workbook for Excel + xlwings, with its companion
    `<name>.py` written beside it (generator/xlsm.py). `logit_lens`: add the `logit lens` sheet.
    """
    model = load_model(weights, layers)
    if context is None:
        context = min(DEFAULT_CONTEXT, model.config.n_positions)
    plan = plan_workbook(model, context, prompt, logit_lens)
    chosen = output is not None
    output = Path(output) if chosen else default_output(model, context)
    vba = None
    if xlsm or output.suffix.lower() == ".xlsm":
        from . import xlsm as macros
        output, vba = macros.output_path(output, chosen), macros.standalone_vba_project()
    if output.parent == Path("workbooks"):
        output.parent.mkdir(exist_ok=True)
    total = sum(v.size for v in model.params.values())
    if progress:
        from tqdm import tqdm
        with tqdm(total=total, unit=" cells", unit_scale=True, desc=f"writing {output.name}") as bar:
            path = write_workbook(plan, model.params, output, bar.update, vba_project=vba)
    else:
        path = write_workbook(plan, model.params, output, vba_project=vba)
    if vba is not None:
        macros.write_companion(path)
    return path
