import json
import re
import sys
import types

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from generator.checkpoint import (demo_checkpoint, float32_to_bfloat16_bits, load_checkpoint,
                                  random_params, save_checkpoint)
from generator.config import GPT2Config, GPT2Error

TINY = GPT2Config(n_layer=2, n_embd=16, n_head=2, n_vocab=37, n_positions=12)


def tiny_params(config=TINY, seed=1):
    return random_params(config, seed=seed)


def bf16_reference(x):
    """Round float32 to bfloat16 (8 significant bits), ties to even, via frexp + np.round."""
    m, e = np.frexp(x.astype(np.float64))
    return np.ldexp(np.round(m * 2.0**8), e - 8).astype(np.float32)


def write_raw(path, tensors):
    """Hand-written safetensors file: {name: (dtype, shape, raw bytes)}."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    return path


def write_tensors(folder, tensors, config_json=None):
    """Save raw tensors with the library, plus a config.json giving TINY's head count."""
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config_json or {"n_head": TINY.n_head}))
    return folder / "model.safetensors"


def error_for(source):
    with pytest.raises(GPT2Error) as info:
        load_checkpoint(source)
    return str(info.value)


# ----------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("layout", ["hub", "save_pretrained"])
def test_roundtrip_float32_is_exact(tmp_path, layout):
    params = tiny_params()
    weights = save_checkpoint(tmp_path, TINY, params, layout=layout)
    assert weights == tmp_path / "model.safetensors"
    for source in (tmp_path, weights, str(weights)):
        config, loaded = load_checkpoint(source)
        assert config == TINY
        assert list(loaded) == list(TINY.param_shapes())
        for name, value in loaded.items():
            assert value.dtype == np.float32 and value.flags.c_contiguous
            np.testing.assert_array_equal(value, params[name])


@pytest.mark.parametrize("layout", ["hub", "save_pretrained"])
@pytest.mark.parametrize("dtype, rounded", [
    ("float16", lambda x: x.astype(np.float16).astype(np.float32)),
    ("bfloat16", bf16_reference),
])
def test_roundtrip_half_precision_gives_rounded_values(tmp_path, layout, dtype, rounded):
    params = tiny_params()
    save_checkpoint(tmp_path, TINY, params, layout=layout, dtype=dtype)
    config, loaded = load_checkpoint(tmp_path)
    assert config == TINY
    for name, value in loaded.items():
        assert value.dtype == np.float32 and value.shape == TINY.param_shapes()[name]
        np.testing.assert_array_equal(value, rounded(params[name]))
        assert not np.array_equal(value, params[name])  # it really was stored at lower precision


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_representable_values_survive_exactly(tmp_path, dtype):
    params = tiny_params()
    exact = np.array([0.0, 1.0, -1.0, 0.5, -1.25, 3.0, 2.0**-10, -96.0, 0.375], dtype=np.float32)
    for name in params:
        params[name] = np.resize(exact, params[name].shape)
    save_checkpoint(tmp_path, TINY, params, dtype=dtype)
    _, loaded = load_checkpoint(tmp_path)
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])


def test_bfloat16_rounds_to_nearest_even():
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 1 - 2**-9 - 2**-20, -(1 + 2**-8)],
                 dtype=np.float32)
    want = np.array([1.0, 1 + 2**-6, 1 + 2**-7, 1 - 2**-8, -1.0], dtype=np.float32)
    bits = float32_to_bfloat16_bits(x)
    assert bits.dtype == np.dtype("<u2")
    np.testing.assert_array_equal((bits.astype(np.uint32) << 16).view(np.float32), want)


def test_reads_hand_written_mixed_dtype_file(tmp_path):
    """F32, F16 and BF16 tensors in one file written without the library; prefixed keys."""
    params = tiny_params()
    tensors = {}
    for i, (name, value) in enumerate(params.items()):
        kind = i % 3
        if kind == 0:
            tensors["transformer." + name] = ("F32", value.shape, value.astype("<f4").tobytes())
        elif kind == 1:
            tensors["transformer." + name] = ("F16", value.shape, value.astype("<f2").tobytes())
        else:
            tensors["transformer." + name] = ("BF16", value.shape, float32_to_bfloat16_bits(value).tobytes())
    write_raw(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2}))
    config, loaded = load_checkpoint(tmp_path)
    assert config == TINY
    for i, (name, value) in enumerate(params.items()):
        want = [value, value.astype(np.float16).astype(np.float32), bf16_reference(value)][i % 3]
        np.testing.assert_array_equal(loaded[name], want)


