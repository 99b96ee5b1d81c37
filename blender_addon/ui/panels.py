"""Panels in the Sequencer sidebar's "Kling" tab, one sub-panel per step."""

from __future__ import annotations

import time

import bpy

from kling_elements import validate

from .. import compat
from ..bridge import geometry, live_sync, source
from ..bridge.context import active_movie_strip
from ..bridge.prefs import HOST_CHOICES, get_prefs
from ..bridge.props import load_selection
from ..bridge.props_edit import ACTIVE_STATUSES, MODE_LABELS
from ..bridge.reference_images import image_facts
from ..ops import long_jobs
from ..ops.edit import edit_problems_for, preview_key
from ..pure import cost_text
from ..pure.edit_check import image_notes
from ..work.worker import LONG
from . import conform_panel

__all__ = ["classes"]


class _KlingPanel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Kling"


class KLING_PT_main(_KlingPanel, bpy.types.Panel):
    bl_label = "Kling Multi-Elements"

    def draw(self, context: bpy.types.Context) -> None:
        runtime = context.window_manager.kling
        layout = self.layout
        if runtime.busy or runtime.status:
            layout.label(text=runtime.status or "Working…", icon="SORTTIME")
        long_jobs.draw_jobs(layout)
        if runtime.error:
            layout.label(text=runtime.error, icon="ERROR")
        layout.operator("kling.test_connection", icon="URL")
        row = layout.row(align=True)
        row.label(text=runtime.account_left or "Account: balance not checked yet",
                  icon="FUND")
        row.operator("kling.refresh_account_costs", text="", icon="FILE_REFRESH")


class KLING_PT_source(_KlingPanel, bpy.types.Panel):
    bl_label = "Source"
    bl_parent_id = "KLING_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        strip = active_movie_strip(context)
        if strip is None:
            layout.label(text="Select a movie strip", icon="INFO")
            return
        layout.label(text=strip.name, icon="FILE_MOVIE")
        if strip.kling.video_id:
            layout.label(text="A Kling result: edits chain from its video id (no upload)",
                         icon="LINKED")
            return
        path = bpy.path.abspath(strip.filepath)
        trimmed = bool(compat.timing(strip, "left_handle_offset")
                       or compat.timing(strip, "right_handle_offset"))
        for check in source.source_checks(source.clip_info(strip, path), trimmed):
            row = layout.row()
            row.alert = not check.ok
            row.label(text=f"{check.label}: {check.detail}",
                      icon="CHECKMARK" if check.ok else "CANCEL")
        host = get_prefs(context).host_with
        if host == "url" or strip.kling.video_url:
            layout.prop(strip.kling, "video_url")
        else:
            layout.label(text=f"Published with: {HOST_LABELS[host]} (see Preferences)",
                         icon="EXPORT")


class KLING_PT_conform(_KlingPanel, bpy.types.Panel):
    bl_label = "Conform"
    bl_parent_id = "KLING_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        return strip is not None and not strip.kling.video_id

    def draw(self, context: bpy.types.Context) -> None:
        conform_panel.draw_conform(self.layout, context, active_movie_strip(context))


class KLING_PT_session(_KlingPanel, bpy.types.Panel):
    bl_label = "Session"
    bl_parent_id = "KLING_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        strip = active_movie_strip(context)
        state = load_selection(strip) if strip else None
        if state is None:
            original = live_sync.copied_from(strip) if strip else ""
            if original:
                layout.label(text=f"A copy of {original}: its session and tasks stay there",
                             icon="DUPLICATE")
                layout.label(text="Start Editing gives this copy a session of its own")
            layout.operator("kling.start_session", icon="PLAY")
            return
        hours = max(state.seconds_left(time.time()), 0) / 3600
        layout.label(text=f"Session {state.session_id[:12]}…")
        layout.label(text=f"{hours:.1f} h left (restored automatically when expired)")
        layout.label(text=f"{state.total_frames} frames at {state.fps:g} fps")
        layout.label(text=cost_text.session_cost_text(state), icon="FUND")
        layout.operator("kling.reset_session", icon="X")


