"""A movie strip's source file: Kling's rules checked on it, its frame rate and frame count.

The size comes from what Blender already read, the container from the file name; the frame
rate and count from the file's MP4/MOV index (the core's reader), read once per version of
the file (``(path, mtime, size)``, stat'ed at most once a second), because panels and clicks
ask on the main thread. What Start Editing sends is the whole file, so the rules apply to
the file; a trimmed strip gets a note, and Conform renders just its visible range.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kling_elements import validate
from kling_elements.media import mp4_frame_count, mp4_frame_rate

from .. import compat

__all__ = ["Check", "clip_info", "missing_media", "movie_frames", "picture_size", "source_checks",
           "source_file_frames", "source_fps", "timeline_frames"]

_fps_cache: dict[tuple[str, int, int], float] = {}
_frames_cache: dict[tuple[str, int, int], int | None] = {}
_stats: dict[str, tuple[float, tuple[str, int, int] | None]] = {}
STAT_TTL_S = 1.0


def _file_key(filepath: str) -> tuple[str, int, int] | None:
    """``(path, mtime, size)`` of the file (None if it cannot be read), stat'ed at most once
    a second: panels and the overlay ask on every redraw, and each system call on the main
    thread lets a busy worker thread take the interpreter lock for up to 5 ms."""
    now = time.monotonic()
    known = _stats.get(filepath)
    if known is not None and now - known[0] < STAT_TTL_S:
        return known[1]
    try:
        stat = os.stat(filepath)
        key = (filepath, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if len(_stats) > 256:
        _stats.clear()
    _stats[filepath] = (now, key)
    return key


def source_fps(strip: Any, filepath: str) -> float:
    """The movie's frame rate, read from the file's index once and cached.

    ``MovieStrip.fps`` opens the movie on every access (~60 ms in Blender 5.0), far too slow
    for a panel redraw or a click on the main thread; the MP4/MOV index answers in ~0.1 ms.
    """
    key = _file_key(filepath)
    if key is None:
        return float(getattr(strip, "fps", 0.0) or 0.0)
    if key not in _fps_cache:
        _fps_cache[key] = mp4_frame_rate(filepath) or float(getattr(strip, "fps", 0.0) or 0.0)
    return _fps_cache[key]


def movie_frames(filepath: str, *, allow_load: bool = False) -> int | None:
    """Frames in the movie file: the core's MP4/MOV index reader, once per version of the
    file; else, with ``allow_load``, Blender's decoder; else None.

    The add-on's one frame counter (session checks, Conform's plan and panel). Loading a
    movie clip opens the file (tens of ms), so panels never ask for it; the Conform
    operator does, once per click, for containers without an MP4 index.
    """
    key = _file_key(filepath)
    if key is None:
        return None
    if key not in _frames_cache:
        _frames_cache[key] = mp4_frame_count(filepath)
    if _frames_cache[key] is None and allow_load:
        import bpy

        clip = bpy.data.movieclips.load(filepath, check_existing=False)
        try:
            _frames_cache[key] = int(clip.frame_duration) or None
        finally:
            bpy.data.movieclips.remove(clip)
    return _frames_cache[key]


def source_file_frames(strip: Any, filepath: str) -> int:
    """Frames in the movie file (``movie_frames``); else what Blender reports for the strip.

    ``content_duration`` (``frame_duration`` before 5.1) is not that number everywhere: for
    a strip Blender retimes ("Adjust Playback Rate"), 4.2 reports the file's frames and 5.0
    the timeline length.
    """
    return movie_frames(filepath) or int(compat.timing(strip, "content_duration"))


def missing_media(strip: Any) -> str:
    """Why nothing about ``strip`` may be sent: its movie file is gone; "" when it is there.

    Blender draws a missing movie as a magenta fill, so a click cannot be aimed at what the
    clip shows, and Start Editing would have nothing to publish. One ``stat``: cheap enough
    for every click.
    """
    import bpy

    path = bpy.path.abspath(strip.filepath)
    if os.path.isfile(path):
        return ""
    return (f"the file is missing: {path}: restore it, or point the strip at it again (the "
            "strip's Source panel, File)")


def timeline_frames(strip: Any) -> int:
    """The strip's untrimmed length on the timeline, the same in every Blender version."""
    return int(compat.timing(strip, "duration") + compat.timing(strip, "left_handle_offset")
               + compat.timing(strip, "right_handle_offset"))


@dataclass(frozen=True)
class Check:
    label: str
    ok: bool
    detail: str


def picture_size(strip: Any) -> tuple[int, int]:
    """``(height, width)`` of the strip's movie as Blender read it; ``(0, 0)`` when unknown."""
    element = strip.elements[0] if len(strip.elements) else None
    return (int(element.orig_height), int(element.orig_width)) if element else (0, 0)


def clip_info(strip: Any, filepath: str) -> validate.VideoInfo:
    fps = source_fps(strip, filepath)
    frames = source_file_frames(strip, filepath)
    height, width = picture_size(strip)
    return validate.VideoInfo(
        container=Path(filepath).suffix.lstrip(".") or "unknown",
        duration_s=frames / fps if fps else 0.0,
        width=width,
        height=height,
        fps=fps,
        frame_count=frames,
    )


def source_checks(info: validate.VideoInfo, trimmed: bool = False) -> list[Check]:
    """One line per rule with ✓/✗ material: the rule, whether it holds, and the fix."""
    problems = validate.video_problems(info)

    def find(word: str) -> str:
        return next((p for p in problems if p.startswith(word)), "")

    container = find("container")
    duration = find("duration")
    size = "; ".join(p for p in problems if p.startswith(("width", "height")))
    fps = find("frame rate")
    checks = [
        Check("Container", not container, container or f".{info.container}"),
        Check("Duration", not duration, duration or f"{info.duration_s:.2f} s"),
        Check("Size", not size, size or f"{info.width}x{info.height} px"),
        Check("Frame rate", not fps, fps or f"{info.fps:g} fps"),
    ]
    if trimmed:
        checks.append(Check("Trim", True, "the strip is trimmed: the whole file is sent"))
    return checks
