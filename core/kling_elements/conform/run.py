"""Conform a file in one call: probe, plan, refuse what cannot work, render with PyAV.

The Python face of ``kling-elements conform`` (and what ``edit --conform`` and batch use):

    from kling_elements.conform.run import conform_file
    plan = conform_file("take.mov", "take-kling.mp4", start="2.5", duration="AUTO")

Everything that can be refused is refused before a frame is decoded, and nothing is left
behind by a refusal, an error or a cancel (see ``render``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .plan import DURATION_CHOICES, ConformError, ConformPlan, plan_conform, read_record
from .render import CancelCheck, ProgressCallback, render
from .source import Mark, SourceMedia, probe_source, source_clip

__all__ = ["Prepared", "conform_file", "fps_choice", "prepare", "reusable"]

OUTPUT_SUFFIXES = (".mp4",)


def fps_choice(text: str | int | None) -> int | None:
    """``auto``/None → None (the nearest allowed rate), else 24, 30 or 60."""
    if text is None or str(text).lower() == "auto":
        return None
    try:
        return int(str(text))
    except ValueError:
        raise ConformError(f"frame rate {text!r} must be auto, 24, 30 or 60") from None


def duration_choice(text: str | int | None) -> str:
    choice = "AUTO" if text is None else str(text).upper()
    if choice not in DURATION_CHOICES:
        raise ConformError(f"duration {text!r} must be auto, 5 or 10 (seconds of Kling's "
                           "2-5 s or 7-10 s input)")
    return choice


def _mark(value: str | float | Mark | None) -> Mark | None:
    if value is None or isinstance(value, Mark):
        return value
    return Mark.of(value)


@dataclass(frozen=True)
class Prepared:
    """A plan ready to render, with the probe it was made from and how the window was chosen."""

    plan: ConformPlan
    media: SourceMedia
    default_window: bool

    def window_text(self) -> str:
        """One line saying which span of the source the clip shows (and why, by default)."""
        plan, media = self.plan, self.media
        start = media.times[plan.first_frame]
        end = start + plan.duration_s
        text = (f"window: {start:.2f}-{end:.2f} s of {media.duration_s:.2f} s (source frames "
                f"f{plan.first_frame}-f{plan.last_frame})")
        if self.default_window:
            text += ("; by default the clip is kept from its start, up to the 5 s or 10 s Kling "
                     "takes: choose another span with --start/--end")
        return text


def prepare(source: str | os.PathLike, output: str | os.PathLike | None = None, *,
            fps: int | None = None, duration: str = "AUTO",
            start: str | float | Mark | None = None, end: str | float | Mark | None = None,
            out_dir: str | os.PathLike | None = None, name: str | None = None) -> Prepared:
    """Probe ``source`` and plan its conform; ConformError for anything that cannot work.

    With ``output`` the clip goes exactly there; else to ``out_dir`` under the plan's
    digest name (``<name>-<digest>.mp4``), which only this plan's result ever has.
    """
    media = probe_source(source)
    clip = source_clip(media, _mark(start), _mark(end), name=name)
    folder = str(out_dir) if out_dir is not None else str(Path(output or ".").parent)
    plan = plan_conform(clip, duration_choice(duration), folder, fps=fps)
    if output is not None:
        plan = replace(plan, output=str(Path(output).absolute()))
    return Prepared(plan, media, default_window=start is None and end is None)


def check_destination(source: str | os.PathLike, output: str | os.PathLike,
                      force: bool) -> None:
    """Refuse an output that would replace the source, a folder, a missing folder, a name
    Kling would not take, or (unless ``force``) an existing file."""
    out = Path(output)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConformError(f"output {str(out)!r} must be an .mp4 file (the container Kling "
                           f"takes): name it {out.with_suffix('.mp4').name!r}")
    if out.is_dir():
        raise ConformError(f"output {str(out)!r} is a folder: give a file name ending in .mp4")
    if not out.absolute().parent.is_dir():
        raise ConformError(f"the folder of output {str(out)!r} does not exist: create it first "
                           "or choose another -o")
    if out.exists() and out.resolve() == Path(source).resolve():
        raise ConformError(f"output {str(out)!r} is the source itself: choose another -o")
    if out.exists() and not force:
        raise ConformError(f"output {str(out)!r} already exists: choose another -o, or pass "
                           "--force to replace it (it is replaced only once the new clip is "
                           "complete)")


def reusable(plan: ConformPlan) -> bool:
    """Whether ``plan.output`` already is this plan's complete result (file and record)."""
    return os.path.isfile(plan.output) and read_record(plan.output) == plan


def conform_file(source: str | os.PathLike, output: str | os.PathLike, *,
                 fps: int | str | None = None, duration: str | int | None = "AUTO",
                 start: str | float | None = None, end: str | float | None = None,
                 force: bool = False, on_progress: ProgressCallback | None = None,
                 cancel: CancelCheck = None,
                 on_plan: Callable[[Prepared], None] | None = None) -> ConformPlan:
    """Conform ``source`` (or its ``start``-``end`` span) to ``output``; return the plan.

    ``fps``: auto/None, 24, 30 or 60; ``duration``: auto, 5 or 10; ``start``/``end``:
    seconds or ``"f<frame>"`` (end exclusive). ``on_plan`` sees the plan before rendering.
    """
    check_destination(source, output, force)
    prepared = prepare(source, output, fps=fps_choice(fps), duration=duration_choice(duration),
                       start=start, end=end)
    if on_plan is not None:
        on_plan(prepared)
    render(prepared.plan, media=prepared.media, on_progress=on_progress, cancel=cancel)
    return prepared.plan
