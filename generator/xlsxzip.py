"""A small zip writer for the .xlsx container that takes entries deflated elsewhere, in pieces.

Python's zipfile deflates each entry itself, on one core; the weight sheets (hundreds of MB of XML)
are instead deflated in independent pieces on every core (`deflate_piece`, each ending on a byte
boundary with a sync flush, as pigz does) and the pieces are concatenated here into one deflate
stream. Everything else is the plain zip format: local headers, central directory, and zip64
records only where a size or offset passes 4 GiB.
"""
from __future__ import annotations

import struct
import time
from typing import BinaryIO, Sequence

from isal import isal_zlib

LEVEL = 1                    # ISA-L level 1: ~10x zlib's speed at level 1, and smaller output
_FINAL_BLOCK = b"\x03\x00"   # an empty final deflate block: ends a stream of sync-flushed pieces
_MAX32 = 0xFFFFFFFF          # a size or offset at or past this takes a zip64 record
_MARK = 0xFFFFFFFF           # what stands in the 32-bit field then


def deflate_piece(*chunks: bytes) -> tuple[bytes, int, int]:
    """(compressed, crc32, size) of one piece of an entry, given in chunks (an iterable works too):
    raw deflate ending in a sync flush."""
    if len(chunks) == 1 and not isinstance(chunks[0], (bytes, bytearray)):
        chunks = chunks[0]
    c = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)
    out, crc, size = [], 0, 0
    for chunk in chunks:
        out.append(c.compress(chunk))
        crc = isal_zlib.crc32(chunk, crc)
        size += len(chunk)
    out.append(c.flush(isal_zlib.Z_SYNC_FLUSH))
    return b"".join(out), crc, size


def _dos_time(t: float) -> tuple[int, int]:
    y, mo, d, h, mi, s = time.localtime(t)[:6]
    return (h << 11) | (mi << 5) | (s // 2), ((max(y, 1980) - 1980) << 9) | (mo << 5) | d


class ZipWriter:
    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.entries: list[tuple[bytes, int, int, int, int]] = []  # name, crc, csize, size, offset
        self.time, self.date = _dos_time(time.time())

    def write(self, name: str, data: bytes) -> None:
        """Deflate and add a whole entry."""
        compressed, crc, size = deflate_piece(data)
        self.write_deflated(name, [compressed], crc, size)

    def write_deflated(self, name: str, pieces: Sequence[bytes], crc: int, size: int) -> None:
        """Add an entry from pieces made by `deflate_piece` (in order), their combined crc and size."""
        raw_name = name.encode("utf-8")
        csize = sum(len(p) for p in pieces) + len(_FINAL_BLOCK)
        offset = self.fh.tell()
        big = size >= _MAX32 or csize >= _MAX32
        extra = struct.pack("<HHQQ", 1, 16, size, csize) if big else b""
        self.fh.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if big else 20, 0x800, 8, self.time, self.date,
                                  crc, _MARK if big else csize, _MARK if big else size, len(raw_name), len(extra)))
        self.fh.write(raw_name + extra)
        for p in pieces:
            self.fh.write(p)
        self.fh.write(_FINAL_BLOCK)
        self.entries.append((raw_name, crc, csize, size, offset))

    def close(self) -> None:
        start = self.fh.tell()
        for name, crc, csize, size, offset in self.entries:
            # zip64 extra: the original size, compressed size and offset, each only where it overflows
            big = [v for v in (size, csize, offset) if v >= _MAX32]
            extra = struct.pack(f"<HH{len(big)}Q", 1, 8 * len(big), *big) if big else b""
            size32, csize32, offset32 = (_MARK if v >= _MAX32 else v for v in (size, csize, offset))
            self.fh.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if big else 20, 45 if big else 20, 0x800,
                                      8, self.time, self.date, crc, csize32, size32,
                                      len(name), len(extra), 0, 0, 0, 0, offset32))
            self.fh.write(name + extra)
        end = self.fh.tell()
        n, cd_size = len(self.entries), end - start
        zip64 = start >= _MAX32 or cd_size >= _MAX32 or n >= 0xFFFF
        if zip64:
            self.fh.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, start))
            self.fh.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        self.fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF if zip64 else n, 0xFFFF if zip64 else n,
                                  _MARK if zip64 else cd_size, _MARK if zip64 else start, 0))
