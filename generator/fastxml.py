"""The fast path for weight sheets: float32 matrices -> worksheet `<row>` XML, vectorized with numpy.

Each number is written as the shortest decimal mantissa (at most 9 significant digits) that reads back
as the same float32, as `[-]DIGITS[E[-]EXP]` (value = DIGITS x 10^EXP, e.g. `12808452E-9`), a form
every xsd:double / strtod reader accepts. numpy's own float32 -> text (Dragon4) finds the same digits
one value at a time at ~0.7 M values/s; here whole blocks go at once, several times faster.

How: each cell is first laid out as a fixed 32-byte field (`<c><v>`, sign, 12 digit slots, exponent,
`</v></c>`) built from small lookup tables, with a parallel mask of the bytes to keep; one boolean
compaction then yields the XML. Cells carry no `r` attribute: it is optional in ECMA-376 (a cell
without one follows the previous cell).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

_EXACT = 22                  # 10**k is exact in float64 for 0 <= k <= 22
_POW10 = 10.0 ** np.arange(_EXACT + 1)
_BLOCK = 8192                # cells per vectorized block (keeps the byte matrices in cache)
_EXP_MIN = -99


def _tables():
    u32 = lambda b: np.frombuffer(b, "<u4")[0]  # noqa: E731  (4 bytes as one little-endian word)
    u64 = lambda b: np.frombuffer(b, "<u8")[0]  # noqa: E731
    t = {}
    t["prefix"] = np.array([u64(b"<c><v>\0\0"), u64(b"<c><v>-\0")], np.uint64)
    t["prefix_keep"] = np.array([u64(b"\1" * 6 + b"\0\0"), u64(b"\1" * 7 + b"\0")], np.uint64)
    t["dig4"] = np.array([u32(f"{i:04d}".encode()) for i in range(10000)], np.uint32)
    # 12 digit slots (bytes 8..19), the last n_digits kept; zero keeps one digit
    keep12 = np.zeros((13, 12), np.uint8)
    for d in range(13):
        keep12[d, 12 - max(d, 1):] = 1
    t["digits_keep_a"] = keep12[:, :8].copy().view("<u8")[:, 0]
    t["digits_keep_b"] = keep12[:, 8:].copy().view("<u4")[:, 0]
    exps = [b"" if k == 0 else f"E{k}".encode() for k in range(_EXP_MIN, -_EXP_MIN + 1)]
    t["exp"] = np.array([u32(e.ljust(4, b"\0")) for e in exps], np.uint32)
    t["exp_len"] = np.array([len(e) for e in exps])
    t["exp_keep"] = np.array([u32((b"\1" * len(e)).ljust(4, b"\0")) for e in exps], np.uint32)
    t["tail"] = u64(b"</v></c>")
    t["tail_keep"] = u64(b"\1" * 8)
    return t


_T = _tables()


def shortest_decimal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mantissa, exponent, done): |x| is read back as float32 from mantissa * 10**exponent, with the
    fewest mantissa digits (at most 9, 10 where log10 misjudged a power of ten). Checked in float64
    with exact powers of ten, i.e. exactly as a reader that parses the decimal to a double and rounds
    that to float32 does.

    The vectorized search covers 1e-14 <= |x| < 10 (all of GPT-2's weights but a handful) and zero;
    `done` is False elsewhere, and those values go to numpy's Dragon4 one at a time."""
    target = np.abs(x)
    e10 = np.floor(np.log10(np.where(target > 0, target, 1))).astype(np.int64)
    mant = np.zeros(x.shape)           # float64 until the end: int scatters from floats are slow
    expo = np.zeros(x.shape, np.int64)
    done = target == 0
    idx = np.flatnonzero((target > 0) & (e10 >= 8 - _EXACT) & (e10 <= 0))
    # value = m * 10**(e10 - p + 1) = m / 10**(p - 1 - e10): one exact division for every p here
    t = target[idx]
    d9 = _POW10[8 - e10[idx]]          # 10**(8 - e10): exact
    x9 = t * d9                        # |x| scaled to 9 integer digits (a candidate, checked below)

    def candidate(p, x9, d9, t):
        """The p-digit mantissa nearest to x, and whether it reads back as x."""
        c = _POW10[9 - p]
        m = np.rint(x9 / c)
        return m, (m / (d9 / c)).astype(np.float32) == t

    # 9 digits always suffice (unless log10 misjudged a power of ten: those go to Dragon4). Most
    # values need 7 to 9, so try 8 and 7 on the whole block, then go down only with those that pass
    m9, ok9 = candidate(9, x9, d9, t)
    m8, ok8 = candidate(8, x9, d9, t)
    m7, ok7 = candidate(7, x9, d9, t)
    mant[idx] = np.where(ok7, m7, np.where(ok8, m8, m9))
    expo[idx] = e10[idx] - np.where(ok7, 6, np.where(ok8, 7, 8))
    done[idx] = ok9 | ok8 | ok7
    sub = np.flatnonzero(ok7)
    idx, x9, d9, t = idx[sub], x9[sub], d9[sub], t[sub]
    # p significant digits round-trip => p + 1 digits do too: go down while values still pass
    for p in range(6, 0, -1):
        m, ok = candidate(p, x9, d9, t)
        idx, x9, d9, t, m = idx[ok], x9[ok], d9[ok], t[ok], m[ok]
        if idx.size == 0:
            break
        mant[idx] = m
        expo[idx] = e10[idx] - p + 1
    return mant.astype(np.int64), expo, done


