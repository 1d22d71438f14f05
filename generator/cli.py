"""The `gpt2-workbook` command."""
from __future__ import annotations

import argparse
import sys
import time

from .config import GPT2Error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpt2-workbook",
                                     description="GPT-2 as a spreadsheet: every step of the forward pass as formulas.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write a workbook that computes GPT-2 with formulas")
    b.add_argument("--weights", metavar="PATH",
                   help="model.safetensors, a folder holding one (+ config.json), or gpt2 / gpt2-medium / "
                        "gpt2-large / gpt2-xl from the Hugging Face hub (online only); default: embedded demo")
    b.add_argument("--layers", type=int, metavar="N", help="keep the first N transformer blocks")
    b.add_argument("--context", type=int, metavar="T",
                   help="number of token slots (default 10, or the model's n_positions if smaller)")
    b.add_argument("--prompt", metavar="TEXT", help="fill the first token slots with this text's GPT-2 tokens")
    b.add_argument("-o", "--output", metavar="FILE", help="output .xlsx (default: workbooks/<model>-<N>L-<T>T.xlsx)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from .build import build
            start = time.perf_counter()
            path = build(args.weights, args.layers, args.context, args.prompt, args.output,
                         progress=sys.stderr.isatty())
            size = path.stat().st_size / 1e6
            print(f"wrote {path} ({size:,.1f} MB) in {time.perf_counter() - start:.1f} s")
    except GPT2Error as e:
        print(f"gpt2-workbook: error: {e}", file=sys.stderr)
        return 2
    return 0
