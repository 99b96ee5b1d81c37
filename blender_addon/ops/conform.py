"""Operators of the Conform step: render the strip's visible range to a compliant MP4, cancel
that render, forget its result; plus what the panel and the session need to read about it.

The render runs in a child Blender process (``conform_render.py``) driven by a
:class:`conform.ConformRender` on a long-job thread of its own (``worker.LONG``), so clicks on
other strips are served while it renders: the operator reads the strip into plain data and
plans on the main thread, the thread only waits on the child and parses its progress lines,
and the result is stored on the strip by the drain on the main thread.

The conformed clip's path is kept with the strip's live state (``live_sync``), outside
Blender's undo: the render ends after the last undo step, so an undo right after it would
otherwise clear the path and orphan the file. Clear Conform is an ordinary undoable step
(undo brings the clip back, redo clears it again). A timer of this
module copies the job's progress into the status line while it runs (``Conforming plate…
37%``); it stops by itself once no render is running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import bpy

from .. import compat
from ..bridge import live_sync, results, source
from ..bridge.context import active_movie_strip
from ..work import conform
from ..work.worker import LONG
from .long_jobs import run_long_job, strip_key

__all__ = ["classes", "conform_status", "conformed_clip", "read_source", "render_for"]

PROGRESS_INTERVAL_S = 0.25
ConformError = conform.ConformError
_SESSION_REFUSAL = ("The strip has a Kling session, whose frames refer to the clip it was "
                    "started from: Reset the session first")

_renders: dict[tuple[str, str], conform.ConformRender] = {}
"""Renders started in this Blender session, by (scene name, strip name), until they end."""



def _key(scene: Any, strip: Any) -> tuple[str, str]:
    return (scene.name if scene else "", strip.name)


def long_key(scene: Any, strip: Any) -> str:
    """The key of the strip's render among the long jobs (``ops.long_jobs``)."""
    return strip_key("conform", *_key(scene, strip))


def render_for(scene: Any, strip: Any) -> conform.ConformRender | None:
    """The render queued or running for this strip, or None."""
    job = _renders.get(_key(scene, strip))
    return job if job is not None and job.state in ("queued", "running") else None


def read_source(scene: Any, strip: Any, *, allow_load: bool = False) -> conform.SourceClip:
    """The strip's visible range as plain data (main thread); ConformError when unreadable."""
    path = bpy.path.abspath(strip.filepath)
    try:
        stat = os.stat(path)
    except OSError:
        raise ConformError(f"the strip's movie {path!r} does not exist: relink the strip "
                           "(Strip > Movie > File)") from None
    fps = source.source_fps(strip, path)
    file_frames = source.movie_frames(path, allow_load=allow_load)
    render = scene.render
    times = conform.StripTimes(
        frame_start=float(compat.timing(strip, "content_start")),
        frame_final_start=int(compat.timing(strip, "left_handle")),
        frame_final_end=int(compat.timing(strip, "right_handle")),
        frame_offset_start=float(compat.timing(strip, "left_handle_offset")),
        frame_offset_end=float(compat.timing(strip, "right_handle_offset")),
        frame_duration=int(compat.timing(strip, "content_duration")),
        animation_offset_start=int(compat.timing(strip, "content_trim_start")),
        animation_offset_end=int(compat.timing(strip, "content_trim_end")),
        scene_fps=render.fps / render.fps_base,
        source_fps=fps or render.fps / render.fps_base,
        file_frames=file_frames,
    )
    first, count = conform.visible_file_frames(times)
    height, width = source.picture_size(strip)
    return conform.SourceClip(
        path=path, width=width, height=height, fps=fps, first_frame=first,
        frame_count=count, name=strip.name, file_frames=file_frames,
        stamp=(stat.st_size, stat.st_mtime_ns))


def _out_dir() -> str:
    """``//kling/conformed`` of a saved .blend; else the unsaved folder's ``conformed``,
    which the first save moves next to the .blend like results (``results``)."""
    return conform.conform_dir(bpy.data.filepath, results.unsaved_folder())


def plan_for(scene: Any, strip: Any, choice: str = "AUTO", *, allow_load: bool = False
             ) -> conform.ConformPlan:
    return conform.plan_conform(read_source(scene, strip, allow_load=allow_load), choice,
                                _out_dir())


_record_cache: dict[tuple[str, int, int], conform.ConformPlan | None] = {}


def _record(path: str) -> conform.ConformPlan | None:
    """The clip's record, read once per version of the file (the panel asks on every redraw)."""
    try:
        stat = os.stat(f"{path}{conform.RECORD_SUFFIX}")
    except OSError:
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _record_cache:
        _record_cache[key] = conform.read_record(path)
    return _record_cache[key]


def conform_status(scene: Any, strip: Any) -> tuple[str, conform.ConformPlan | None, str]:
    """``(absolute path, plan it was rendered from, problem)`` of the strip's conformed clip.

    ``problem`` is ``""`` when the clip can be used: it exists, has its record, and still shows
    what the strip shows now (same file, same visible frames, same choice of length).
    """
    stored = strip.kling.conformed_path
    if not stored:
        return "", None, "not conformed"
    path = bpy.path.abspath(stored)
    if not os.path.isfile(path):
        return path, None, "the conformed file is missing: conform again"
    record = _record(path)
    if record is None:
        return path, None, "the conformed file has no record beside it: conform again"
    try:
        current = plan_for(scene, strip, record.choice)
    except conform.ConformError as exc:
        return path, record, f"the strip changed and cannot be conformed as before: {exc}"
    if current.digest != record.digest:
        return path, record, "the strip or its movie changed since: conform again"
    return path, record, ""


