"""``otio to-manifest``: a timeline's marked clips as batch manifest lines.

Each marked clip becomes one line that conforms the clip's used range of its media
(``"conform": true, "range": ["f<first>", "f<end>"]``, frames of the media file) and, by
default, brings the result back to the media's frame rate (``"match_source": true``), so
``add-results`` can lay it over the clip 1:1. A marker's frame becomes the frame of the
conformed clip showing it (the conform keeps real time: ``k = round(seconds * fps)``).

The lines are validated exactly as ``kling-elements batch`` will (``batch.manifest``), and
every problem is reported against its clip and marker; with any problem nothing is
written. Paths in the manifest are relative to its folder, so the farm can mount the
project anywhere.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..batch.manifest import Manifest, from_records
from ..conform.plan import ConformPlan
from . import require_otio
from .markers import MarkedClip, TimelineError, marked_clips, where

__all__ = ["job_names", "media_path", "read_timeline", "timeline_records", "to_manifest"]

_URL_PREFIXES = ("http://", "https://")


def read_timeline(path: str | os.PathLike) -> Any:
    """The timeline in ``path``, read by OTIO's adapter for its extension."""
    otio = require_otio()
    try:
        timeline = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # OTIO raises many kinds; each means the file is unreadable
        raise TimelineError([f"timeline {str(path)!r} cannot be read by OpenTimelineIO "
                             f"({exc}): export it again as .otio"]) from None
    if timeline.schema_name() != "Timeline":
        raise TimelineError([f"{str(path)!r} holds a {timeline.schema_name()}, not one "
                             "timeline: export a single timeline"])
    return timeline


def media_path(clip: Any, timeline_dir: Path) -> tuple[Path | None, str | None]:
    """The local file a clip's media reference names, or why there is none."""
    ref = clip.media_reference
    url = getattr(ref, "target_url", None)
    if not url:
        return None, ("has no media file (a missing or generated reference): relink the "
                      "clip to its media before exporting")
    if url.lower().startswith(_URL_PREFIXES):
        return None, (f"media {url!r} is a URL, but the conform needs the file: relink the "
                      "clip to a local (or shared-folder) copy")
    if url.lower().startswith("file:"):
        parsed = urlparse(url)
        url = url2pathname(parsed.path)
    path = Path(url)
    return (path if path.is_absolute() else timeline_dir / path), None


def job_names(clips: list[MarkedClip]) -> list[str]:
    """One job name per clip: the ``name`` given in the marks, else the clip's name made
    safe (``A001 C003.mov`` -> ``A001_C003``) and unique also ignoring case (``-2``...).
    The same timeline always gives the same names (``add-results`` relies on it)."""
    names, seen = [], set()
    for clip in clips:
        given = clip.edit.get("name")
        if isinstance(given, str):  # used as given; the validation names a bad one
            names.append(given)
            seen.add(given.lower())
            continue
        stem = Path(clip.clip.name or "").stem if clip.clip.name else ""
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:100] or "clip"
        name, number = base, 1
        while name.lower() in seen:
            number += 1
            name = f"{base}-{number}"
        seen.add(name.lower())
        names.append(name)
    return names


