"""Kling's rules checked on a movie strip, from what Blender already knows (no file I/O).

Blender has read the movie's size and frame rate; the container comes from the file name.
What is sent to Kling is the whole file, so the rules apply to the file; a trimmed strip
gets a note (conforming the visible range is a later feature).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kling_elements import validate

__all__ = ["Check", "clip_info", "source_checks"]


@dataclass(frozen=True)
class Check:
    label: str
    ok: bool
    detail: str


def clip_info(strip: Any, filepath: str) -> validate.VideoInfo:
    element = strip.elements[0] if len(strip.elements) else None
    fps = float(getattr(strip, "fps", 0.0) or 0.0)
    frames = int(strip.frame_duration)
    return validate.VideoInfo(
        container=Path(filepath).suffix.lstrip(".") or "unknown",
        duration_s=frames / fps if fps else 0.0,
        width=int(element.orig_width) if element else 0,
        height=int(element.orig_height) if element else 0,
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