# ----------------------------------------------------------------------------- config inference

def test_head_count_and_epsilon_from_config_json(tmp_path):
    config = GPT2Config(n_layer=1, n_embd=48, n_head=6, n_vocab=20, n_positions=8, layer_norm_epsilon=1e-6)
    weights = save_checkpoint(tmp_path, config, random_params(config))
    assert json.loads((tmp_path / "config.json").read_text())["n_head"] == 6
    assert load_checkpoint(tmp_path)[0] == config
    assert load_checkpoint(weights)[0] == config  # config.json beside the file


def test_inference_without_config_json(tmp_path):
    config = GPT2Config(n_layer=3, n_embd=128, n_head=4, n_vocab=11, n_positions=5, layer_norm_epsilon=1e-3)
    save_checkpoint(tmp_path, config, random_params(config), write_config=False)
    assert not (tmp_path / "config.json").exists()
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded == GPT2Config(n_layer=3, n_embd=128, n_head=2, n_vocab=11, n_positions=5)


def test_ignores_mask_buffers(tmp_path):
    params = tiny_params()
    tensors = dict(params)
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 12, 12), np.float32))
    tensors["h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
    tensors["h.1.attn.bias"] = np.zeros((1, 1, 12, 12), np.uint8)  # any dtype: never read
    tensors["h.1.attn.masked_bias"] = np.array(-1e4, np.float64)
    write_tensors(tmp_path, tensors)
    config, loaded = load_checkpoint(tmp_path)
    assert config == TINY and set(loaded) == set(params)


def test_tied_lm_head_is_accepted_and_dropped(tmp_path):
    params = tiny_params()
    write_tensors(tmp_path, {**params, "lm_head.weight": params["wte.weight"]})
    _, loaded = load_checkpoint(tmp_path)
    assert "lm_head.weight" not in loaded


def test_untied_lm_head_is_rejected(tmp_path):
    params = tiny_params()
    tensors = {"transformer." + k: v for k, v in params.items()}
    tensors["lm_head.weight"] = params["wte.weight"] + np.float32(1e-3)
    write_tensors(tmp_path, tensors)
    assert "untied lm_head is not supported" in error_for(tmp_path)


# ----------------------------------------------------------------------------- bad input

@pytest.fixture
def tiny_file(tmp_path):
    """Write a tiny hub-layout checkpoint with some tensors replaced or removed."""
    def write(drop=(), config_json=None, **replace):
        tensors = {k: v for k, v in tiny_params().items() if k not in drop}
        tensors.update({k.replace("__", "."): v for k, v in replace.items()})
        path = write_tensors(tmp_path, tensors)
        if config_json is not None:
            (tmp_path / "config.json").write_text(config_json if isinstance(config_json, str)
                                                  else json.dumps(config_json))
        return path
    return write


def assert_error(source, pattern, path=None):
    message = error_for(source)
    assert re.search(pattern, message), message
    assert str(path or source) in message
    assert "\n" not in message


def test_missing_file_or_folder(tmp_path):
    assert_error(tmp_path / "nope", "no such file or folder")
    assert_error(tmp_path, "has no model.safetensors")


@pytest.mark.parametrize("content", [
    b"", b"short", b"this is certainly not a safetensors file" * 10,
    (20).to_bytes(8, "little") + b"{not json at all!!!}",
    (12).to_bytes(8, "little") + b'{"a": "b"}  ',
])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    assert_error(path, "not a safetensors file")


@pytest.mark.parametrize("keep", [0.99, 0.5, 40 / 2000])
def test_truncated_file(tiny_file, keep):
    path = tiny_file()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    assert_error(path, "truncated")


@pytest.mark.parametrize("drop, missing", [
    (["h.1.mlp.c_fc.bias"], "h.1.mlp.c_fc.bias"),
    (["wte.weight"], "wte.weight"),
    (["ln_f.bias", "ln_f.weight"], "ln_f.weight"),
])
def test_missing_tensor(tiny_file, drop, missing):
    assert_error(tiny_file(drop=drop), f"missing tensor '{re.escape(missing)}'")


def test_wrong_shape(tiny_file):
    path = tiny_file(h__0__attn__c_proj__weight=np.zeros((16, 8), np.float32))
    assert_error(path, re.escape("tensor 'h.0.attn.c_proj.weight' has shape (16, 8), expected (16, 16)"))


def test_one_dimensional_embedding(tiny_file):
    assert_error(tiny_file(wpe__weight=np.zeros(12, np.float32)), re.escape("wpe.weight should be 2-D"))


def test_layer_gap(tiny_file):
    path = tiny_file(drop=[k for k in TINY.param_shapes() if k.startswith("h.0.")])
    assert_error(path, "not contiguous: h.0 is missing")


def test_unknown_tensors(tiny_file):
    path = tiny_file(h__0__attn__extra=np.zeros(2, np.float32), score__weight=np.zeros(2, np.float32),
                     zz=np.zeros(1, np.float32))
    assert_error(path, r"unexpected tensors 'h.0.attn.extra', 'score.weight' and 1 more")


def test_tensor_stored_twice(tiny_file):
    path = tiny_file(transformer__ln_f__bias=np.zeros(16, np.float32))
    assert_error(path, "'ln_f.bias' is stored twice")


def test_unsupported_dtype(tiny_file):
    path = tiny_file(h__1__ln_2__weight=np.ones(16, np.float64))
    assert_error(path, "'h.1.ln_2.weight' has dtype F64; only F32, F16 and BF16")


@pytest.mark.parametrize("key, value", [("n_layer", 3), ("n_embd", 32), ("n_positions", 1024), ("vocab_size", 50257)])
def test_config_json_contradicts_tensors(tiny_file, key, value):
    path = tiny_file(config_json={"n_head": 2, key: value})
    assert_error(path, f"says {key}={value}", path.parent / "config.json")


@pytest.mark.parametrize("config_json, pattern", [
    ("{oops", "cannot read config.json"),
    ("[1, 2]", "not a JSON object"),
    ({"n_head": "two"}, "n_head must be a positive integer"),
    ({"n_head": 2, "layer_norm_epsilon": -1}, "layer_norm_epsilon must be a positive number"),
])
def test_bad_config_json(tiny_file, config_json, pattern):
    path = tiny_file(config_json=config_json)
    assert_error(path, pattern, path.parent / "config.json")


def test_head_count_does_not_divide_width(tiny_file):
    path = tiny_file(config_json={"n_head": 5})
    assert_error(path, "n_embd=16 is not divisible by n_head=5")


def test_head_count_cannot_be_guessed(tmp_path):
    config = GPT2Config(n_layer=1, n_embd=48, n_head=6, n_vocab=20, n_positions=8)
    weights = save_checkpoint(tmp_path, config, random_params(config), write_config=False)
    assert_error(weights, "not divisible by n_head=0.*n_head was guessed")


# ----------------------------------------------------------------------------- hub names

def fake_hub(monkeypatch, download):
    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)


