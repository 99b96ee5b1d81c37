"""Conform: turn a movie strip's visible range into a clip Kling accepts. No ``bpy`` here.

The operator (``ops_conform``) reads plain numbers from Blender; this module decides what to
render (a :class:`ConformPlan`), builds the command line of the background render
(``conform_render.py``) and runs it, reporting progress (:class:`ConformJob`). Everything is
testable with plain pytest.

What a plan guarantees, given a source that can be conformed at all:

* **Frame rate**: the allowed rate (24, 30, 60) nearest to the movie's; a tie (27 fps, 45 fps)
  goes to the higher rate, so every source frame still appears (frames are repeated, never
  dropped, when the two are equally far).
* **Size**: both sides within 720-2160 px with the aspect kept: the smallest scale that lifts
  the short side to 720, or the largest that brings the long side down to 2160, else 1;
  sides rounded to even numbers (H.264 4:2:0). An aspect beyond 3:1 cannot fit and is refused.
* **Time**: output frame ``k`` shows the file frame nearest to the time ``k / fps`` after the
  first visible frame (``source_frame``): the clip keeps the content's real speed. The output
  lasts as long as the visible range, cut to 5 s or 10 s from its start when it is longer
  than the chosen length allows; a range shorter than the chosen length's minimum (2 s; 7 s
  for "10") is refused, as conforming never pads.
* **Files**: the output name carries a digest of the source file (path, size, mtime) and of
  every planned number, so an existing file with that name *is* this plan's result (it is
  only ever moved into place complete). A JSON record beside it (``<name>.mp4.json``)
  says which file frames the clip shows, for the session's frame mapping.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import uuid
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from kling_elements import validate
from kling_elements.media import mp4_frame_count

from . import mapping
from .conform_render import DONE, ERROR, PROGRESS

__all__ = [
    "DURATION_CHOICES",
    "ConformCancelled",
    "ConformError",
    "ConformJob",
    "ConformPlan",
    "SourceClip",
    "StripTimes",
    "conform_dir",
    "conform_size",
    "duration_options",
    "movie_frame_count",
    "nearest_fps",
    "needs_conform",
    "plan_conform",
    "read_record",
    "render_command",
    "visible_file_frames",
]

DURATION_CHOICES = ("AUTO", "5", "10")
"""``AUTO``: keep the visible length when allowed, else the longest allowed length that fits."""

RENDER_SCRIPT = str(Path(__file__).with_name("conform_render.py"))
RECORD_SUFFIX = ".json"
RECORD_VERSION = 1
DEFAULT_QUALITY = "HIGH"  # Blender's CRF preset (x264 CRF 20)
DEFAULT_PRESET = "REALTIME"  # fastest x264 preset: seconds for 5 s of 720p on two cores

_EPS = 1e-6


class ConformError(ValueError):
    """The strip cannot be conformed as asked; the message says why and what to do."""


class ConformCancelled(ConformError):
    """The user cancelled the render."""


def needs_conform(info: validate.VideoInfo) -> list[str]:
    """Kling's rules the clip breaks, each with its fix (``[]``: send it as it is)."""
    return validate.video_problems(info)


def nearest_fps(fps: float) -> int:
    """The allowed frame rate nearest to ``fps``; ties go to the higher rate (see module)."""
    if not math.isfinite(fps) or fps <= 0:
        raise ConformError(f"the movie's frame rate {fps!r} is unusable: Blender could not "
                           "read the file; reload the strip")
    return min(validate.VIDEO_FPS, key=lambda allowed: (abs(allowed - fps), -allowed))


def _even(value: float) -> int:
    return math.floor(value / 2 + 0.5) * 2


def conform_size(width: int, height: int) -> tuple[int, int]:
    """Both sides within 720-2160 px, aspect kept, even; ConformError when no scale fits."""
    lo, hi = validate.VIDEO_SIDE_RANGE
    if width <= 0 or height <= 0:
        raise ConformError(f"the movie is {width}x{height} px: Blender has not read it; "
                           "reload the strip")
    short, long = min(width, height), max(width, height)
    if long / short > hi / lo:
        raise ConformError(
            f"the movie is {width}x{height} px, an aspect of {long / short:.2f}:1; no scale "
            f"fits both sides into {lo}-{hi} px (at most {hi / lo:g}:1): crop it to a wider "
            "or taller picture first (e.g. with a scene strip)")
    scale = lo / short if short < lo else hi / long if long > hi else 1.0
    return (min(max(_even(width * scale), lo), hi), min(max(_even(height * scale), lo), hi))


