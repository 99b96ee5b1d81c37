"""A strip Blender retimes ("Adjust Playback Rate", the UI's default) maps clicks by time.

A 30 fps clip in a 24 fps scene: Blender stretches 60 file frames over 48 timeline frames.
4.2 reports ``frame_duration`` as the file's 60 frames, 5.0 as the timeline's 48; the add-on
must read the strip the same way in both and click on the frame the editor sees.
"""

from __future__ import annotations

import pytest

from .conftest import bpy, drain


def _add_retimed(scene, path: str):
    """Add the movie the way the UI does, with Blender's playback-rate adjustment."""
    window = bpy.context.window_manager.windows[0]
    if hasattr(window.workspace, "sequencer_scene"):  # 5.0: the operator edits this scene
        window.workspace.sequencer_scene = scene
    area = window.screen.areas[0]
    old_type = area.type
    area.type = "SEQUENCE_EDITOR"
    region = next(r for r in area.regions if r.type == "WINDOW")
    operator = bpy.ops.sequencer.movie_strip_add
    known = {p.identifier for p in operator.get_rna_type().properties}
    options = {"filepath": path, "frame_start": 1, "channel": 2, "sound": False,
               "adjust_playback_rate": True, "use_framerate": False, "move_strips": False,
               "move_strips_after_add": False,
               "set_view_transform": False, "fit_method": "ORIGINAL"}
    with bpy.context.temp_override(window=window, area=area, region=region, scene=scene):
        assert operator(**{k: v for k, v in options.items() if k in known}) == {"FINISHED"}
    area.type = old_type
    from blender_addon import compat

    return next(s for s in compat.strips(scene.sequence_editor) if s.type == "MOVIE")


def test_clicks_on_a_retimed_strip_land_on_the_frame_shown(connected, clip):
    from blender_addon.bridge import geometry, source
    from blender_addon.bridge.props import load_selection

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.sequence_editor_create()
    strip = _add_retimed(scene, str(clip.path))
    scene.sequence_editor.active_strip = strip
    assert source.timeline_frames(strip) == 48  # 2 s at 24 fps: Blender retimed it
    assert source.clip_info(strip, str(clip.path)).frame_count == clip.frame_count == 60

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    state = load_selection(strip)
    assert state is not None, bpy.context.window_manager.kling.error
    from blender_addon import compat

    start = int(compat.timing(strip, "content_start"))
    for k in (0, 1, 10, 24, 47):
        expected = min(round(k * 30 / 24), clip.frame_count - 1)
        assert geometry.session_frame(scene, strip, state, start + k) == pytest.approx(
            expected, abs=1), k
    # Exactly on whole seconds, where both rates agree, there is no rounding to hide behind.
    assert geometry.session_frame(scene, strip, state, start + 24) == 30
