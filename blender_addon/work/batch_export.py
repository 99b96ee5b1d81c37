"""Export Batch, the worker side: marked strips (as plain data) -> a batch manifest on disk.

No ``bpy`` here: the operator reads each strip into a :class:`Shot` on the main thread, and
:func:`write_manifest` runs on a worker thread (it copies images, probes clips and hashes
plates). What it guarantees:

* **Passes** ``kling-elements batch --dry-run`` **unchanged**: the lines are checked with the
  batch's own validation (``batch.manifest.from_records``) before anything is put in place.
* **All or nothing**: with any problem (a strip's or the manifest's) nothing is left in the
  folder, neither the manifest nor an image; otherwise images are renamed into
  ``images/`` and the manifest is written aside (fsync) and renamed over the old one, so a
  reader never sees half a manifest and no temporary file stays behind.
* **Names** are valid batch names, unique, and stable per strip: the strip's name made
  safe plus a digest of its ``kling.live_key`` (a renamed or moved strip keeps its results'
  names, so a rerun of the batch resumes instead of starting over).
* **Paths** are relative to the manifest (POSIX separators), so a farm that mounts the
  folder elsewhere reads the same manifest; a clip on another Windows drive stays absolute.
* **Coming home**: each line's ``meta`` names the strip (scene, name, live key) and how its
  clip was made, which ``batch_results`` uses to put each result above its strip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kling_elements.atomic import write_text_atomic
from kling_elements.batch.manifest import NAME_PATTERN, from_records

from .task_calls import ImagePixels

__all__ = ["IMAGE_FOLDER", "META_SOURCES", "ExportError", "ExportResult", "Shot", "job_name",
           "manifest_lines", "precheck", "write_manifest"]

IMAGE_FOLDER = "images"
MANIFEST_SUFFIXES = (".jsonl", ".ndjson")
META_SOURCES = ("file", "conformed", "conform", "video_id")
"""How a shot's clip reaches the batch: the strip's movie, the add-on's conformed clip, a
conform the batch makes (``"conform": true``), or a Kling video id (a chained edit)."""
_NAME_STEM_MAX = 40


class ExportError(ValueError):
    """The manifest was not written; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"Export Batch wrote nothing: {len(problems)} problem(s): "
                         + "; ".join(problems))


