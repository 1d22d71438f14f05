"""Regenerate the README's screenshots: docs/index.png, docs/attention.png, docs/predict.png.

Builds the demo workbook with a prompt, has a private headless LibreOffice recalculate it, prints one
range of a sheet to PDF (fitted to one landscape page) and converts the page to PNG with pdftoppm
(Debian/Ubuntu: apt-get install poppler-utils). The workbook is built in a temporary folder and never
saved by LibreOffice.

    python3 scripts/screenshots.py [--prompt TEXT] [--out docs] [--dpi 80]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generator.build import build, load_model, plan_workbook
from generator.libreoffice import LibreOffice

MAX_BYTES = 300_000


def shots(plan) -> dict[str, str]:
    """PNG name -> the range to print (whole blocks, so the pictures follow the layout)."""
    index = plan.sheet("index")   # down to the first weight sheets of the table of contents
    last = next(c.row for c in index.cells if c.link == "flops") + 3
    probs = plan.names["h0_probs0"]
    predict = plan.sheet("predict")
    chart_rows = max(c.row for c in predict.cells) + 8
    return {
        "index": f"'index'!A1:D{last + 1}",
        "attention": f"'h0 attn'!A1:{probs.a1(False).split(':')[-1]}",
        "predict": f"'predict'!A1:P{chart_rows}",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", default="Hello world, my")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"))
    ap.add_argument("--dpi", type=int, default=80)
    args = ap.parse_args(argv)
    if not shutil.which("pdftoppm"):
        sys.exit("pdftoppm not found: apt-get install poppler-utils")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_workbook(load_model(), 10, args.prompt)
    with tempfile.TemporaryDirectory() as tmp, LibreOffice(timeout=120) as lo:
        path = build(prompt=args.prompt, output=Path(tmp) / "demo.xlsx")
        lo.load(path)
        lo.calculate()
        for name, rng in shots(plan).items():
            pdf = Path(tmp) / f"{name}.pdf"
            lo.export_pdf(pdf, rng)
            png = out / f"{name}.png"
            subprocess.run(["pdftoppm", "-png", "-r", str(args.dpi), "-f", "1", "-l", "1", "-singlefile",
                            str(pdf), str(png.with_suffix(""))], check=True)
            size = png.stat().st_size
            print(f"{png} ({size / 1e3:.0f} kB) <- {rng}")
            if size > MAX_BYTES:
                print(f"warning: {png} is larger than {MAX_BYTES / 1e3:.0f} kB; lower --dpi", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
