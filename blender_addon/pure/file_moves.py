"""Moving files out of the unsaved folder next to a .blend. No ``bpy`` here.

A rename within one filesystem is instant, so it is done on the main thread while the
.blend is being saved. A move across filesystems is a copy, which takes as long as the
file is large: ``copy_file`` makes it on a worker thread, into a temporary name renamed
into place only once complete, so a file at its final path is always whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["copy_file", "free_name", "movable_files", "try_rename"]

_PARTIAL_SUFFIXES = (".part", ".part.mp4")  # a download or a render still being written


def movable_files(folder: Path) -> Iterator[Path]:
    """Complete files under ``folder``, in a stable order (never one still being written)."""
    if not folder.is_dir():
        return
    for item in sorted(folder.rglob("*")):
        if item.is_file() and not item.name.endswith(_PARTIAL_SUFFIXES):
            yield item


def free_name(dest: Path, tag: str) -> Path:
    """``dest``, or a name beside it carrying ``tag`` when ``dest`` exists (never overwrite).

    The tag goes before the first dot, so a clip and its record (``a.mp4``, ``a.mp4.json``)
    keep matching names (``a-tag.mp4``, ``a-tag.mp4.json``).
    """
    if not dest.exists():
        return dest
    head, dot, rest = dest.name.partition(".")
    return dest.with_name(f"{head}-{tag}{dot}{rest}")


def try_rename(src: Path, dest: Path) -> bool:
    """Rename ``src`` to ``dest`` if both are on one filesystem (instant); False if not."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return False
        raise
    return True


def copy_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through ``dest.part``; ``dest`` appears only when complete.

    Meant for a worker thread (it can take as long as the file is large). On failure
    nothing is left at ``dest`` or ``dest.part``, and ``src`` is untouched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        shutil.copyfile(src, partial)
        if partial.stat().st_size != src.stat().st_size:
            raise OSError(f"copying {src} to {dest} stopped short: the disk may be full")
        os.replace(partial, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
