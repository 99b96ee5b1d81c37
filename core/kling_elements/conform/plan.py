"""The conform plan: what to render so a range of a source clip becomes one Kling accepts.

One source of truth for every host: the Blender add-on renders a plan with Blender, the CLI
and batch with PyAV (``conform.render``). Nothing here reads or writes media; the limits
come from ``validate``.

What a plan guarantees, given a source that can be conformed at all:

* **Frame rate**: the allowed rate (24, 30, 60) nearest to the source's (or the one asked
  for); a tie (27 fps, 45 fps) goes to the higher rate, so every source frame still appears
  (frames are repeated, never dropped, when the two are equally far).
* **Size**: both sides within 720-2160 px with the aspect kept: the smallest scale that lifts
  the short side to 720, or the largest that brings the long side down to 2160, else 1;
  sides rounded to even numbers (H.264 4:2:0). An aspect beyond 3:1 cannot fit and is refused.
* **Time**: output frame ``k`` shows the source frame nearest to the time ``k / fps`` after
  the range's first frame (``source_frame``; a tie goes to the later frame), so the clip keeps
  the content's real speed. For a constant-rate source, frame ``i`` is at ``i / source_fps``;
  for a variable-rate one (phones) the frames' own presentation times are used and the plan
  lists the chosen frames (``frame_map``). The output lasts as long as the range, cut to 5 s
  or 10 s from its start when it is longer than the chosen length allows; a range shorter
  than the chosen length's minimum (2 s; 7 s for "10") is refused, as conforming never pads.
* **Files**: the default output name carries a digest of the source file (path, size, mtime)
  and of every planned number, so an existing file with that name *is* this plan's result
  (it is only ever moved into place complete). A JSON record beside it (``<name>.mp4.json``,
  :func:`write_record`) holds the plan: which source frame every output frame shows.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import validate
from ..errors import ValidationError

__all__ = [
    "DEFAULT_PRESET",
    "DEFAULT_QUALITY",
    "DURATION_CHOICES",
    "RECORD_SUFFIX",
    "RECORD_VERSION",
    "ConformCancelled",
    "ConformError",
    "ConformPlan",
    "SourceClip",
    "conform_size",
    "duration_options",
    "nearest_fps",
    "needs_conform",
    "plan_conform",
    "read_record",
    "record_path",
    "write_record",
]

DURATION_CHOICES = ("AUTO", "5", "10")
"""``AUTO``: keep the range's length when allowed, else the longest allowed length that fits."""

RECORD_SUFFIX = ".json"
RECORD_VERSION = 1
DEFAULT_QUALITY = "HIGH"  # x264 CRF 20 (Blender's name for it)
DEFAULT_PRESET = "REALTIME"  # a fast x264 preset: seconds for 5 s of 720p on two cores

_EPS = 1e-6


class ConformError(ValidationError):
    """The clip cannot be conformed as asked; the message says why and what to do."""


class ConformCancelled(ConformError):
    """The user cancelled the render."""


def nearest_fps(fps: float) -> int:
    """The allowed frame rate nearest to ``fps``; ties go to the higher rate (see module)."""
    if not math.isfinite(fps) or fps <= 0:
        raise ConformError(f"the movie's frame rate {fps!r} is unusable: the file's timing "
                           "could not be read; re-export the clip (or reload the strip)")
    return min(validate.VIDEO_FPS, key=lambda allowed: (abs(allowed - fps), -allowed))


def _even(value: float) -> int:
    return math.floor(value / 2 + 0.5) * 2


