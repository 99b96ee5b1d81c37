"""Crop, offset, scale, rotation and flips against a real sequencer render.

The strip shows a coded picture (red = the source column, green = the source row), so each
rendered pixel says which source pixel Blender put there. Wherever the render shows the
picture, the click mapping must name that pixel and the overlay's quad must contain the
point with texture coordinates on that pixel; where the render shows nothing (the
cropped-away border, outside the picture), a click is refused and the quad draws nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import bpy

IW, IH = 256, 144  # one byte per source column and row
CW, CH = 640, 360
STEP = 7
EDGE = 2.0  # view px: points this close to the picture's edge are left out (filtering)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    from PIL import Image

    rows, cols = np.mgrid[0:IH, 0:IW]
    picture = np.stack([cols, rows, np.full_like(cols, 200)], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("coded") / "coded.png"
    Image.fromarray(picture, "RGB").save(path)
    return path


def _render(scene, folder) -> np.ndarray:
    from PIL import Image

    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(folder / "frame.png")
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(scene.render.filepath).convert("RGBA")).astype(int)


def _in_triangle(p, a, b, c) -> tuple[float, float, float] | None:
    """Barycentric weights of ``p`` in triangle abc, or None outside it."""
    (x, y), (ax, ay), (bx, by), (cx, cy) = p, a, b, c
    det = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    wa = ((by - cy) * (x - cx) + (cx - bx) * (y - cy)) / det
    wb = ((cy - ay) * (x - cx) + (ax - cx) * (y - cy)) / det
    wc = 1.0 - wa - wb
    return (wa, wb, wc) if min(wa, wb, wc) >= 0.0 else None


def _quad_uv(quad, point) -> tuple[float, float] | None:
    """The texture coordinates the overlay draws at ``point`` (TRI_FAN 0-1-2, 0-2-3)."""
    for i, j in ((1, 2), (2, 3)):
        weights = _in_triangle(point, quad.positions[0], quad.positions[i], quad.positions[j])
        if weights is not None:
            uv = [quad.texcoords[0], quad.texcoords[i], quad.texcoords[j]]
            return (sum(w * t[0] for w, t in zip(weights, uv, strict=True)),
                    sum(w * t[1] for w, t in zip(weights, uv, strict=True)))
    return None


@pytest.mark.parametrize(("crop", "offset", "scale", "rotation", "flips"), [
    ((40, 20, 10, 30), (0, 0), (1.0, 1.0), 0.0, (False, False)),
    ((40, 20, 10, 30), (50, -30), (1.5, 1.2), 0.4, (False, False)),
    ((40, 20, 10, 30), (50, -30), (1.5, 1.2), 0.4, (True, False)),
    ((0, 60, 35, 0), (-90, 40), (0.8, 1.7), -1.1, (True, True)),
])
def test_clicks_and_overlay_cover_what_the_render_shows(addon, coded, tmp_path, crop, offset,
                                                        scale, rotation, flips):
    from blender_addon import compat
    from blender_addon.bridge import geometry
    from blender_addon.pure import mapping, overlay_layout

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = CW, CH
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    strip = compat.top_level(scene.sequence_editor_create()).new_image(
        "coded", str(coded), 2, 1)
    strip.transform.filter = "NEAREST"
    strip.crop.min_x, strip.crop.max_x, strip.crop.min_y, strip.crop.max_y = crop
    strip.transform.offset_x, strip.transform.offset_y = offset
    strip.transform.scale_x, strip.transform.scale_y = scale
    strip.transform.rotation = rotation
    strip.use_flip_x, strip.use_flip_y = flips
    scene.frame_set(1)
    rendered = _render(scene, tmp_path)

    geom = geometry.strip_geometry(scene, strip)
    quad = overlay_layout.mask_quad(geom)
    shown = hidden = 0
    for row in range(2, CH - 2, STEP):
        for col in range(2, CW - 2, STEP):
            view = (col + 0.5 - CW / 2, CH / 2 - (row + 0.5))
            near = {geometry.click_to_normalized(scene, strip, view[0] + dx, view[1] + dy)
                    is None for dx in (-EDGE, EDGE) for dy in (-EDGE, EDGE)}
            if len(near) > 1:
                continue  # on the edge of the picture
            red, green, _blue, alpha = rendered[row, col]
            clicked = geometry.click_to_normalized(scene, strip, *view)
            drawn = _quad_uv(quad, view)
            if alpha < 128:  # the render shows no picture here
                hidden += 1
                assert clicked is None and drawn is None, (view, clicked, drawn)
                continue
            shown += 1
            source = ((red + 0.5) / IW, (green + 0.5) / IH)
            assert clicked == pytest.approx(source, abs=1.0 / IH), view
            assert drawn == pytest.approx(source, abs=1.0 / IH), view
            assert mapping.view_to_image(geom, *view) is not None
    assert shown > 200 and hidden > 200  # both sides of the picture's edge were checked