def _relative(path: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _media_fps(path: Path | None, fallback: float) -> float:
    """The media file's frame rate (OTIO's rates are the exporter's word; frames in the
    manifest count the file's frames), else ``fallback``."""
    if path is None:
        return fallback
    try:
        from ..media import probe
        return probe(path).fps
    except (ImportError, ValueError):  # the validation names an unreadable file
        return fallback


def _to_file_frame(time: Any, origin: Any, fps: float) -> int:
    return math.floor((time - origin).to_seconds() * fps + 0.5)


def _record(clip: MarkedClip, name: str, timeline_dir: Path, manifest_dir: Path,
            problems: list[str]) -> dict[str, Any]:
    """The clip's manifest line; ``select`` frames are still frames of the media file
    (``_conformed_frames`` maps them once the conform is planned)."""
    path, problem = media_path(clip.clip, timeline_dir)
    if problem:
        problems.append(f"{clip.label}: {problem}")
    used = clip.clip.trimmed_range()
    available = clip.clip.media_reference.available_range
    # Without an available range the media is taken to start at time 0.
    origin = available.start_time if available is not None else \
        require_otio().opentime.RationalTime(0, used.start_time.rate)
    fps = _media_fps(path, used.start_time.rate)
    first = _to_file_frame(used.start_time, origin, fps)
    end = _to_file_frame(used.end_time_exclusive(), origin, fps)
    select: dict[int, list[list[float]]] = {}
    for mark in clip.marks:
        if not used.start_time <= mark.time < used.end_time_exclusive():
            offset = (mark.time - used.start_time).to_seconds()
            problems.append(
                f"{where(clip.track, clip.index, clip.clip, mark.marker)}: the marker is at "
                f"{offset:+.3f} s from the clip's first frame, outside the part of the media "
                f"the clip uses ({used.duration.to_seconds():.3f} s): move it onto the clip")
            continue
        frame = _to_file_frame(mark.time, origin, fps)
        select.setdefault(frame, []).extend([x, y] for x, y in mark.points)
    images = []
    for image in clip.edit.get("images") or []:
        if isinstance(image, str) and not image.lower().startswith(_URL_PREFIXES):
            image = _relative(timeline_dir / image, manifest_dir)
        images.append(image)
    record: dict[str, Any] = {
        "name": name,
        "video": _relative(path, manifest_dir) if path is not None else None,
        "conform": True, "range": [f"f{first}", f"f{end}"],
        "match_source": clip.edit.get("match_source", True),
        "select": [{"frame": f, "points": p} for f, p in sorted(select.items())],
    }
    for key in ("edit_mode", "prompt", "negative_prompt", "mode", "watermark", "model_name"):
        if key in clip.edit:
            record[key] = clip.edit[key]
    if images or "images" in clip.edit:
        record["images"] = images
    return record


def _conformed_frames(record: dict[str, Any], plan: ConformPlan, label: str,
                      problems: list[str]) -> None:
    """Replace the record's media frames by the conformed clip's frames showing them (the
    plan's own mapping, ``ConformPlan.output_frame``)."""
    select: dict[int, list[list[float]]] = {}
    for item in record["select"]:
        frame = plan.output_frame(item["frame"])
        if frame is None:
            seconds = (item["frame"] - plan.first_frame) / plan.source_fps
            problems.append(
                f"{label}: a marker {seconds:.2f} s into the clip is past the "
                f"{plan.duration_s:g} s the conform keeps (Kling takes 2-5 s or 7-10 s): "
                "move the marker earlier, or cut the clip into shots Kling can take")
            continue
        select.setdefault(frame, []).extend(item["points"])
    record["select"] = [{"frame": f, "points": p} for f, p in sorted(select.items())]


def _validate(records: list[dict[str, Any]], clips: list[MarkedClip],
              manifest_dir: Path) -> tuple[Manifest, list[str]]:
    manifest = from_records(enumerate(records, start=1), manifest_dir)
    return manifest, [f"{clips[p.line - 1].label}: {p.message}" for p in manifest.problems]


def timeline_records(timeline: Any, timeline_path: str | os.PathLike,
                     manifest_path: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest lines of the timeline's marked clips, validated as the batch will.

    Raises :class:`TimelineError` with every problem, each named by track, clip and marker.
    """
    clips = marked_clips(timeline)
    if not clips:
        raise TimelineError([f"no clip of {str(timeline_path)!r} carries a marker with "
                             f"kling_elements metadata: mark the shots (docs/timeline.md)"])
    timeline_dir = Path(timeline_path).resolve().parent
    manifest_dir = Path(manifest_path).resolve().parent
    problems: list[str] = []
    records = [_record(clip, name, timeline_dir, manifest_dir, problems)
               for clip, name in zip(clips, job_names(clips), strict=True)]
    if problems:
        raise TimelineError(problems)
    manifest, problems = _validate(records, clips, manifest_dir)
    if problems:
        raise TimelineError(problems)
    for job in manifest.jobs:
        assert job.conform is not None
        _conformed_frames(records[job.line - 1], job.conform.plan, clips[job.line - 1].label,
                          problems)
    if not problems:  # the lines as written, checked once more exactly as the batch will
        problems = _validate(records, clips, manifest_dir)[1]
    if problems:
        raise TimelineError(problems)
    return records


def to_manifest(timeline_path: str | os.PathLike, manifest_path: str | os.PathLike, *,
                force: bool = False) -> list[dict[str, Any]]:
    """Write the manifest of the timeline's marked clips; its lines.

    Nothing is written when any clip has a problem, or when ``manifest_path`` exists and
    not ``force``; the file appears complete (a temporary file renamed into place).
    """
    target = Path(manifest_path)
    if target.exists() and not force:
        raise TimelineError([f"manifest {str(target)!r} already exists: choose another -o, "
                             "or pass --force to replace it"])
    records = timeline_records(read_timeline(timeline_path), timeline_path, target)
    text = "".join(json.dumps(record) + "\n" for record in records)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, target)
    return records