def cells(x: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The `<c><v>NUMBER</v></c>` elements of the values of `x` in order, and each one's byte length."""
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    if not np.isfinite(x).all():
        raise ValueError("NaN or infinite value in a weight tensor")
    n = x.size
    mant, expo, done = shortest_decimal(x)
    neg = (x < 0).astype(np.intp)
    n_digits = np.searchsorted(_POW10[1:12], mant, side="right") + (mant > 0)   # 0 for zero
    e = np.clip(expo, _EXP_MIN, -_EXP_MIN) - _EXP_MIN
    field = np.empty((n, 4), np.uint64)        # 32 bytes a cell
    keep = np.empty((n, 4), np.uint64)
    f32, k32 = field.view(np.uint32), keep.view(np.uint32)
    field[:, 0], keep[:, 0] = _T["prefix"][neg], _T["prefix_keep"][neg]
    f32[:, 2] = _T["dig4"][mant // 100000000]   # bytes 8..19: 12 digit slots, right-aligned
    f32[:, 3] = _T["dig4"][(mant // 10000) % 10000]
    f32[:, 4] = _T["dig4"][mant % 10000]
    f32[:, 5] = _T["exp"][e]                    # bytes 20..23: `E-9`, `E12`, or nothing
    keep[:, 1] = _T["digits_keep_a"][n_digits]
    k32[:, 4] = _T["digits_keep_b"][n_digits]
    k32[:, 5] = _T["exp_keep"][e]
    field[:, 3], keep[:, 3] = _T["tail"], _T["tail_keep"]
    fb, kb = field.view(np.uint8), keep.view(bool)
    for i in np.flatnonzero(~done):             # outside the vectorized range: Dragon4, one at a time
        text = np.frombuffer((b"<c><v>" + str(x[i]).encode() + b"</v></c>").ljust(32, b"\0"), np.uint8)
        fb[i], kb[i] = text, text != 0
    lengths = 14 + neg + np.maximum(n_digits, 1) + _T["exp_len"][e]
    for i in np.flatnonzero(~done):
        lengths[i] = kb[i].sum()
    return fb[kb].tobytes(), lengths


def row_blocks(values: np.ndarray, first_row: int) -> Iterator[bytes]:
    """`<row r="...">` elements for a 2-D float32 block whose first row is sheet row `first_row`
    (1-based), a few rows (~8 K cells) at a time."""
    values = np.asarray(values, dtype=np.float32)
    n_rows, n_cols = values.shape
    step = max(1, _BLOCK // n_cols)
    for r0 in range(0, n_rows, step):
        block = values[r0:r0 + step]
        body, lengths = cells(block)
        ends = np.cumsum(lengths.reshape(block.shape).sum(axis=1)).tolist()
        out = []
        start = 0
        for i, end in enumerate(ends):
            out.append(b'<row r="%d">' % (first_row + r0 + i))
            out.append(body[start:end])
            out.append(b"</row>")
            start = end
        yield b"".join(out)


def rows_xml(values: np.ndarray, first_row: int) -> bytes:
    """All of `row_blocks` as one string."""
    return b"".join(row_blocks(values, first_row))
