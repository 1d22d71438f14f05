"""Read the VBA source of a module out of a vbaProject.bin (test helper, no dependencies).

vbaProject.bin is an OLE compound file ([MS-CFB]); each module's stream holds a p-code cache followed
by the source, compressed as [MS-OVBA] 2.4.1 describes. Just enough of both to check what a button's
macro does.
"""
from __future__ import annotations

import struct

END_OF_CHAIN = 0xFFFFFFFA


def ole_streams(data: bytes) -> dict[str, bytes]:
    """Every stream of a compound file by its (leaf) name."""
    u16 = lambda off, buf=data: struct.unpack_from("<H", buf, off)[0]   # noqa: E731
    u32 = lambda off, buf=data: struct.unpack_from("<I", buf, off)[0]   # noqa: E731
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "not an OLE compound file"
    size, mini_size = 1 << u16(0x1E), 1 << u16(0x20)
    n_fat, dir_start, cutoff, minifat_start = u32(0x2C), u32(0x30), u32(0x38), u32(0x3C)
    difat_next, n_difat = u32(0x44), u32(0x48)

    def sector(i: int) -> bytes:
        return data[(i + 1) * size:(i + 2) * size]

    difat = [u32(0x4C + 4 * i) for i in range(109)]
    for _ in range(n_difat):
        sec = sector(difat_next)
        entries = struct.unpack(f"<{size // 4}I", sec)
        difat += entries[:-1]
        difat_next = entries[-1]
    fat: list[int] = []
    for sid in difat[:n_fat]:
        fat += struct.unpack(f"<{size // 4}I", sector(sid))

    def chain(start: int, table: list[int]):
        while start < END_OF_CHAIN:
            yield start
            start = table[start]

    def read(start: int) -> bytes:
        return b"".join(sector(s) for s in chain(start, fat))

    directory = read(dir_start)
    entries = [directory[i:i + 128] for i in range(0, len(directory), 128)]
    mini_stream = read(u32(116, entries[0]))
    minifat_bytes = read(minifat_start) if minifat_start < END_OF_CHAIN else b""
    minifat = list(struct.unpack(f"<{len(minifat_bytes) // 4}I", minifat_bytes))
    streams = {}
    for e in entries:
        name_len = u16(64, e)
        if e[66] != 2 or name_len < 2:   # 2: a stream
            continue
        name = e[:name_len - 2].decode("utf-16-le")
        start, length = u32(116, e), u32(120, e)
        if length < cutoff:
            body = b"".join(mini_stream[s * mini_size:(s + 1) * mini_size] for s in chain(start, minifat))
        else:
            body = read(start)
        streams[name] = body[:length]
    return streams


def decompress(data: bytes) -> bytes:
    """[MS-OVBA] 2.4.1 decompression of a CompressedContainer."""
    if not data or data[0] != 1:
        raise ValueError("not a compressed container")
    out = bytearray()
    pos = 1
    while pos < len(data):
        header = struct.unpack_from("<H", data, pos)[0]
        end = min(pos + (header & 0x0FFF) + 3, len(data))
        pos += 2
        if not header & 0x8000:       # an uncompressed chunk: 4096 raw bytes
            out += data[pos:pos + 4096]
            pos += 4096
            continue
        chunk_start = len(out)
        while pos < end:
            flags = data[pos]
            pos += 1
            for bit in range(8):
                if pos >= end:
                    break
                if not flags >> bit & 1:
                    out.append(data[pos])
                    pos += 1
                    continue
                token = struct.unpack_from("<H", data, pos)[0]
                pos += 2
                bit_count = max(4, (len(out) - chunk_start - 1).bit_length())
                offset = (token >> (16 - bit_count)) + 1
                length = (token & (0xFFFF >> bit_count)) + 3
                if offset > len(out) - chunk_start:
                    raise ValueError("bad copy token")
                for _ in range(length):
                    out.append(out[-offset])
    return bytes(out)


def module_source(vba_project: bytes, module: str) -> str:
    """The source code of `module` (its stream: a p-code cache, then the compressed source)."""
    stream = ole_streams(vba_project)[module]
    marker = f'Attribute VB_Name = "{module}"'.encode()
    for i, byte in enumerate(stream):
        if byte != 1:
            continue
        try:
            text = decompress(stream[i:])
        except (ValueError, IndexError, struct.error):
            continue
        if text.startswith(marker):
            return text.decode("latin-1")
    raise ValueError(f"no source found for module {module}")