def conform_size(width: int, height: int) -> tuple[int, int]:
    """Both sides within 720-2160 px, aspect kept, even; ConformError when no scale fits."""
    lo, hi = validate.VIDEO_SIDE_RANGE
    if width <= 0 or height <= 0:
        raise ConformError(f"the movie is {width}x{height} px: its picture size could not be "
                           "read; re-export the clip (or reload the strip)")
    short, long = min(width, height), max(width, height)
    if long / short > hi / lo:
        raise ConformError(
            f"the movie is {width}x{height} px, an aspect of {long / short:.2f}:1; no scale "
            f"fits both sides into {lo}-{hi} px (at most {hi / lo:g}:1): crop it to a wider "
            "or taller picture first (e.g. with a scene strip in Blender, or ffmpeg's crop)")
    scale = lo / short if short < lo else hi / long if long > hi else 1.0
    return (min(max(_even(width * scale), lo), hi), min(max(_even(height * scale), lo), hi))


def duration_options(visible_s: float) -> dict[str, str]:
    """For each duration choice, ``""`` when it applies to ``visible_s`` or why it does not."""
    (short_lo, short_hi), (long_lo, long_hi) = validate.VIDEO_DURATION_RANGES_S
    tol = validate.DURATION_TOLERANCE_S
    if visible_s < short_lo - tol:
        why = (f"the range lasts {visible_s:.2f} s; Kling needs at least {short_lo:g} s "
               "and conforming does not pad: choose a longer range (drag the strip's handles, "
               "or widen --start/--end) or a longer clip")
        return dict.fromkeys(DURATION_CHOICES, why)
    options = dict.fromkeys(DURATION_CHOICES, "")
    if visible_s < long_lo - tol:
        options["10"] = (
            f"the range lasts {visible_s:.2f} s, under the {long_lo:g} s a "
            f"{long_hi:g} s clip needs, and conforming does not pad: choose {short_hi:g} s "
            f"or lengthen the range to {long_lo:g} s")
    return options


# ------------------------------------------------------------------ the source


@dataclass(frozen=True)
class SourceClip:
    """What the plan needs to know about the source (read by the host: Blender or PyAV).

    ``first_frame``/``frame_count`` are the source frames of the range to conform, counted
    in display order from 0; ``stamp`` is ``(size, mtime_ns)`` of the file, so a changed file
    gets a new output name. ``frame_times`` (seconds from frame 0, one per file frame) is
    given only for a variable-frame-rate source; a constant-rate frame ``i`` is at
    ``i / fps``.
    """

    path: str
    width: int
    height: int
    fps: float
    first_frame: int
    frame_count: int
    name: str = "clip"
    file_frames: int | None = None
    stamp: tuple[int, int] = (0, 0)
    frame_times: tuple[float, ...] | None = field(default=None, repr=False)

    @property
    def container(self) -> str:
        return Path(self.path).suffix.lower().lstrip(".") or "unknown"

    @property
    def variable_rate(self) -> bool:
        return self.frame_times is not None

    def time_of(self, frame: int) -> float:
        """Seconds from the file's frame 0 to source frame ``frame``."""
        if self.frame_times is None:
            return frame / self.fps
        return self.frame_times[frame]

    @property
    def visible_s(self) -> float:
        """How long the range is on screen: from its first frame to the end of its last."""
        if self.frame_times is None:
            return self.frame_count / self.fps
        end = self.first_frame + self.frame_count
        if end < len(self.frame_times):
            return self.frame_times[end] - self.frame_times[self.first_frame]
        return self.frame_times[end - 1] - self.frame_times[self.first_frame] + 1 / self.fps

    def info(self) -> validate.VideoInfo:
        """Kling's view of the range as it is now (what ``needs_conform`` checks)."""
        return validate.VideoInfo(self.container, self.visible_s, self.width, self.height,
                                  self.fps, self.frame_count)


