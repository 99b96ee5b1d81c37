"""Properties of the add-on's coordinate mapping that tie it to what the core sends.

``test_mapping.py`` checks that each mapping inverts its partner; these check the whole
click path (region pixel -> Kling (x, y) -> JSON -> back onto the preview), metamorphic
relations that follow from Blender's conventions (a flip mirrors the finished picture, a
full turn changes nothing, an offset moves the picture by itself), and the time mappings'
ranges and order. Run without Blender (see conftest.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import struct
import sys
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kling_elements import validate

_PATH = Path(__file__).resolve().parents[2] / "blender_addon" / "pure" / "mapping.py"
_SPEC = importlib.util.spec_from_file_location("kling_addon_mapping_properties", _PATH)
m = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = m
_SPEC.loader.exec_module(m)

PROPS = settings(max_examples=120, deadline=None)
unit = st.floats(0, 1)
FPS = st.sampled_from([12.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0])


def close(a, b, tol):
    return all(math.isclose(x, y, rel_tol=0, abs_tol=tol) for x, y in zip(a, b, strict=True))


@st.composite
def geometries(draw, flips: bool = True):
    w, h = draw(st.integers(64, 4096)), draw(st.integers(64, 4096))
    sign = st.sampled_from([1.0, -1.0])
    return m.StripGeometry(
        image_w=w, image_h=h,
        canvas_w=draw(st.integers(64, 4096)), canvas_h=draw(st.integers(64, 4096)),
        crop=(draw(st.integers(0, w // 4)), draw(st.integers(0, w // 4)),
              draw(st.integers(0, h // 4)), draw(st.integers(0, h // 4))),
        offset=(draw(st.floats(-2000, 2000)), draw(st.floats(-2000, 2000))),
        scale=(draw(st.floats(0.2, 4)) * draw(sign), draw(st.floats(0.2, 4)) * draw(sign)),
        rotation=draw(st.floats(-math.pi, math.pi)),
        origin=(draw(st.floats(0, 1)), draw(st.floats(0, 1))),
        flip_x=draw(st.booleans()) if flips else False,
        flip_y=draw(st.booleans()) if flips else False,
        pixel_aspect=draw(st.sampled_from([1.0, 0.5, 4 / 3, 2.0])),
    )


def _inside_crop(g, fx: float, fy: float) -> tuple[float, float]:
    x0, x1, y0, y1 = g.visible_rect
    return x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


# --- space ----------------------------------------------------------------------------


@PROPS
@given(geometries(), st.floats(0.02, 0.98), st.floats(0.02, 0.98), st.integers(200, 3000),
       st.integers(200, 2000), st.floats(0.2, 4))
def test_a_click_survives_validation_json_and_comes_back_to_the_same_pixel(g, fx, fy, rw, rh,
                                                                          zoom):
    """Region pixel -> (x, y) as the core sends it -> JSON -> the dot drawn at that pixel."""
    view = m.image_to_view(g, *_inside_crop(g, fx, fy))
    half_w, half_h = rw / 2 / zoom, rh / 2 / zoom
    cur = (view[0] - half_w * 0.3, view[0] + half_w * 1.7, view[1] - half_h, view[1] + half_h)
    pixel = m.view_to_region(cur, rw, rh, *view)
    point = m.view_to_normalized(g, *m.region_to_view(cur, rw, rh, *pixel))
    assert point is not None and all(0.0 <= v <= 1.0 for v in point)
    (sent,) = validate.points([point])
    wire = json.loads(json.dumps({"x": sent[0], "y": sent[1]}))
    assert [_bits(v) for v in (wire["x"], wire["y"])] == [_bits(v) for v in sent]
    assert all(math.copysign(1.0, v) == 1.0 for v in sent), "never -0.0 on the wire"
    back = m.view_to_region(cur, rw, rh, *m.normalized_to_view(g, wire["x"], wire["y"]))
    assert close(back, pixel, tol=1e-5 * max(rw, rh, g.image_w, g.image_h))


@PROPS
@given(geometries(), st.floats(-3000, 3000), st.floats(-3000, 3000))
def test_any_view_point_maps_to_none_or_a_point_the_core_accepts(g, vx, vy):
    point = m.view_to_normalized(g, vx, vy)
    if point is not None:
        assert all(0.0 <= v <= 1.0 for v in point)
        assert validate.points([point]) == [point]


@PROPS
@given(geometries(flips=False), unit, unit)
def test_flipping_x_mirrors_the_whole_picture_about_the_canvas_centre(g, fx, fy):
    view = m.image_to_view(g, *_inside_crop(g, fx, fy))
    flipped = replace(g, flip_x=True)
    assert close(m.view_to_normalized(flipped, -view[0], view[1]),
                 m.view_to_normalized(g, *view), tol=1e-6)
    both = replace(g, flip_x=True, flip_y=True)
    assert close(m.view_to_normalized(both, -view[0], -view[1]),
                 m.view_to_normalized(g, *view), tol=1e-6)


@PROPS
@given(geometries(), unit, unit, st.integers(-2, 2))
def test_whole_turns_change_nothing(g, fx, fy, turns):
    q = _inside_crop(g, fx, fy)
    turned = replace(g, rotation=g.rotation + 2 * math.pi * turns)
    size = max(g.image_w, g.image_h, abs(g.offset[0]), abs(g.offset[1]))
    assert close(m.image_to_view(turned, *q), m.image_to_view(g, *q), tol=1e-8 * size * 8)


@PROPS
@given(geometries(flips=False), unit, unit, st.floats(-500, 500), st.floats(-500, 500))
def test_an_offset_moves_the_picture_by_itself_times_the_pixel_aspect(g, fx, fy, dx, dy):
    q = _inside_crop(g, fx, fy)
    moved = replace(g, offset=(g.offset[0] + dx, g.offset[1] + dy))
    vx, vy = m.image_to_view(g, *q)
    size = max(g.image_w, g.image_h, abs(g.offset[0]) + abs(dx), abs(g.offset[1]) + abs(dy))
    assert close(m.image_to_view(moved, *q), (vx + dx * g.pixel_aspect, vy + dy),
                 tol=1e-9 * size * 8)


@PROPS
@given(st.sampled_from(m.FIT_METHODS), st.integers(16, 4096), st.integers(16, 4096),
       st.integers(16, 4096), st.integers(16, 4096))
def test_fit_methods_fit_fill_or_stretch_the_canvas(method, iw, ih, cw, ch):
    sx, sy = m.fit_scale(method, iw, ih, cw, ch)
    w, h = iw * sx, ih * sy
    eps = 1e-9 * max(cw, ch)
    if method == "FIT":
        assert w <= cw + eps and h <= ch + eps and (abs(w - cw) <= eps or abs(h - ch) <= eps)
    elif method == "FILL":
        assert w >= cw - eps and h >= ch - eps and (abs(w - cw) <= eps or abs(h - ch) <= eps)
    elif method == "STRETCH":
        assert abs(w - cw) <= eps and abs(h - ch) <= eps
    else:
        assert (sx, sy) == (1.0, 1.0)


@PROPS
@given(geometries())
def test_mask_texture_coordinates_stay_on_the_frame(g):
    for u, v in m.image_quad_uv(g):
        assert 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0


# --- time -----------------------------------------------------------------------------


@st.composite
def timings(draw):
    start = draw(st.integers(-100, 500))
    left = start + draw(st.integers(0, 50))
    content = draw(st.one_of(st.none(), st.integers(1, 400)))
    return m.StripTiming(
        frame_start=start, frame_final_start=left,
        frame_final_end=left + draw(st.integers(1, 300)),
        scene_fps=draw(FPS), source_fps=draw(FPS),
        auto_playback_rate=draw(st.booleans()),
        animation_offset_start=draw(st.integers(0, 100)),
        content_frames=content,
    )


@PROPS
@given(timings())
def test_the_shown_file_frame_never_goes_backwards_and_stays_in_the_content(t):
    shown = [m.scene_to_source_frame(t, f) for f in range(t.frame_final_start,
                                                         t.frame_final_end)]
    assert all(a <= b for a, b in itertools.pairwise(shown))
    assert shown[0] >= t.animation_offset_start
    if t.content_frames is not None:
        assert shown[-1] <= t.animation_offset_start + t.content_frames - 1
    assert m.scene_to_source_frame(t, t.frame_final_start - 1) is None
    assert m.scene_to_source_frame(t, t.frame_final_end) is None


@PROPS
@given(timings(), FPS, st.integers(1, 600), st.data())
def test_session_frames_are_in_range_and_map_back_inside_the_handles(t, fps, total, data):
    s = m.SessionTiming(fps=fps, total_frames=total, source_fps=t.source_fps,
                        source_start_frame=t.animation_offset_start)
    frame = data.draw(st.integers(t.frame_final_start - 5, t.frame_final_end + 5))
    index = m.scene_to_session_frame(t, s, frame)
    if index is None:
        return
    assert 0 <= index < total
    assert t.frame_final_start <= frame < t.frame_final_end
    back = m.session_to_scene_frame(t, s, index)
    assert back is None or t.frame_final_start <= back < t.frame_final_end
    assert validate.frame_index(index, total) == index  # what the core accepts to send
