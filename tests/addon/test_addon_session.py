"""The selection workflow inside Blender, against an in-process sandbox."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from .conftest import bpy, drain


def _bits(point):
    return tuple(struct.pack("<d", v) for v in point)


def _iou(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


def _start(strip):
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    from blender_addon.bridge.props import load_selection

    state = load_selection(strip)
    assert state is not None, bpy.context.window_manager.kling.error
    return state


def _union(masks):
    from kling_elements import rle

    out = None
    for m in masks:
        d = rle.decode(m["counts"], tuple(m["size"]))
        out = d if out is None else np.maximum(out, d)
    return out


def test_start_session_stores_it_on_the_strip(movie_strip, clip):
    state = _start(movie_strip)
    assert state.total_frames == clip.frame_count
    assert movie_strip.kling.published_url.startswith("http://127.0.0.1")
    assert bpy.context.window_manager.kling.error == ""


def test_points_masks_and_exact_floats(movie_strip, clip, sandbox):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    state = _start(movie_strip)
    a = clip.center(0)
    b = (a[0] + 0.01, a[1] + 0.005)
    ops_select.request_add(bpy.context, movie_strip, 0, [a])
    ops_select.request_add(bpy.context, movie_strip, 0, [b])
    drain()
    state = load_selection(movie_strip)
    assert [_bits(p) for p in state.points[0]] == [_bits(a), _bits(b)]
    server_points = sandbox.state.session(state.session_id).points[0]
    assert [_bits(tuple(p)) for p in server_points] == [_bits(a), _bits(b)]
    assert _iou(_union(state.masks[0]), clip.mask(0)) >= 0.9

    ops_select.request_delete(bpy.context, movie_strip, 0, [b])
    drain()
    state = load_selection(movie_strip)
    assert [_bits(p) for p in state.points[0]] == [_bits(a)]

    last = clip.frame_count - 1
    ops_select.request_add(bpy.context, movie_strip, last, [clip.center(last)])
    drain()
    state = load_selection(movie_strip)
    assert state.frames() == [0, last]
    assert _iou(_union(state.masks[last]), clip.mask(last)) >= 0.9

    bpy.ops.kling.clear_selection()
    drain()
    assert load_selection(movie_strip).frames() == []


def test_limits_are_enforced_before_any_request(movie_strip, clip):
    from blender_addon.ops import select as ops_select
    from blender_addon.work.worker import WORKER
    from kling_elements import ValidationError

    _start(movie_strip)
    with pytest.raises(ValidationError):
        ops_select.request_add(bpy.context, movie_strip, 0, [(1.5, 0.5)])
    with pytest.raises(ValidationError):
        ops_select.request_add(bpy.context, movie_strip, 0, [(0.5, 0.5)] * 11)
    with pytest.raises(ValidationError):
        ops_select.request_delete(bpy.context, movie_strip, 0, [(0.25, 0.25)])
    assert not WORKER.busy


def test_selection_survives_save_and_reload(movie_strip, clip, tmp_path):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    _start(movie_strip)
    point = clip.center(0)
    ops_select.request_add(bpy.context, movie_strip, 0, [point])
    drain()
    before = movie_strip.kling.selection_json
    path = tmp_path / "project.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    from blender_addon import compat

    strip = compat.strip_by_name(bpy.context.scene, "plate")
    assert strip.kling.selection_json == before
    state = load_selection(strip)
    assert _bits(state.points[0][0]) == _bits(point)
    assert json.loads(before)["masks"]["0"]


@pytest.fixture
def own_sandbox(tmp_path, connected):
    """A sandbox of this test's own: its clock jumps 24 h, which would expire others' JWTs."""
    from kling_elements.sandbox import running

    with running(task_seconds=0.5, data_dir=tmp_path / "sandbox") as sb:
        connected.custom_url = sb.base_url
        connected.auth_mode, connected.api_key = "api_key", sb.api_key  # a JWT would expire too
        yield sb
        connected.auth_mode = "keys"


def test_expired_session_is_restored_with_the_same_points(movie_strip, clip, own_sandbox):
    import httpx

    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    sandbox = own_sandbox
    state = _start(movie_strip)
    first = clip.center(0)
    ops_select.request_add(bpy.context, movie_strip, 0, [first])
    drain()
    with httpx.Client(base_url=sandbox.base_url,
                      headers={"Authorization": f"Bearer {sandbox.api_key}"}) as http:
        assert http.post("/sandbox/clock", json={"advance_s": 24 * 3600 + 60}).status_code == 200
    last = clip.frame_count - 1
    ops_select.request_add(bpy.context, movie_strip, last, [clip.center(last)])
    drain()
    restored = load_selection(movie_strip)
    assert restored.session_id != state.session_id
    assert _bits(restored.points[0][0]) == _bits(first)
    assert restored.frames() == [0, last]


def test_click_mapping_lands_on_the_object(movie_strip, clip):
    from blender_addon.bridge import geometry

    scene = bpy.context.scene
    movie_strip.transform.offset_x = 120
    movie_strip.transform.scale_x = movie_strip.transform.scale_y = 0.75
    x, y = clip.center(0)
    vx, vy = geometry.normalized_to_view(scene, movie_strip, x, y)
    back = geometry.click_to_normalized(scene, movie_strip, vx, vy)
    assert back == pytest.approx((x, y), abs=1e-6)
    assert geometry.click_to_normalized(scene, movie_strip, 5000.0, 5000.0) is None


def test_network_respects_online_access(connected, movie_strip):
    connected.region = "global"
    try:
        assert not bpy.ops.kling.test_connection.poll()
        bpy.context.preferences.system.use_online_access = True
        assert bpy.ops.kling.test_connection.poll()
    finally:
        connected.region = "custom"


def test_frames_map_both_ways_with_a_moved_and_trimmed_strip(movie_strip, clip):
    from blender_addon import compat
    from blender_addon.bridge import geometry

    state = _start(movie_strip)
    scene = bpy.context.scene
    compat.set_timing(movie_strip, "content_start", 11)
    compat.set_timing(movie_strip, "left_handle_offset", 5)
    assert geometry.session_frame(scene, movie_strip, state, 11) is None  # trimmed off
    assert geometry.session_frame(scene, movie_strip, state, 16) == 5
    assert geometry.scene_frame(scene, movie_strip, state, 20) == 31
    assert geometry.session_frame(scene, movie_strip, state, 31) == 20
    bpy.ops.kling.jump_to_frame(frame_index=20)
    assert scene.frame_current == 31
