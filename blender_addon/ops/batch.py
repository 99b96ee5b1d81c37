"""Export Batch and Import Batch Results: from marked strips to a farm's manifest and back.

Both operators read ``bpy`` only on the main thread and hand plain data to a long-job
thread: exporting copies images, probes clips and hashes plates (``batch_export``);
importing reads the reports and looks for the files (``batch_results``). The outcomes are
placed on the main thread, the way an interactive Generate places its result: the task
record first (through ``live_sync``, so undo cannot lose it), then ``ops_tasks.
import_record`` above the source strip. A record is keyed by the job's
``external_task_id``, so importing the same folder again adds nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from kling_elements import validate

from .. import compat
from ..bridge import live_sync, reference_images, results
from ..bridge.props import load_selection
from ..bridge.source import missing_media
from ..pure import batch_results
from ..work import batch_export
from . import conform as ops_conform
from . import tasks as ops_tasks
from .edit import align_frame, edit_problems_for
from .long_jobs import run_long_job

__all__ = ["MENUS", "ImportSummary", "classes", "place_outcomes", "read_shot"]

DEFAULT_MANIFEST = "shots.jsonl"


def _session_duration(state) -> str | None:
    if not state.fps or not state.total_frames:
        return None
    return validate.duration_for(state.total_frames / state.fps)


def _clip_of(scene, strip, state) -> tuple[dict, list[str]]:
    """How the strip's session clip reaches the batch: Shot fields, and the problems."""
    kling = strip.kling
    if kling.video_id:
        return {"source": "video_id", "video_id": kling.video_id}, []
    movie = bpy.path.abspath(strip.filepath)
    if not kling.session_file_frames:  # the session was started from the whole movie
        missing = missing_media(strip)
        return {"source": "file", "video": movie}, [missing] if missing else []
    found = ops_conform.conformed_clip(scene, strip)
    if found is not None and found[1].first_frame == kling.session_first_frame:
        return {"source": "conformed", "video": found[0]}, []
    path, record, problem = ops_conform.conform_status(scene, strip)
    if record is not None or (path and os.path.isfile(path)):
        return {}, [f"its conformed clip cannot be used ({problem or 'another range'}): its "
                    "marks refer to that clip; Reset the session, conform and mark again"]
    duration = _session_duration(state) if state is not None else None
    try:  # the conformed clip is gone: the batch conforms the same span with the core
        plan = ops_conform.plan_for(scene, strip, duration or "AUTO", allow_load=True)
    except ops_conform.ConformError as exc:
        return {}, [str(exc)]
    frames = state.total_frames if state is not None else None
    if plan.first_frame != kling.session_first_frame or frames not in (None, plan.frame_count):
        return {}, ["the strip was trimmed since its session started: its marks refer to "
                    "other frames; Reset the session and mark again"]
    span = (plan.first_frame, plan.last_frame + 1)
    return {"source": "conform", "video": movie, "conform_range": span}, []


def read_shot(scene, strip) -> batch_export.Shot:
    """The strip's edit as plain data (main thread); its problems instead of an exception."""
    key = live_sync.ref(strip).key
    state = load_selection(strip)
    edit = strip.kling.edit
    problems = list(edit_problems_for(strip))
    duration = _session_duration(state) if state is not None else None
    clip, clip_problems = _clip_of(scene, strip, state)
    problems += clip_problems
    selections = ()
    if state is not None:
        selections = tuple((frame, tuple((float(x), float(y)) for x, y in state.points[frame]))
                           for frame in state.frames() if state.points.get(frame))
    images = ()
    if not problems:
        images = tuple(reference_images.image_input(image)
                       for image in reference_images.slot_images(edit, edit.edit_mode))
    return batch_export.Shot(
        scene=scene.name, strip=strip.name, key=key, selections=selections,
        edit_mode=edit.edit_mode, prompt=edit.prompt, negative_prompt=edit.negative_prompt,
        quality=edit.quality, duration=duration, watermark=edit.watermark, images=images,
        problems=tuple(problems), **clip)


def _shots(context, selected_only: bool) -> list[batch_export.Shot]:
    scene = compat.sequencer_scene(context)
    shots = []
    for strip in live_sync.movie_strips(scene):
        if selected_only:
            if strip.select:
                shots.append(read_shot(scene, strip))
            continue
        state = load_selection(strip)
        if state is not None and state.frames():
            shots.append(read_shot(scene, strip))
    return shots


