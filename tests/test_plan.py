"""The plan's dependency structure, read from its formulas (no LibreOffice needed).

A generated token must recalculate only its own rows: every computed row t is guarded by token slot t
and references only rows 0..t of the other token-row blocks. A formula that reads a whole block (a
defined name such as `h0_q0`, or a later row) would make every new token recalculate everything.
"""
import re

import pytest

from generator.config import GPT2Config
from generator.plan import build_plan
from generator.plan.core import Range

from xlsxwriter.utility import xl_cell_to_rowcol

REF = re.compile(r"(?:('(?:[^']|'')+')!)?\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?")
GUARD = re.compile(r"""^IF\('tokens'!\$B\$(\d+)="","",""")


def slot_rows(plan, n_ctx):
    """(sheet, row) -> token slot, for every block of one row per token slot."""
    rows = {}
    for name, r in plan.names.items():
        if r.rows == n_ctx and plan.sheet(r.sheet).kind == "compute":
            rows.update({(r.sheet, r.row + t): t for t in range(n_ctx)})
    return rows


def references(formula, sheet):
    """(sheet, first row, last row) of every A1 reference in `formula` (0-based rows)."""
    out = []
    for m in REF.finditer(formula):
        quoted, c0, r0, c1, r1 = m.groups()
        if m.start() and formula[m.start() - 1].isalnum() or formula[m.start() - 1:m.start()] == "_":
            continue   # part of a defined name such as h0_q0 or a function such as LOG10
        on = quoted[1:-1].replace("''", "'") if quoted else sheet
        out.append((on, int(r0) - 1, int(r1 or r0) - 1))
    return out


@pytest.mark.parametrize("config,n_ctx,lens", [(GPT2Config(2, 16, 2, n_vocab=40, n_positions=8), 5, False),
                                               (GPT2Config(1, 12, 3, n_vocab=30, n_positions=8), 3, True)])
def test_row_t_reads_only_rows_up_to_t(config, n_ctx, lens):
    plan = build_plan(config, n_ctx, [f"t{i}" for i in range(config.n_vocab)], [1, 2], logit_lens=lens)
    slots = slot_rows(plan, n_ctx)
    block_names = {n for n, r in plan.names.items() if (r.sheet, r.row) in slots}
    token_ids = plan.names["token_ids"]
    guarded = 0
    for sheet in plan.sheets:
        for a in sheet.arrays:
            t = slots.get((sheet.name, a.target.row))
            if t is None:
                continue
            guard = GUARD.match(a.formula)
            assert guard and int(guard.group(1)) - 1 - token_ids.row == t, (a.target.a1(), a.formula)
            used = set(re.findall(r"[A-Za-z_][\w.]*", re.sub(r"'(?:[^']|'')+'", "", a.formula)))
            assert not used & block_names, f"{a.target.a1()} reads whole blocks {used & block_names}"
            for on, r0, r1 in references(a.formula, sheet.name):
                later = [r for r in range(r0, r1 + 1) if slots.get((on, r), -1) > t]
                assert not later, f"{a.target.a1()} (slot {t}) reads a later slot's row: {a.formula}"
            guarded += 1
    # embed; per layer ln_1, qkv, out, ln_2, fc, gelu, out and per head scores, probabilities, P v; ln_f
    assert guarded == n_ctx * (1 + config.n_layer * (7 + 3 * config.n_head) + 1)


def test_reference_parser_sees_ranges_not_names():
    assert references("MMULT(B7:ACO7,h0_attn_c_attn_w)+'h0 attn'!$B$4:$I$4", "x") == [
        ("x", 6, 6), ("h0 attn", 3, 3)]
    assert references("IF('tokens'!$B$3=\"\",\"\",EXP(B16-MAX(B16)))", "s") == [
        ("tokens", 2, 2), ("s", 15, 15), ("s", 15, 15)]
    assert Range("x", 0, 0).ref("x") == "A1" and xl_cell_to_rowcol("B7") == (6, 1)
