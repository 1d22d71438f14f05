"""Seconds per generated token of `gpt2-workbook run` (LibreOffice headless), random full-size weights.

    python3 benchmarks/run_speed.py                    # 1 and 2 layers
    python3 benchmarks/run_speed.py --layers 1 2 12    # + the whole GPT-2 Small (minutes, ~4 GB for LibreOffice)

For each layer count: a random checkpoint with GPT-2 Small's shapes (768 wide, 12 heads, 50,257 tokens,
fixed seed) -> a workbook with 10 token slots -> `generator.run.run` greedy from a 4-token prompt until
the slots are full (6 tokens), checked token for token against the numpy reference. The first token
includes the one full calculation after loading; every later token recalculates only what its slot
changed. Prints a markdown table. Timings are measurements on this machine, never assertions.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import reference, tokenizer  # noqa: E402
from generator.build import Model, plan_workbook  # noqa: E402
from generator.checkpoint import random_params  # noqa: E402
from generator.config import PUBLISHED  # noqa: E402
from generator.generate import Settings  # noqa: E402
from generator.libreoffice import LibreOffice  # noqa: E402
from generator.run import run  # noqa: E402
from generator.writer import write_workbook  # noqa: E402

PROMPT = "The quick brown fox"
CONTEXT = 10


class TimedLibreOffice(LibreOffice):
    def load(self, path) -> float:
        self.load_seconds = super().load(path)
        return self.load_seconds


def reference_greedy(params, config, ids, n):
    ids = list(ids)
    for _ in range(n):
        ids.append(int(np.argmax(reference.forward(ids, params, config)[-1])))
    return ids


def measure(layers: int, folder: Path) -> dict:
    config = PUBLISHED["gpt2"].with_layers(layers)
    params = random_params(config, seed=124)
    path = folder / f"gpt2-random-{layers}L-{CONTEXT}T.xlsx"
    t0 = time.perf_counter()
    write_workbook(plan_workbook(Model(config, params, "random"), CONTEXT, PROMPT), params, path)
    build = time.perf_counter() - t0
    ids = tokenizer.encode(PROMPT)
    tokens = CONTEXT - len(ids)
    expected = reference_greedy(params, config, ids, tokens)[len(ids):]
    with TimedLibreOffice(timeout=300) as lo:
        gen = run(path, Settings(PROMPT, tokens=tokens), out=lambda line: print("   ", line, flush=True), lo=lo)
        stats = lo.stats()
    seconds = [s.seconds for s in gen.steps]
    later = seconds[1:]
    row = {"layers": layers, "build_s": build, "size_mb": path.stat().st_size / 1e6, "load_s": lo.load_seconds,
           "first_s": seconds[0], "s_per_token": float(np.mean(later)), "min_s": min(later), "max_s": max(later),
           "peak_gb": stats["peak_rss"] / 1e9, "matches": gen.new_ids == expected}
    path.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--folder", type=Path, help="where to write the workbooks (default: a temporary folder)")
    args = ap.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="gpt2_run_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for layers in args.layers:
        print(f"{layers} layer(s) ...", flush=True)
        rows.append(measure(layers, folder))
    print(f"\nLibreOffice {os.environ.get('GPT2_SOFFICE', 'soffice')}, {os.cpu_count()} CPUs, "
          f"greedy, {CONTEXT} token slots, prompt {PROMPT!r} + {CONTEXT - len(tokenizer.encode(PROMPT))} tokens\n")
    print("| layers | build s | file MB | LibreOffice load s | first token s (full calculation) | "
          "s per later token (min-max) | soffice peak GB | = reference |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in rows:
        print(f"| {r['layers']} | {r['build_s']:.1f} | {r['size_mb']:.0f} | {r['load_s']:.1f} | {r['first_s']:.2f} | "
              f"{r['s_per_token']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f}) | {r['peak_gb']:.2f} | "
              f"{'yes' if r['matches'] else 'NO'} |")


if __name__ == "__main__":
    main()