def duration_options(visible_s: float) -> dict[str, str]:
    """For each duration choice, ``""`` when it applies to ``visible_s`` or why it does not."""
    (short_lo, short_hi), (long_lo, long_hi) = validate.VIDEO_DURATION_RANGES_S
    tol = validate.DURATION_TOLERANCE_S
    if visible_s < short_lo - tol:
        why = (f"the visible range lasts {visible_s:.2f} s; Kling needs at least {short_lo:g} s "
               "and conforming does not pad: lengthen the strip (drag its handles)")
        return dict.fromkeys(DURATION_CHOICES, why)
    options = dict.fromkeys(DURATION_CHOICES, "")
    if visible_s < long_lo - tol:
        options["10"] = (
            f"the visible range lasts {visible_s:.2f} s, under the {long_lo:g} s a "
            f"{long_hi:g} s clip needs, and conforming does not pad: choose {short_hi:g} s "
            f"or lengthen the strip to {long_lo:g} s")
    return options


# ------------------------------------------------------------------ what the strip shows


@dataclass(frozen=True)
class StripTimes:
    """A movie strip's timing as RNA reports it (see ``mapping`` for the conventions).

    ``frame_duration`` means different things across versions for a strip Blender retimes
    ("Adjust Playback Rate"): 4.2 reports the file's frames, 5.0 the timeline length; the
    timeline length is always ``final duration + both frame offsets``. ``file_frames`` is the
    movie's frame count when known (the MP4 index), which settles the question.
    """

    frame_start: float
    frame_final_start: int
    frame_final_end: int
    frame_offset_start: float
    frame_offset_end: float
    frame_duration: int
    animation_offset_start: int
    animation_offset_end: int
    scene_fps: float
    source_fps: float
    file_frames: int | None = None


def visible_file_frames(times: StripTimes) -> tuple[int, int]:
    """``(first, count)``: the file frames the strip shows between its handles, in order.

    Computed with the same ``mapping`` functions the session's frame mapping uses, so a
    conformed clip and the clicks on the strip agree on which file frame is which.
    """
    timeline = round(times.frame_final_end - times.frame_final_start
                     + times.frame_offset_start + times.frame_offset_end)
    if times.file_frames:
        content = times.file_frames - times.animation_offset_start - times.animation_offset_end
    elif abs(times.frame_duration - timeline) > 1:
        content = times.frame_duration  # 4.2 reports the file's frames of a retimed strip
    else:
        content = timeline  # unknown file length: read as a strip Blender does not retime
    try:
        retimed = mapping.infer_auto_playback_rate(timeline, max(content, 1),
                                                   times.source_fps, times.scene_fps)
        timing = mapping.StripTiming(
            frame_start=times.frame_start,
            frame_final_start=times.frame_final_start,
            frame_final_end=times.frame_final_end,
            scene_fps=times.scene_fps,
            source_fps=times.source_fps,
            auto_playback_rate=retimed,
            animation_offset_start=times.animation_offset_start,
            content_frames=max(content, 1),
        )
    except ValueError as exc:
        raise ConformError(f"cannot tell which frames the strip shows: {exc}") from None
    first = mapping.scene_to_source_frame(timing, times.frame_final_start)
    last = mapping.scene_to_source_frame(timing, times.frame_final_end - 1)
    assert first is not None and last is not None  # the handles are inside the strip
    return first, last - first + 1


def movie_frame_count(path: str | os.PathLike) -> int | None:
    """Frames of the movie's first video track from its MP4/MOV index (no decoding).

    None when the file is not ISO-BMFF or has no video track; the caller then asks Blender.
    """
    return mp4_frame_count(path)


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class SourceClip:
    """What the plan needs to know about the source, read from Blender on the main thread.

    ``first_frame``/``frame_count`` are the visible file frames (``visible_file_frames``);
    ``stamp`` is ``(size, mtime_ns)`` of the file, so a changed file gets a new output name.
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

    @property
    def container(self) -> str:
        return Path(self.path).suffix.lower().lstrip(".") or "unknown"

    @property
    def visible_s(self) -> float:
        return self.frame_count / self.fps

    def info(self) -> validate.VideoInfo:
        """Kling's view of the visible range as it is now (what ``needs_conform`` checks)."""
        return validate.VideoInfo(self.container, self.visible_s, self.width, self.height,
                                  self.fps, self.frame_count)


