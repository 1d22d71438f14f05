"""Build and recalculation benchmark on a random checkpoint with full GPT-2 Small shapes (fixed seed).

    python3 benchmarks/bench.py                      # builds 1, 6, 12 layers; LibreOffice 1 and 12 layers at 10 and 64 tokens
    python3 benchmarks/bench.py --layers 1 --lo 1:10 # a quick look

Every token slot is filled (empty slots compute nothing, so they would flatter the recalculation).

Prints a markdown table. Timings are measurements on this machine, never assertions.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import tokenizer  # noqa: E402
from generator.checkpoint import random_params, save_checkpoint  # noqa: E402
from generator.config import PUBLISHED  # noqa: E402


def checkpoint(cache: Path) -> Path:
    folder = cache / "gpt2-small-random"
    if not (folder / "model.safetensors").exists():
        config = PUBLISHED["gpt2"]
        save_checkpoint(folder, config, random_params(config, seed=124))
    return folder


def full_prompt(tokens: int) -> str:
    """A text of exactly `tokens` GPT-2 tokens: every slot is filled, so every row computes."""
    ids = tokenizer.encode("The quick brown fox jumps over the lazy dog. " * tokens)[:tokens]
    text = tokenizer.decode(ids)
    assert tokenizer.encode(text) == ids
    return text


def build(ckpt: Path, layers: int, context: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "generator", "build", "--weights", str(ckpt), "--layers", str(layers),
           "--context", str(context), "--prompt", full_prompt(context), "-o", str(out)]
    # a fresh interpreter per build: peak RSS of that child alone
    code = ("import resource,subprocess,sys,time;t=time.perf_counter();"
            f"subprocess.run({cmd!r},check=True,stdout=subprocess.DEVNULL);"
            "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss*1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    wall, peak = done.stdout.split()
    cells = sum(int(np.prod(s)) for s in PUBLISHED["gpt2"].with_layers(layers).param_shapes().values())
    return {"wall": float(wall), "peak": int(peak), "size": out.stat().st_size, "cells": cells}


def library_speed(n_rows: int = 2000) -> dict:
    """Cells per second writing a 2000 x 768 float32 block with openpyxl (write-only) and XlsxWriter
    (constant_memory): the whole model would take minutes, so a block is timed and extrapolated per cell."""
    import openpyxl
    import xlsxwriter
    values = random_params(PUBLISHED["gpt2"].with_layers(1), seed=1)["wte.weight"][:n_rows]
    rows = values.tolist()
    speeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        wb = openpyxl.Workbook(write_only=True)
        ws = wb.create_sheet("w")
        for row in rows:
            ws.append(row)
        wb.save(os.path.join(tmp, "o.xlsx"))
        speeds["openpyxl (write-only)"] = values.size / (time.perf_counter() - t)
        t = time.perf_counter()
        wb = xlsxwriter.Workbook(os.path.join(tmp, "x.xlsx"), {"constant_memory": True})
        ws = wb.add_worksheet("w")
        for r, row in enumerate(rows):
            ws.write_row(r, 0, row)
        wb.close()
        speeds["XlsxWriter (constant_memory)"] = values.size / (time.perf_counter() - t)
    return speeds


def libreoffice(path: Path) -> dict:
    from generator.libreoffice import LibreOffice
    with LibreOffice(timeout=120) as lo:
        load = lo.load(path)
        calc = lo.calculate()
        top = lo.read("next_token")[0][0][0]
        stats = lo.stats()
    return {"load": load, "calc": calc, "peak": stats["peak_rss"], "top": top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, nargs="*", default=[1, 6, 12], help="layer counts to build (10 tokens)")
    ap.add_argument("--lo", nargs="*", default=["1:10", "12:10", "1:64", "12:64"],
                    help="LAYERS:TOKENS workbooks to recalculate in LibreOffice")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gpt2-workbook-bench")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint(args.cache)
    lib = library_speed()
    print("| layers | tokens | build wall (s) | build peak RSS (GiB) | file (MB) | weight cells | cells/s "
          "| × openpyxl | × XlsxWriter |")
    print("|---|---|---|---|---|---|---|---|---|")
    built = {}
    for layers in args.layers:
        out = args.cache / f"bench-{layers}L-10T.xlsx"
        r = build(ckpt, layers, 10, out)
        built[(layers, 10)] = out
        speed = r["cells"] / r["wall"]
        print(f"| {layers} | 10 | {r['wall']:.1f} | {r['peak'] / 2**30:.2f} | {r['size'] / 1e6:.0f} | "
              f"{r['cells'] / 1e6:.1f} M | {speed / 1e6:.2f} M | {speed / lib['openpyxl (write-only)']:.1f} | "
              f"{speed / lib['XlsxWriter (constant_memory)']:.1f} |", flush=True)
    print()
    for name, s in lib.items():
        print(f"- {name}: {s / 1e6:.3f} M cells/s (a 2000 x 768 block, extrapolated per cell)")
    print()
    print("| layers | tokens | LibreOffice load (s) | recalculation (s) | load + calc (s) | peak RSS (GiB) | next token |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.lo:
        layers, tokens = map(int, spec.split(":"))
        out = built.get((layers, tokens)) or args.cache / f"bench-{layers}L-{tokens}T.xlsx"
        if (layers, tokens) not in built:
            build(ckpt, layers, tokens, out)
        r = libreoffice(out)
        print(f"| {layers} | {tokens} | {r['load']:.1f} | {r['calc']:.1f} | {r['load'] + r['calc']:.1f} | "
              f"{r['peak'] / 2**30:.2f} | {r['top']!r} |", flush=True)


if __name__ == "__main__":
    main()