class KLING_PT_select(_KlingPanel, bpy.types.Panel):
    bl_label = "Select Elements"
    bl_parent_id = "KLING_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = compat.sequencer_scene(context)
        strip = active_movie_strip(context)
        state = load_selection(strip) if strip else None
        layout.operator("kling.select_points", icon="RESTRICT_SELECT_OFF")
        if state is None:
            return
        frames = state.frames()
        layout.label(text=f"{len(frames)}/10 frames marked")
        current = geometry.session_frame(scene, strip, state, scene.frame_current)
        for frame in frames:
            row = layout.row(align=True)
            count = len(state.points[frame])
            marker = "▶ " if frame == current else ""
            row.label(text=f"{marker}Frame {frame}: {count}/10 points")
            row.operator("kling.jump_to_frame", text="", icon="TIME").frame_index = frame
            row.operator("kling.delete_frame", text="", icon="TRASH").frame_index = frame
        if frames:
            layout.operator("kling.clear_selection", icon="TRASH")
        settings = scene.kling
        col = layout.column(align=True)
        col.prop(settings, "show_overlay")
        col.prop(settings, "overlay_color")
        col.prop(settings, "overlay_opacity")
        col.prop(settings, "show_points")


HOST_LABELS = {key: label for key, label, _ in HOST_CHOICES}


