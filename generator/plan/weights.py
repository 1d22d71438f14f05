"""Weight sheets: one per checkpoint tensor, named after its key, numbers from A1 (written by the fast path)."""
from __future__ import annotations

from ..config import GPT2Config
from .core import Plan, Range, Sheet


def weight_name(key: str) -> str:
    """The defined name of a tensor: `h.0.attn.c_attn.weight` -> `h0_attn_c_attn_w`, `wte.weight` -> `wte`."""
    if key in ("wte.weight", "wpe.weight"):
        return key.split(".")[0]
    if key.startswith("h."):
        _, layer, rest = key.split(".", 2)
        key = f"h{layer}.{rest}"
    stem, kind = key.rsplit(".", 1)
    return stem.replace(".", "_") + ("_w" if kind == "weight" else "_b")


def sheet_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """Vectors become one row; matrices keep (rows, cols)."""
    return (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])


def add_weight_sheets(plan: Plan, config: GPT2Config) -> dict[str, str]:
    """One sheet per tensor; returns key -> defined name."""
    names = {}
    for key, shape in config.param_shapes().items():
        rows, cols = sheet_shape(shape)
        plan.add(Sheet(key, "weights", weight=key, weight_shape=(rows, cols), role="weights",
                       about=f"weights: {rows} x {cols} numbers of the checkpoint's tensor {key}",
                       equation=weight_name(key)))
        names[key] = plan.name(weight_name(key), Range(key, 0, 0, rows, cols))
    return names
