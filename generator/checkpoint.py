"""GPT-2 weights: load a safetensors checkpoint, make random ones, write one.

Parameters are float32 numpy arrays keyed by the canonical names of `GPT2Config.param_shapes()`.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, TensorSpec, safe_open, serialize_file

from .config import PUBLISHED, GPT2Config, GPT2Error

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
HUB_ORG = "openai-community"

_PREFIX = "transformer."
_MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # causal-mask buffers, not weights
_BLOCK = re.compile(r"h\.(\d+)\.")
_LOAD_DTYPES = ("F32", "F16", "BF16")  # F32/F16 via the library, BF16 by hand (numpy has no bfloat16)
_WRITE_DTYPES = ("float32", "float16", "bfloat16")


# ----------------------------------------------------------------------------- loading

def load_checkpoint(source: str | os.PathLike) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    """Load GPT-2 weights from a safetensors file, a folder holding one, or a published hub name."""
    path = Path(source)
    if not path.exists() and str(source) in PUBLISHED:
        weights, config_json = _download_from_hub(str(source))
    elif path.is_dir():
        weights, config_json = path / WEIGHTS_NAME, path / CONFIG_NAME
        if not weights.is_file():
            raise GPT2Error(f"{path}: folder has no {WEIGHTS_NAME}")
    elif path.is_file():
        weights, config_json = path, path.parent / CONFIG_NAME
    else:
        raise GPT2Error(f"{path}: no such file or folder")
    return _load_weights(weights, config_json if config_json.is_file() else None)


def _download_from_hub(name: str) -> tuple[Path, Path]:
    """Fetch model.safetensors and config.json of a published GPT-2 via huggingface_hub."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        reason = "huggingface_hub is not installed"
    else:
        try:
            repo_id = f"{HUB_ORG}/{name}"
            weights = hf_hub_download(repo_id=repo_id, filename=WEIGHTS_NAME)
            config_json = hf_hub_download(repo_id=repo_id, filename=CONFIG_NAME)
            return Path(weights), Path(config_json)
        except Exception as e:  # network, auth, disk: all mean "get the file yourself"
            reason = f"{type(e).__name__}: {e}"
    raise GPT2Error(f"cannot download {name!r} from the Hugging Face hub (offline?): {reason}; "
                    f"download {WEIGHTS_NAME} yourself and pass --weights PATH")


def _load_weights(weights: Path, config_json: Path | None) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    header, data_start = _read_header(weights)
    entries = _canonical_entries(weights, header)
    config = _infer_config(weights, entries, _read_config_json(config_json), config_json)
    expected = config.param_shapes()
    _check_tensors(weights, entries, expected)

    params = {}
    try:
        with safe_open(weights, framework="np") as f:
            def read(key: str) -> np.ndarray:
                return _read_tensor(f, weights, data_start, entries[key])
            for name in expected:
                params[name] = read(name)
            if "lm_head.weight" in entries and not np.array_equal(read("lm_head.weight"), params["wte.weight"]):
                raise GPT2Error(f"{weights}: lm_head.weight differs from wte.weight; "
                                "untied lm_head is not supported")
    except (SafetensorError, OSError, ValueError) as e:
        raise GPT2Error(f"{weights}: cannot read safetensors file: {e}") from None
    return config, params


