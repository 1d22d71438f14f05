"""The model description: GPT-2 hyper-parameters and the names and shapes of its tensors.

Everything downstream (reference forward pass, workbook plan, FLOP tally) reads shapes from here,
never from a checkpoint file directly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


class GPT2Error(Exception):
    """An error the user caused (bad checkpoint, bad option, prompt too long, ...).

    The CLI prints its message on one line and exits with status 2, no traceback.
    """


@dataclass(frozen=True)
class GPT2Config:
    n_layer: int
    n_embd: int
    n_head: int
    n_vocab: int = 50257
    n_positions: int = 1024
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self):
        if self.n_head <= 0 or self.n_embd % self.n_head:
            raise GPT2Error(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_inner(self) -> int:
        return 4 * self.n_embd

    def with_layers(self, n_layer: int) -> "GPT2Config":
        return replace(self, n_layer=n_layer)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical tensor names (the `openai-community/gpt2` keys, no `transformer.` prefix) -> shape.

        Linear weights are stored as HF `Conv1D` does: (in_features, out_features), so y = x @ W + b.
        """
        C, V, P = self.n_embd, self.n_vocab, self.n_positions
        shapes: dict[str, tuple[int, ...]] = {"wte.weight": (V, C), "wpe.weight": (P, C)}
        for i in range(self.n_layer):
            shapes.update({
                f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,),
                f"h.{i}.attn.c_attn.weight": (C, 3 * C), f"h.{i}.attn.c_attn.bias": (3 * C,),
                f"h.{i}.attn.c_proj.weight": (C, C), f"h.{i}.attn.c_proj.bias": (C,),
                f"h.{i}.ln_2.weight": (C,), f"h.{i}.ln_2.bias": (C,),
                f"h.{i}.mlp.c_fc.weight": (C, 4 * C), f"h.{i}.mlp.c_fc.bias": (4 * C,),
                f"h.{i}.mlp.c_proj.weight": (4 * C, C), f"h.{i}.mlp.c_proj.bias": (C,),
            })
        shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
        return shapes

    def n_params(self) -> int:
        n = 0
        for shape in self.param_shapes().values():
            size = 1
            for d in shape:
                size *= d
            n += size
        return n


# Published configurations (Radford et al. 2019 / the Hugging Face model cards).
PUBLISHED = {
    "gpt2": GPT2Config(n_layer=12, n_embd=768, n_head=12),
    "gpt2-medium": GPT2Config(n_layer=24, n_embd=1024, n_head=16),
    "gpt2-large": GPT2Config(n_layer=36, n_embd=1280, n_head=20),
    "gpt2-xl": GPT2Config(n_layer=48, n_embd=1600, n_head=25),
}
