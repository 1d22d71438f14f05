"""Prompt in, text out: `gpt2-workbook run` (LibreOffice), the xlwings macros, `build --xlsm`, bad input.

The generated tokens are compared, token for token, with the numpy reference run through the same
loop: greedy = argmax of the reference logits; sampling = the same sampler (`generate.choose`, same
seed and position) applied to the reference logits.
"""
import hashlib
import importlib.util
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName

import xlwings_fake
from conftest import needs_lo
from generator import reference, tokenizer, xlwings_macros
from generator.build import build, load_model
from generator.checkpoint import random_params, save_checkpoint
from generator.cli import main
from generator.config import GPT2Config, GPT2Error
from generator.generate import FORMAT_NAME, REQUIRED_NAMES, Settings, Workbook, choose, generate
from generator.plan import build_plan
from generator.plan.control import FORMAT_VERSION, MAIN_MACRO
from generator.run import LibreOfficeAdapter, run
from generator.writer import write_workbook
from generator.xlsm import companion_source
from vba_source import module_source

SMALL = GPT2Config(2, 32, 2, n_vocab=300, n_positions=16)   # prompts of single letters, spaces, digits
SMALL_CTX = 8
DEMO_PROMPT = "Hello world, my"


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reference_continuation(model, ids, n, n_ctx, temperature=0.0, top_k=0, seed=None):
    """The loop of generator/generate.py on the numpy reference's logits."""
    ids, new = list(ids), []
    for _ in range(n):
        if len(ids) >= n_ctx:
            break
        logits = reference.forward(ids, model.params, model.config)[-1]
        token = choose(logits, temperature, top_k, seed, len(ids))
        ids.append(token)
        new.append(token)
        if token == tokenizer.EOT_ID:
            break
    return new


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = build(prompt=DEMO_PROMPT, output=tmp_path_factory.mktemp("demo") / "demo.xlsx")
    return path, load_model()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    save_checkpoint(folder / "ckpt", SMALL, random_params(SMALL, seed=5))
    path = build(folder / "ckpt", context=SMALL_CTX, output=folder / "small.xlsx")
    return path, load_model(folder / "ckpt")


_loaded = {"path": None}


def loaded(lo, path):
    """Load `path` unless it is the document this module loaded last (its state is reset by every run)."""
    if _loaded["path"] != path:
        lo.load(path)
        _loaded["path"] = path
    return Workbook(LibreOfficeAdapter(lo), Path(path).name)


# ----------------------------------------------------------------------------- the sampler

def test_choose_greedy_top_k_and_seeds():
    logits = np.array([0.0, 3.0, 3.0, 1.0, -2.0])
    assert choose(logits) == 1                          # the first of equal maxima, like MATCH(LARGE(...))
    assert choose(logits, temperature=5.0, top_k=1, seed=0) == 1
    draws = [choose(logits, 1.0, 2, seed=s, position=3) for s in range(200)]
    assert set(draws) == {1, 2}                         # top-2: the two largest only
    assert choose(logits, 0.7, 0, seed=9, position=4) == choose(logits, 0.7, 0, seed=9, position=4)
    positions = {choose(np.zeros(1000), 1.0, 0, seed=1, position=p) for p in range(20)}
    assert len(positions) > 10                          # (seed, position) seeds each step differently
    hot = [choose(logits, 1e-3, 0, seed=s) for s in range(20)]
    assert set(hot) <= {1, 2}                           # a tiny temperature is almost greedy


# ----------------------------------------------------------------------------- LibreOffice: run

