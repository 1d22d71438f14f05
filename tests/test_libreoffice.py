"""The LibreOffice oracle: load tiny workbooks, recalculate, read, write, save (one shared session)."""
import numpy as np
import openpyxl
import pytest
import xlsxwriter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.formula import ArrayFormula

from conftest import needs_lo
from generator.config import GPT2Error
from generator.libreoffice import LibreOffice, LibreOfficeError, find_soffice, find_uno_python, recalculate

A = np.array([[1.0, 2.0], [3.0, 4.0]])
B = np.array([[5.0, 6.0], [7.0, 8.0]])


@pytest.fixture
def book(tmp_path):
    """openpyxl, no cached values: A and B on sheet 'h.0.attn' as defined names, MMULT on 'out sheet'."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "h.0.attn"
    for i in range(2):
        for j in range(2):
            ws.cell(i + 1, j + 1, A[i, j])
            ws.cell(i + 1, j + 4, B[i, j])
    wb.defined_names["h0_a"] = DefinedName("h0_a", attr_text="'h.0.attn'!$A$1:$B$2")
    wb.defined_names["h0.b"] = DefinedName("h0.b", attr_text="'h.0.attn'!$D$1:$E$2")
    out = wb.create_sheet("out sheet")
    out["A1"] = ArrayFormula("A1:B2", "=MMULT(h0_a,h0.b)")
    out["D1"] = "='h.0.attn'!A1*10"
    out["E1"] = "=1+1"
    out["E1"].data_type = "s"          # the text "=1+1", not a formula
    out["F1"] = "=1/0"
    wb.defined_names["result"] = DefinedName("result", attr_text="'out sheet'!$A$1:$B$2")
    path = tmp_path / "book.xlsx"
    wb.save(path)
    return path


@needs_lo
def test_array_formula_names_and_dotted_sheets(lo, book):
    assert lo.load(book) >= 0
    assert lo.calculate() >= 0
    np.testing.assert_array_equal(lo.read_array("result"), A @ B)
    np.testing.assert_array_equal(lo.read_array("'out sheet'!A1:B2"), A @ B)
    values, names = lo.read("'out sheet'!D1:G1", "h0.b")
    assert values == [[10.0, "=1+1", "#DIV/0!", ""]]
    assert names == B.tolist()
    assert lo.read("'out sheet'!A1:A1", what="formula") == [[["{=MMULT(h0_a;h0.b)}"]]]
    with pytest.raises(LibreOfficeError, match="DIV/0"):
        lo.read_array("'out sheet'!F1:F1")
    np.testing.assert_array_equal(lo.read_array("'out sheet'!G1:G2"), [[np.nan], [np.nan]])
    stats = lo.stats()
    assert 50e6 < stats["rss"] <= stats["peak_rss"]


@needs_lo
def test_write_recalculate_and_save(lo, book, tmp_path):
    lo.load(book)
    lo.write("h0_a", np.eye(2) * 2)
    lo.write("'h.0.attn'!D1", [[1, 0.5]])          # one cell: the top-left corner of a 1x2 block
    lo.write("'out sheet'!H1:J1", [["=1+1", "+5", "1e3"]])
    lo.calculate()
    new_b = np.array([[1.0, 0.5], [7.0, 8.0]])
    np.testing.assert_array_equal(lo.read_array("result"), 2 * new_b)
    assert lo.read("'out sheet'!D1:D1", "'out sheet'!H1:J1") == [[[20.0]], [["=1+1", "+5", "1e3"]]]
    lo.save(tmp_path / "saved.xlsx")
    lo.load(tmp_path / "saved.xlsx")
    np.testing.assert_array_equal(lo.read_array("result"), 2 * new_b)
    assert lo.read("'out sheet'!H1:J1") == [[["=1+1", "+5", "1e3"]]]


@needs_lo
def test_calculate_replaces_stale_cached_values(lo, tmp_path):
    path = str(tmp_path / "cached.xlsx")
    wb = xlsxwriter.Workbook(path)          # writes <v>0</v> as every formula's cached value
    ws = wb.add_worksheet("s")
    ws.write_row(0, 0, [11, 12])
    ws.write_formula("D1", "=A1+B1")
    wb.close()
    lo.load(path)
    assert lo.read("s!D1:D1") == [[[0.0]]]       # load keeps the stale cached value...
    lo.calculate()
    assert lo.read("s!D1:D1") == [[[23.0]]]      # ...calculateAll replaces it


@needs_lo
def test_bad_requests_keep_the_session(lo, book):
    lo.load(book)
    with pytest.raises(LibreOfficeError, match="no sheet named"):
        lo.read("'nope'!A1:B2")
    with pytest.raises(LibreOfficeError, match="neither a defined name"):
        lo.read("no_such_name")
    with pytest.raises(LibreOfficeError, match="is 2x2 but values are 1x2"):
        lo.write("result", [[1, 2]])
    np.testing.assert_array_equal(lo.read_array("h0_a"), A)


@needs_lo
def test_recalculate(book):
    out = recalculate(book, ["result", "'out sheet'!D1:F1"])
    np.testing.assert_array_equal(out["result"], A @ B)
    assert out["'out sheet'!D1:F1"] == [[10.0, "=1+1", "#DIV/0!"]]
    assert out["stats"]["peak_rss"] > 0 and out["stats"]["calculate_seconds"] >= 0


def test_missing_soffice_explains_how_to_install(monkeypatch):
    monkeypatch.setenv("GPT2_SOFFICE", "/nonexistent")
    with pytest.raises(GPT2Error, match="apt-get install libreoffice-calc-nogui python3-uno"):
        LibreOffice()


@needs_lo
def test_soffice_that_fails_to_start(monkeypatch, tmp_path):
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\necho 'fake soffice refuses' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(GPT2Error, match="(?s)exited with status 3.*fake soffice refuses.*apt-get install"):
        LibreOffice(soffice=str(fake))
