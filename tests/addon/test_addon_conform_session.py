"""A clip that breaks Kling's rules, conformed, then edited: the whole path inside Blender.

A 25 fps, 6 s, 640x360 plate in a 24 fps scene: Conform renders a compliant 24 fps, 5 s,
1280x720 clip in a background Blender; the session uses it; a click at a scene frame lands
on the session frame showing the same moment; the result is imported over the plate.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import bpy, drain
from .test_addon_edit import settle

pytest.importorskip("av")


@pytest.fixture(scope="module")
def clip25(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("conform-session") / "plate25.mp4", width=640,
                     height=360, fps=25, seconds=6.0, seed=8)


def test_conformed_clip_is_the_sessions_video_and_clicks_map_through_it(
        connected, clip25, sandbox):
    from blender_addon import compat
    from blender_addon.bridge import geometry
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from kling_elements import rle

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps, scene.render.fps_base = 24, 1.0
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", str(clip25.path), 2, 1)
    editor.active_strip = strip
    bpy.context.window_manager.kling.error = ""

    # The raw plate is refused (25 fps, 640 px, 6 s): nothing is uploaded.
    with pytest.raises(RuntimeError, match="Conform renders a compliant copy"):
        bpy.ops.kling.start_session()
    assert strip.kling.published_url == ""
    assert bpy.ops.kling.conform_source(duration="AUTO") == {"FINISHED"}
    drain(timeout=300)
    assert strip.kling.conformed_path, bpy.context.window_manager.kling.error

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    state = load_selection(strip)
    assert state is not None, bpy.context.window_manager.kling.error
    assert (state.fps, state.total_frames) == (24, 120)
    assert strip.kling.session_file_frames == 150

    # Scene frame 51 shows file frame 50 (t = 2.0 s): the session's frame 48 (also 2.0 s).
    file_frame = 50
    scene_frame = int(compat.timing(strip, "content_start")) + file_frame
    session_frame = geometry.session_frame(scene, strip, state, scene_frame)
    assert session_frame == 48
    assert geometry.scene_frame(scene, strip, state, 48) == scene_frame
    point = clip25.center(file_frame)
    ops_select.request_add(bpy.context, strip, session_frame, [point])
    drain()
    state = load_selection(strip)
    mask = rle.decode(state.masks[48][0]["counts"], tuple(state.masks[48][0]["size"]))
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    assert (width, height) == (1280, 720)
    centre = (xs.mean() / (width - 1), ys.mean() / (height - 1))
    assert abs(centre[0] - point[0]) < 0.02 and abs(centre[1] - point[1]) < 0.02

    edit = strip.kling.edit
    edit.edit_mode = "removal"
    edit.prompt = "Delete the ball from <<<video_1>>>"
    assert bpy.ops.kling.generate() == {"FINISHED"}
    settle()
    record = strip.kling.tasks[-1]
    assert record.status == "succeed", record.message
    result = compat.strip_by_name(scene, record.imported_strip)
    assert result.channel == strip.channel + 1
    assert compat.timing(result, "left_handle") == compat.timing(strip, "left_handle")
    assert compat.timing(result, "right_handle") <= compat.timing(strip, "right_handle")
    assert sandbox.state.created[record.external_task_id] == 1