@dataclass(frozen=True)
class ConformPlan:
    """What to render and why. ``source_frame(k)`` is the file frame output frame ``k`` shows."""

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

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps

    def source_frame(self, k: int) -> int:
        """The file frame shown at output frame ``k``: the nearest to ``k / fps`` seconds."""
        if not 0 <= k < self.frame_count:
            raise ValueError(f"output frame {k} is outside 0..{self.frame_count - 1}")
        offset = math.floor(k * self.source_fps / self.fps + 0.5)
        return min(self.first_frame + offset, self.last_frame)

    def render_args(self, tmp_output: str) -> dict[str, Any]:
        """The JSON object ``conform_render.py`` takes."""
        return {"source": self.source, "output": self.output, "tmp_output": tmp_output,
                "width": self.width, "height": self.height, "fps": self.fps,
                "source_fps": self.source_fps, "first_frame": self.first_frame,
                "last_frame": self.last_frame, "frame_count": self.frame_count,
                "quality": self.quality, "preset": self.preset}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformPlan:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["reasons"] = tuple(fields.get("reasons", ()))
        return cls(**fields)


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if abs(value * 10 - round(value * 10)) < 1e-6 else f"{value:.2f} s"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:40] or "clip"


def conform_dir(blend_path: str, unsaved_root: str) -> str:
    """Where conformed clips go: ``kling/conformed`` beside the .blend, else ``conformed``
    under the add-on's folder for an unsaved .blend, which the first save moves to
    ``kling/`` beside it (so the clip lands in ``kling/conformed`` either way).

    (Not Blender's per-session temp dir: that is deleted when Blender quits, and the strip
    keeps pointing at the file.)
    """
    if blend_path:
        return str(Path(blend_path).resolve().parent / "kling" / "conformed")
    return str(Path(unsaved_root) / "conformed")


def plan_conform(clip: SourceClip, choice: str = "AUTO", out_dir: str = ".") -> ConformPlan:
    """The render that makes ``clip``'s visible range compliant; ConformError if none can.

    No side effect: nothing is read or written (see the module docstring for the rules).
    """
    if choice not in DURATION_CHOICES:
        raise ConformError(f"duration choice {choice!r} is not one of "
                           f"{', '.join(DURATION_CHOICES)}")
    if clip.frame_count < 1 or clip.first_frame < 0:
        raise ConformError(f"the strip shows file frames {clip.first_frame}.."
                           f"{clip.first_frame + clip.frame_count - 1}: nothing to conform")
    fps = nearest_fps(clip.fps)
    width, height = conform_size(clip.width, clip.height)
    visible = clip.visible_s
    refusal = duration_options(visible)[choice]
    if refusal:
        raise ConformError(refusal)
    (_, short_hi), (long_lo, long_hi) = validate.VIDEO_DURATION_RANGES_S
    tol = validate.DURATION_TOLERANCE_S
    short = choice == "5" or (choice == "AUTO" and visible < long_lo - tol)
    cap = short_hi if short else long_hi
    frames = min(math.floor(clip.frame_count * fps / clip.fps + _EPS), round(cap * fps))
    last_needed = clip.first_frame + math.floor((frames - 1) * clip.fps / fps + 0.5)
    last = min(clip.first_frame + clip.frame_count - 1, last_needed)

    reasons = []
    if clip.container not in validate.VIDEO_CONTAINERS:
        reasons.append(f"{clip.container.upper()} → MP4")
    if abs(clip.fps - fps) > _EPS:
        reasons.append(f"{clip.fps:g} fps → {fps} fps")
    if (width, height) != (clip.width, clip.height):
        reasons.append(f"{clip.width}×{clip.height} → {width}×{height}")
    if visible > cap + tol:
        reasons.append(f"{_seconds(visible)} → {_seconds(frames / fps)} (keeps the start)")
    if clip.file_frames and (clip.first_frame > 0 or last < clip.file_frames - 1):
        reasons.append(f"only file frames {clip.first_frame}-{last} of 0-{clip.file_frames - 1}")

    key = json.dumps([os.path.abspath(clip.path), list(clip.stamp), clip.first_frame, last,
                      frames, width, height, fps, clip.fps, DEFAULT_QUALITY, DEFAULT_PRESET])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    output = str(Path(out_dir) / f"{_safe_name(clip.name)}-{digest}.mp4")
    return ConformPlan(
        source=os.path.abspath(clip.path), output=output, width=width, height=height, fps=fps,
        source_fps=float(clip.fps), first_frame=clip.first_frame, last_frame=last,
        frame_count=frames, choice=choice, digest=digest, reasons=tuple(reasons))


def read_record(output: str | os.PathLike) -> ConformPlan | None:
    """The plan a conformed clip was rendered from, or None (no record, or not readable)."""
    try:
        with open(f"{output}{RECORD_SUFFIX}", encoding="utf-8") as handle:
            return ConformPlan.from_dict(json.load(handle))
    except (OSError, ValueError, TypeError):
        return None


