"""The mask overlay on a cropped strip: only the visible picture is painted, in register.

A strip's crop removes source pixels before the transform. The overlay stretches a
full-frame mask texture over a quad; these tests rasterise that quad in plain numpy (the
GPU's affine interpolation over a parallelogram) and check what would be painted against
what Blender shows: nothing over the cropped-away border, and each painted view point
showing the mask pixel under it. Run without Blender (see conftest.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blender_addon.pure import mapping as m
from blender_addon.pure.overlay_layout import mask_pixels, mask_quad, visible_dots
from kling_elements import rle

from .test_mapping_properties import geometries

PROPS = settings(max_examples=150, deadline=None)
# 1280x720 source and canvas, 200 px cropped from the left, 100 px from the bottom.
CROPPED = m.StripGeometry(image_w=1280, image_h=720, canvas_w=1280, canvas_h=720,
                          crop=(200, 0, 100, 0))
FULL_FRAME_QUAD = [(-640, -360), (640, -360), (640, 360), (-640, 360)]  # the drawing before


def _affine_uv(quad):
    """The view -> (u, v) map the GPU interpolates over the quad (a parallelogram)."""
    p = np.asarray(quad.positions, float)
    t = np.asarray(quad.texcoords, float)
    basis = np.column_stack([p[1] - p[0], p[3] - p[0]])
    tex = np.column_stack([t[1] - t[0], t[3] - t[0]])
    inverse = np.linalg.inv(basis)

    def uv(points: np.ndarray) -> np.ndarray:
        return t[0] + (points - p[0]) @ inverse.T @ tex.T

    return uv


def _inside(polygon, points: np.ndarray) -> np.ndarray:
    """Points strictly inside a convex polygon given in either winding order."""
    poly = np.asarray(polygon, float)
    signs = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        signs.append((b[0] - a[0]) * (points[:, 1] - a[1])
                     - (b[1] - a[1]) * (points[:, 0] - a[0]))
    signs = np.stack(signs)
    return np.all(signs > 1e-6, axis=0) | np.all(signs < -1e-6, axis=0)


def _pixel_centres_in_view(g, xs, ys) -> np.ndarray:
    return np.array([m.image_to_view(g, x + 0.5, y + 0.5) for y in ys for x in xs])


def test_a_cropped_strip_draws_exactly_its_visible_picture():
    quad = mask_quad(CROPPED)
    assert quad.positions == ((-440, -260), (640, -260), (640, 360), (-440, 360))
    # The corners' own texels: source (200, 620), (1280, 620), (1280, 0), (200, 0).
    np.testing.assert_allclose(
        quad.texcoords,
        [(200 / 1280, 620 / 720), (1.0, 620 / 720), (1.0, 0.0), (200 / 1280, 0.0)])
    # A click on the cropped border is refused like one off the picture.
    assert m.view_to_normalized(CROPPED, -500, 0) is None
    assert m.view_to_normalized(CROPPED, 0, -300) is None
    assert m.view_to_normalized(CROPPED, -430, -250) is not None


def test_mask_pixels_in_the_cropped_border_never_land_in_the_drawn_quad():
    xs, ys = range(0, 1280, 4), range(0, 720, 4)
    centres = _pixel_centres_in_view(CROPPED, xs, ys)
    source = np.array([(x + 0.5, y + 0.5) for y in ys for x in xs])
    cropped = (source[:, 0] < 200) | (source[:, 1] > 620)
    assert cropped.sum() > 0
    assert not _inside(mask_quad(CROPPED).positions, centres[cropped]).any()
    assert _inside(mask_quad(CROPPED).positions, centres[~cropped]).all()
    # The whole-frame quad drawn before covered every cropped pixel: the bug this prevents.
    assert _inside(FULL_FRAME_QUAD, centres[cropped]).all()


def test_painted_texels_sit_on_the_mask_pixels_they_came_from():
    """Rasterise the overlay of a 1280x720 mask (sampled to 640x360) on the cropped strip."""
    yy, xx = np.mgrid[0:720, 0:1280]
    mask = (((xx // 64) + (yy // 48)) % 2).astype(np.uint8)  # 64x48 px checkerboard
    pixels = mask_pixels([rle.encode(mask)], (1, 0, 0), 1.0)
    th, tw = pixels.shape[:2]
    quad = mask_quad(CROPPED)
    uv = _affine_uv(quad)
    view = np.array([(x, y) for y in np.arange(-359.5, 360, 3.0)
                     for x in np.arange(-639.5, 640, 3.0)])
    drawn = _inside(quad.positions, view)
    texel_uv = uv(view[drawn])
    painted = pixels[np.minimum((texel_uv[:, 1] * th).astype(int), th - 1),
                     np.minimum((texel_uv[:, 0] * tw).astype(int), tw - 1), 3] > 0
    source = [m.view_to_image(CROPPED, x, y) for x, y in view[drawn]]
    assert all(p is not None for p in source)  # nothing painted off the picture
    src = np.array(source)
    shown = mask[src[:, 1].astype(int), src[:, 0].astype(int)] > 0
    # Away from the checker edges (a texel is 2 px) the painted colour is the mask's.
    far = (np.abs((src[:, 0] + 32) % 64 - 32) > 2) & (np.abs((src[:, 1] + 24) % 48 - 24) > 2)
    assert far.sum() > 1000
    assert np.array_equal(painted[far], shown[far])
    # Nothing is painted where the picture is cropped away.
    off = np.array([m.view_to_image(CROPPED, x, y) is None for x, y in view])
    assert off.sum() > 0 and not (drawn & off).any()


@PROPS
@given(geometries(), st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_every_drawn_point_is_on_the_picture_and_shows_its_own_texel(g, a, b):
    quad = mask_quad(g)
    p = np.asarray(quad.positions, float)
    point = p[0] + a * (p[1] - p[0]) + b * (p[3] - p[0])
    image = m.view_to_image(g, *point)
    assert image is not None
    u, v = _affine_uv(quad)(point[None, :])[0]
    x, y = m.image_to_normalized(g, *image)
    tol = 1e-6 * max(g.image_w, g.image_h)
    assert math.isclose(u, x, abs_tol=tol) and math.isclose(v, y, abs_tol=tol)


@PROPS
@given(geometries(), st.integers(0, 3), st.floats(0.05, 0.95))
def test_just_outside_each_edge_of_the_drawn_quad_is_off_the_picture(g, edge, t):
    p = np.asarray(mask_quad(g).positions, float)
    a, b = p[edge], p[(edge + 1) % 4]
    centre = p.mean(axis=0)
    on_edge = a + t * (b - a)
    outward = on_edge - centre
    # Half a source pixel beyond the edge, in view units.
    step = 0.5 * max(abs(g.scale[0]), abs(g.scale[1])) * max(g.pixel_aspect, 1.0)
    normal = np.array([-(b - a)[1], (b - a)[0]])
    normal /= np.linalg.norm(normal)
    if normal @ outward < 0:
        normal = -normal
    assert m.view_to_image(g, *(on_edge + step * normal)) is None


def test_dots_of_cropped_away_points_are_not_drawn():
    inside, in_left_crop, in_bottom_crop = (0.5, 0.5), (0.1, 0.5), (0.5, 0.9)
    dots = visible_dots(CROPPED, [inside, in_left_crop, in_bottom_crop])
    assert dots == [pytest.approx(m.normalized_to_view(CROPPED, *inside))]


@PROPS
@given(geometries(), st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=10))
def test_visible_dots_are_the_points_a_click_could_have_made(g, points):
    dots = visible_dots(g, points)
    expected = [p for p in points if m.view_to_normalized(g, *m.normalized_to_view(g, *p))]
    assert len(dots) == len(expected)
    for dot, point in zip(dots, expected, strict=True):
        back = m.view_to_normalized(g, *dot)
        assert back == pytest.approx(point, abs=1e-6)


def test_mask_texture_rows_run_top_first_so_v_is_klings_y():
    mask = np.zeros((720, 1280), np.uint8)
    mask[:10] = 1  # the frame's top rows
    pixels = mask_pixels([rle.encode(mask)], (1, 0, 0), 1.0)
    assert pixels.shape == (360, 640, 4)
    assert pixels[0, :, 3].all() and not pixels[-1, :, 3].any()


def test_sampled_texels_take_the_pixel_at_their_centre():
    # 1000 px wide: sampled 2:1 to 500 texels; texel k shows pixel 2k + 1.
    mask = np.zeros((10, 1000), np.uint8)
    mask[:, 1::2] = 1
    pixels = mask_pixels([rle.encode(mask)], (1, 0, 0), 1.0)
    assert pixels.shape[:2] == (5, 500)
    assert pixels[..., 3].all()
