"""The FLOP tally: the article's reference values, an independent count of the numpy reference's matrix
products, the `flops` sheet recalculated by LibreOffice, and the `flops` command."""
import numpy as np
import pytest

from conftest import needs_lo
from generator import flops, reference
from generator.checkpoint import random_params
from generator.cli import main
from generator.config import PUBLISHED, GPT2Config
from generator.plan import build_plan
from generator.writer import write_workbook

GPT2_SMALL = PUBLISHED["gpt2"]


# ----------------------------------------------------------------------------- Python counts

def test_gpt2_small_reference_values():
    t = flops.totals(GPT2_SMALL, 6)
    assert t["flops_matmul_all"] == 1_483_711_488
    assert t["flops_matmul_dense"] == 1_019_215_872
    assert t["flops_logits_all"] == 463_168_512
    assert t["flops_matmul_attention"] == 1_327_104
    assert t["flops_matmul_last"] == 1_097_737_728
    assert t["params_total"] == 124_439_808 and t["params_nonembed"] == 85_056_000
    assert t["flops_2n"] == 2 * 124_439_808 * 6
    assert flops.totals(GPT2_SMALL, 1024)["flops_matmul_all"] == 291_648_307_200


def test_published_sizes_and_conventions_agree_roughly():
    """Every convention is within a factor 2 of the matrix products; per token per parameter is about 2."""
    for name, config in PUBLISHED.items():
        t = flops.totals(config, 6)
        assert t["params_total"] == config.n_params()
        for c in flops.CONVENTIONS:
            assert t["flops_matmul_last"] / 2 < t[c.name] < 2 * t["flops_matmul_all"], (name, c.name)
        assert 1.9 < t["flops_matmul_all"] / (6 * t["params_total"]) < 2.0, name


class Counted(np.ndarray):
    """An array that adds 2*m*k*n to `Counted.flops` for every matrix product it takes part in."""
    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, Counted) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Counted) else o for o in kwargs["out"])
        if ufunc is np.matmul:
            (m, k), (_, n) = plain[0].shape, plain[1].shape
            Counted.flops += 2 * m * k * n
        result = getattr(ufunc, method)(*plain, **kwargs)
        return result.view(Counted) if isinstance(result, np.ndarray) else result


