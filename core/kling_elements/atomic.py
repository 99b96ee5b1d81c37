"""Writing a file so that a crash or an error never leaves it half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_json_atomic", "write_text_atomic"]


def write_json_atomic(path: str | os.PathLike, data: object, *, indent: int | None = 1,
                      default: Callable[[object], object] | None = None) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new content.

    The bytes go to a temporary file (mode 0600) in the same folder, are flushed to disk,
    then renamed over ``path``; on any error (a value ``json`` cannot write, a full disk)
    the temporary file is removed and ``path`` is untouched. The folder is created if needed.
    """
    text = json.dumps(data, indent=indent, default=default)
    write_text_atomic(path, text)


def write_text_atomic(path: str | os.PathLike, text: str, *, private: bool = True) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) so that ``path`` holds either the old or
    the new content; on any error the temporary file is removed and ``path`` is untouched.

    ``private``: the file is readable by its owner only (0600, for state files); otherwise
    it gets the usual permissions (the umask's), for files others read, such as a manifest
    on a farm's shared folder. The folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
    else:
        tmp = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"))
        handle = open(tmp, "x", encoding="utf-8", newline="\n")  # noqa: SIM115
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