def _elapsed(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class KLING_PT_edit(_KlingPanel, bpy.types.Panel):
    bl_label = "Edit"
    bl_parent_id = "KLING_PT_main"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_movie_strip(context) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        strip = active_movie_strip(context)
        edit = strip.kling.edit
        layout.prop(edit, "edit_mode", expand=True)
        slots = {"addition": 2, "swap": 1}.get(edit.edit_mode, 0)
        for number in range(1, slots + 1):
            self._draw_slot(layout, edit, number)
        col = layout.column(align=True)
        col.prop(edit, "prompt", text="")
        row = col.row(align=True)
        row.prop(edit, "language", text="")
        row.operator("kling.prompt_template", icon="TEXT")
        row = col.row(align=True)
        row.operator("kling.prompt_insert", text="video 1").token = "<<<video_1>>>"
        for number in range(1, slots + 1):
            row.operator("kling.prompt_insert", text=f"image {number}").token = \
                f"<<<image_{number}>>>"
        layout.prop(edit, "negative_prompt")
        layout.prop(edit, "quality", expand=True)
        layout.prop(edit, "watermark")
        layout.prop(edit, "mute_source")
        state = load_selection(strip)
        if state is not None and state.duration_s:
            layout.label(text=f"Output {validate.duration_for(state.duration_s)} s "
                              f"(input {state.duration_s:.1f} s)", icon="TIME")
        for problem in edit_problems_for(strip):
            row = layout.row()
            row.alert = True
            row.label(text=problem, icon="ERROR")
        layout.operator("kling.generate", icon="RENDER_ANIMATION")

    @staticmethod
    def _draw_slot(layout, edit, number: int) -> None:
        box = layout.box()
        row = box.row(align=True)
        row.prop(edit, f"image_{number}", text=f"Image {number}")
        row.operator("kling.open_reference", text="", icon="FILEBROWSER").slot = number
        image = getattr(edit, f"image_{number}")
        if image is None:
            return
        preview = image.preview_ensure() if hasattr(image, "preview_ensure") else None
        if preview is not None:
            box.template_icon(icon_value=preview.icon_id, scale=4.0)
        error, note = image_notes(image_facts(image, f"image {number}"))
        if error or note:
            row = box.row()
            row.alert = bool(error)
            row.label(text=error or note, icon="ERROR" if error else "INFO")


class KLING_PT_preview(_KlingPanel, bpy.types.Panel):
    bl_label = "Preview Tracking"
    bl_parent_id = "KLING_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        strip = active_movie_strip(context)
        job = LONG.get(preview_key(compat.sequencer_scene(context).name, strip.name)) \
            if strip else None
        if job is not None:
            row = layout.row(align=True)
            row.label(text=job.text(), icon="SORTTIME")
            sub = row.row(align=True)
            sub.enabled = not job.cancel.is_set()
            sub.operator("kling.cancel_job", text="", icon="CANCEL").key = job.key
        layout.operator("kling.preview_tracking", icon="TRACKER")
        preview = compat.strip_by_name(compat.sequencer_scene(context),
                                       strip.kling.preview_strip) if strip else None
        if preview is not None:
            row = layout.row(align=True)
            row.operator("kling.preview_toggle", text="Hide" if not preview.mute else "Show",
                         icon="HIDE_OFF" if not preview.mute else "HIDE_ON")
            row.operator("kling.preview_remove", text="Remove", icon="TRASH")


_STATUS_ICONS = {"sending": "EXPORT", "submitted": "SORTTIME", "processing": "SORTTIME",
                 "succeed": "CHECKMARK", "failed": "ERROR", "not_sent": "CANCEL",
                 "cancelled": "CANCEL"}


class KLING_PT_tasks(_KlingPanel, bpy.types.Panel):
    bl_label = "Tasks"
    bl_parent_id = "KLING_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        runtime = context.window_manager.kling
        if runtime.tasks_status:
            layout.label(text=runtime.tasks_status, icon="INFO")
        strip = active_movie_strip(context)
        if strip is None or not len(strip.kling.tasks):
            layout.label(text="No tasks for this strip yet")
            return
        now = time.time()
        for index in reversed(range(len(strip.kling.tasks))):
            record = strip.kling.tasks[index]
            box = layout.box()
            row = box.row(align=True)
            end = record.finished or now
            label = f"{MODE_LABELS.get(record.edit_mode, '?')}: {record.status} " \
                    f"({_elapsed(end - record.created)})"
            row.label(text=label, icon=_STATUS_ICONS.get(record.status, "QUESTION"))
            row.operator("kling.remove_task", text="", icon="X").index = index
            box.label(text=record.prompt[:80] or "(no prompt)")
            if record.cost:
                box.label(text=f"Cost: {record.cost}", icon="FUND")
            if record.message:
                line = box.row()
                line.alert = record.status in ("failed", "not_sent")
                line.label(text=record.message[:120])
            if record.status == "succeed" and record.result_path:
                row = box.row(align=True)
                row.operator("kling.reimport_task", icon="IMPORT").index = index
                row.operator("kling.open_task_folder", icon="FILEBROWSER").index = index
            elif record.status in ACTIVE_STATUSES or record.status == "succeed":
                box.label(text="Working in the background…", icon="SORTTIME")


class KLING_PT_batch(_KlingPanel, bpy.types.Panel):
    bl_label = "Batch (Farm)"
    bl_parent_id = "KLING_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator("kling.export_batch", icon="EXPORT")
        layout.operator("kling.import_batch_results", icon="IMPORT")


class KLING_PT_account(_KlingPanel, bpy.types.Panel):
    bl_label = "Account Tasks"
    bl_parent_id = "KLING_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.operator("kling.refresh_account_tasks", icon="FILE_REFRESH")
        for item in list(context.window_manager.kling.account_tasks)[:15]:
            stamp = time.strftime("%m-%d %H:%M", time.localtime(item.created))
            row = layout.row()
            row.alert = item.status == "failed"
            row.label(text=f"{stamp}  {item.status}  {item.task_id[-10:]}",
                      icon=_STATUS_ICONS.get(item.status, "QUESTION"))


classes = (KLING_PT_main, KLING_PT_source, KLING_PT_conform, KLING_PT_session, KLING_PT_select,
           KLING_PT_edit,
           KLING_PT_preview, KLING_PT_tasks, KLING_PT_batch, KLING_PT_account)