def test_hub_without_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    message = error_for("gpt2")
    assert "cannot download 'gpt2' from the Hugging Face hub" in message
    assert "huggingface_hub is not installed" in message and "--weights PATH" in message


def test_hub_download_failure(tmp_path, monkeypatch):
    def download(repo_id, filename):
        raise ConnectionError("no route to host")
    monkeypatch.chdir(tmp_path)
    fake_hub(monkeypatch, download)
    message = error_for("gpt2-medium")
    assert "cannot download 'gpt2-medium'" in message and "(offline?)" in message
    assert "no route to host" in message and "--weights PATH" in message


def test_hub_download(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    save_checkpoint(cache, TINY, tiny_params())
    calls = []

    def download(repo_id, filename):
        calls.append((repo_id, filename))
        return str(cache / filename)
    monkeypatch.chdir(tmp_path)
    fake_hub(monkeypatch, download)
    assert load_checkpoint("gpt2-xl")[0] == TINY
    assert calls == [("openai-community/gpt2-xl", "model.safetensors"), ("openai-community/gpt2-xl", "config.json")]


def test_local_folder_named_like_hub_model_wins(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "gpt2", TINY, tiny_params())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert load_checkpoint("gpt2")[0] == TINY


def test_unknown_name_is_not_a_hub_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_error("gpt3", "no such file or folder")


# ----------------------------------------------------------------------------- random weights, writing

def test_random_params_look_like_gpt2():
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_vocab=500, n_positions=64)
    params = random_params(config, seed=7)
    assert {k: v.shape for k, v in params.items()} == config.param_shapes()
    assert all(v.dtype == np.float32 for v in params.values())
    for name, value in params.items():
        if name.endswith(".bias"):
            assert 0.01 < value.std() < 0.03 and np.all(value != 0)
        elif re.search(r"ln_.\.weight", name):
            assert 0.05 < value.std() < 0.15 and abs(value.mean() - 1) < 0.05
    assert 0.019 < params["h.0.attn.c_attn.weight"].std() < 0.021
    assert 0.0095 < params["wpe.weight"].std() < 0.0105
    again, other = random_params(config, seed=7), random_params(config, seed=8)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    assert not np.array_equal(params["wte.weight"], other["wte.weight"])