def needs_conform(info: validate.VideoInfo, *, variable_rate: bool = False) -> list[str]:
    """Kling's rules the clip breaks, each with its fix (``[]``: send it as it is).

    A variable frame rate breaks no written limit, but a session counts frames at a fixed
    rate, so such a clip is conformed to a constant rate too.
    """
    problems = validate.video_problems(info)
    if variable_rate:
        problems.append(f"the frame rate varies (about {info.fps:.3g} fps on average): "
                        f"conform the clip to a constant {nearest_fps(info.fps)} fps")
    return problems


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class ConformPlan:
    """What to render and why. ``source_frame(k)`` is the source frame output frame ``k`` shows.

    ``frame_map`` lists those frames explicitly for a variable-rate source (None: computed
    from the two rates). The record beside a conformed clip is ``to_dict()``.
    """

    source: str
    output: str
    width: int
    height: int
    fps: int
    source_fps: float
    first_frame: int
    last_frame: int
    frame_count: int
    choice: str
    digest: str
    reasons: tuple[str, ...]
    quality: str = DEFAULT_QUALITY
    preset: str = DEFAULT_PRESET
    frame_map: tuple[int, ...] | None = None

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def source_frame(self, k: int) -> int:
        """The source frame shown at output frame ``k``: the nearest to ``k / fps`` seconds."""
        if not 0 <= k < self.frame_count:
            raise ValueError(f"output frame {k} is outside 0..{self.frame_count - 1}")
        if self.frame_map is not None:
            return self.frame_map[k]
        offset = math.floor(k * self.source_fps / self.fps + 0.5)
        return min(self.first_frame + offset, self.last_frame)

    def source_frames(self) -> list[int]:
        """``source_frame(k)`` for every output frame, in order."""
        if self.frame_map is not None:
            return list(self.frame_map)
        return [self.source_frame(k) for k in range(self.frame_count)]

    def output_frame(self, source_frame: int) -> int | None:
        """The first output frame showing ``source_frame``, else the one showing the source
        frame nearest to it; None when it lies outside the conformed range."""
        if not self.first_frame <= source_frame <= self.last_frame:
            return None
        shown = self.source_frames()
        return min(range(len(shown)), key=lambda k: (abs(shown[k] - source_frame), k))

    def render_args(self, tmp_output: str) -> dict[str, Any]:
        """The JSON object the add-on's ``conform_render.py`` takes."""
        return {"source": self.source, "output": self.output, "tmp_output": tmp_output,
                "width": self.width, "height": self.height, "fps": self.fps,
                "source_fps": self.source_fps, "first_frame": self.first_frame,
                "last_frame": self.last_frame, "frame_count": self.frame_count,
                "quality": self.quality, "preset": self.preset}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["frame_map"] = list(self.frame_map) if self.frame_map is not None else None
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformPlan:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["reasons"] = tuple(fields.get("reasons", ()))
        if fields.get("frame_map") is not None:
            fields["frame_map"] = tuple(int(f) for f in fields["frame_map"])
        return cls(**fields)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if abs(value * 10 - round(value * 10)) < 1e-6 else f"{value:.2f} s"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:40] or "clip"


def _nearest_frames(times: Sequence[float], first: int, last: int, start: float, fps: int,
                    count: int) -> tuple[int, ...]:
    """For ``k < count``: the frame in ``first..last`` nearest to ``start + k / fps``
    (a tie goes to the later frame)."""
    chosen = []
    for k in range(count):
        t = start + k / fps
        i = bisect.bisect_left(times, t, first, last + 1)
        if i > last:
            i = last
        elif i > first and t - times[i - 1] < times[i] - t:
            i -= 1
        chosen.append(i)
    return tuple(chosen)