def conformed_clip(scene: Any, strip: Any) -> tuple[str, conform.ConformPlan] | None:
    """The file a session should send instead of the strip's movie, and how it was made.

    None when the strip has no usable conformed clip (see ``conform_status``). The plan's
    ``first_frame`` is the file frame at the clip's time 0 (``SessionTiming``'s
    ``source_start_frame``); its ``source_frame(k)`` names the file frame of clip frame ``k``.
    """
    path, record, problem = conform_status(scene, strip)
    return None if problem or record is None else (path, record)


def _stored_path(path: str) -> str:
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive (Windows)
            return path
    return path


class _RenderProgress:
    """The render's line in the panel's list of long jobs."""

    def __init__(self, name: str, job: conform.ConformRender) -> None:
        self.name, self.job = name, job

    def text(self) -> str:
        if self.job.state != "running":
            return f"Conform {self.name}: queued…"
        return f"Conforming {self.name}… {round(self.job.fraction * 100)}%"


def _progress_tick() -> float | None:
    """Main-thread timer: show the running render's progress; ends when none runs."""
    for key, job in list(_renders.items()):
        if job.state not in ("queued", "running"):
            del _renders[key]
    running = [(key, job) for key, job in _renders.items() if job.state == "running"]
    if running:
        (_, name), job = running[0]
        text = f"Conforming {name}… {round(job.fraction * 100)}%"
        runtime = bpy.context.window_manager.kling
        if runtime.status != text:
            runtime.status = text
    return PROGRESS_INTERVAL_S if _renders else None


class KLING_OT_conform_source(bpy.types.Operator):
    """Render the strip's visible range to an MP4 Kling accepts (24/30/60 fps, 720-2160 px,
    2-5 s or 7-10 s) in a background Blender, and use it for the session"""

    bl_idname = "kling.conform_source"
    bl_label = "Conform Clip"
    bl_options = {"REGISTER"}

    duration: bpy.props.EnumProperty(
        name="Length",
        items=(
            ("AUTO", "Auto", "Keep the visible length when Kling allows it, else the longest "
             "allowed length that fits (5 s under 7 s, 10 s beyond 10 s)"),
            ("5", "5 s", "At most 5 s (Kling's 2-5 s input): a longer range keeps its first 5 s"),
            ("10", "10 s", "At most 10 s (Kling's 7-10 s input): needs at least 7 s"),
        ),
        default="AUTO",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None:
            cls.poll_message_set("Select a movie strip first")
            return False
        if render_for(compat.sequencer_scene(context), strip) is not None:
            cls.poll_message_set("This strip is being conformed")
            return False
        if strip.kling.selection_json:
            cls.poll_message_set(_SESSION_REFUSAL)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = compat.sequencer_scene(context)
        strip = active_movie_strip(context)
        try:
            plan = plan_for(scene, strip, self.duration, allow_load=True)
        except conform.ConformError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        job = conform.ConformRender(plan, blender_binary=bpy.app.binary_path,
                                    python=sys.executable)
        key, name = _key(scene, strip), strip.name
        _renders[key] = job
        where = live_sync.ref(strip)

        def done(path: str) -> None:
            live_sync.deliver_conformed(where, _stored_path(path))
            bpy.context.window_manager.kling.status = f"Conformed {name}: {Path(path).name}"

        run_long_job(context, long_key(scene, strip), f"Conform {name}",
                     lambda cancel: job.run(), done, progress=_RenderProgress(name, job),
                     on_cancel=job.cancel)
        if not bpy.app.timers.is_registered(_progress_tick):
            bpy.app.timers.register(_progress_tick, first_interval=PROGRESS_INTERVAL_S)
        return {"FINISHED"}


class KLING_OT_cancel_conform(bpy.types.Operator):
    """Stop the running conform render of this strip (nothing is kept)"""

    bl_idname = "kling.cancel_conform"
    bl_label = "Cancel Conform"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        return strip is not None and render_for(compat.sequencer_scene(context), strip) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene, strip = compat.sequencer_scene(context), active_movie_strip(context)
        LONG.cancel(long_key(scene, strip))  # terminates the child render (its on_cancel)
        return {"FINISHED"}


class KLING_OT_clear_conform(bpy.types.Operator):
    """Forget this strip's conformed clip: the session uses the strip's own movie again (the
    file stays on disk, so conforming the same range again is instant)"""

    bl_idname = "kling.clear_conform"
    bl_label = "Clear Conform"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None or not strip.kling.conformed_path:
            return False
        if strip.kling.selection_json:
            cls.poll_message_set(_SESSION_REFUSAL)
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        live_sync.forget_conformed(active_movie_strip(context))
        return {"FINISHED"}


classes = (KLING_OT_conform_source, KLING_OT_cancel_conform, KLING_OT_clear_conform)


def unregister() -> None:
    """Stop renders and the progress timer (call from the add-on's ``unregister``)."""
    for job in _renders.values():
        job.cancel()
    _renders.clear()
    if bpy.app.timers.is_registered(_progress_tick):
        bpy.app.timers.unregister(_progress_tick)
