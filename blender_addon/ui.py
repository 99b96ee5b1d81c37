"""Panels in the Sequencer sidebar's "Kling" tab, one sub-panel per step."""

from __future__ import annotations

import time

import bpy

from . import compat, geometry, source
from .ops_session import active_movie_strip
from .props import load_selection

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
        if runtime.error:
            layout.label(text=runtime.error, icon="ERROR")
        layout.operator("kling.test_connection", icon="URL")


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
        path = bpy.path.abspath(strip.filepath)
        trimmed = bool(strip.frame_offset_start or strip.frame_offset_end)
        for check in source.source_checks(source.clip_info(strip, path), trimmed):
            row = layout.row()
            row.alert = not check.ok
            row.label(text=f"{check.label}: {check.detail}",
                      icon="CHECKMARK" if check.ok else "CANCEL")
        layout.prop(strip.kling, "video_url")


class KLING_PT_session(_KlingPanel, bpy.types.Panel):
    bl_label = "Session"
    bl_parent_id = "KLING_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        strip = active_movie_strip(context)
        state = load_selection(strip) if strip else None
        if state is None:
            layout.operator("kling.start_session", icon="PLAY")
            return
        hours = max(state.seconds_left(time.time()), 0) / 3600
        layout.label(text=f"Session {state.session_id[:12]}…")
        layout.label(text=f"{hours:.1f} h left (restored automatically when expired)")
        layout.label(text=f"{state.total_frames} frames at {state.fps:g} fps")
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


classes = (KLING_PT_main, KLING_PT_source, KLING_PT_session, KLING_PT_select)
