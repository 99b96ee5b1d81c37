"""Our marker metadata on an OpenTimelineIO timeline: which clips are edits, and how.

A clip is an edit when at least one of its markers carries the ``kling_elements``
namespace (see ``docs/timeline.md``)::

    marker.metadata["kling_elements"] = {
        "points": [[0.52, 0.11]],          # normalized (0, 0) top-left, on the marked frame
        "edit_mode": "removal",            # addition, swap or removal
        "prompt": "Remove the microphone from <<<video_1>>>",
        "images": ["refs/new_logo.png"],   # relative to the timeline file, or URLs
    }

The marker's ``marked_range.start_time`` (the clip's media time, as OTIO defines it) is the
frame the points are on; each marker of a clip adds one frame of points to the same edit.
The edit's own fields (everything but ``points``) may sit on any one marker of the clip, or
be repeated identically. Tools that keep only text on markers (a Resolve marker's note) may
give the namespace as text: ``kling_elements {"points": ...}`` in the marker's name or in
any text field of its metadata. This module reads timelines only; it never writes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError

__all__ = ["EDIT_FIELDS", "NAMESPACE", "MarkedClip", "MarkedPoints", "TimelineError",
           "marked_clips", "where"]

NAMESPACE = "kling_elements"
EDIT_FIELDS = ("name", "edit_mode", "prompt", "images", "negative_prompt", "mode", "watermark",
               "model_name", "match_source")
_FIELDS = ("points", *EDIT_FIELDS)
_TEXT = re.compile(rf"^\s*{NAMESPACE}\s*:?\s*(\{{.*\}})\s*$", re.S)


class TimelineError(ValidationError):
    """Problems of a timeline's marks: one per line, each naming the track, clip and marker
    and what to fix; nothing was written or sent."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the timeline; nothing was written "
                         "or sent:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class MarkedPoints:
    """One marker's points and where it is (the clip's media time, in frames at ``rate``)."""

    marker: str
    time: Any  # opentime.RationalTime
    points: tuple[tuple[float, float], ...]


@dataclass
class MarkedClip:
    """A clip of a video track that carries our marks, with the edit they describe."""

    track: int  # 1-based among the video tracks (V1, V2, ...)
    index: int  # 1-based among the track's clips
    clip: Any  # schema.Clip
    marks: list[MarkedPoints] = field(default_factory=list)
    edit: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return where(self.track, self.index, self.clip)


def where(track: int, index: int, clip: Any, marker: str | None = None) -> str:
    """``track V1, clip 2 'A001_C003'`` (and the marker): how messages name a place."""
    text = f"track V{track}, clip {index} {clip.name or '(unnamed)'!r}"
    return text + (f", marker {marker or '(unnamed)'!r}" if marker is not None else "")


def plain(value: Any) -> Any:
    """OTIO's AnyDictionary/AnyVector as plain dicts and lists (JSON-ready)."""
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    try:
        return [plain(v) for v in value]
    except TypeError:
        return value


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)


def _namespace(marker: Any) -> tuple[object, bool]:
    """``(raw namespace, found)`` of a marker: the metadata key, else a ``kling_elements
    {...}`` text in its name or its metadata."""
    metadata = plain(marker.metadata) or {}
    if NAMESPACE in metadata:
        raw = metadata[NAMESPACE]
        if isinstance(raw, str):
            try:
                return json.loads(raw), True
            except ValueError as exc:
                return f"is text but not JSON ({exc})", True
        return raw, True
    for text in [marker.name or "", *_texts(metadata)]:
        match = _TEXT.match(text)
        if match:
            try:
                return json.loads(match.group(1)), True
            except ValueError as exc:
                return f"is text but not JSON ({exc})", True
    return None, False


def _points(raw: object) -> tuple[tuple[tuple[float, float], ...] | None, str | None]:
    ok = isinstance(raw, list) and raw and all(
        isinstance(p, list) and len(p) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in raw)
    if not ok:
        return None, (f"points {raw!r} must be a list of [x, y] pairs, normalized with (0, 0) "
                      "top-left, e.g. [[0.52, 0.11]]")
    return tuple((float(x), float(y)) for x, y in raw), None


def _read_marker(clip: MarkedClip, marker: Any, raw: object, problems: list[str]) -> None:
    here = where(clip.track, clip.index, clip.clip, marker.name)
    if isinstance(raw, str):
        problems.append(f"{here}: {NAMESPACE} {raw}: write it as a JSON object")
        return
    if not isinstance(raw, dict):
        problems.append(f"{here}: {NAMESPACE} must be an object such as "
                        '{"points": [[0.5, 0.5]], "edit_mode": "removal", "prompt": "..."}')
        return
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        problems.append(f"{here}: unknown field(s) {', '.join(map(repr, unknown))} in "
                        f"{NAMESPACE}: the fields are {', '.join(_FIELDS)}")
    points, problem = _points(raw.get("points"))
    if problem:
        problems.append(f"{here}: {problem}")
    else:
        clip.marks.append(MarkedPoints(marker.name or "", marker.marked_range.start_time,
                                       points))
    for key in EDIT_FIELDS:
        if key not in raw:
            continue
        if key in clip.edit and clip.edit[key] != raw[key]:
            problems.append(f"{here}: {key} {raw[key]!r} differs from {clip.edit[key]!r} "
                            "given on another marker of the clip: give it once, on one marker")
        clip.edit.setdefault(key, raw[key])


def marked_clips(timeline: Any) -> list[MarkedClip]:
    """Every clip of the timeline's video tracks that carries our marks, in track order.

    Raises :class:`TimelineError` listing every malformed mark (all of them, not the first).
    """
    problems: list[str] = []
    found = []
    for track_number, track in enumerate(timeline.video_tracks(), start=1):
        clips = [item for item in track if item.schema_name() == "Clip"]
        for index, clip in enumerate(clips, start=1):
            marked = MarkedClip(track_number, index, clip)
            ours = False
            for marker in clip.markers:
                raw, found_here = _namespace(marker)
                if found_here:
                    ours = True
                    _read_marker(marked, marker, raw, problems)
            if ours:
                found.append(marked)
    if problems:
        raise TimelineError(problems)
    return found
