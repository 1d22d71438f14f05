"""The teaching layer: index sheet, colour code, heatmaps, chart, head switches, logit lens.

The styled workbook must still compute the reference's numbers; a switched-off head must give the
reference with that head's output zeroed; the logit lens must equal the reference's."""
import re
import zipfile

import numpy as np
import pytest

from conftest import needs_lo
from generator import reference
from generator.checkpoint import random_params
from generator.config import GPT2Config
from generator.plan import build_plan
from generator.writer import write_workbook
from test_workbook import TOL, check_against_reference

CONFIG = GPT2Config(2, 24, 3, n_vocab=150, n_positions=8)
N_CTX = 5
IDS = [3, 141, 7, 59]
VOCAB = [f"t{i}" for i in range(CONFIG.n_vocab)]


@pytest.fixture(scope="module")
def workbook(tmp_path_factory):
    params = random_params(CONFIG, seed=11)
    plan = build_plan(CONFIG, N_CTX, VOCAB, IDS, prompt="t3 t141", logit_lens=True)
    path = write_workbook(plan, params, tmp_path_factory.mktemp("teach") / "teach.xlsx")
    return path, params, plan


def sheet_xml(path):
    """sheet name -> its worksheet XML."""
    with zipfile.ZipFile(path) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        targets = dict(re.findall(r'<Relationship Id="(rId\d+)" Type="[^"]+/worksheet" Target="([^"]+)"', rels))
        out = {}
        for name, rid in re.findall(r'<sheet name="([^"]+)" sheetId="\d+" r:id="(rId\d+)"', wb):
            out[name.replace("&apos;", "'").replace("&amp;", "&")] = z.read("xl/" + targets[rid]).decode()
        return out


def test_index_comes_first_and_every_hyperlink_points_to_a_sheet(workbook):
    path, _, plan = workbook
    sheets = sheet_xml(path)
    assert list(sheets)[0] == "index"
    links = [loc for xml in sheets.values() for loc in re.findall(r'<hyperlink ref="[A-Z]+\d+" location="([^"]+)"', xml)]
    targets = {re.sub(r"^'(.*)'!A1$", r"\1", loc.replace("&apos;", "'")).replace("''", "'") for loc in links}
    assert targets >= set(sheets) - {"index"}, "the table of contents lists every sheet"
    assert targets <= set(sheets), f"links to missing sheets: {targets - set(sheets)}"
    assert all(loc.endswith("!A1") for loc in links)


def test_heatmaps_chart_and_no_styles_on_weight_sheets(workbook):
    path, _, plan = workbook
    sheets = sheet_xml(path)
    for layer in range(CONFIG.n_layer):
        xml = sheets[f"h{layer} attn"]
        assert xml.count("<conditionalFormatting") == CONFIG.n_head
        assert "<colorScale>" in xml
    with zipfile.ZipFile(path) as z:
        chart = z.read("xl/charts/chart1.xml").decode()
    assert "<c:barChart>" in chart and "predict" in chart
    assert "<drawing " in sheets["predict"]
    for name, xml in sheets.items():
        if name in CONFIG.param_shapes():
            assert ' s="' not in xml, f"weight sheet {name} has styled cells"
            assert "<tabColor" in xml
    # title rows carry step numbers, compute sheets freeze panes
    assert "Step 1 · " in "".join(c.value for c in plan.sheet("tokens").cells if isinstance(c.value, str))
    assert all(plan.sheet(n).freeze for n in ("tokens", "embed", "h0 attn", "h0 mlp", "ln_f", "logits", "predict"))


@needs_lo
def test_styled_workbook_matches_reference(workbook, lo):
    path, params, _ = workbook
    check_against_reference(lo, path, CONFIG, params, IDS, N_CTX, VOCAB)
    labels = [row[0] for row in lo.read("'embed'!A4:A8")[0]]
    assert labels == ["0: t3", "1: t141", "2: t7", "3: t59", "4: "]
    assert lo.read("head_switches")[0] == [[1.0] * CONFIG.n_head] * CONFIG.n_layer


@needs_lo
@pytest.mark.parametrize("layer, head", [(0, 1), (1, 2)])
def test_switching_a_head_off_removes_its_output(workbook, lo, layer, head):
    path, params, _ = workbook
    lo.load(path)
    lo.write(f"h{layer}_head{head}_on", [[0]])
    lo.calculate()
    mask = np.ones((CONFIG.n_layer, CONFIG.n_head))
    mask[layer, head] = 0
    ref = reference.forward(IDS, params, CONFIG, head_mask=mask)[-1]
    np.testing.assert_allclose(lo.read_array("logits")[:, 0], ref, atol=TOL, rtol=0)
    assert np.abs(ref - reference.forward(IDS, params, CONFIG)[-1]).max() > 10 * TOL, "the head mattered"


@needs_lo
def test_logit_lens_equals_reference(workbook, lo):
    path, params, _ = workbook
    lo.load(path)
    lo.calculate()
    trace = {}
    logits = reference.forward(IDS, params, CONFIG, trace)
    lens = reference.logit_lens(trace, CONFIG)
    got = lo.read_array("lens_logits")
    assert got.shape == (CONFIG.n_vocab, CONFIG.n_layer)
    np.testing.assert_allclose(got.T, lens, atol=TOL, rtol=0)
    np.testing.assert_allclose(lens[-1], logits[-1], atol=1e-9)
    top = lo.read("lens_top_k")[0]
    for layer in range(CONFIG.n_layer):
        ids, _, probs = reference.top_k(lens[layer], len(top))
        assert [row[2 * layer] for row in top] == [VOCAB[i] for i in ids]
        np.testing.assert_allclose([row[2 * layer + 1] for row in top], probs, atol=TOL, rtol=0)


def test_logit_lens_is_an_option_of_build(tmp_path):
    from generator.checkpoint import save_checkpoint
    from generator.cli import main
    save_checkpoint(tmp_path / "ckpt", CONFIG, random_params(CONFIG, seed=2))
    for flag, expected in ((["--logit-lens"], True), ([], False)):
        out = tmp_path / f"lens{len(flag)}.xlsx"
        assert main(["build", "--weights", str(tmp_path / "ckpt"), "--context", "3", "-o", str(out), *flag]) == 0
        assert ("logit lens" in sheet_xml(out)) is expected


def test_reference_head_mask_defaults_to_all_heads():
    params = random_params(CONFIG, seed=5)
    plain = reference.forward(IDS, params, CONFIG)
    np.testing.assert_array_equal(reference.forward(IDS, params, CONFIG, head_mask=np.ones((2, 3))), plain)
    assert not np.array_equal(reference.forward(IDS, params, CONFIG, head_mask=[[1, 1, 1], [1, 1, 0]]), plain)
