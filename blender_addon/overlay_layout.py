"""What the mask overlay draws, as plain numbers: texture pixels, the quad, the visible dots.

No ``bpy`` and no GPU here, so the registration of the mask on the picture is tested in
plain Python; ``overlay`` only uploads these and issues the draw calls.

Guarantees:

* The texture is the frame's masks with row 0 = the frame's top row, so a texel's
  ``(u, v)`` is Kling's normalized ``(x, y)`` and ``mapping.image_quad_uv`` applies as is.
* The quad is the strip's *visible* picture: its crop rectangle placed like Blender places
  it (``strip_image_transform_quad_get_ex`` in ``strip_transform.cc``: the four corners
  are the image's half size minus each side's crop, then the strip's transform, pixel
  aspect and mirror). Texture coordinates are those corners' own normalized positions,
  so the cropped-away part of a mask is never drawn, and what is drawn sits on the pixels
  it was segmented from.
* A point dot is listed only when its point lies in the visible crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kling_elements import rle

from . import mapping

__all__ = ["TEXTURE_MAX_SIDE", "MaskQuad", "mask_pixels", "mask_quad", "visible_dots"]

Point = tuple[float, float]

TEXTURE_MAX_SIDE = 800


@dataclass(frozen=True)
class MaskQuad:
    """Corners in view coordinates and their texture coordinates, in ``TRI_FAN`` order."""

    positions: tuple[Point, Point, Point, Point]
    texcoords: tuple[Point, Point, Point, Point]


def mask_quad(geom: mapping.StripGeometry) -> MaskQuad:
    """The visible (cropped) picture's quad with the matching part of a full-frame texture."""
    return MaskQuad(tuple(mapping.image_quad_in_view(geom)), tuple(mapping.image_quad_uv(geom)))


def visible_dots(geom: mapping.StripGeometry, points: list[Point]) -> list[Point]:
    """View positions of the points that are not cropped away (Kling's normalized units)."""
    return [mapping.normalized_to_view(geom, x, y) for x, y in points
            if mapping.normalized_visible(geom, x, y)]


def _centres(size: int, count: int) -> np.ndarray:
    """``count`` sample indices into ``size``, each at the centre of its texel's span."""
    return ((np.arange(count) + 0.5) * size / count).astype(np.intp)


def mask_pixels(masks: list[dict], color: tuple[float, float, float], opacity: float
                ) -> np.ndarray | None:
    """RGBA float pixels of the union of a frame's masks, top row first (see above).

    Sampled down to at most ``TEXTURE_MAX_SIDE`` texels a side: the texture is stretched
    over the strip anyway, and a full-size float texture would cost the main thread ~10 ms
    at 720p (see ``scripts/bench_ui_thread.py``). Each texel takes the mask pixel at its
    own centre, so a texel never drifts more than half a texel from the pixel it shows.
    """
    if not masks:
        return None
    union = None
    for mask in masks:
        decoded = rle.decode(mask["counts"], tuple(mask["size"]))
        union = decoded if union is None else np.maximum(union, decoded)
    h, w = union.shape
    step = max(1, -(-max(h, w) // TEXTURE_MAX_SIDE))
    if step > 1:
        union = union.take(_centres(h, -(-h // step)), axis=0).take(
            _centres(w, -(-w // step)), axis=1)
    rgba = rle.overlay_rgba(union, color, opacity)
    return rgba.astype(np.float32) / 255.0
