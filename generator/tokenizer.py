"""The exact GPT-2 byte-pair encoding (tiktoken, built offline from the vocabulary shipped in `data/`)
and the readable text of every token as the vocabulary sheet shows it."""
from __future__ import annotations

import functools
import os
from importlib import resources

from .config import GPT2Error

VOCAB_FILE = "gpt2.tiktoken"
VOCAB_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
EOT = "<|endoftext|>"
EOT_ID = 50256
N_VOCAB = 50257


@functools.lru_cache(maxsize=1)
def encoding():
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    path = resources.files("generator") / "data" / VOCAB_FILE
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # a local file: no cache copy
    try:
        ranks = load_tiktoken_bpe(str(path), expected_hash=VOCAB_SHA256)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(name="gpt2", pat_str=PAT, mergeable_ranks=ranks,
                             special_tokens={EOT: EOT_ID}, explicit_n_vocab=N_VOCAB)


def encode(text: str) -> list[int]:
    """Token ids of `text`; the literal `<|endoftext|>` is the special token."""
    return encoding().encode(text, allowed_special={EOT})


def decode(ids) -> str:
    return encoding().decode(list(ids))


def token_bytes(i: int) -> bytes:
    return encoding().decode_single_token_bytes(i)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def display(raw: bytes) -> str:
    """A token's bytes as printable text: valid UTF-8 stays as is, control characters become `\\n`,
    `\\t`, `<0x1B>`..., and bytes that are not (complete) UTF-8 become `<0xE2>` each."""
    try:
        text = raw.decode("utf-8")
        if text.isprintable():  # most tokens: nothing to escape
            return text
    except UnicodeDecodeError:
        pass
    out = []
    i = 0
    while i < len(raw):
        for size in (1, 2, 3, 4):  # the shortest valid UTF-8 sequence starting here
            try:
                ch = raw[i:i + size].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
            continue
        i += size
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000 or ord(ch) in (0xFFFE, 0xFFFF):
            out.append(f"<0x{ord(ch):02X}>")
        else:
            out.append(ch)
    return "".join(out)


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The display text of every token id, 0 .. 50256."""
    return tuple(display(token_bytes(i)) for i in range(N_VOCAB))


def encode_prompt(prompt: str | None, slots: int, where: str = "the workbook", n_vocab: int = N_VOCAB) -> list[int]:
    """The prompt's token ids, checked: not empty, fits into the `slots` token slots of `where`, every id
    inside a vocabulary of `n_vocab`."""
    ids = encode(prompt) if prompt else []
    if not ids:
        raise GPT2Error("the prompt is empty: give some text to continue")
    if len(ids) > slots:
        raise GPT2Error(f"the prompt is {len(ids)} tokens long but {where} has {slots} token slots: "
                        f"shorten the prompt or build with --context {len(ids)} or more")
    too_big = [i for i in ids if i >= n_vocab]
    if too_big:
        raise GPT2Error(f"token id {too_big[0]} of the prompt is outside this model's vocabulary of {n_vocab} tokens")
    return ids
