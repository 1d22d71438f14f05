"""The weight fast path: float32 -> shortest round-trip decimal XML, and the parallel-deflate zip writer."""
import io
import re
import zipfile

import numpy as np
import pytest

from generator import fastxml, xlsxzip
from generator.xlsxzip import ZipWriter, deflate_piece


def values_in(xml: bytes) -> list[bytes]:
    return re.findall(rb"<c><v>([^<]*)</v></c>", xml)


EDGES = np.array([0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 3.0, 9.999999, 10.0, 123456789.0, 1e20, -2.5e-7,
                  1e-14, 1.5e-14, 9.99e-15, 1e-13, 1.1754944e-38, 1e-45, 3.4028235e38, -3.4028235e38,
                  16777216.0, 16777217.0, 0.012808452, 5e-5, 9.9999999e-5, 2.0 ** -20, 1 / 3],
                 np.float32)


@pytest.mark.parametrize("scale", [1e-3, 0.02, 1.0, 30.0, 1e6])
def test_every_value_reads_back_as_the_same_float32(scale):
    rng = np.random.default_rng(int(scale * 1000))
    x = (rng.standard_normal((300, 97)) * scale).astype(np.float32)
    x[0, :EDGES.size] = EDGES
    x[1] = rng.integers(-1000, 1000, 97)
    xml = fastxml.rows_xml(x, 1)
    texts = values_in(xml)
    assert len(texts) == x.size
    back = np.array([np.float32(t.decode()) for t in texts], np.float32)
    np.testing.assert_array_equal(back, x.ravel())
    assert np.array_equal(np.signbit(back[x.ravel() != 0]), np.signbit(x.ravel()[x.ravel() != 0]))


def significant_digits(text: str) -> int:
    mantissa = re.split("[eE]", text.lstrip("-"))[0].replace(".", "").strip("0")
    return max(1, len(mantissa))


def test_decimals_are_as_short_as_numpys_shortest_repr():
    x = (np.random.default_rng(5).standard_normal(20000) * 0.05).astype(np.float32)
    x[:EDGES.size] = EDGES
    ours = [significant_digits(t.decode()) for t in values_in(fastxml.rows_xml(x[None, :], 1))]
    dragon4 = [significant_digits(str(v)) for v in x]
    assert ours == dragon4


def test_rows_are_numbered_and_complete():
    x = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    xml = fastxml.rows_xml(x, 7).decode()
    assert re.findall(r'<row r="(\d+)">', xml) == ["7", "8", "9", "10"]
    assert xml.startswith('<row r="7"><c><v>-5</v></c><c><v>-4</v></c><c><v>-3</v></c></row>')
    assert xml.endswith("<c><v>6</v></c></row>")


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        fastxml.rows_xml(np.array([[1.0, np.nan]], np.float32), 1)


def test_zip_entries_from_pieces_read_back(tmp_path):
    parts = [b"<a>" * 1000, b"", b"hello " * 50000, bytes(range(256)) * 300]
    pieces = [deflate_piece(p) for p in parts]
    crc, size = pieces[0][1], pieces[0][2]
    for _, c, n in pieces[1:]:
        crc = xlsxzip.isal_zlib.crc32_combine(crc, c, n)
        size += n
    path = tmp_path / "t.zip"
    with open(path, "wb") as fh:
        z = ZipWriter(fh)
        z.write("small.xml", b"<x/>")
        z.write_deflated("big/entry.xml", [p[0] for p in pieces], crc, size)
        z.write("empty.xml", b"")
        z.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("big/entry.xml") == b"".join(parts)
        assert zf.read("small.xml") == b"<x/>" and zf.read("empty.xml") == b""


def test_zip64_records_when_sizes_pass_the_32_bit_limit(monkeypatch):
    """Sizes and offsets past 4 GiB take zip64 records: tried with the limit lowered to 100 bytes."""
    monkeypatch.setattr(xlsxzip, "_MAX32", 100)
    buf = io.BytesIO()
    z = ZipWriter(buf)
    data = [bytes(np.random.default_rng(i).integers(0, 255, 500, dtype=np.uint8)) for i in range(3)]
    for i, d in enumerate(data):
        z.write(f"e{i}.bin", d)
    z.close()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        assert zf.testzip() is None
        assert [zf.read(f"e{i}.bin") for i in range(3)] == data
        assert all(i.file_size == 500 for i in zf.infolist())


def test_threads_write_the_same_file_as_worker_processes(tmp_path, monkeypatch):
    """Where the platform has no fork (Windows), threads do the weight pieces: same workbook, byte for byte
    in every part."""
    from concurrent.futures import ThreadPoolExecutor

    from generator import writer
    from generator.checkpoint import random_params
    from generator.config import GPT2Config
    from generator.plan import build_plan

    config = GPT2Config(2, 24, 2, n_vocab=300, n_positions=8)
    params = random_params(config, seed=9)
    plan = build_plan(config, 4, [f"t{i}" for i in range(300)], [1, 2])
    monkeypatch.setattr(writer, "PIECE_CELLS", 64)  # many pieces per sheet
    forked = writer.write_workbook(plan, params, tmp_path / "forked.xlsx")
    monkeypatch.setattr(writer, "_pool", lambda: ThreadPoolExecutor(2))
    threaded = writer.write_workbook(plan, params, tmp_path / "threaded.xlsx")
    with zipfile.ZipFile(forked) as a, zipfile.ZipFile(threaded) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            if name != "docProps/core.xml":  # holds the creation time
                assert a.read(name) == b.read(name), name
        sheet = a.read("xl/worksheets/sheet" + str(1 + [s.name for s in plan.sheets].index("wte.weight")) + ".xml")
        texts = values_in(sheet)
        np.testing.assert_array_equal(np.array([np.float32(t.decode()) for t in texts]), params["wte.weight"].ravel())