def plan_conform(clip: SourceClip, choice: str = "AUTO", out_dir: str = ".", *,
                 fps: int | None = None) -> ConformPlan:
    """The render that makes ``clip``'s range compliant; ConformError if none can.

    ``fps`` forces one of Kling's rates (default: the nearest, see the module). No side
    effect: nothing is read or written.
    """
    if choice not in DURATION_CHOICES:
        raise ConformError(f"duration choice {choice!r} is not one of "
                           f"{', '.join(DURATION_CHOICES)}")
    if fps is not None and fps not in validate.VIDEO_FPS:
        raise ConformError(f"frame rate {fps!r} is not one Kling accepts: choose "
                           f"{', '.join(map(str, validate.VIDEO_FPS))} (or auto)")
    if clip.frame_count < 1 or clip.first_frame < 0:
        raise ConformError(f"the range is source frames {clip.first_frame}.."
                           f"{clip.first_frame + clip.frame_count - 1}: nothing to conform")
    target_fps = fps if fps is not None else nearest_fps(clip.fps)
    width, height = conform_size(clip.width, clip.height)
    visible = clip.visible_s
    refusal = duration_options(visible)[choice]
    if refusal:
        raise ConformError(refusal)
    (_, short_hi), (long_lo, long_hi) = validate.VIDEO_DURATION_RANGES_S
    tol = validate.DURATION_TOLERANCE_S
    short = choice == "5" or (choice == "AUTO" and visible < long_lo - tol)
    cap = short_hi if short else long_hi
    range_last = clip.first_frame + clip.frame_count - 1
    frame_map = None
    if clip.frame_times is None:
        frames = min(math.floor(clip.frame_count * target_fps / clip.fps + _EPS),
                     round(cap * target_fps))
        last_needed = clip.first_frame + math.floor((frames - 1) * clip.fps / target_fps + 0.5)
        last = min(range_last, last_needed)
    else:
        frames = min(math.floor(visible * target_fps + _EPS), round(cap * target_fps))
        frame_map = _nearest_frames(clip.frame_times, clip.first_frame, range_last,
                                    clip.frame_times[clip.first_frame], target_fps, frames)
        last = max(frame_map)

    reasons = []
    if clip.container not in validate.VIDEO_CONTAINERS:
        reasons.append(f"{clip.container.upper()} → MP4")
    if clip.frame_times is not None:
        reasons.append(f"variable frame rate (~{clip.fps:.3g} fps) → {target_fps} fps")
    elif abs(clip.fps - target_fps) > _EPS:
        reasons.append(f"{clip.fps:g} fps → {target_fps} fps")
    if (width, height) != (clip.width, clip.height):
        reasons.append(f"{clip.width}×{clip.height} → {width}×{height}")
    if visible > cap + tol:
        reasons.append(f"{_seconds(visible)} → {_seconds(frames / target_fps)} (keeps the start)")
    if clip.file_frames and (clip.first_frame > 0 or last < clip.file_frames - 1):
        reasons.append(f"only file frames {clip.first_frame}-{last} of 0-{clip.file_frames - 1}")

    key = json.dumps([os.path.abspath(clip.path), list(clip.stamp), clip.first_frame, last,
                      frames, width, height, target_fps, clip.fps, DEFAULT_QUALITY,
                      DEFAULT_PRESET] + ([list(frame_map)] if frame_map is not None else []))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    output = str(Path(out_dir) / f"{_safe_name(clip.name)}-{digest}.mp4")
    return ConformPlan(
        source=os.path.abspath(clip.path), output=output, width=width, height=height,
        fps=target_fps, source_fps=float(clip.fps), first_frame=clip.first_frame,
        last_frame=last, frame_count=frames, choice=choice, digest=digest,
        reasons=tuple(reasons), frame_map=frame_map)


# ------------------------------------------------------------------ the record


def record_path(output: str | os.PathLike) -> Path:
    """Where the record of the clip at ``output`` lives (``<output>.json``)."""
    return Path(f"{os.fspath(output)}{RECORD_SUFFIX}")


def read_record(output: str | os.PathLike) -> ConformPlan | None:
    """The plan a conformed clip was rendered from, or None (no record, or not readable)."""
    try:
        with open(record_path(output), encoding="utf-8") as handle:
            return ConformPlan.from_dict(json.load(handle))
    except (OSError, ValueError, TypeError):
        return None


def write_record(plan: ConformPlan) -> Path:
    """Write ``plan``'s record beside its output, atomically; return its path."""
    from ..workflow import write_json_atomic

    path = record_path(plan.output)
    write_json_atomic(path, plan.to_dict())
    return path