class CountingNumpy:
    """numpy for `reference`, except that its arrays are `Counted`."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def asarray(*args, **kwargs):
        return np.asarray(*args, **kwargs).view(Counted)


@pytest.mark.parametrize("config,tokens", [
    (GPT2Config(1, 16, 2, n_vocab=50, n_positions=8), 5),
    (GPT2Config(3, 24, 3, n_vocab=37, n_positions=12), 12),
    (GPT2Config(2, 32, 4, n_vocab=64, n_positions=8), 1),
])
def test_matmul_count_equals_instrumented_reference(config, tokens, monkeypatch):
    """reference.forward computes the logits of every position: its matrix products are (b) at all positions."""
    params = random_params(config, seed=tokens)
    ids = np.random.default_rng(tokens).integers(0, config.n_vocab, tokens)
    plain = reference.forward(ids, params, config)
    monkeypatch.setattr(reference, "np", CountingNumpy())
    Counted.flops = 0
    counted = reference.forward(ids, params, config)
    np.testing.assert_array_equal(np.asarray(counted), plain)  # the hook changed nothing but the count
    assert Counted.flops == flops.totals(config, tokens)["flops_matmul_all"]


def test_expressions_use_only_known_symbols():
    for expr in [op.flops for op in flops.OPS] + [op.matmul for op in flops.OPS] + \
                [c.expr for c in flops.CONVENTIONS if c.expr]:
        assert set(expr) <= set("0123456789+-*/() _") | set("".join(flops.SYMBOLS)), expr
        flops.formula(expr)  # every symbol has a defined name


def test_training_cost_deepseek_v3():
    ds = flops.training_cost(flops.DEEPSEEK_V3)
    assert ds["flops"] == pytest.approx(3.2856e24)
    assert ds["gpu_hours"] == 2_788_000
    assert ds["cost"] == 5_576_000 and ds["cost_pre"] == 5_328_000
    assert ds["utilisation"] == pytest.approx(3.2856e24 / (2_664_000 * 3600 * 989e12))


# ----------------------------------------------------------------------------- the command

def test_command_prints_the_reference_values(capsys):
    assert main(["flops", "--model", "gpt2", "--tokens", "6"]) == 0
    out = capsys.readouterr().out
    for number in ("1,483,711,488", "1,097,737,728", "1,019,215,872", "463,168,512", "1,327,104",
                   "124,439,808", "$5,576,000", "$5,328,000"):
        assert number in out, number


def test_command_layers_and_errors(capsys):
    assert main(["flops", "--model", "gpt2-xl", "--layers", "2", "--tokens", "3"]) == 0
    assert "2 layers, width 1600" in capsys.readouterr().out
    for args in (["--tokens", "0"], ["--model", "gpt2", "--tokens", "1025"], ["--model", "gpt2", "--layers", "13"]):
        assert main(["flops", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gpt2-workbook: error: ") and err.count("\n") == 1, err


# ----------------------------------------------------------------------------- the sheet in LibreOffice

SHEET_CASES = {
    # name: (config, token slots, ids filled at build time, ids typed into the first slots afterwards)
    "1layer-partial-then-full": (GPT2Config(1, 16, 2, n_vocab=50, n_positions=8), 6, [3, 1], [4, 0, 9, 9, 2, 7]),
    "3layers-full": (GPT2Config(3, 24, 3, n_vocab=37, n_positions=12), 7, [5, 6, 7, 8, 9, 10, 11], None),
    "2layers-empty-then-one": (GPT2Config(2, 32, 4, n_vocab=64, n_positions=8), 3, [], [12]),
}


def read_totals(lo, names):
    return {name: lo.read(name)[0][0][0] for name in names}


@needs_lo
@pytest.mark.parametrize("case", list(SHEET_CASES))
def test_sheet_equals_python_counts(case, lo, tmp_path):
    config, n_ctx, ids, typed = SHEET_CASES[case]
    vocab = [f"t{i}" for i in range(config.n_vocab)]
    path = write_workbook(build_plan(config, n_ctx, vocab, ids), random_params(config), tmp_path / "flops.xlsx")
    lo.load(path)
    lo.calculate()
    check_sheet(lo, config, n_ctx, len(ids))
    if typed is not None:  # type other tokens in, as a user would: the tally follows
        lo.write(f"'tokens'!B3:B{2 + len(typed)}", [[i] for i in typed])
        lo.calculate()
        check_sheet(lo, config, n_ctx, len(typed))


def check_sheet(lo, config, n_ctx, filled):
    expected = flops.totals(config, filled)
    assert lo.read("n_tokens")[0][0][0] == filled
    assert read_totals(lo, expected) == expected
    assert lo.read("flops_total_all_slots")[0][0][0] == flops.totals(config, n_ctx)["flops_total"]
    cells = [c for row in lo.read("'flops'!A1:K200")[0] for c in row]
    assert not [c for c in cells if isinstance(c, str) and c.startswith(("#", "Err:"))]


@needs_lo
def test_training_cost_in_libreoffice(lo, tmp_path):
    config = GPT2Config(1, 8, 1, n_vocab=20, n_positions=4)
    path = write_workbook(build_plan(config, 2, [f"t{i}" for i in range(20)], [1]), random_params(config),
                          tmp_path / "cost.xlsx")
    lo.load(path)
    lo.calculate()
    own = flops.Training("own", config.n_params(), flops.OWN_TOKENS_PER_PARAM * config.n_params(),
                         utilisation=flops.OWN_UTILISATION)
    for suffix, training in (("deepseek", flops.DEEPSEEK_V3), ("model", own)):
        want = flops.training_cost(training)
        got = read_totals(lo, [f"train_{k}_{suffix}" for k in ("flops", "gpu_hours", "gpu_hours_pre", "cost",
                                                                "cost_pre", "util", "util_all")])
        assert got == pytest.approx({f"train_{k}_{suffix}": want[w] for k, w in (
            ("flops", "flops"), ("gpu_hours", "gpu_hours"), ("gpu_hours_pre", "gpu_hours_pre"), ("cost", "cost"),
            ("cost_pre", "cost_pre"), ("util", "utilisation"), ("util_all", "utilisation_all"))}, rel=1e-12)
    assert lo.read("train_cost_deepseek")[0][0][0] == 5_576_000
    assert lo.read("train_cost_pre_deepseek")[0][0][0] == 5_328_000
    assert lo.read("train_flops_deepseek")[0][0][0] == pytest.approx(3.2856e24, rel=1e-12)
    assert lo.read("train_util_deepseek")[0][0][0] == pytest.approx(0.3464, abs=1e-4)


def test_attention_counts_follow_the_plans_formulas():
    """(a) counts what the formulas compute: query t fills score and probability cells for keys 0..t only."""
    config, T = GPT2Config(2, 16, 2, n_vocab=50, n_positions=8), 5
    plan = build_plan(config, T, [f"t{i}" for i in range(config.n_vocab)], list(range(T)))
    d, H = config.head_size, config.n_head
    arrays = plan.sheet("h1 attn").arrays

    def cells_in(name):
        r = plan.names[name]
        return sum(a.target.rows * a.target.cols for a in arrays if a.target.sheet == r.sheet
                   and r.row <= a.target.row <= r.last_row and r.col <= a.target.col <= r.last_col)

    keys = [cells_in(f"h1_scores{h}") for h in range(H)]
    assert keys == [cells_in(f"h1_probs{h}") for h in range(H)] == [T * (T + 1) // 2] * H
    count = {r.op.name: r.flops for r in flops.tally(config, T)}
    # a score: d multiply-adds and a division, plus one square root per row
    assert count["scores q k^T / sqrt(d), causal"] == sum(2 * d * k + k + T for k in keys)
    # a softmax row of k scores: MAX and k subtractions and EXPs twice, a SUM of k, k divisions
    assert count["softmax, row by row"] == sum(sum(2 * (t - 1 + t + t) + (t - 1) + t for t in range(1, T + 1))
                                               for _ in range(H))
    # P v: each probability multiplies a value row of d; then d switch multiplications per row
    assert count["weighted sum P v, x head switch"] == sum(2 * d * k + T * d for k in keys)
    assert count["causal mask"] == 0