@needs_lo
def test_run_demo_workbook_gives_the_reference_continuation(lo, demo):
    path, model = demo
    before = digest(path)
    lines = []
    gen = run(path, Settings(DEMO_PROMPT, tokens=8), out=lines.append, lo=lo)
    _loaded["path"] = path
    ids = tokenizer.encode(DEMO_PROMPT)
    expected = reference_continuation(model, ids, 8, 10)
    assert len(expected) == 6                           # 4 prompt tokens + 6 fill the 10 slots
    assert gen.new_ids == expected
    assert "all 10 token slots are full" in gen.stop
    text = "\n".join(lines)
    assert f"continuation: {tokenizer.decode(expected)}" in text
    step_lines = [line for line in lines if re.match(r"\s+\d+  '", line)]
    assert len(step_lines) == 6 and all(line.count("%") == 6 for line in step_lines)   # token + 5 alternatives
    assert "s per token" in text
    assert digest(path) == before                       # without --save the file is never written
    # the control sheet shows the result
    book = Workbook(LibreOfficeAdapter(lo), path.name)
    assert book.read_ids() == ids + expected
    assert book.cell("gen_continuation") == tokenizer.decode(expected)
    assert book.cell("gen_text") == tokenizer.decode(ids + expected)
    assert book.cell("gen_prompt") == DEMO_PROMPT
    assert "all 10 token slots are full" in book.cell("gen_status")
    rows = book.read("gen_steps")
    assert [int(r[2]) for r in rows[:6]] == expected and rows[6] == [""] * 5
    assert [r[1] for r in rows[:6]] == [tokenizer.vocabulary()[i] for i in expected]
    logits = reference.forward(ids, model.params, model.config)[-1]
    p = np.exp(logits - logits.max())
    assert rows[0][3] == pytest.approx(p[expected[0]] / p.sum(), rel=1e-4)


@needs_lo
def test_unicode_and_formula_like_prompts(lo, demo):
    path, model = demo
    book = loaded(lo, path)
    for prompt in ["Olá 🙂\tok\n日", "=SUM(A1:A3)", "+1", "-x", "@here"]:
        ids = tokenizer.encode(prompt)
        settings = Settings(prompt, tokens=2)
        book.write_settings(settings)                   # as `run` does
        gen = generate(book, settings)
        assert gen.prompt_ids == ids
        assert gen.new_ids == reference_continuation(model, ids, 2, 10), prompt
        assert book.cell("gen_prompt") == prompt
        assert book.cell("gen_text") == tokenizer.decode(ids + gen.new_ids)
        assert isinstance(lo.read("gen_prompt")[0][0][0], str)           # text, never a formula or number
        texts = [row[0] for row in lo.read("'tokens'!C3:C12")[0]]
        assert texts[:len(ids)] == [tokenizer.vocabulary()[i] for i in ids]   # \t, \n, <0xF0> ... escaped
    assert tokenizer.decode(tokenizer.encode("Olá 🙂\tok\n日")) == "Olá 🙂\tok\n日"


@needs_lo
def test_prompt_longer_than_the_slots_writes_nothing(lo, demo):
    path, _ = demo
    book = loaded(lo, path)
    generate(book, Settings("abc", tokens=1))
    slots = lo.read("token_ids")[0]
    long = "one two three four five six seven eight nine ten eleven"
    with pytest.raises(GPT2Error, match=r"the prompt is 11 tokens long but the workbook has 10 token slots"):
        generate(book, Settings(long, tokens=1))
    with pytest.raises(GPT2Error, match="the prompt is empty"):
        generate(book, Settings("", tokens=1))
    assert lo.read("token_ids")[0] == slots


@needs_lo
def test_seeded_sampling_matches_the_same_sampler_on_reference_logits(lo, small):
    path, model = small
    for prompt, temperature, top_k, seed in [("a b c", 0.8, 20, 11), ("x=1+2", 1.5, 0, 3)]:
        gen = run(path, Settings(prompt, 4, temperature, top_k, seed), out=lambda line: None, lo=lo)
        _loaded["path"] = path
        ids = tokenizer.encode(prompt)
        expected = reference_continuation(model, ids, 4, SMALL_CTX, temperature, top_k, seed)
        assert gen.new_ids == expected
        assert gen.new_ids != reference_continuation(model, ids, 4, SMALL_CTX), "sampling was greedy"


