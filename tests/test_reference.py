"""The numpy reference itself, against values computed by hand."""
import math

import numpy as np
import pytest

from generator import reference
from generator.config import GPT2Config


def test_pieces_by_hand():
    # layer norm of [1, 3]: mean 2, variance 1 -> [-1, 1] / sqrt(1 + eps), then * g + b
    out = reference.layer_norm(np.array([1.0, 3.0]), np.array([2.0, 0.5]), np.array([0.1, -0.1]), 1e-5)
    s = 1 / math.sqrt(1 + 1e-5)
    np.testing.assert_allclose(out, [-2 * s + 0.1, 0.5 * s - 0.1], rtol=1e-15)
    # softmax of [0, ln 2, ln 5]: [1, 2, 5] / 8
    np.testing.assert_allclose(reference.softmax(np.log([1.0, 2.0, 5.0])), [1 / 8, 2 / 8, 5 / 8], rtol=1e-15)
    # gelu: 0 at 0, ~x for large x, and the tanh formula at 1
    assert reference.gelu(0.0) == 0.0
    assert reference.gelu(10.0) == pytest.approx(10.0)
    assert reference.gelu(1.0) == pytest.approx(0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715)))
    assert reference.gelu(1.0) == pytest.approx(0.8411919906, abs=1e-10)


def test_tiny_model_by_hand():
    """One layer, width 2, one head, vocabulary 3, two tokens: every number worked out on paper.

    The attention and MLP weights are zero, so each sub-layer adds only its output bias, and the
    attention is uniform over the visible positions: q = k = v = the c_attn bias.
    """
    C = 2
    config = GPT2Config(n_layer=1, n_embd=C, n_head=1, n_vocab=3, n_positions=2)
    z = np.zeros
    p = {
        "wte.weight": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "wpe.weight": np.array([[0.0, 0.0], [0.5, 0.0]]),
        "h.0.ln_1.weight": np.ones(C), "h.0.ln_1.bias": z(C),
        "h.0.attn.c_attn.weight": z((C, 3 * C)), "h.0.attn.c_attn.bias": np.array([1, 2, 3, 4, 0.25, -0.25]),
        "h.0.attn.c_proj.weight": z((C, C)), "h.0.attn.c_proj.bias": np.array([0.25, 0.0]),
        "h.0.ln_2.weight": np.ones(C), "h.0.ln_2.bias": z(C),
        "h.0.mlp.c_fc.weight": z((C, 4 * C)), "h.0.mlp.c_fc.bias": np.array([1.0, 0, 0, 0, 0, 0, 0, 0]),
        "h.0.mlp.c_proj.weight": np.array([[0.0, 1.0]] + [[0.0, 0.0]] * 7), "h.0.mlp.c_proj.bias": z(C),
        "ln_f.weight": np.array([1.0, 2.0]), "ln_f.bias": np.array([0.0, 1.0]),
    }
    # tokens 0 then 1: x = [1, 0] + [0, 0] and [0, 1] + [0.5, 0]
    # attention adds its bias 0.25 to the first coordinate: [1.25, 0], [0.75, 1]
    # MLP: fc = [1, 0...], gelu(1) = 0.841192 lands in the second coordinate: [1.25, g], [0.75, 1 + g]
    g = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))
    x = np.array([[1.25, g], [0.75, 1 + g]])
    # ln_f of a 2-vector [a, b]: +-(a-b)/2 / sqrt(((a-b)/2)^2 + eps), then * [1, 2] + [0, 1]
    logits = []
    for a, b in x:
        half = (a - b) / 2
        n = half / math.sqrt(half * half + 1e-5)
        y = np.array([n * 1.0 + 0.0, -n * 2.0 + 1.0])
        logits.append([y[0], y[1], y[0] + y[1]])  # rows of wte: [1,0], [0,1], [1,1]
    trace = {}
    out = reference.forward([0, 1], p, config, trace)
    np.testing.assert_allclose(trace["layers"][0]["attn_out"], [[1.25, 0], [0.75, 1]], rtol=1e-15)
    np.testing.assert_allclose(trace["layers"][0]["probs"][0], [[1, 0], [0.5, 0.5]], rtol=1e-15)
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-12)


def test_attention_mixes_only_the_past():
    """Scores q k^T / sqrt(d) by hand for two tokens; the second token's output mixes both values."""
    q = np.array([[1.0, 0.0], [0.0, 2.0]])
    k = np.array([[1.0, 1.0], [0.0, 2.0]])
    v = np.array([[10.0, 0.0], [0.0, 10.0]])
    w_attn = np.zeros((2, 6))
    x = np.eye(2)
    w_attn[:, :2], w_attn[:, 2:4], w_attn[:, 4:] = q, k, v  # x = I, so x @ W gives q | k | v
    out = reference.causal_self_attention(x, w_attn, np.zeros(6), np.eye(2), np.zeros(2), n_head=1)
    # row 0 sees only itself: v0; row 1: scores [2, 4] / sqrt 2, softmax weights e^a / (e^a + e^b)
    a, b = 2 / math.sqrt(2), 4 / math.sqrt(2)
    w0, w1 = math.exp(a) / (math.exp(a) + math.exp(b)), math.exp(b) / (math.exp(a) + math.exp(b))
    np.testing.assert_allclose(out, [[10, 0], [10 * w0, 10 * w1]], rtol=1e-12)
