"""Formula builders that read like the math. Arguments are defined names or A1 ranges (strings).

Only functions that both Excel (2010+) and LibreOffice 7.4 compute in legacy array formulas:
IF, MMULT, TRANSPOSE, INDEX, AVERAGE, _xlfn.VAR.P, SQRT, EXP, TANH, MAX, SUM, LARGE, MATCH.
"""
from __future__ import annotations

import math


def num(x: float) -> str:
    """A Python/numpy float as a formula literal (never a numpy repr such as `np.float64(...)`)."""
    return repr(float(x)).upper().replace("E+", "E")


def mmult(a: str, b: str) -> str:
    return f"MMULT({a},{b})"


def linear(x: str, w: str, b: str) -> str:
    """x @ W + b (the 1-row bias broadcasts over the rows)."""
    return f"{mmult(x, w)}+{b}"


def residual(x: str, update: str) -> str:
    return f"{x}+{update}"


def layer_norm(x: str, g: str, b: str, eps: float) -> str:
    """Row-wise layer norm of one row `x`."""
    return f"({x}-AVERAGE({x}))/SQRT(_xlfn.VAR.P({x})+{num(eps)})*{g}+{b}"


def if_filled(slot: str, x: str) -> str:
    """`x` when the token slot (its token id cell) is filled, else empty. Both Excel and LibreOffice
    evaluate only the branch taken, so an empty slot costs nothing."""
    return f'IF({slot}="","",{x})'


def if_tokens(x: str) -> str:
    """`x` once at least one token slot is filled, else empty (the prediction of no tokens)."""
    return f'IF(n_tokens=0,"",{x})'


def attention_scores(q: str, k: str, head_size: int) -> str:
    """q k^T / sqrt(d) of one query row `q` against the key rows `k` it may see (causal: keys up to its own)."""
    return f"{mmult(q, f'TRANSPOSE({k})')}/SQRT({head_size})"


def softmax(x: str) -> str:
    """Row-wise softmax of one row `x`, shifted by its maximum for stability."""
    return f"EXP({x}-MAX({x}))/SUM(EXP({x}-MAX({x})))"


GELU_C = math.sqrt(2 / math.pi)


def gelu(x: str) -> str:
    """GPT-2's tanh approximation."""
    return f"0.5*{x}*(1+TANH({num(GELU_C)}*({x}+0.044715*{x}^3)))"


def embedding(wte: str, token_id: str, wpe: str, position: int) -> str:
    """wte[token] + wpe[position] (INDEX is 1-based)."""
    return f"INDEX({wte},{token_id}+1,0)+INDEX({wpe},{position + 1},0)"


def unembed(wte: str, x_row: str) -> str:
    """Logits of one position, vocabulary down the rows: wte @ x^T."""
    return mmult(wte, f"TRANSPOSE({x_row})")