@needs_lo
def test_save_writes_the_final_state_atomically(lo, small, tmp_path):
    path, model = small
    target = tmp_path / "saved.xlsx"
    target.write_bytes(path.read_bytes())
    gen = run(target, Settings("a b c", tokens=3), save=True, out=lambda line: None, lo=lo)
    assert digest(target) != digest(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.xlsx"]   # no temporary file left
    book = loaded(lo, target)
    assert book.read_ids() == tokenizer.encode("a b c") + gen.new_ids
    assert book.cell("gen_continuation") == gen.continuation
    again = run(target, Settings("a b", tokens=2), out=lambda line: None, lo=lo)   # still a valid workbook
    _loaded["path"] = target
    assert again.new_ids == reference_continuation(model, tokenizer.encode("a b"), 2, SMALL_CTX)


@needs_lo
def test_cli_run(small, capsys, tmp_path):
    path, model = small
    before = digest(path)
    assert main(["run", str(path), "--prompt", "a b c", "--tokens", "3"]) == 0
    out = capsys.readouterr().out
    expected = reference_continuation(model, tokenizer.encode("a b c"), 3, SMALL_CTX)
    assert f"continuation: {tokenizer.decode(expected)}" in out
    assert "generated 3 tokens" in out and "s per token" in out and "LibreOffice started in" in out
    assert digest(path) == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- Excel: the xlwings macros

@needs_lo
def test_xlwings_macros_run_on_a_book(lo, demo, tmp_path, monkeypatch):
    """The macros, unchanged, against xlwings' Book API (tests/xlwings_fake.py) on the demo workbook."""
    path, model = demo
    loaded(lo, path)
    book = xlwings_fake.Book(lo, path)
    prompt = "=1+1 🙂"
    lo.write("gen_prompt", [[prompt]])                  # what the user typed (a text cell)
    lo.write("gen_tokens", [[2]])
    lo.write("gen_temperature", [[0]])
    status = xlwings_macros.generate_tokens(book)
    ids = tokenizer.encode(prompt)
    greedy = reference_continuation(model, ids, 2, 10)
    assert status.startswith("generated 2 tokens"), status
    assert xlwings_fake.Range(book, "token_ids").value[:len(ids) + 2] == ids + greedy
    steps = book.names["gen_steps"].refers_to_range.options(ndim=2).value
    assert [int(r[2]) for r in steps[:2]] == greedy and steps[2] == [None] * 5
    assert book.sheets["control"]["B15"].value == tokenizer.decode(ids + greedy)      # gen_text
    assert book.app.calculations == 2

    # one at a time: tokenize, then predict = the first generated token
    assert xlwings_macros.tokenize_prompt(book).startswith(f"tokenized: {len(ids)} of 10")
    assert xlwings_fake.Range(book, "gen_steps").options(ndim=2).value[0] == [None] * 5
    xlwings_macros.predict_next_token(book)
    assert xlwings_fake.Range(book, "token_ids").value[:len(ids) + 2] == ids + greedy[:1] + [None]
    assert book.names["gen_continuation"].refers_to_range.value == tokenizer.decode(greedy[:1])
    steps = book.names["gen_steps"].refers_to_range.options(ndim=2).value
    assert [r[0] for r in steps[:2]] == [1, None]


@needs_lo
def test_xlwings_macros_report_bad_input_in_the_status_cell(lo, demo):
    path, _ = demo
    loaded(lo, path)
    book = xlwings_fake.Book(lo, path)
    lo.write("gen_prompt", [["a b c"]])
    lo.write("gen_temperature", [[0]])
    lo.write("gen_seed", [[None]])
    xlwings_macros.tokenize_prompt(book)
    slots = lo.read("token_ids")[0]
    cases = [("gen_prompt", "", "the prompt is empty"),
             ("gen_prompt", "word " * 11, "the prompt is 12 tokens long but the workbook has 10 token slots"),
             ("gen_tokens", "many", "tokens to generate (control sheet, gen_tokens) must be a number"),
             ("gen_tokens", 0, "tokens to generate must be a whole number of at least 1"),
             ("gen_temperature", -1, "the temperature must be a number of at least 0"),
             ("gen_top_k", 2.5, "top-k (control sheet, gen_top_k) must be a whole number"),
             ("gen_action", "dance", "unknown action 'dance'")]
    for name, value, message in cases:
        saved = lo.read(name)[0]
        lo.write(name, [[value]])
        status = (xlwings_macros.run_action(book) if name == "gen_action"
                  else xlwings_macros.generate_tokens(book))
        assert status.startswith("error: ") and message in status, status
        assert lo.read("gen_status")[0][0][0] == status
        assert lo.read("token_ids")[0] == slots          # nothing else written
        lo.write(name, saved)


@needs_lo
def test_xlwings_macros_sampling_and_the_companion_module(lo, small, tmp_path, monkeypatch):
    path, model = small
    loaded(lo, path)
    book = xlwings_fake.Book(lo, path)
    # seeded sampling read from the control sheet, one token at a time or all at once: the same tokens
    lo.write("gen_prompt", [["a b c"]])
    lo.write("gen_temperature", [[1.2]])
    lo.write("gen_top_k", [[50]])
    lo.write("gen_seed", [[42]])
    lo.write("gen_tokens", [[4]])
    xlwings_macros.generate_tokens(book)
    abc = tokenizer.encode("a b c")
    sampled = reference_continuation(model, abc, 4, SMALL_CTX, 1.2, 50, 42)
    assert xlwings_fake.Range(book, "token_ids").value[:7] == abc + sampled
    xlwings_macros.tokenize_prompt(book)
    for _ in range(4):
        xlwings_macros.predict_next_token(book)
    assert xlwings_fake.Range(book, "token_ids").value[:7] == abc + sampled

    # the companion module's main() runs the action chosen on the control sheet
    companion = tmp_path / "small_book.py"
    companion.write_text(companion_source(tmp_path / "small_book.xlsm"))
    spec = importlib.util.spec_from_file_location("small_book", companion)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(xlwings_macros, "caller", lambda: book)
    lo.write("gen_action", [["tokenize"]])
    module.main()
    assert xlwings_fake.Range(book, "token_ids").value[:4] == abc + [None]
    lo.write("gen_action", [["predict"]])
    module.main()
    assert xlwings_fake.Range(book, "token_ids").value[:4] == abc + sampled[:1]


def test_excel_adapter_writes_text_as_text():
    """Excel parses strings assigned to cells like typed input; the adapter's apostrophe prevents it."""
    assert xlwings_macros.excel_value("=1+1") == "'=1+1"
    assert xlwings_macros.excel_value("'s") == "''s"
    assert xlwings_macros.excel_value("") == "" and xlwings_macros.excel_value(3.0) == 3.0
    for text in ["=1+1", "+5", "-x", "@a", "12", "'s", "plain"]:
        assert xlwings_fake.excel_entry(xlwings_macros.excel_value(text)) == text
    with pytest.raises(xlwings_fake.ExcelWouldParse):
        xlwings_fake.excel_entry("=1+1")


# ----------------------------------------------------------------------------- workbooks run refuses

def fails(capsys, *args, match):
    status = main(["run", *map(str, args)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("gpt2-workbook: error: ") and err.count("\n") == 1, err
    assert match in err, err
    return err


def test_run_rejects_bad_input_before_starting_libreoffice(capsys, small, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2_SOFFICE", "/nonexistent")   # would fail if LibreOffice were started
    path, _ = small
    before = digest(path)
    fails(capsys, path, "--prompt", "", match="the prompt is empty")
    fails(capsys, path, "--prompt", "a b c d e f g h i",
          match=f"is 9 tokens long but small.xlsx has {SMALL_CTX} token slots")
    fails(capsys, path, "--prompt", "a", "--tokens", "0", match="at least 1")
    fails(capsys, path, "--prompt", "a", "--temperature", "-0.5", match="temperature must be a number of at least 0")
    fails(capsys, path, "--prompt", "a", "--top-k", "-1", match="top-k must be")
    fails(capsys, path, "--prompt", "a", "--seed", "-1", match="seed must be")
    fails(capsys, tmp_path / "nope.xlsx", "--prompt", "a", match="nope.xlsx: no such file")
    text = tmp_path / "notes.xlsx"
    text.write_text("not a workbook")
    fails(capsys, text, "--prompt", "a", match="is not an .xlsx workbook")
    foreign = tmp_path / "foreign.xlsx"
    wb = openpyxl.Workbook()
    wb.active["B3"] = 1
    wb.defined_names["token_ids"] = DefinedName("token_ids", attr_text="Sheet!$B$3:$B$12")
    wb.save(foreign)
    fails(capsys, foreign, "--prompt", "a", match="foreign.xlsx was not made by gpt2-workbook")
    assert digest(path) == before


def test_workbook_of_an_older_version_without_the_control_sheet(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2_SOFFICE", "/nonexistent")
    config = GPT2Config(1, 8, 1, n_vocab=300, n_positions=4)
    plan = build_plan(config, 4, [f"t{i}" for i in range(300)])
    plan.sheets = [s for s in plan.sheets if s.name != "control"]
    plan.names = {k: v for k, v in plan.names.items() if v.sheet != "control"}
    old = write_workbook(plan, random_params(config), tmp_path / "old.xlsx")
    fails(capsys, old, "--prompt", "a", match="or by a version older than text generation")


class DictAdapter:
    def __init__(self, values):
        self.values = values

    def read(self, name):
        if name not in self.values:
            raise KeyError(name)
        return self.values[name]

    def write(self, name, rows, first=0):
        self.values[name] = self.values.get(name, [])[:first] + rows + self.values.get(name, [])[first + len(rows):]

    def recalculate(self):
        pass


def test_format_marker_and_required_names():
    good = {name: [[""]] for name in REQUIRED_NAMES}
    good.update({FORMAT_NAME: [[float(FORMAT_VERSION)]], "token_ids": [[""]] * 4, "model_vocab": [[300.0]]})
    assert Workbook(DictAdapter(dict(good)), "x.xlsx").n_ctx == 4
    newer = dict(good, **{FORMAT_NAME: [[2.0]], "gpt2_workbook_version": [["gpt2-workbook 9.0"]]})
    with pytest.raises(GPT2Error, match=r"x.xlsx was made by gpt2-workbook 9.0 in workbook format 2.0; "
                                        r"this gpt2-workbook reads format 1"):
        Workbook(DictAdapter(newer), "x.xlsx")
    partial = {k: v for k, v in good.items() if k not in ("gen_steps", "gen_prompt")}
    with pytest.raises(GPT2Error, match="lacks the defined names gen_prompt, gen_steps"):
        Workbook(DictAdapter(partial), "x.xlsx")
    with pytest.raises(GPT2Error, match="was not made by gpt2-workbook"):
        Workbook(DictAdapter({}), "x.xlsx")


def test_libreoffice_missing_is_one_clear_message(capsys, small, monkeypatch):
    monkeypatch.setenv("GPT2_SOFFICE", "/nonexistent")
    path, _ = small
    fails(capsys, path, "--prompt", "a b", match="apt-get install libreoffice-calc-nogui python3-uno")


@needs_lo
def test_libreoffice_failing_to_start_is_one_clear_message(capsys, small, monkeypatch, tmp_path):
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\necho 'fake soffice refuses' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GPT2_SOFFICE", str(fake))
    path, _ = small
    err = fails(capsys, path, "--prompt", "a b", match="LibreOffice failed to start")
    assert "apt-get install" in err and "fake soffice refuses" in err


# ----------------------------------------------------------------------------- build --xlsm

def test_build_xlsm_with_button_vba_and_companion(tmp_path, monkeypatch, small):
    pytest.importorskip("xlwings")
    import xlwings
    monkeypatch.chdir(tmp_path)
    ckpt = small[0].parent / "ckpt"
    assert main(["build", "--weights", str(ckpt), "--context", "4", "--xlsm"]) == 0
    path = tmp_path / "workbooks" / "ckpt_2L_4T.xlsm"
    companion = path.with_suffix(".py")
    assert path.exists() and companion.exists()
    with zipfile.ZipFile(path) as z, \
            zipfile.ZipFile(Path(xlwings.__file__).with_name("quickstart_standalone.xlsm")) as q:
        vba = z.read("xl/vbaProject.bin")
        assert vba == q.read("xl/vbaProject.bin")
        assert "application/vnd.ms-excel.sheet.macroEnabled.main+xml" in z.read("[Content_Types].xml").decode()
        vml = [z.read(n).decode() for n in z.namelist() if n.endswith(".vml")]
        assert len(vml) == 1 and f"<x:FmlaMacro>[0]!{MAIN_MACRO}</x:FmlaMacro>" in vml[0]
        assert 'codeName="ThisWorkbook"' in z.read("xl/workbook.xml").decode()
    source = module_source(vba, "Module1")
    assert f"Sub {MAIN_MACRO}()" in source
    assert 'RunPython "import " & mymodule & ";" & mymodule & ".main()"' in source   # mymodule: the book's name
    assert "Public Function RunPython(" in module_source(vba, "xlwings")
    code = companion.read_text()
    compile(code, str(companion), "exec")
    assert "def main():" in code and "ckpt_2L_4T.xlsm" in code

    plain = build(ckpt, context=4, output=tmp_path / "plain.xlsx")
    with zipfile.ZipFile(plain) as z:
        names = z.namelist()
        assert "xl/vbaProject.bin" not in names and not [n for n in names if n.endswith(".vml")]
        assert "macroEnabled" not in z.read("[Content_Types].xml").decode()
    assert not (tmp_path / "plain.py").exists()

    with pytest.raises(GPT2Error, match="must be a Python module name .* e.g. my_book_1.xlsm"):
        build(ckpt, context=4, output=tmp_path / "my-book 1.xlsm")
    with pytest.raises(GPT2Error, match="must be named .xlsm"):
        build(ckpt, context=4, output=tmp_path / "book.xlsx", xlsm=True)


@needs_lo
def test_run_and_save_keep_an_xlsm_macro_enabled(lo, small, tmp_path):
    pytest.importorskip("xlwings")
    path, model = small
    target = build(path.parent / "ckpt", context=SMALL_CTX, output=tmp_path / "book.xlsm")
    gen = run(target, Settings("a b", tokens=2), save=True, out=lambda line: None, lo=lo)
    _loaded["path"] = target
    assert gen.new_ids == reference_continuation(model, tokenizer.encode("a b"), 2, SMALL_CTX)
    with zipfile.ZipFile(target) as z:
        assert "xl/vbaProject.bin" in z.namelist()
        assert "macroEnabled" in z.read("[Content_Types].xml").decode()


def test_macros_import_without_xlwings(monkeypatch):
    monkeypatch.setitem(sys.modules, "xlwings", None)
    with pytest.raises(GPT2Error, match=r"pip install 'gpt2-workbook\[excel\]'"):
        xlwings_macros.caller()
    from generator import xlsm
    with pytest.raises(GPT2Error, match="needs xlwings"):
        xlsm.standalone_vba_project()


@needs_lo
@pytest.mark.slow
def test_run_full_width_two_layers(lo, tmp_path):
    """GPT-2 Small's widths (768, 12 heads, 50,257 tokens), 2 layers, random weights: `run` = the reference."""
    from generator.config import PUBLISHED
    config = PUBLISHED["gpt2"].with_layers(2)
    save_checkpoint(tmp_path / "gpt2", config, random_params(config, seed=124))
    path = build(tmp_path / "gpt2", context=6, output=tmp_path / "full.xlsx")
    model = load_model(tmp_path / "gpt2")
    gen = run(path, Settings("The quick brown fox", tokens=2), out=lambda line: None, lo=lo)
    _loaded["path"] = path
    assert gen.new_ids == reference_continuation(model, tokenizer.encode("The quick brown fox"), 2, 6)
