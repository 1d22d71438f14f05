"""The numpy reference forward pass: the executable spec every workbook formula is checked against.

Written like picoGPT's gpt2.py: one function per piece of the math, the whole model on one screen.
It computes in float64 from the float32 weights, as a spreadsheet does.
"""
from __future__ import annotations

import numpy as np

from .config import GPT2Config


def gelu(x):
    """GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016)."""
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def layer_norm(x, g, b, eps):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.var(x, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def linear(x, w, b):
    return x @ w + b


def causal_self_attention(x, w_attn, b_attn, w_proj, b_proj, n_head, trace=None, head_on=None):
    """`head_on` (length n_head, default all 1) multiplies each head's output: 0 removes the head."""
    T, C = x.shape
    d = C // n_head
    q, k, v = np.split(linear(x, w_attn, b_attn), 3, axis=-1)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    heads = []
    for h in range(n_head):
        cols = slice(h * d, (h + 1) * d)
        scores = q[:, cols] @ k[:, cols].T / np.sqrt(d) + mask
        probs = softmax(scores)
        head = probs @ v[:, cols]
        heads.append(head if head_on is None else head * head_on[h])
        if trace is not None:
            trace.setdefault("probs", []).append(probs)
    merged = np.concatenate(heads, axis=-1)
    if trace is not None:
        trace.update(qkv=np.concatenate([q, k, v], axis=-1), merged=merged)
    return linear(merged, w_proj, b_proj)


def mlp(x, w_fc, b_fc, w_proj, b_proj):
    return linear(gelu(linear(x, w_fc, b_fc)), w_proj, b_proj)


def block(x, p, i, config: GPT2Config, trace=None, head_on=None):
    eps = config.layer_norm_epsilon
    a = layer_norm(x, p[f"h.{i}.ln_1.weight"], p[f"h.{i}.ln_1.bias"], eps)
    x = x + causal_self_attention(a, p[f"h.{i}.attn.c_attn.weight"], p[f"h.{i}.attn.c_attn.bias"],
                                  p[f"h.{i}.attn.c_proj.weight"], p[f"h.{i}.attn.c_proj.bias"],
                                  config.n_head, trace, head_on)
    if trace is not None:
        trace["attn_out"] = x
    m = layer_norm(x, p[f"h.{i}.ln_2.weight"], p[f"h.{i}.ln_2.bias"], eps)
    return x + mlp(m, p[f"h.{i}.mlp.c_fc.weight"], p[f"h.{i}.mlp.c_fc.bias"],
                   p[f"h.{i}.mlp.c_proj.weight"], p[f"h.{i}.mlp.c_proj.bias"])


def forward(ids, params, config: GPT2Config, trace=None, head_mask=None):
    """Logits (T x n_vocab) for token ids (length T). `trace`, a dict, collects intermediates.

    `head_mask` (n_layer x n_head of 1/0, default all ones) scales each attention head's output: a 0 removes
    that head (the workbook's head switches); `trace["params"]` keeps the float64 weights for `logit_lens`."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    ids = np.asarray(ids, dtype=np.int64)
    x = p["wte.weight"][ids] + p["wpe.weight"][: len(ids)]
    if trace is not None:
        trace["embed"] = x
        trace["params"] = p
    for i in range(config.n_layer):
        layer = {} if trace is not None else None
        x = block(x, p, i, config, layer, None if head_mask is None else head_mask[i])
        if trace is not None:
            layer["out"] = x
            trace.setdefault("layers", []).append(layer)
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], config.layer_norm_epsilon)
    if trace is not None:
        trace["ln_f"] = x
    return x @ p["wte.weight"].T


def logit_lens(trace, config: GPT2Config, position=-1):
    """n_layer x n_vocab: ln_f of the residual stream after each layer at `position`, unembedded with wte
    (from the `trace` of a forward pass)."""
    p = trace["params"]
    x = np.stack([layer["out"][position] for layer in trace["layers"]])
    return layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], config.layer_norm_epsilon) @ p["wte.weight"].T


def top_k(logits_row, k):
    """(ids, logits, probabilities) of the k most likely next tokens, most likely first."""
    order = np.argsort(-logits_row, kind="stable")[:k]
    return order, logits_row[order], softmax(logits_row)[order]
