"""mapping: preview view <-> source pixel <-> Kling (x, y), and scene <-> source <-> session frames.

The hand-computed cases pin Blender's conventions (a sign, flip or origin error breaks one of
them); the properties check that every mapping is the exact inverse of its partner.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

# Loaded by path: the package's __init__ imports bpy, this module must not need it.
_PATH = Path(__file__).resolve().parents[2] / "blender_addon" / "pure" / "mapping.py"
_SPEC = importlib.util.spec_from_file_location("kling_addon_mapping", _PATH)
m = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = m
_SPEC.loader.exec_module(m)

FAST = settings(max_examples=150, deadline=None)


def close(a, b, tol=1e-6):
    return all(math.isclose(x, y, rel_tol=0, abs_tol=tol) for x, y in zip(a, b, strict=True))


def geom(**kw):
    base = {"image_w": 1920, "image_h": 1080, "canvas_w": 1920, "canvas_h": 1080}
    return m.StripGeometry(**{**base, **kw})


# --- space: hand-computed cases ---------------------------------------------------------


def test_mapping_imports_only_the_standard_library():
    tree = ast.parse(_PATH.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "math", "dataclasses"}


def test_identity_view_origin_is_the_image_centre_and_y_points_up():
    g = geom()
    assert close(m.view_to_image(g, 0, 0), (960, 540))
    assert close(m.view_to_image(g, -960, 540), (0, 0))  # top-left of the frame
    assert close(m.view_to_image(g, 960, -540), (1920, 1080))
    assert close(m.view_to_normalized(g, -480, 270), (0.25, 0.25))
    assert close(m.normalized_to_view(g, 0.25, 0.25), (-480, 270))


def test_offset_moves_the_image_in_view_pixels():
    g = geom(offset=(100, -50))
    assert close(m.image_to_view(g, 960, 540), (100, -50))
    assert close(m.view_to_image(g, 100, -50), (960, 540))
    assert m.view_to_image(g, -900, 0) is None  # left of the shifted image


def test_scale_two_about_the_centre():
    g = geom(scale=(2, 2))
    assert close(m.image_to_view(g, 0, 0), (-1920, 1080))
    assert close(m.view_to_image(g, 960, 540), (1440, 270))


def test_rotation_is_counter_clockwise_about_the_centre():
    g = geom(image_w=200, image_h=100, canvas_w=200, canvas_h=100, rotation=math.pi / 2)
    # The image's right-middle (200, 50) is at (+100, 0) unrotated; 90° CCW puts it on top.
    assert close(m.image_to_view(g, 200, 50), (0, 100))
    assert close(m.view_to_image(g, 0, 99), (199, 50))
    assert m.view_to_image(g, 90, 0) is None  # the rotated image is 100 wide


def test_flip_x_mirrors_about_the_canvas_centre_including_the_offset():
    g = geom(flip_x=True)
    assert close(m.view_to_image(g, -960, 540), (1920, 0))
    shifted = geom(flip_x=True, offset=(100, 0))
    assert close(m.image_to_view(shifted, 960, 540), (-100, 0))  # Blender mirrors the offset


def test_flip_y():
    g = geom(flip_y=True)
    assert close(m.view_to_image(g, -960, 540), (0, 1080))


def test_crop_hides_pixels_but_keeps_source_coordinates():
    g = geom(crop=(100, 0, 0, 0))  # min_x = 100: 100 px cut from the left
    assert m.view_to_image(g, -900, 0) is None  # source x = 60, cropped away
    assert close(m.view_to_image(g, -860, 0), (100, 540))  # crop edge, image not shifted
    assert close(m.view_to_normalized(g, 0, 0), (0.5, 0.5))
    quad = m.image_quad_in_view(g)
    assert close(quad[0], (-860, -540)) and close(quad[2], (960, 540))
    assert close(m.image_quad_uv(g)[0], (100 / 1920, 1.0))


def test_crop_top_and_bottom_use_blender_sides():
    g = geom(crop=(0, 0, 10, 20))  # min_y = bottom, max_y = top
    assert m.view_to_image(g, 0, 535) is None  # 5 px below the top edge: in the top crop
    assert m.view_to_image(g, 0, -535) is None
    assert m.view_to_image(g, 0, 515) is not None


def test_origin_bottom_left_with_rotation_pivots_on_that_corner():
    g = geom(image_w=200, image_h=100, canvas_w=200, canvas_h=100, origin=(0, 0),
             rotation=math.pi / 2)
    # The pivot, the bottom-left corner (0, 100) at view (-100, -50), stays put.
    assert close(m.image_to_view(g, 0, 100), (-100, -50))
    # The bottom-right corner swings 90° CCW to straight above the pivot.
    assert close(m.image_to_view(g, 200, 100), (-100, 150))
    assert close(m.view_to_image(g, -110, 0), (50, 90))


def test_origin_is_relative_to_the_uncropped_image():
    g = geom(image_w=200, image_h=100, canvas_w=200, canvas_h=100, origin=(0, 0),
             crop=(50, 0, 0, 0), rotation=math.pi)
    # Rotating 180° about the uncropped bottom-left corner (-100, -50): the top-right
    # corner (100, 50) lands at (-300, -150); about the cropped image's corner it would not.
    assert close(m.image_to_view(g, 200, 0), (-300, -150))


def test_movie_smaller_than_canvas_keeps_its_pixel_size_with_original_fit():
    g = geom(image_w=640, image_h=360)
    assert close(m.view_to_image(g, 0, 0), (320, 180))
    assert close(m.view_to_image(g, -320, 180), (0, 0))
    assert m.view_to_image(g, -400, 0) is None


def test_fit_methods_set_the_scale_blender_writes_at_add_time():
    assert m.fit_scale("FIT", 1280, 720, 1920, 1080) == (1.5, 1.5)
    assert m.fit_scale("FILL", 1000, 1000, 1920, 1080) == (1.92, 1.92)
    assert m.fit_scale("STRETCH", 960, 540, 1920, 1620) == (2.0, 3.0)
    assert m.fit_scale("ORIGINAL", 640, 360, 1920, 1080) == (1.0, 1.0)
    g = geom(image_w=1280, image_h=720, scale=m.fit_scale("FIT", 1280, 720, 1920, 1080))
    assert close(m.view_to_image(g, -960, 540), (0, 0))
    with pytest.raises(ValueError, match="fit method"):
        m.fit_scale("fit", 1, 1, 1, 1)


def test_pixel_aspect_stretches_view_x():
    g = geom(pixel_aspect=2.0)
    assert close(m.image_to_view(g, 0, 0), (-1920, 540))


def test_points_outside_the_image_are_none():
    g = geom()
    assert m.view_to_image(g, 961, 0) is None
    assert m.view_to_image(g, 0, -541) is None
    assert m.view_to_normalized(g, 5000, 5000) is None


def test_quad_corners_in_order_bottom_left_first():
    quad = m.image_quad_in_view(geom(image_w=100, image_h=50))
    assert close(quad[0], (-50, -25)) and close(quad[1], (50, -25))
    assert close(quad[2], (50, 25)) and close(quad[3], (-50, 25))
    assert m.image_quad_uv(geom()) == [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image_w": 0}, "has not read"),
        ({"canvas_h": 0}, "resolution"),
        ({"scale": (0, 1)}, "zero"),
        ({"crop": (1000, 920, 0, 0)}, "leaves nothing"),
        ({"crop": (-1, 0, 0, 0)}, ">= 0"),
        ({"rotation": math.nan}, "finite"),
        ({"pixel_aspect": 0}, "aspect"),
    ],
)
def test_degenerate_geometry_is_refused_with_a_reason(kw, message):
    with pytest.raises(ValueError, match=message):
        geom(**kw)


def test_normalized_rejects_points_off_the_frame():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.normalized_to_image(geom(), 1.5, 0.2)
    with pytest.raises(ValueError, match="outside"):
        m.image_to_normalized(geom(), -3, 10)


def test_region_to_view_matches_view2d_without_half_pixel():
    cur = (-960.0, 960.0, -540.0, 540.0)
    assert m.region_to_view(cur, 1921, 1081, 0, 0) == (-960.0, -540.0)
    assert m.region_to_view(cur, 1921, 1081, 1920, 1080) == (960.0, 540.0)
    assert m.region_to_view(cur, 1921, 1081, 960, 540) == (0.0, 0.0)
    assert m.view_to_region(cur, 1921, 1081, 0, 0) == (960.0, 540.0)
    with pytest.raises(ValueError, match="empty"):
        m.region_to_view((1, 1, 0, 1), 10, 10, 0, 0)
    with pytest.raises(ValueError, match="too small"):
        m.region_to_view(cur, 1, 10, 0, 0)


# --- space: properties --------------------------------------------------------------------


@st.composite
def geometries(draw):
    w = draw(st.integers(16, 4096))
    h = draw(st.integers(16, 4096))
    left = draw(st.integers(0, w // 3))
    right = draw(st.integers(0, w // 3))
    bottom = draw(st.integers(0, h // 3))
    top = draw(st.integers(0, h // 3))
    sign = st.sampled_from([1.0, -1.0])
    return m.StripGeometry(
        image_w=w,
        image_h=h,
        canvas_w=draw(st.integers(16, 4096)),
        canvas_h=draw(st.integers(16, 4096)),
        crop=(left, right, bottom, top),
        offset=(draw(st.floats(-3000, 3000)), draw(st.floats(-3000, 3000))),
        scale=(draw(st.floats(0.1, 4)) * draw(sign), draw(st.floats(0.1, 4)) * draw(sign)),
        rotation=draw(st.floats(-2 * math.pi, 2 * math.pi)),
        origin=(draw(st.floats(-0.5, 1.5)), draw(st.floats(-0.5, 1.5))),
        flip_x=draw(st.booleans()),
        flip_y=draw(st.booleans()),
        pixel_aspect=draw(st.sampled_from([1.0, 1.0, 0.5, 4 / 3])),
    )


unit = st.floats(0, 1)


@FAST
@given(geometries(), unit, unit)
def test_image_view_image_round_trip_inside_the_crop(g, fx, fy):
    x0, x1, y0, y1 = g.visible_rect
    q = (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))
    back = m.view_to_image(g, *m.image_to_view(g, *q))
    assert back is not None
    assert close(back, q, tol=1e-6 * max(g.image_w, g.image_h))


@FAST
@given(geometries(), st.floats(-0.5, 1.5), st.floats(-0.5, 1.5))
def test_view_image_view_round_trip_and_none_exactly_off_the_crop(g, fx, fy):
    q = (fx * g.image_w, fy * g.image_h)
    view = m.image_to_view(g, *q)
    back = m.view_to_image(g, *view)
    x0, x1, y0, y1 = g.visible_rect
    margin = 1e-6 * max(g.image_w, g.image_h)
    inside = x0 + margin < q[0] < x1 - margin and y0 + margin < q[1] < y1 - margin
    outside = not (x0 - margin <= q[0] <= x1 + margin and y0 - margin <= q[1] <= y1 + margin)
    if outside:
        assert back is None
    elif inside:
        assert back is not None
        assert x0 <= back[0] <= x1 and y0 <= back[1] <= y1
        assert close(m.image_to_view(g, *back), view, tol=1e-6 * max(g.image_w, g.image_h))


@FAST
@given(geometries(), unit, unit)
def test_normalized_round_trips(g, x, y):
    assert close(m.image_to_normalized(g, *m.normalized_to_image(g, x, y)), (x, y), 1e-12)
    x0, x1, y0, y1 = g.visible_rect
    nx, ny = x0 / g.image_w + x * (x1 - x0) / g.image_w, y0 / g.image_h + y * (y1 - y0) / g.image_h
    back = m.view_to_normalized(g, *m.normalized_to_view(g, nx, ny))
    assert back is not None and close(back, (nx, ny), 1e-6)
    assert 0 <= back[0] <= 1 and 0 <= back[1] <= 1


@FAST
@given(geometries())
def test_quad_corners_map_back_to_the_crop_corners(g):
    for corner, uv in zip(m.image_quad_in_view(g), m.image_quad_uv(g), strict=True):
        assert close(m.view_to_normalized(g, *corner), uv, 1e-6)


@FAST
@given(
    st.floats(-5000, 5000), st.floats(1, 8000), st.floats(-5000, 5000), st.floats(1, 8000),
    st.integers(2, 4000), st.integers(2, 4000), unit, unit,
)
def test_region_view_round_trip(xmin, dx, ymin, dy, w, h, fx, fy):
    cur = (xmin, xmin + dx, ymin, ymin + dy)
    rx, ry = fx * (w - 1), fy * (h - 1)
    assert close(m.view_to_region(cur, w, h, *m.region_to_view(cur, w, h, rx, ry)), (rx, ry), 1e-6)


# --- time: hand-computed cases ---------------------------------------------------------


def timing(**kw):
    base = {"frame_start": 10, "frame_final_start": 15, "frame_final_end": 60,
            "scene_fps": 24.0, "source_fps": 24.0}
    return m.StripTiming(**{**base, **kw})


def test_scene_frame_maps_to_file_frame_from_frame_start():
    t = timing()  # frame_start 10, frame_offset_start 5: first visible frame 15
    assert m.scene_to_source_frame(t, 15) == 5
    assert m.scene_to_source_frame(t, 59) == 49
    assert m.scene_to_source_frame(t, 14) is None  # trimmed away by the left handle
    assert m.scene_to_source_frame(t, 60) is None  # frame_final_end is exclusive
    assert m.source_to_scene_frame(t, 5) == 15
    assert m.source_to_scene_frame(t, 4) is None


def test_animation_offset_start_shifts_into_the_file():
    t = timing(animation_offset_start=100)
    assert m.scene_to_source_frame(t, 15) == 105
    assert m.source_to_scene_frame(t, 105) == 15


def test_session_at_30_fps_from_a_24_fps_source():
    s = m.SessionTiming(fps=30.0, total_frames=75, source_fps=24.0)
    t = timing()
    assert m.source_to_session_frame(s, 5) == 6  # 5/24 s = 6.25 frames at 30 fps
    assert m.source_to_session_frame(s, 2) == 3  # 2.5 rounds up, as Blender's round does
    assert m.scene_to_session_frame(t, s, 15) == 6
    assert m.session_to_source_frame(s, 6) == 5  # 6 * 24/30 = 4.8
    assert m.session_to_scene_frame(t, s, 6) == 15
    assert m.source_to_session_frame(s, 60) is None  # 2.5 s: past the 75-frame clip
    assert m.source_to_session_frame(s, 59) == 74  # 73.75 rounds to 74, the last frame
    with pytest.raises(ValueError, match="outside"):
        m.session_to_source_frame(s, 75)


def test_clip_conformed_from_the_visible_range_starts_at_the_first_visible_frame():
    s = m.SessionTiming(fps=24.0, total_frames=45, source_fps=24.0, source_start_frame=5)
    t = timing()
    assert m.scene_to_session_frame(t, s, 15) == 0
    assert m.scene_to_session_frame(t, s, 59) == 44
    assert m.source_to_session_frame(s, 4) is None
    assert m.session_to_scene_frame(t, s, 0) == 15


def test_auto_playback_rate_retimes_a_24_fps_movie_in_a_30_fps_scene():
    t = timing(scene_fps=30.0, source_fps=24.0, auto_playback_rate=True, frame_start=0,
               frame_final_start=0, frame_final_end=100)
    assert t.playback_rate == pytest.approx(0.8)
    assert [m.scene_to_source_frame(t, f) for f in range(6)] == [0, 1, 2, 2, 3, 4]
    assert m.source_to_scene_frame(t, 2) == 2  # first of the two scene frames showing it
    assert m.source_to_scene_frame(t, 3) == 4
    fixed = timing(scene_fps=30.0, source_fps=24.0, frame_start=0, frame_final_start=0)
    assert m.scene_to_source_frame(fixed, 5) == 5  # without the flag: one frame per frame


def test_content_frames_clamp_like_blender_past_the_content_end():
    t = timing(frame_start=0, frame_final_start=0, frame_final_end=20, content_frames=10)
    assert m.scene_to_source_frame(t, 15) == 9


def test_infer_auto_playback_rate_from_the_strip_length():
    assert m.infer_auto_playback_rate(125, 100, 24.0, 30.0) is True
    assert m.infer_auto_playback_rate(100, 100, 24.0, 30.0) is False
    assert m.infer_auto_playback_rate(100, 100, 25.0, 25.0) is False
    with pytest.raises(ValueError, match="fits neither"):
        m.infer_auto_playback_rate(300, 100, 24.0, 30.0)


@pytest.mark.parametrize(
    ("factory", "kw", "message"),
    [
        (timing, {"frame_final_end": 15}, "empty"),
        (timing, {"scene_fps": 0.0}, "> 0"),
        (timing, {"content_frames": 0}, "content_frames"),
        (m.SessionTiming, {"fps": 30.0, "total_frames": 0, "source_fps": 24.0}, "0 frames"),
        (m.SessionTiming, {"fps": -1.0, "total_frames": 5, "source_fps": 24.0}, "> 0"),
    ],
)
def test_degenerate_timing_is_refused(factory, kw, message):
    with pytest.raises(ValueError, match=message):
        factory(**kw)


# --- time: properties ---------------------------------------------------------------------

FPS = st.sampled_from([12.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0])


@st.composite
def timings(draw):
    start = draw(st.integers(-100, 500))
    left = start + draw(st.integers(0, 50))
    return m.StripTiming(
        frame_start=start,
        frame_final_start=left,
        frame_final_end=left + draw(st.integers(1, 300)),
        scene_fps=draw(FPS),
        source_fps=draw(FPS),
        auto_playback_rate=draw(st.booleans()),
        animation_offset_start=draw(st.integers(0, 100)),
    )


@FAST
@given(timings(), st.data())
def test_scene_source_scene_lands_on_a_frame_showing_the_same_picture(t, data):
    frame = data.draw(st.integers(t.frame_final_start, t.frame_final_end - 1))
    source = m.scene_to_source_frame(t, frame)
    back = m.source_to_scene_frame(t, source)
    assert back is not None and back <= frame
    assert m.scene_to_source_frame(t, back) == source
    if t.playback_rate >= 1:
        assert back == frame  # every scene frame shows its own file frame


@FAST
@given(st.floats(1, 120), st.floats(1, 120), st.integers(1, 3000), st.integers(0, 50),
       st.data())
def test_session_round_trips_in_the_direction_that_loses_nothing(fps, source_fps, total,
                                                                   start, data):
    s = m.SessionTiming(fps=fps, total_frames=total, source_fps=source_fps,
                        source_start_frame=start)
    index = data.draw(st.integers(0, total - 1))
    if fps <= source_fps:  # every session frame has its own source frame
        assert m.source_to_session_frame(s, m.session_to_source_frame(s, index)) == index
    source = start + data.draw(st.integers(0, int(total / fps * source_fps) + 5))
    session = m.source_to_session_frame(s, source)
    if session is not None:
        assert 0 <= session < total
        if fps >= source_fps:  # every source frame has its own session frame
            assert m.session_to_source_frame(s, session) == source


@FAST
@given(timings(), FPS, st.data())
def test_scene_session_scene_shows_the_marked_frame(t, fps, data):
    s = m.SessionTiming(fps=fps, total_frames=10_000, source_fps=t.source_fps,
                        source_start_frame=t.animation_offset_start)
    frame = data.draw(st.integers(t.frame_final_start, t.frame_final_end - 1))
    index = m.scene_to_session_frame(t, s, frame)
    assume(index is not None)
    back = m.session_to_scene_frame(t, s, index)
    assert back is not None
    assert m.scene_to_session_frame(t, s, back) == index
