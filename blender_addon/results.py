"""Where result files live and how they enter the timeline (main thread only).

Files go next to the .blend in ``//kling/``. While the .blend is unsaved there is no such
place, so they go to a temporary folder and ``move_to_blend_folder`` (a ``save_pre``
handler) moves them next to the .blend as it is first saved and repoints strips and task
records, so a saved project never depends on a temp folder.
"""


import os
import shutil
import tempfile
from pathlib import Path

import bpy

from . import compat, placement

__all__ = ["import_movie", "move_to_blend_folder", "result_folder", "safe_stem", "stored_path",
           "unsaved_folder"]

FOLDER = "kling"


def unsaved_folder() -> str:
    return os.path.join(tempfile.gettempdir(), f"kling-elements-unsaved-{os.getpid()}")


def result_folder() -> str:
    """``//kling/`` of the saved .blend, else a temporary folder (moved on save)."""
    if bpy.data.filepath:
        return bpy.path.abspath(f"//{FOLDER}")
    return unsaved_folder()


def safe_stem(name: str) -> str:
    """A file-name-safe version of a strip name (letters, digits, ``-`` and ``_`` kept)."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")
    return stem[:40] or "strip"


def stored_path(path: str) -> str:
    """How a file path is stored: relative to the .blend when it is inside its folder."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive on Windows
            return path
    return path


def import_movie(scene: bpy.types.Scene, source, path: str, label: str, align_frame: int):
    """Add ``path`` as a movie strip above ``source``, aligned and trimmed to its visible range.

    The file's first frame goes at ``align_frame``; the strip shows only the source's visible
    frames (a result may be longer than its input, e.g. 4 s in, 5 s out).
    """
    editor = scene.sequence_editor
    start = int(compat.timing(source, "left_handle"))
    end = int(compat.timing(source, "right_handle"))
    occupied = [(int(s.channel), int(compat.timing(s, "left_handle")),
                 int(compat.timing(s, "right_handle")))
                for s in compat.strips(editor, recursive=False)]
    channel = placement.first_free_channel(occupied, int(source.channel), start, end)
    strip = compat.new_movie(editor, placement.result_name(source.name, label),
                             stored_path(path), channel, align_frame)
    if compat.timing(strip, "left_handle") < start:
        compat.set_timing(strip, "left_handle", start)
    if compat.timing(strip, "right_handle") > end:
        compat.set_timing(strip, "right_handle", end)
    strip.channel = channel
    return strip


def _repoint(old: str, new: str, blend_dir: str) -> None:
    """Point every strip and record that uses file ``old`` at ``new`` (relative to the .blend)."""
    relative = "//" + os.path.relpath(new, blend_dir).replace(os.sep, "/")

    def same(value: str) -> bool:
        return bool(value) and os.path.normpath(bpy.path.abspath(value)) == old

    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        if editor is None:
            continue
        for strip in compat.strips(editor):
            if strip.type == "MOVIE" and same(strip.filepath):
                strip.filepath = relative
            if not hasattr(strip, "kling"):
                continue
            for record in strip.kling.tasks:
                for attr in ("result_path", "watermark_path"):
                    if same(getattr(record, attr)):
                        setattr(record, attr, relative)
            if same(strip.kling.conformed_path):
                strip.kling.conformed_path = relative


@bpy.app.handlers.persistent
def move_to_blend_folder(filepath=None, *_args) -> None:
    """Before a save: move files of the unsaved folder into the new ``//kling/`` and repoint.

    Runs in ``save_pre`` (which receives the path being written), so the file written
    already holds the final paths. Existing files are never overwritten: a clash is kept
    under a new name.
    """
    temp = Path(unsaved_folder())
    if not isinstance(filepath, str) or not filepath or not temp.is_dir():
        return
    blend_dir = os.path.dirname(os.path.abspath(filepath))
    target = Path(blend_dir) / FOLDER
    for item in sorted(temp.rglob("*")):
        if not item.is_file() or item.name.endswith(".part"):
            continue
        dest = target / item.relative_to(temp)
        if dest.exists():
            dest = dest.with_name(f"{dest.stem}-{os.getpid()}{dest.suffix}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(item), str(dest))
        _repoint(os.path.normpath(str(item)), str(dest), blend_dir)
