"""Writing a JSON file so that a crash or an error never leaves it half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_json_atomic"]


def write_json_atomic(path: str | os.PathLike, data: object, *, indent: int | None = 1,
                      default: Callable[[object], object] | None = None) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new content.

    The bytes go to a temporary file (mode 0600) in the same folder, are flushed to disk,
    then renamed over ``path``; on any error (a value ``json`` cannot write, a full disk)
    the temporary file is removed and ``path`` is untouched. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=indent, default=default)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
