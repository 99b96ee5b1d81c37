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

__all__ = ["TEXTURE_MAX_SIDE", "MaskQuad", "colour_pixels", "mask_pixels", "mask_quad",
           "mask_union", "texture_samples", "visible_dots"]

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


def texture_samples(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask rows and columns a texture of a ``(h, w)`` frame shows, one per texel.

    At most ``TEXTURE_MAX_SIDE`` texels a side: the texture is stretched over the strip
    anyway, and a full-size float texture of a 2160x2160 frame would be 75 MB. Each texel
    takes the mask pixel at its own centre, so it never drifts more than half a texel from
    the pixel it shows.
    """
    step = max(1, -(-max(h, w) // TEXTURE_MAX_SIDE))
    return _centres(h, -(-h // step)), _centres(w, -(-w // step))


def mask_union(masks: list[dict]) -> np.ndarray | None:
    """The union of a frame's masks at the texels of ``texture_samples``, top row first.

    Only the sampled pixels are decoded (``rle.decode_sampled``). Every mask of a frame has
    the frame's size; masks of different sizes raise ValueError (they cannot be overlaid).
    """
    if not masks:
        return None
    sizes = {tuple(mask["size"]) for mask in masks}
    if len(sizes) > 1:
        raise ValueError(f"the masks of one frame have different sizes {sorted(sizes)}")
    h, w = sizes.pop()
    rows, cols = texture_samples(h, w)
    union = None
    for mask in masks:
        sampled = rle.decode_sampled(mask["counts"], (h, w), rows, cols)
        union = sampled if union is None else np.bitwise_or(union, sampled, out=union)
    return union


def colour_pixels(union: np.ndarray, color: tuple[float, float, float], opacity: float
                  ) -> np.ndarray:
    """RGBA float32 texels: ``color`` at ``opacity`` where ``union`` is 1, else clear.

    Components are quantised like ``rle.overlay_rgba`` (what an RGBA8 texture stores).
    """
    table = rle.overlay_rgba(np.array([[0, 1]], np.uint8), color, opacity)[0]
    return np.take(table.astype(np.float32) / np.float32(255.0), union, axis=0)


def mask_pixels(masks: list[dict], color: tuple[float, float, float], opacity: float
                ) -> np.ndarray | None:
    """RGBA float pixels of the union of a frame's masks, top row first (see above).

    ``mask_union`` then ``colour_pixels``: a few ms at 2160x2160, so the add-on prepares
    them on a worker (``overlay_cache``), never in the draw callback.
    """
    union = mask_union(masks)
    return None if union is None else colour_pixels(union, color, opacity)