def test_demo_checkpoint_is_fixed():
    config, params = demo_checkpoint()
    assert config == GPT2Config(n_layer=2, n_embd=64, n_head=4, n_vocab=50257, n_positions=128)
    expected = random_params(config, seed=2024)
    assert all(np.array_equal(params[k], expected[k]) for k in expected)
    assert np.array_equal(demo_checkpoint()[1]["ln_f.bias"], params["ln_f.bias"])


def test_saved_layouts(tmp_path):
    params = tiny_params()
    hub = save_checkpoint(tmp_path / "hub", TINY, params, dtype="float16")
    pretrained = save_checkpoint(tmp_path / "hf", TINY, params, layout="save_pretrained", dtype="bfloat16")
    with safe_open(hub, framework="np") as f:
        assert set(f.keys()) == set(params) | {"h.0.attn.bias", "h.1.attn.bias"}
        mask = f.get_tensor("h.1.attn.bias")
        assert mask.dtype == np.float32 and mask.shape == (1, 1, 12, 12)
        np.testing.assert_array_equal(mask[0, 0], np.tril(np.ones((12, 12))))
        assert f.get_tensor("wte.weight").dtype == np.float16
    with safe_open(pretrained, framework="np") as f:
        assert set(f.keys()) == {"transformer." + k for k in params} | {"lm_head.weight"}
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert dtypes == {"BF16"}
    config_json = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert config_json == {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 2,
                           "n_embd": 16, "n_head": 2, "n_positions": 12, "n_ctx": 12, "vocab_size": 37,
                           "layer_norm_epsilon": 1e-5}


@pytest.mark.parametrize("kwargs, pattern", [
    ({"layout": "flat"}, "unknown checkpoint layout 'flat'"),
    ({"dtype": "int8"}, "unknown dtype 'int8'"),
])
def test_save_rejects_bad_options(tmp_path, kwargs, pattern):
    with pytest.raises(GPT2Error, match=pattern):
        save_checkpoint(tmp_path, TINY, tiny_params(), **kwargs)


def test_save_rejects_params_not_matching_config(tmp_path):
    params = tiny_params()
    del params["ln_f.bias"]
    with pytest.raises(GPT2Error, match="'ln_f.bias' is missing"):
        save_checkpoint(tmp_path, TINY, params)
    params = tiny_params()
    params["ln_f.bias"] = np.zeros(3, np.float32)
    with pytest.raises(GPT2Error, match=re.escape("params['ln_f.bias'] has shape (3,), expected (16,)")):
        save_checkpoint(tmp_path, TINY, params)


def test_full_gpt2_small_shapes_in_float16(tmp_path):
    config = GPT2Config(n_layer=1, n_embd=768, n_head=12, n_vocab=50257, n_positions=1024)
    params = random_params(config, seed=3)
    samples = {k: params[k][tuple(np.array(params[k].shape) // 3)] for k in params}
    save_checkpoint(tmp_path, config, params, dtype="float16")
    del params
    loaded_config, loaded = load_checkpoint(tmp_path)
    assert loaded_config == config
    assert {k: v.shape for k, v in loaded.items()} == config.param_shapes()
    for name, value in samples.items():
        assert loaded[name][tuple(np.array(loaded[name].shape) // 3)] == np.float16(value)
