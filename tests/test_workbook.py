"""Workbook -> LibreOffice -> numbers, compared with the numpy reference forward pass.

Every test here builds a real .xlsx from a GPT-2-architecture checkpoint made with a fixed seed,
has LibreOffice recalculate all its formulas headless, and compares what the formulas computed.
"""
import numpy as np
import pytest

from conftest import needs_lo
from generator import reference, tokenizer
from generator.build import build, load_model, plan_workbook
from generator.checkpoint import random_params, save_checkpoint
from generator.config import GPT2Config
from generator.plan import build_plan
from generator.writer import write_workbook

pytestmark = needs_lo
TOL = 1e-4


def recalculated(lo, path, *names):
    lo.load(path)
    lo.calculate()
    return [lo.read_array(name) for name in names]


def check_against_reference(lo, path, config, params, ids, n_ctx, vocab, calculate=True):
    """Logits, top-1 and intermediate activations of the workbook equal the reference's (loaded and fully
    recalculated first, or with calculate=False as LibreOffice has them now)."""
    n = len(ids)
    trace = {}
    ref = reference.forward(ids, params, config, trace)
    if calculate:
        logits, embed, ln_f = recalculated(lo, path, "logits", "embed", "ln_f")
    else:
        logits, embed, ln_f = (lo.read_array(name) for name in ("logits", "embed", "ln_f"))
    assert logits.shape == (config.n_vocab, 1)
    np.testing.assert_allclose(logits[:, 0], ref[-1], atol=TOL, rtol=0)
    np.testing.assert_allclose(embed[:n], trace["embed"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ln_f[:n], trace["ln_f"], atol=TOL, rtol=0)
    blocks = [embed, ln_f]
    for i, layer in enumerate(trace["layers"]):
        qkv, mid, post = (lo.read_array(f"h{i}_{x}") for x in ("qkv", "resid_mid", "resid_post"))
        np.testing.assert_allclose(qkv[:n], layer["qkv"], atol=TOL, rtol=0)
        for h in range(config.n_head):
            scores, probs = lo.read_array(f"h{i}_scores{h}"), lo.read_array(f"h{i}_probs{h}")
            np.testing.assert_allclose(probs[:n, :n][np.tril_indices(n)], layer["probs"][h][np.tril_indices(n)],
                                       atol=TOL, rtol=0)
            for m in (scores, probs):   # query t computes keys 0..t only: the upper triangle stays empty
                assert np.isnan(m[np.triu_indices(n_ctx, 1)]).all(), "a query sees a later key"
            blocks += [scores, probs]
        np.testing.assert_allclose(mid[:n], layer["attn_out"], atol=TOL, rtol=0)
        np.testing.assert_allclose(post[:n], layer["out"], atol=TOL, rtol=0)
        blocks += [qkv, mid, post] + [lo.read_array(f"h{i}_{x}") for x in ("ln_1", "heads", "ln_2", "fc", "gelu")]
    for block in blocks:   # empty token slots compute nothing
        assert np.isnan(block[n:]).all()
    top = lo.read("top_k")[0]
    ref_ids, ref_logits, ref_probs = reference.top_k(ref[-1], len(top))
    assert int(top[0][1]) == ref_ids[0]
    assert [row[2] for row in top] == [vocab[i] for i in ref_ids]
    np.testing.assert_allclose([row[3] for row in top], ref_logits, atol=TOL, rtol=0)
    np.testing.assert_allclose([row[4] for row in top], ref_probs, atol=TOL, rtol=0)
    assert lo.read("n_tokens")[0][0][0] == n
    return logits


CASES = {
    # name: (config, layout, dtype, n_ctx, number of filled slots)
    "hub-f32-1layer-head16-full": (GPT2Config(1, 32, 2, n_vocab=300, n_positions=16), "hub", "float32", 4, 4),
    "pretrained-f16-3layers-head8-partial": (GPT2Config(3, 24, 3, n_vocab=257, n_positions=12),
                                             "save_pretrained", "float16", 7, 3),
    "hub-bf16-2layers-head64-one-token": (GPT2Config(2, 64, 1, n_vocab=128, n_positions=8), "hub", "bfloat16", 1, 1),
    "pretrained-f32-2layers-head20-eps": (GPT2Config(2, 40, 2, n_vocab=200, n_positions=64, layer_norm_epsilon=1e-3),
                                          "save_pretrained", "float32", 12, 12),
}


@pytest.mark.parametrize("case", list(CASES))
def test_workbook_matches_reference(case, lo, tmp_path):
    config, layout, dtype, n_ctx, filled = CASES[case]
    save_checkpoint(tmp_path / "ckpt", config, random_params(config, seed=len(case)), layout=layout, dtype=dtype)
    model = load_model(tmp_path / "ckpt")  # the stored (rounded) weights are what the workbook holds
    assert model.config == config
    ids = [int(i) for i in np.random.default_rng(7).integers(0, config.n_vocab, filled)]
    vocab = [f"t{i}" for i in range(config.n_vocab)]
    path = write_workbook(build_plan(config, n_ctx, vocab, ids), model.params, tmp_path / "model.xlsx")
    check_against_reference(lo, path, config, model.params, ids, n_ctx, vocab)


def test_layers_option_keeps_the_first_blocks(lo, tmp_path):
    config = GPT2Config(3, 16, 2, n_vocab=100, n_positions=8)
    params = random_params(config, seed=3)
    save_checkpoint(tmp_path / "ckpt", config, params)
    path = build(tmp_path / "ckpt", layers=2, context=4, output=tmp_path / "two.xlsx")
    two = config.with_layers(2)
    kept = {k: v for k, v in params.items() if k in two.param_shapes()}
    lo.load(path)
    lo.calculate()
    # the prompt-less workbook has empty slots; type ids in like a user would
    lo.write("token_ids", [[5], [17], [99], [0]])
    lo.calculate()
    logits = lo.read_array("logits")[:, 0]
    np.testing.assert_allclose(logits, reference.forward([5, 17, 99, 0], kept, two)[-1], atol=TOL, rtol=0)


def test_demo_workbook_with_prompt(lo, tmp_path):
    """The README's first command: the embedded demo, a real prompt, the real vocabulary."""
    model = load_model()
    prompt = "Hello world, my"
    path = build(prompt=prompt, output=tmp_path / "demo.xlsx")
    ids = tokenizer.encode(prompt)
    assert ids == [15496, 995, 11, 616]
    check_against_reference(lo, path, model.config, model.params, ids, 10, tokenizer.vocabulary())
    texts = [row[2] for row in lo.read("'tokens'!A3:C12")[0]]
    assert texts == ["Hello", " world", ",", " my"] + [""] * 6


def test_vocabulary_survives_libreoffice(lo, tmp_path):
    """All 50,257 token strings round-trip: text stays text (=, +, -, @), escapes are visible."""
    vocab = tokenizer.vocabulary()
    config = GPT2Config(1, 8, 1, n_vocab=len(vocab), n_positions=4)
    plan = build_plan(config, 2, list(vocab), [])
    path = write_workbook(plan, random_params(config), tmp_path / "vocab.xlsx")
    lo.load(path)
    read = [row[0] for row in lo.read("vocab_text")[0]]
    assert len(read) == len(vocab)
    bad = [(i, vocab[i], read[i]) for i in range(len(vocab)) if read[i] != vocab[i]]
    assert not bad, f"{len(bad)} tokens changed, e.g. {bad[:5]}"
    logits_text = [row[0] for row in lo.read("'logits'!B3:B50259")[0]]
    assert logits_text == list(vocab)
    formulas = lo.read("vocab_text", what="formula")[0]
    assert not any(row[0].startswith("=") and row[0] != vocab[i] for i, row in enumerate(formulas))


@pytest.mark.slow
def test_full_gpt2_small_widths(lo, tmp_path):
    """768 wide, 12 heads, 3072 MLP, 50,257 vocabulary, 1,024 positions, 1 layer."""
    config = GPT2Config(1, 768, 12)
    params = random_params(config, seed=124)
    save_checkpoint(tmp_path / "gpt2", config, params, layout="hub")
    path = build(tmp_path / "gpt2", context=6, prompt="The spreadsheet is all", output=tmp_path / "small.xlsx")
    model = load_model(tmp_path / "gpt2")
    check_against_reference(lo, path, config, model.params, tokenizer.encode("The spreadsheet is all"), 6,
                            tokenizer.vocabulary())


def test_recalculating_only_what_changed(lo, tmp_path):
    """Edits followed by LibreOffice's calculate() (only formulas whose inputs changed, what generation and
    Excel's Calculate use) give the reference's numbers: appending a token, changing an earlier one,
    emptying the last slots."""
    config = GPT2Config(2, 24, 3, n_vocab=90, n_positions=8)
    save_checkpoint(tmp_path / "ckpt", config, random_params(config, seed=11))
    model = load_model(tmp_path / "ckpt")
    vocab = [f"t{i}" for i in range(config.n_vocab)]
    path = write_workbook(build_plan(config, 6, vocab, [3, 14, 15]), model.params, tmp_path / "edit.xlsx")
    lo.load(path)
    lo.calculate()
    lo.auto_calculate(False)   # edits alone change nothing computed: calculate() must do the work
    for first_row, values, ids in ((3, [[9]], [3, 14, 15, 9]),                # append (a generation step)
                                   (1, [[27]], [3, 27, 15, 9]),               # change an earlier token
                                   (2, [[None], [None]], [3, 27])):           # empty the last slots
        lo.write("token_ids", values, first_row)
        lo.calculate(dirty_only=True)
        check_against_reference(lo, path, config, model.params, ids, 6, vocab, calculate=False)