def _read_header(path: Path) -> tuple[dict, int]:
    """Parse the safetensors header (8-byte little-endian length + JSON); return it and the data start."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        first = f.read(1)
        if len(head) < 8 or n < 2 or first != b"{":
            raise GPT2Error(f"{path}: not a safetensors file (no valid header)")
        if 8 + n > size:
            raise GPT2Error(f"{path}: file is truncated ({size} bytes, the header alone needs {8 + n})")
        try:
            header = json.loads(first + f.read(n - 1))
            tensors = {k: v for k, v in header.items() if k != "__metadata__"}
            end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
            for v in tensors.values():
                v["shape"] = tuple(int(d) for d in v["shape"])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise GPT2Error(f"{path}: not a safetensors file (header is not valid safetensors JSON)") from None
    if 8 + n + end > size:
        raise GPT2Error(f"{path}: file is truncated ({size} bytes, the header promises {8 + n + end})")
    return tensors, 8 + n


def _canonical_entries(path: Path, header: dict) -> dict[str, dict]:
    """Header entries keyed by canonical name: `transformer.` prefix stripped, mask buffers dropped."""
    entries: dict[str, dict] = {}
    for key, entry in header.items():
        name = key.removeprefix(_PREFIX)
        if _MASK_BUFFER.fullmatch(name):
            continue
        if name in entries:
            raise GPT2Error(f"{path}: tensor {name!r} is stored twice (with and without {_PREFIX!r})")
        entries[name] = {**entry, "key": key}
    return entries


def _read_config_json(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GPT2Error(f"{path}: cannot read config.json: {e}") from None
    if not isinstance(data, dict):
        raise GPT2Error(f"{path}: config.json is not a JSON object")
    return data


def _infer_config(weights: Path, entries: dict[str, dict], hf: dict, config_json: Path | None) -> GPT2Config:
    """Layer count and widths from the tensors; n_head and epsilon from config.json (or defaults)."""
    for key in ("wte.weight", "wpe.weight"):
        if key not in entries:
            raise GPT2Error(f"{weights}: missing tensor {key!r}")
        if len(entries[key]["shape"]) != 2:
            raise GPT2Error(f"{weights}: {key} should be 2-D, got shape {entries[key]['shape']}")
    n_vocab, n_embd = entries["wte.weight"]["shape"]
    n_positions = entries["wpe.weight"]["shape"][0]
    blocks = {int(m.group(1)) for name in entries if (m := _BLOCK.match(name))}
    n_layer = max(blocks, default=-1) + 1
    if len(blocks) != n_layer:
        gap = min(set(range(n_layer)) - blocks)
        raise GPT2Error(f"{weights}: layer blocks are not contiguous: h.{gap} is missing but h.{n_layer - 1} exists")

    found = {"n_layer": n_layer, "n_embd": n_embd, "n_positions": n_positions, "vocab_size": n_vocab}
    for key, value in found.items():
        if key in hf and hf[key] != value:
            raise GPT2Error(f"{config_json}: says {key}={hf[key]!r} but {weights} has {key}={value}")
    n_head = hf.get("n_head", n_embd // 64)
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if "n_head" in hf and (not isinstance(n_head, int) or isinstance(n_head, bool) or n_head <= 0):
        raise GPT2Error(f"{config_json}: n_head must be a positive integer, got {n_head!r}")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise GPT2Error(f"{config_json}: layer_norm_epsilon must be a positive number, got {eps!r}")
    try:
        return GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_vocab=n_vocab,
                          n_positions=n_positions, layer_norm_epsilon=float(eps))
    except GPT2Error as e:
        hint = f" (from {config_json})" if "n_head" in hf else \
            f" (no {CONFIG_NAME} beside it, so n_head was guessed as n_embd // 64; add one with n_head)"
        raise GPT2Error(f"{weights}: {e}{hint}") from None


def _check_tensors(weights: Path, entries: dict[str, dict], expected: dict[str, tuple[int, ...]]) -> None:
    """Every expected tensor present with the right shape and a float dtype; nothing unknown."""
    for name, shape in expected.items():
        if name not in entries:
            raise GPT2Error(f"{weights}: missing tensor {name!r}")
        if entries[name]["shape"] != shape:
            raise GPT2Error(f"{weights}: tensor {name!r} has shape {entries[name]['shape']}, expected {shape}")
    if "lm_head.weight" in entries and entries["lm_head.weight"]["shape"] != expected["wte.weight"]:
        raise GPT2Error(f"{weights}: lm_head.weight has shape {entries['lm_head.weight']['shape']}, "
                        f"expected {expected['wte.weight']} (tied to wte.weight)")
    unknown = [k for k in entries if k not in expected and k != "lm_head.weight"]
    if unknown:
        more = f" and {len(unknown) - 2} more" if len(unknown) > 2 else ""
        raise GPT2Error(f"{weights}: unexpected tensors {', '.join(map(repr, unknown[:2]))}{more} "
                        "(not a GPT-2 checkpoint?)")
    for name in [*expected, "lm_head.weight"]:
        dtype = entries.get(name, {"dtype": "F32"})["dtype"]
        if dtype not in _LOAD_DTYPES:
            raise GPT2Error(f"{weights}: tensor {name!r} has dtype {dtype}; only F32, F16 and BF16 are supported")


def _read_tensor(f, weights: Path, data_start: int, entry: dict) -> np.ndarray:
    """One tensor as C-contiguous float32; BF16 read from the raw bytes (numpy has no bfloat16)."""
    if entry["dtype"] != "BF16":
        return np.ascontiguousarray(f.get_tensor(entry["key"]), dtype=np.float32)
    begin, _ = entry["data_offsets"]
    bits = np.fromfile(weights, dtype="<u2", count=int(np.prod(entry["shape"])), offset=data_start + begin)
    widened = bits.astype(np.uint32)
    widened <<= np.uint32(16)
    return widened.view(np.float32).reshape(entry["shape"])


# ----------------------------------------------------------------------------- random weights

def random_params(config: GPT2Config, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed-seed GPT-2-like float32 weights with non-trivial biases and layer-norm gains."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in config.param_shapes().items():
        x = rng.standard_normal(shape, dtype=np.float32)
        if name == "wpe.weight":
            x *= np.float32(0.01)
        elif re.search(r"ln_(1|2|f)\.weight$", name):
            x *= np.float32(0.1)
            x += np.float32(1.0)
        else:  # weights and biases alike
            x *= np.float32(0.02)
        params[name] = x
    return params


def demo_checkpoint() -> tuple[GPT2Config, dict[str, np.ndarray]]:
    """The embedded default model: 2 layers, 64 wide, 4 heads, full vocabulary, seed 2024."""
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_vocab=50257, n_positions=128)
    return config, random_params(config, seed=2024)


# ----------------------------------------------------------------------------- writing

def save_checkpoint(path: str | os.PathLike, config: GPT2Config, params: dict[str, np.ndarray], *,
                    layout: str = "hub", dtype: str = "float32", write_config: bool = True) -> Path:
    """Write `path/model.safetensors` (+ `config.json`) in the hub or save_pretrained layout."""
    if layout not in ("hub", "save_pretrained"):
        raise GPT2Error(f"unknown checkpoint layout {layout!r} (use 'hub' or 'save_pretrained')")
    if dtype not in _WRITE_DTYPES:
        raise GPT2Error(f"unknown dtype {dtype!r} (use one of {', '.join(_WRITE_DTYPES)})")
    expected = config.param_shapes()
    missing = [k for k in expected if k not in params]
    unexpected = [k for k in params if k not in expected]
    if missing or unexpected:
        problem = f"{missing[0]!r} is missing" if missing else f"{unexpected[0]!r} is unexpected"
        raise GPT2Error(f"params do not match the config: {problem}")

    tensors: dict[str, tuple[str, np.ndarray]] = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.shape != shape:
            raise GPT2Error(f"params[{name!r}] has shape {value.shape}, expected {shape}")
        tensors[name] = _encode(value, dtype)
    if layout == "hub":
        P = config.n_positions
        mask = np.tril(np.ones((P, P), dtype=np.float32)).reshape(1, 1, P, P)
        for i in range(config.n_layer):
            tensors[f"h.{i}.attn.bias"] = ("float32", mask)
    else:
        tensors = {_PREFIX + k: v for k, v in tensors.items()}
        tensors["lm_head.weight"] = tensors[_PREFIX + "wte.weight"]

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    specs = {k: TensorSpec(dtype=name, shape=a.shape, data_ptr=a.ctypes.data, data_len=a.nbytes)
             for k, (name, a) in tensors.items()}
    serialize_file(specs, weights, metadata={"format": "pt"})
    if write_config:
        (folder / CONFIG_NAME).write_text(json.dumps(_hf_config(config), indent=2) + "\n", encoding="utf-8")
    return weights


def _encode(value: np.ndarray, dtype: str) -> tuple[str, np.ndarray]:
    """(safetensors dtype name, C-contiguous little-endian data); bfloat16 as uint16 bits."""
    x = np.ascontiguousarray(value, dtype=np.float32)
    if dtype == "float16":
        return dtype, x.astype("<f2")
    if dtype == "bfloat16":
        return dtype, float32_to_bfloat16_bits(x)
    return dtype, x.astype("<f4", copy=False)


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) of finite float32 values, rounded to nearest, ties to even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype("<u2")


def _hf_config(config: GPT2Config) -> dict:
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_layer": config.n_layer,
        "n_embd": config.n_embd,
        "n_head": config.n_head,
        "n_positions": config.n_positions,
        "n_ctx": config.n_positions,
        "vocab_size": config.n_vocab,
        "layer_norm_epsilon": config.layer_norm_epsilon,
    }