@dataclass(frozen=True)
class Shot:
    """One marked movie strip as plain data, read on the main thread.

    ``video`` is the absolute path of the clip the session was started from (the movie or
    the add-on's conformed clip), unless ``video_id`` is set. ``conform_range`` is
    ``(first, end)`` in the movie's file frames (end excluded) when the batch must conform
    the clip itself; ``selections`` are ``(frame, points)`` in the session clip's frames,
    the exact floats that were sent. ``problems`` are found on the main thread (no marks,
    a missing movie, an edit not ready): such a shot is reported, never written.
    """

    scene: str
    strip: str
    key: str
    source: str = ""
    video: str = ""
    video_id: str = ""
    conform_range: tuple[int, int] | None = None
    selections: tuple[tuple[int, tuple[tuple[float, float], ...]], ...] = ()
    edit_mode: str = "removal"
    prompt: str = ""
    negative_prompt: str = ""
    quality: str = "std"
    duration: str | None = None
    watermark: bool = False
    images: tuple[str | ImagePixels, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"strip {self.strip!r}" + (f" ({self.scene})" if self.scene else "")


@dataclass(frozen=True)
class ExportResult:
    """What was written: the manifest, and each shot's job name in line order."""

    path: str
    names: tuple[str, ...]
    images: tuple[str, ...]


def job_name(strip_name: str, key: str, taken: set[str] | None = None) -> str:
    """The strip's job name: its name made safe, then a digest of its live key.

    The same strip gets the same name on every export; two strips never share one (also
    ignoring case: ``taken`` holds the lower-cased names given so far).
    """
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", strip_name).strip("_-")[:_NAME_STEM_MAX]
    stem = re.sub(r"^[^A-Za-z0-9]+", "", stem) or "strip"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    taken = taken if taken is not None else set()
    for size in range(8, len(digest) + 1, 4):
        name = f"{stem}-{digest[:size]}"
        if name.lower() not in taken:
            break
    assert NAME_PATTERN.fullmatch(name), name
    taken.add(name.lower())
    return name


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` with ``/`` separators; absolute across drives."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(path).as_posix()


def _image_name(name: str, number: int, image: str | ImagePixels) -> str:
    suffix = ".png" if isinstance(image, ImagePixels) else (Path(image).suffix.lower() or ".png")
    return f"{name}-image{number}{suffix}"


def manifest_lines(shots: list[Shot], names: list[str], folder: Path,
                   image_folder: str = IMAGE_FOLDER) -> list[dict[str, Any]]:
    """One manifest line per shot; images as ``<image_folder>/<name>-imageN.<ext>``."""
    lines = []
    for shot, name in zip(shots, names, strict=True):
        line: dict[str, Any] = {"name": name}
        if shot.video_id:
            line["video"] = {"video_id": shot.video_id}
        else:
            line["video"] = _relative(shot.video, folder)
        if shot.conform_range is not None:
            first, end = shot.conform_range
            line.update(conform=True, range=[f"f{first}", f"f{end}"], match_source=True)
        line["select"] = [{"frame": frame, "points": [list(p) for p in points]}
                          for frame, points in shot.selections]
        line["edit_mode"] = shot.edit_mode
        line["prompt"] = shot.prompt
        if shot.negative_prompt:
            line["negative_prompt"] = shot.negative_prompt
        line["mode"] = shot.quality
        if shot.duration is not None:
            line["duration"] = shot.duration
        if shot.images:
            line["images"] = [f"{image_folder}/{_image_name(name, n, image)}"
                              for n, image in enumerate(shot.images, start=1)]
        if shot.watermark:
            line["watermark"] = True
        line["meta"] = {"scene": shot.scene, "strip": shot.strip, "key": shot.key,
                        "source": shot.source, "edit_mode": shot.edit_mode}
        lines.append(line)
    return lines


def _stage_images(shots: list[Shot], names: list[str], stage: Path) -> list[str]:
    """Copy (or encode) every shot's images into ``stage``; their file names."""
    stage.mkdir(parents=True)
    written = []
    for shot, name in zip(shots, names, strict=True):
        for number, image in enumerate(shot.images, start=1):
            target = stage / _image_name(name, number, image)
            if isinstance(image, ImagePixels):
                image.to_image().save(target, "PNG")
            else:
                shutil.copyfile(image, target)
            written.append(target.name)
    return written


def _can_plan_conform() -> bool:
    """Whether the batch's conform planning (PyAV, the ``video`` extra) runs here.

    Blender's extension bundles no PyAV: there a ``"conform": true`` line is checked like
    any other except its conform plan, which the add-on already made with Blender's reading
    of the movie and which the farm plans again with PyAV.
    """
    return importlib.util.find_spec("av") is not None


def _unconformed(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("conform", "range", "match_source")}


def precheck(shots: list[Shot], manifest_path: str | os.PathLike) -> list[str]:
    """The problems known without touching the disk (the operator reports them at once)."""
    problems = [f"{shot.label}: {problem}" for shot in shots for problem in shot.problems]
    if not shots:
        problems.append("no marked movie strip to export: mark an element on a strip first "
                        "(Session > Start Editing, then Select Elements)")
    name = Path(manifest_path).name
    if not name.lower().endswith(MANIFEST_SUFFIXES):
        problems.append(f"the manifest {name!r} must end in .jsonl (JSON Lines)")
    return problems


def write_manifest(shots: list[Shot], manifest_path: str | os.PathLike) -> ExportResult:
    """Write the manifest of ``shots`` and their images beside it, or nothing at all.

    Raises :class:`ExportError` listing every problem: the shots' own, then every line the
    batch's validation refuses (named by strip). Also ``OSError`` when the folder cannot be
    written; in every failure the folder is left as it was.
    """
    path = Path(manifest_path).resolve()
    folder = path.parent
    problems = precheck(shots, path)
    if problems:
        raise ExportError(problems)
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    names = [job_name(shot.strip, shot.key, taken) for shot in shots]
    stage = folder / f".kling-export-{uuid.uuid4().hex[:12]}"
    try:
        images = _stage_images(shots, names, stage)
        staged = manifest_lines(shots, names, folder, _relative(str(stage), folder))
        checkable = staged if _can_plan_conform() else [_unconformed(x) for x in staged]
        checked = from_records(enumerate(checkable, start=1), folder, local_ok=True)
        if checked.problems:
            raise ExportError([f"{shots[p.line - 1].label}: {p.message}"
                               for p in checked.problems])
        final = manifest_lines(shots, names, folder)
        if images:
            (folder / IMAGE_FOLDER).mkdir(exist_ok=True)
        for image in images:
            os.replace(stage / image, folder / IMAGE_FOLDER / image)
        # Farm machines read the manifest as other users: not a private file.
        write_text_atomic(path, "".join(json.dumps(line, ensure_ascii=False) + "\n"
                                        for line in final), private=False)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(str(path), tuple(names),
                        tuple(str(folder / IMAGE_FOLDER / image) for image in images))
