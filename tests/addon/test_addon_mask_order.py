"""Masks whose ``size`` is ``[w, h]`` (the docs' own example) from an init answer without
``width``/``height`` (documented as unused): the add-on reads them with the frame of the
clip it sent, so the mask covers the clicked object in either orientation."""

from __future__ import annotations

import pytest

from ..support.sandbox import decode_rle, iou
from .conftest import bpy, connect_to, drain


@pytest.fixture(scope="module")
def wh_sandbox(tmp_path_factory):
    from kling_elements.sandbox import running

    with running(mask_size_order="wh", init_frame_size=False, task_seconds=0.5,
                 data_dir=tmp_path_factory.mktemp("wh-sandbox")) as sb:
        yield sb


@pytest.mark.parametrize(("width", "height"), [(720, 1280), (1280, 720)],
                         ids=["portrait", "landscape"])
def test_a_wh_mask_is_read_with_the_sent_clips_frame(addon, wh_sandbox, monkeypatch,
                                                    tmp_path, width, height):
    from blender_addon import compat
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from kling_elements.sandbox.sample import make_clip

    connect_to(wh_sandbox, monkeypatch)
    clip = make_clip(tmp_path / "plate.mp4", width=width, height=height, fps=30, seconds=2.0,
                     seed=5)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.fps = 30
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", str(clip.path), 2, 1)
    editor.active_strip = strip

    drain()
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    state = load_selection(strip)
    assert state is not None, bpy.context.window_manager.kling.error
    ops_select.request_add(bpy.context, strip, 0, [clip.center(0)])
    drain()
    (mask,) = load_selection(strip).masks[0]
    assert list(mask["size"]) == [height, width]
    assert iou(decode_rle(mask), clip.mask(0)) >= 0.9