def _write_record(plan: ConformPlan) -> None:
    from kling_elements.workflow import write_json_atomic

    write_json_atomic(Path(f"{plan.output}{RECORD_SUFFIX}"), plan.to_dict())


# ------------------------------------------------------------------ the render process


def render_command(script: str, args: dict[str, Any], *, blender_binary: str = "",
                   python: str = sys.executable) -> list[str]:
    """The command line that runs ``script`` with ``args`` in a background Blender.

    A real Blender (``bpy.app.binary_path``) runs it with ``--background --factory-startup``
    and no user add-ons. Blender built as a Python module reports an empty binary path (unless
    a script set one); then the Python that imported ``bpy`` runs the script, which imports
    ``bpy`` itself.
    """
    payload = json.dumps(args)
    if (blender_binary and os.path.isfile(blender_binary)
            and os.path.realpath(blender_binary) != os.path.realpath(python)):
        return [blender_binary, "--background", "--factory-startup", "-noaudio",
                "--python-exit-code", "1", "--python", script, "--", payload]
    return [python, script, payload]


class ConformJob:
    """One conform render in a child process, run by ``run`` on a thread that may block.

    Thread safety: ``run`` is called once, on one thread; ``progress``, ``state`` and
    ``cancel`` may be called from any other (plain attribute reads/writes of immutable
    values). Guarantee: when ``run`` returns, ``plan.output`` and its record exist and are
    complete; when it raises, the temporary movie is gone (whether the child failed, crashed
    or was cancelled), and ``plan.output``, if it exists, is a whole file (the child only
    ever renames a finished movie into place).
    """

    def __init__(self, plan: ConformPlan, *, blender_binary: str = "",
                 python: str = sys.executable, script: str = RENDER_SCRIPT) -> None:
        self.plan = plan
        self.progress: tuple[int, int] = (0, plan.frame_count)
        self.state = "queued"  # queued -> running -> done | failed | cancelled
        self._binary, self._python, self._script = blender_binary, python, script
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    @property
    def fraction(self) -> float:
        done, total = self.progress
        return min(done / total, 1.0) if total else 0.0

    def cancel(self) -> None:
        """Stop the render (or keep it from starting); ``run`` then raises ConformCancelled."""
        with self._lock:
            self._cancelled = True
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def run(self) -> str:
        """Render (unless this plan's file already exists); return the output path."""
        plan = self.plan
        record = read_record(plan.output)
        # The record names where the clip was first written; a clip moved beside the .blend
        # on save (with its record) is still this plan's result.
        if record is not None and os.path.isfile(plan.output) \
                and replace(record, output=plan.output) == plan:
            self.progress, self.state = (plan.frame_count, plan.frame_count), "done"
            return plan.output
        Path(plan.output).parent.mkdir(parents=True, exist_ok=True)
        tmp = str(Path(plan.output).with_name(
            f"{Path(plan.output).stem}.{uuid.uuid4().hex[:8]}.part.mp4"))
        command = render_command(self._script, plan.render_args(tmp),
                                 blender_binary=self._binary, python=self._python)
        try:
            self._render(command)
            _write_record(plan)
        except BaseException as exc:
            self.state = "cancelled" if isinstance(exc, ConformCancelled) else "failed"
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.state = "done"
        return plan.output

    def _render(self, command: list[str]) -> None:
        tail: deque[str] = deque(maxlen=12)
        error = ""
        done_path = ""
        with self._lock:
            if self._cancelled:
                raise ConformCancelled("conform cancelled")
            self.state = "running"
            try:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                    bufsize=1, creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
            except OSError as exc:
                raise ConformError(f"cannot start the background render ({command[0]}): "
                                   f"{exc}") from None
        process = self._process
        assert process.stdout is not None
        with process:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                if line.startswith(PROGRESS + " "):
                    parts = line.split()
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        self.progress = (int(parts[1]), int(parts[2]))
                elif line.startswith(DONE + " "):
                    done_path = line[len(DONE) + 1:]
                elif line.startswith(ERROR + " "):
                    error = line[len(ERROR) + 1:]
                elif line.strip():
                    tail.append(line)
            status = process.wait()
        if self._cancelled:
            raise ConformCancelled("conform cancelled")
        if status != 0 or not done_path:
            detail = error or " | ".join(tail) or "no output"
            raise ConformError(f"the background render failed (exit status {status}): {detail}")
        if os.path.abspath(done_path) != os.path.abspath(self.plan.output) or not \
                os.path.isfile(self.plan.output):
            raise ConformError(f"the background render reported {done_path!r}, expected "
                               f"{self.plan.output!r}")
