"""`gpt2-workbook build --xlsm`: a macro-enabled workbook for Excel + xlwings, and its companion module.

The VBA project is the one xlwings ships in its standalone quickstart (`quickstart_standalone.xlsm`):
xlwings' own VBA module (`RunPython` & co., no add-in needed) plus `Module1.SampleCall`, which runs
`import <workbook name>; <workbook name>.main()`. The control sheet's button calls `SampleCall`; the
companion `<workbook name>.py`, written beside the workbook, has that `main()` (the xlwings convention
the add-in's "Run main" button follows too). Its functions call `generator.xlwings_macros`.
"""
from __future__ import annotations

import keyword
import os
import re
import zipfile
from pathlib import Path

from .config import GPT2Error
from .files import replacing

EXCEL_EXTRA = "pip install 'gpt2-workbook[excel]'"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"   # vbaProject.bin is an OLE compound file


def standalone_vba_project() -> bytes:
    """xl/vbaProject.bin of the installed xlwings' standalone quickstart workbook."""
    try:
        import xlwings
    except ImportError:
        raise GPT2Error(f"--xlsm embeds xlwings' standalone VBA module, so it needs xlwings: {EXCEL_EXTRA}") from None
    source = Path(xlwings.__file__).with_name("quickstart_standalone.xlsm")
    try:
        with zipfile.ZipFile(source) as z:
            data = z.read("xl/vbaProject.bin")
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise GPT2Error(f"xlwings {xlwings.__version__} has no usable standalone VBA project ({source}: {e})") from None
    if not data.startswith(OLE_MAGIC):
        raise GPT2Error(f"xlwings {xlwings.__version__}: {source} holds no VBA project")
    return data


def suggested_name(stem: str) -> str:
    """`stem` made into a Python module name (xlwings imports the module named like the workbook)."""
    name = re.sub(r"\W", "_", stem) or "gpt2"
    return "_" + name if name[0].isdigit() or keyword.iskeyword(name) else name


def output_path(output: Path, chosen: bool) -> Path:
    """The .xlsm to write: the default output renamed, or the user's `-o` after checking its name."""
    if not chosen:
        return output.with_name(suggested_name(output.stem) + ".xlsm")
    if output.suffix.lower() != ".xlsm":
        raise GPT2Error(f"{output}: a macro-enabled workbook must be named .xlsm "
                        f"(e.g. -o {output.with_name(suggested_name(output.stem) + '.xlsm')})")
    stem = output.stem
    if not stem.isidentifier() or keyword.iskeyword(stem):
        raise GPT2Error(f"{output.name}: xlwings runs `import {stem}` for this workbook, so its name must be a "
                        f"Python module name (letters, digits and _, not starting with a digit), e.g. "
                        f"{suggested_name(stem)}.xlsm")
    return output


COMPANION = '''"""xlwings companion of {workbook}: GPT-2 generates text with the workbook's own formulas.

Keep this file in the same folder as {workbook}. The button on the workbook's control sheet runs
main() through xlwings' standalone VBA module (RunPython "import {module}; {module}.main()"), and so
does the xlwings add-in's "Run main". main() runs the action chosen on the control sheet (cell B9):
generate, predict or tokenize. Written by `gpt2-workbook build --xlsm`; needs the Python packages
gpt2-workbook and xlwings: pip install "gpt2-workbook[excel]".
"""
from generator import xlwings_macros


def main():
    """The button / "Run main": the control sheet's action (B9) on the calling workbook."""
    xlwings_macros.run_action(xlwings_macros.caller())


def generate():
    """Tokenize the prompt, then predict and append the requested number of tokens."""
    xlwings_macros.generate_tokens(xlwings_macros.caller())


def predict():
    """Predict one more token and append it."""
    xlwings_macros.predict_next_token(xlwings_macros.caller())


def tokenize():
    """Write the prompt's token ids into the token slots."""
    xlwings_macros.tokenize_prompt(xlwings_macros.caller())


if __name__ == "__main__":
    # From a terminal or an editor, with the workbook open in Excel (xlwings' mock caller).
    import os

    import xlwings as xw

    xw.Book(os.path.join(os.path.dirname(os.path.abspath(__file__)), {workbook!r})).set_mock_caller()
    main()
'''


def companion_source(workbook: Path) -> str:
    return COMPANION.format(workbook=workbook.name, module=workbook.stem)


def write_companion(workbook: Path) -> Path:
    """`<workbook stem>.py` beside the workbook (written to a temporary file, then renamed into place)."""
    target = workbook.with_suffix(".py")
    with replacing(target) as tmp:
        tmp.write_text(companion_source(workbook), encoding="utf-8")
    return target
