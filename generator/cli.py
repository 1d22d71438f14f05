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
    b.add_argument("--xlsm", action="store_true",
                   help="macro-enabled workbook for Excel + xlwings (a Generate button) and its companion "
                        "<name>.py beside it; needs xlwings (pip install 'gpt2-workbook[excel]')")
    b.add_argument("--logit-lens", action="store_true",
                   help="add a `logit lens` sheet: each layer's residual stream through ln_f and the unembedding, "
                        "its top tokens for the last position (one more logits column per layer: slower)")
    fl = sub.add_parser("flops", help="print the FLOP tally of the forward pass (the workbook's `flops` sheet)")
    source = fl.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="PATH", help="as for build (only its shapes are used); default: embedded demo")
    source.add_argument("--model", choices=["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"],
                        help="a published configuration (no weights needed)")
    fl.add_argument("--layers", type=int, metavar="N", help="keep the first N transformer blocks")
    fl.add_argument("--tokens", type=int, default=6, metavar="T", help="number of tokens (default 6)")
    r = sub.add_parser("run", help="generate text with a workbook's formulas in LibreOffice headless")
    r.add_argument("workbook", metavar="WORKBOOK", help="an .xlsx/.xlsm made by gpt2-workbook build")
    r.add_argument("--prompt", metavar="TEXT", required=True, help="the text to continue")
    r.add_argument("--tokens", type=int, default=5, metavar="N", help="tokens to generate (default 5)")
    r.add_argument("--temperature", type=float, default=0.0, metavar="X",
                   help="0 (default): greedy; above 0: sample softmax(logits / X)")
    r.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the K likeliest tokens (0: all)")
    r.add_argument("--seed", type=int, metavar="S", help="seed for sampling (default: random)")
    r.add_argument("--save", action="store_true", help="write the final state back into WORKBOOK")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            from .build import build
            start = time.perf_counter()
            path = build(args.weights, args.layers, args.context, args.prompt, args.output,
                         progress=sys.stderr.isatty(), xlsm=args.xlsm, logit_lens=args.logit_lens)
            size = path.stat().st_size / 1e6
            print(f"wrote {path} ({size:,.1f} MB) in {time.perf_counter() - start:.1f} s")
            if path.suffix.lower() == ".xlsm":
                print(f"wrote {path.with_suffix('.py')} (xlwings companion: keep it beside the workbook)")
        elif args.command == "run":
            from .generate import Settings
            from .run import run
            run(args.workbook, Settings(args.prompt, args.tokens, args.temperature, args.top_k, args.seed),
                save=args.save, out=lambda line: print(line, flush=True))
        elif args.command == "flops":
            from .flops import command
            print(command(args.weights, args.model, args.layers, args.tokens))
    except GPT2Error as e:
        print(f"gpt2-workbook: error: {e}", file=sys.stderr)
        return 2
    return 0
