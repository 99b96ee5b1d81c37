"""Where result files live and how they enter the timeline (main thread only).

Files go next to the .blend in ``//kling/``. While the .blend is unsaved there is no such
place, so results, tracking previews and conformed clips go to a temporary folder, which
``move_to_blend_folder`` (``save_pre``) and ``finish_moves`` (``save_post``) move next to
the .blend when it is first saved, repointing strips and task records, so a saved project
never depends on a temp folder. The main thread never copies a file (see the handlers).
"""


import contextlib
import itertools
import os
import tempfile
from pathlib import Path

import bpy

from .. import compat
from ..pure import file_moves, placement
from ..work.worker import BACKGROUND, LONG
from . import live_sync

__all__ = ["finish_moves", "import_movie", "move_to_blend_folder", "result_folder",
           "safe_stem", "stored_path", "unsaved_folder"]

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


def _repoint(old: str, new: str, blend_dir: str, *, after_save: bool = False) -> None:
    """Point every strip and record that uses file ``old`` at ``new`` (relative to the .blend).

    ``after_save``: the move ended after the save that asked for it (``save_post`` records
    the others), so the new path is delivered to ``live_sync`` here: an undo keeps it.
    """
    relative = "//" + os.path.relpath(new, blend_dir).replace(os.sep, "/")

    def same(value: str) -> bool:
        return bool(value) and os.path.normpath(bpy.path.abspath(value)) == old

    if after_save:
        live_sync.deliver_moved_file(old, relative)

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


_to_copy: list[tuple[str, str]] = []
"""(temp file, destination) pairs on another filesystem, found by the last ``save_pre``."""
_copying: set[str] = set()
"""Temp files a copy job is working on (a save meanwhile leaves them alone)."""
_saved_with: dict[str, set[str]] = {}
"""Temp file -> the .blend files saved while strips still used its temporary path."""
_repointed: set[str] = set()
"""Temp files whose copy is done and in use; each is deleted once no saved .blend needs it."""
_move_ids = itertools.count(1)


@bpy.app.handlers.persistent
def move_to_blend_folder(filepath=None, *_args) -> None:
    """Before a save: move files of the unsaved folder into the new ``//kling/`` and repoint.

    Runs in ``save_pre`` (which receives the path being written). A file on the same
    filesystem is renamed (instant) and repointed now, so the .blend written already holds
    its relative path. A file on another filesystem would need a copy, which is never made
    on the main thread: it keeps its temporary absolute path (valid) in this save, and
    ``finish_moves`` copies it on a long-job thread after the save. Existing files are never
    overwritten: a clash is kept under a new name.
    """
    temp = Path(unsaved_folder())
    if not isinstance(filepath, str) or not filepath:
        return
    blend_dir = os.path.dirname(os.path.abspath(filepath))
    target = Path(blend_dir) / FOLDER
    for item in file_moves.movable_files(temp):
        if str(item) in _copying or str(item) in _repointed:
            continue  # being copied, or copied already and kept until no .blend needs it
        dest = file_moves.free_name(target / item.relative_to(temp), str(os.getpid()))
        if file_moves.try_rename(item, dest):
            _repoint(os.path.normpath(str(item)), str(dest), blend_dir)
        else:
            _to_copy.append((str(item), str(dest)))


@bpy.app.handlers.persistent
def finish_moves(filepath=None, *_args) -> None:
    """After a save: start the copies ``save_pre`` left, and delete temp files no longer needed.

    The copies run on a long-job thread (listed in the panel); once one completes, strips
    and records using the temporary file point at the copy instead (recorded in the .blend
    at the next save). A temporary file is deleted only once every .blend saved while it
    was in use has been saved again with the new paths: no saved .blend ever points at a
    file that is gone.
    """
    if not isinstance(filepath, str) or not filepath:
        return
    written = os.path.abspath(filepath)
    unused = []
    for old in list(_repointed):
        _saved_with[old].discard(written)
        if not _saved_with[old]:
            unused.append(old)
            _repointed.discard(old)
            del _saved_with[old]
    if unused:
        BACKGROUND.submit("Remove moved temporary files", lambda: _remove(unused),
                          _ignore, _ignore)
    moves, _to_copy[:] = list(_to_copy), []
    for old in _copying.union(old for old, _new in moves):
        _saved_with.setdefault(old, set()).add(written)
    if moves:
        _start_copies(moves)


def _start_copies(moves: list[tuple[str, str]]) -> None:
    _copying.update(old for old, _new in moves)

    def work(cancel) -> tuple[list[tuple[str, str]], list[str]]:
        copied, problems = [], []
        for old, new in moves:
            if cancel.is_set():
                break
            try:
                file_moves.copy_file(Path(old), Path(new))
            except OSError as exc:
                problems.append(f"{Path(old).name}: {exc}")
            else:
                copied.append((old, new))
        return copied, problems

    def applied(outcome: tuple[list[tuple[str, str]], list[str]]) -> None:
        copied, problems = outcome
        _copying.difference_update(old for old, _new in moves)
        if problems:
            bpy.context.window_manager.kling.error = (
                "Some files could not be copied next to the .blend (they stay in the temp "
                f"folder; the next save tries again): {'; '.join(problems)}")
        blend_dir = os.path.dirname(bpy.data.filepath)
        for old, new in copied if blend_dir else ():  # else another, unsaved file is open
            _repoint(os.path.normpath(old), new, blend_dir, after_save=True)
            _repointed.add(old)

    def failed(exc: BaseException) -> None:
        _copying.difference_update(old for old, _new in moves)
        print(f"Kling: copying files next to the .blend failed: {exc}")

    LONG.submit(f"move-files:{next(_move_ids)}", "Copying files next to the .blend", work,
                applied, failed)


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _ignore(_result) -> None:
    """Nothing to apply on the main thread."""
