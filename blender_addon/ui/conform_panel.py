"""Drawing of the Conform step, for a panel to call: ``draw_conform(layout, context, strip)``.

Reads only cheap facts on redraw (a ``stat``, the cached MP4 index, pure planning); never
opens the movie or starts work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from .. import compat
from ..ops import conform as ops_conform
from ..work import conform

__all__ = ["draw_conform"]

_CHOICE_TEXT = {"AUTO": "Conform Clip", "5": "5 s", "10": "10 s"}


def _draw_running(layout: Any, job: conform.ConformRender) -> None:
    done, total = job.progress
    text = (f"Conforming… {round(job.fraction * 100)}% ({done}/{total} frames)"
            if job.state == "running" else "Conform queued…")
    row = layout.row(align=True)
    compat.progress_bar(row, job.fraction, text)
    row.operator("kling.cancel_conform", text="", icon="CANCEL")


def _draw_done(layout: Any, scene: Any, strip: Any) -> None:
    path, record, problem = ops_conform.conform_status(scene, strip)
    row = layout.row(align=True)
    row.alert = bool(problem)
    row.label(text=Path(path).name, icon="ERROR" if problem else "FILE_MOVIE")
    row.operator("kling.clear_conform", text="", icon="X")
    if problem:
        warning = layout.row()
        warning.alert = True
        warning.label(text=problem)
        _draw_plan(layout, scene, strip)
    elif record is not None:
        layout.label(text=f"{record.width}×{record.height}, {record.fps} fps, "
                          f"{record.duration_s:.2f} s: the session uses this file")


def _draw_plan(layout: Any, scene: Any, strip: Any) -> None:
    try:
        clip = ops_conform.read_source(scene, strip)
    except conform.ConformError as exc:
        row = layout.row()
        row.alert = True
        row.label(text=str(exc), icon="ERROR")
        return
    problems = conform.needs_conform(clip.info())
    if problems:
        column = layout.column(align=True)
        for problem in problems:
            row = column.row()
            row.alert = True
            row.label(text=problem, icon="CANCEL")
    else:
        layout.label(text="The visible range meets Kling's rules", icon="CHECKMARK")
    try:
        plan = conform.plan_conform(clip, "AUTO")
    except conform.ConformError as exc:
        row = layout.row()
        row.alert = True
        row.label(text=str(exc), icon="ERROR")
        plan = None
    if plan is not None and plan.reasons:
        column = layout.column(align=True)
        for reason in plan.reasons:
            column.label(text=reason, icon="RIGHTARROW")
    options = conform.duration_options(clip.visible_s)
    row = layout.row(align=True)
    for choice in conform.DURATION_CHOICES:
        sub = row.row(align=True)
        sub.enabled = not options[choice] and not (choice == "AUTO" and plan is None)
        operator = sub.operator("kling.conform_source", text=_CHOICE_TEXT[choice],
                                icon="RENDER_ANIMATION" if choice == "AUTO" else "NONE")
        operator.duration = choice


def draw_conform(layout: Any, context: bpy.types.Context, strip: Any) -> None:
    """The Conform step for ``strip``: what breaks Kling's rules and what conforming would
    change, the Conform buttons (auto length, or at most 5 s / 10 s), the running render's
    progress with Cancel, and once done the conformed file with a Clear button."""
    scene = compat.sequencer_scene(context)
    job = ops_conform.render_for(scene, strip)
    if job is not None:
        _draw_running(layout, job)
    elif strip.kling.conformed_path:
        _draw_done(layout, scene, strip)
    else:
        _draw_plan(layout, scene, strip)