def _default_path() -> str:
    if bpy.data.filepath:
        return bpy.path.abspath(f"//{results.FOLDER}/batch/{DEFAULT_MANIFEST}")
    return DEFAULT_MANIFEST


class KLING_OT_export_batch(bpy.types.Operator):
    """Write a batch manifest (JSON Lines) with one line per marked movie strip, and the
    reference images beside it, for kling-elements batch on a farm (nothing is sent)"""

    bl_idname = "kling.export_batch"
    bl_label = "Export Batch"
    bl_options = {"REGISTER"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_glob: bpy.props.StringProperty(default="*.jsonl", options={"HIDDEN"})
    selected_only: bpy.props.BoolProperty(
        name="Selected Strips Only", description="Export the selected movie strips (each "
        "must be marked) instead of every marked movie strip", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if compat.sequencer_scene(context) is None:
            cls.poll_message_set("Open a scene with a sequence editor")
            return False
        return True

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = _default_path()
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime = context.window_manager.kling
        target = bpy.path.abspath(self.filepath or _default_path())
        if os.path.isdir(target):
            target = os.path.join(target, DEFAULT_MANIFEST)
        shots = _shots(context, self.selected_only)
        problems = batch_export.precheck(shots, target)
        if problems:  # known now: reported before any thread starts, nothing written
            runtime.error = str(batch_export.ExportError(problems))
            self.report({"ERROR"}, runtime.error)
            return {"CANCELLED"}

        def done(result: batch_export.ExportResult) -> None:
            bpy.context.window_manager.kling.status = (
                f"Exported {len(result.names)} shot(s) to {result.path}")

        try:
            run_long_job(context, f"export-batch:{target}", "Export Batch",
                         lambda cancel: batch_export.write_manifest(shots, target), done)
        except ValueError:
            self.report({"ERROR"}, f"{target} is being exported already")
            return {"CANCELLED"}
        return {"FINISHED"}


@dataclass
class ImportSummary:
    """What one import did, counted by outcome (shown in the status line)."""

    imported: int = 0
    already: int = 0
    failed: int = 0
    unfinished: int = 0
    missing_strip: int = 0
    missing_file: int = 0

    def text(self) -> str:
        parts = [f"{self.imported} imported"]
        for count, what in ((self.already, "already imported"), (self.failed, "failed"),
                            (self.unfinished, "not finished (run the batch again)"),
                            (self.missing_strip, "whose strip is gone"),
                            (self.missing_file, "whose file is missing")):
            if count:
                parts.append(f"{count} {what}")
        return "Batch results: " + ", ".join(parts)


def _strip_for(meta: dict):
    """The movie strip a result belongs to: by its live key, else by scene and name."""
    key, name = meta.get("key"), meta.get("strip")
    keyed = [strip for scene in bpy.data.scenes for strip in live_sync.movie_strips(scene)
             if key and strip.kling.live_key == key]
    if keyed:  # a duplicate carries the same key until looked at: prefer the named one
        return next((s for s in keyed if s.name == name), keyed[0])
    scene = bpy.data.scenes.get(str(meta.get("scene", "")))
    strip = compat.strip_by_name(scene, str(name or ""))
    if strip is None or strip.type != "MOVIE" or strip.kling.live_key not in ("", key):
        return None  # gone, or another strip now carries that name
    return strip


def _plays_one_to_one(strip) -> bool:
    """Whether the strip shows one file frame per timeline frame (not retimed)."""
    try:
        clip = ops_conform.read_source(strip.id_data, strip)
    except ops_conform.ConformError:
        return False
    return clip.frame_count == int(compat.timing(strip, "right_handle")
                                   - compat.timing(strip, "left_handle"))


def _result_file(strip, outcome: batch_results.JobOutcome) -> tuple[str, int]:
    """Which result to place and the timeline frame of its first frame.

    A conformed clip starts at the movie's frame ``session_first_frame``. Where the strip
    shows its movie 1:1 that frame is found on the timeline from the movie's start, so a
    strip trimmed since the export still gets its result over the same picture; there the
    ``.source.mp4`` (the plate's frame rate over the conformed span) lies over the plate
    frame for frame. Otherwise Kling's result goes where Generate puts it.
    """
    kling = strip.kling
    if kling.session_file_frames and _plays_one_to_one(strip):
        start = int(compat.timing(strip, "content_start") + kling.session_first_frame
                    - compat.timing(strip, "content_trim_start"))
        if outcome.matched and outcome.meta.get("source") == "conform":
            return outcome.matched, start
        return outcome.output, start
    return outcome.output, align_frame(strip)


def _place_one(outcome: batch_results.JobOutcome, summary: ImportSummary, folder: str) -> None:
    if outcome.status not in ("succeed", "failed"):
        summary.unfinished += 1
        return
    strip = _strip_for(outcome.meta)
    if strip is None:
        summary.missing_strip += 1
        return
    scene = strip.id_data
    external = outcome.external_task_id or f"ke-batch-{outcome.name}"
    record = next((r for r in strip.kling.tasks if r.external_task_id == external), None)
    if outcome.status == "failed":
        summary.failed += 1
        message = f"batch: {outcome.error}"
        if record is None or record.status not in ("failed", "succeed") \
                or (record.status == "failed" and record.message != message):
            live_sync.deliver_task(live_sync.ref(strip), external, {
                "status": "failed", "message": message,
                "task_id": outcome.task_id, "edit_mode": _edit_mode(outcome, strip),
                "prompt": strip.kling.edit.prompt, "created": int(time.time()),
                "finished": int(time.time()), "cost": outcome.cost})
        return
    if record is not None and compat.strip_by_name(scene, record.imported_strip) is not None:
        summary.already += 1
        return
    path, align = _result_file(strip, outcome)
    if not path:
        summary.missing_file += 1
        return
    shown = live_sync.deliver_task(live_sync.ref(strip), external, {
        "status": "succeed", "task_id": outcome.task_id, "edit_mode": _edit_mode(outcome, strip),
        "prompt": strip.kling.edit.prompt, "created": int(time.time()),
        "finished": int(time.time()), "align_frame": align, "video_id": outcome.video_id,
        "result_path": results.stored_path(path), "imported_strip": "",
        "message": f"from the batch in {folder}", "cost": outcome.cost})
    if shown is None:
        summary.missing_strip += 1
        return
    strip, record = shown
    ops_tasks.import_record(strip.id_data, strip, record)
    summary.imported += 1


def _edit_mode(outcome: batch_results.JobOutcome, strip) -> str:
    mode = outcome.meta.get("edit_mode")
    return mode if isinstance(mode, str) else strip.kling.edit.edit_mode


def place_outcomes(outcomes: list[batch_results.JobOutcome], folder: str) -> ImportSummary:
    """Place every outcome on its strip (main thread); what was done, counted."""
    summary = ImportSummary()
    for outcome in outcomes:
        try:
            _place_one(outcome, summary, folder)
        except (OSError, RuntimeError, ValueError) as exc:
            summary.missing_file += 1
            print(f"Kling: importing batch result {outcome.name} failed: {exc}")
    return summary


class KLING_OT_import_batch_results(bpy.types.Operator):
    """Place the results of a finished batch above their source strips, as Generate does;
    failed jobs show their error in the strip's Tasks (reads files only, sends nothing)"""

    bl_idname = "kling.import_batch_results"
    bl_label = "Import Batch Results"
    bl_options = {"REGISTER"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = bpy.path.abspath(self.directory)
        if not folder or not os.path.isdir(folder):
            self.report({"ERROR"}, f"{folder!r} is not a folder: choose the batch's --out "
                        "folder")
            return {"CANCELLED"}
        folder = str(Path(folder).resolve())

        def done(outcomes: list[batch_results.JobOutcome]) -> None:
            summary = place_outcomes(outcomes, folder)
            bpy.context.window_manager.kling.status = summary.text()

        try:
            run_long_job(context, f"import-batch:{folder}", "Import Batch Results",
                         lambda cancel: batch_results.read_results(folder), done)
        except ValueError:
            self.report({"ERROR"}, f"{folder} is being imported already")
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (KLING_OT_export_batch, KLING_OT_import_batch_results)


def menu_export(self, context) -> None:
    """File > Export entry."""
    self.layout.operator(KLING_OT_export_batch.bl_idname, text="Kling Batch Manifest (.jsonl)")


def menu_import(self, context) -> None:
    """File > Import entry."""
    self.layout.operator(KLING_OT_import_batch_results.bl_idname,
                         text="Kling Batch Results (folder)")


MENUS = (("TOPBAR_MT_file_export", menu_export), ("TOPBAR_MT_file_import", menu_import))
