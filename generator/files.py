"""Writing a user's file safely: into a temporary file beside it, renamed over it only when complete."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .config import GPT2Error


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o644):
    """Yields a temporary path beside `path`; renames it over `path` when the block succeeds, removes
    it otherwise. An OSError (disk full, permissions) becomes one GPT2Error naming `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise GPT2Error(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        raise GPT2Error(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
