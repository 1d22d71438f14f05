"""The workbook's one colour code, explained on the index sheet and used for fills and tab colours.

A sheet's role picks its tab colour and the fill of its title and block headings; input cells anywhere
are filled with the input colour. Weight sheets get the tab colour only (no per-cell styles there).
"""
from __future__ import annotations

COLOURS = {
    "input": "#FFF2CC",       # yellow: what you type (token ids, prompt, settings, head switches)
    "weights": "#E4DFEC",     # lilac: the checkpoint's numbers
    "activation": "#DDEBF7",  # blue: values the forward pass computes
    "output": "#E2EFDA",      # green: the result (logits, prediction, logit lens)
}
TAB_COLOURS = {"input": "#FFC000", "weights": "#8064A2", "activation": "#5B9BD5", "output": "#70AD47"}

MEANING = {
    "input": "inputs: cells you change (token ids, the prompt, generation settings, attention-head switches)",
    "weights": "weights: the checkpoint's tensors, one sheet each, named after the tensor",
    "activation": "activations: what the forward pass computes from inputs and weights (every cell a formula)",
    "output": "outputs: logits, the predicted next tokens and their probabilities",
}

HEATMAP = {"min": "#FFFFFF", "max": "#C00000"}   # attention probability 0 -> white, 1 -> dark red
