"""`gpt2-workbook build`: user errors give one clear message, exit 2, and never touch an existing file."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from generator import fastxml
from generator.checkpoint import random_params, save_checkpoint
from generator.cli import main
from generator.config import GPT2Config

CONFIG = GPT2Config(2, 16, 2, n_vocab=50257, n_positions=8)
PRECIOUS = b"an existing workbook the user cares about"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder, CONFIG, random_params(CONFIG, seed=1))
    return folder


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "existing.xlsx"
    path.write_bytes(PRECIOUS)
    return path


def fails(capsys, out, *args, match):
    """Runs the CLI, expects exit 2 with one line naming the problem, and `out` left as it was."""
    status = main(["build", "-o", str(out), *map(str, args)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("gpt2-workbook: error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert "Traceback" not in err
    assert out.read_bytes() == PRECIOUS
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no temp files left
    return err


def test_missing_file(capsys, out, tmp_path):
    fails(capsys, out, "--weights", tmp_path / "nope.safetensors", match="nope.safetensors: no such file")


def test_not_safetensors(capsys, out, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)
    fails(capsys, out, "--weights", bad, match="bad.safetensors")


def test_truncated(capsys, out, ckpt, tmp_path):
    data = (ckpt / "model.safetensors").read_bytes()
    cut = tmp_path / "cut" / "model.safetensors"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    err = fails(capsys, out, "--weights", cut, match="model.safetensors")
    assert "truncated" in err


def edited(ckpt, folder, edit):
    """A copy of the checkpoint (with its config.json) whose tensors went through `edit`."""
    folder.mkdir()
    (folder / "config.json").write_text((ckpt / "config.json").read_text())
    params = random_params(CONFIG)
    edit(params)
    save_file(params, str(folder / "model.safetensors"))
    return folder


def test_missing_tensor(capsys, out, ckpt, tmp_path):
    folder = edited(ckpt, tmp_path / "m", lambda p: p.pop("h.1.mlp.c_fc.bias"))
    fails(capsys, out, "--weights", folder, match="h.1.mlp.c_fc.bias")


def test_wrong_shape(capsys, out, ckpt, tmp_path):
    folder = edited(ckpt, tmp_path / "m",
                    lambda p: p.update({"h.0.attn.c_proj.weight": np.zeros((16, 15), np.float32)}))
    err = fails(capsys, out, "--weights", folder, match="h.0.attn.c_proj.weight")
    assert "(16, 15)" in err and "(16, 16)" in err


def test_heads_do_not_divide_width(capsys, out, ckpt, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps({"n_head": 5}))
    fails(capsys, out, "--weights", folder, match="not divisible by n_head=5")


@pytest.mark.parametrize("layers", [0, 3])
def test_layers_out_of_range(capsys, out, ckpt, layers):
    fails(capsys, out, "--weights", ckpt, "--layers", layers, match=f"--layers {layers} is out of range")


@pytest.mark.parametrize("context", [0, 9])
def test_context_out_of_range(capsys, out, ckpt, context):
    fails(capsys, out, "--weights", ckpt, "--context", context, match=f"--context {context} is out of range")


def test_prompt_longer_than_context(capsys, out, ckpt):
    err = fails(capsys, out, "--weights", ckpt, "--context", 3, "--prompt", "Hello world, my friend",
                match="5 tokens long but the workbook has 3 token slots")
    assert "--context 5" in err


def test_empty_prompt(capsys, out, ckpt):
    fails(capsys, out, "--weights", ckpt, "--prompt", "", match="the prompt is empty")


def test_output_folder_missing(capsys, out, ckpt, tmp_path):
    status = main(["build", "--weights", str(ckpt), "-o", str(tmp_path / "no" / "such" / "dir.xlsx")])
    err = capsys.readouterr().err
    assert status == 2 and "folder" in err and "does not exist" in err


def test_output_is_a_folder(capsys, ckpt, tmp_path):
    status = main(["build", "--weights", str(ckpt), "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "it is a folder" in err


def test_failure_while_writing_keeps_the_old_file(capsys, out, ckpt, monkeypatch):
    def broken(values, first_row):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fastxml, "row_blocks", broken)
    fails(capsys, out, "--weights", ckpt, match="No space left on device")


def test_build_replaces_the_file_when_it_succeeds(capsys, out, ckpt):
    assert main(["build", "--weights", str(ckpt), "--prompt", "Hi", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.read_bytes()[:2] == b"PK"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_console_script_and_module_entry_points(tmp_path):
    """`python -m generator` and the installed `gpt2-workbook` are the same command."""
    for cmd in ([sys.executable, "-m", "generator"], ["gpt2-workbook"]):
        done = subprocess.run(cmd + ["build", "--context", "0"], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2 and "--context 0 is out of range" in done.stderr, done.stderr
    assert not os.listdir(tmp_path)
