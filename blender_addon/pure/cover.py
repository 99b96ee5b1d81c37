"""Whether strips on higher channels hide a marked strip at a point of the Preview.

A click is meant for what the Preview shows. When another strip is drawn over the marked
one at the click point, the click would mark something the editor cannot see, so it is
refused. No ``bpy`` here: ``geometry.covering_strip`` reads the strips into ``Layer``s.

What hides, as the sequencer composites (``render.cc``, ``seq_render_strip_stack``: from
the top channel down; measured with real renders in 4.2 and 5.0):

* ``REPLACE`` at any opacity, and ``CROSS`` / ``GAMMA_CROSS`` at full opacity, stop the
  stack: nothing below them is drawn anywhere in the frame, not even outside their image.
* ``ALPHA_OVER`` at full opacity over an opaque image hides what lies under its (cropped,
  transformed) image, and nothing outside it (``OpaqueQuadTracker``). Blender 4.2.0 renders
  it as hiding the whole frame (measured: 4.2.0 does, 4.2.23, 4.5 and 5.x do not; the
  releases between were not measured), so the caller says which rule applies.
* Every other blend mixes the lower strip into the picture, and muted strips, strips not
  at the frame and strips on lower channels draw nothing over it: none of them hides.
* A meta strip is a picture of the canvas's size: what its strips composite to, transparent
  where none of them is opaque, then cropped, transformed and blended as one strip. So a
  full-opacity ``ALPHA_OVER`` meta hides where its content is opaque (4.2.0: everywhere,
  as for any strip), and its ``REPLACE`` / ``CROSS`` hide the whole frame (measured: 4.2.0,
  5.3). A strip inside a meta is hidden by the meta's strips above it and, one level up,
  by whatever hides the meta (the caller walks the levels: ``covering_layer`` per level).
* An effect that shows one input strip (Speed, Glow, Blur; 4.2's Transform) is drawn like
  a meta holding that input alone: the input itself, muted or not, is seen only through
  it (measured: 4.2.0, 5.3).

Whether an image is opaque is the caller's estimate (the render checks the decoded
frame's planes, which only decoding tells): see ``geometry.covering_strip``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from . import mapping

__all__ = ["WHOLE_FRAME_BLENDS", "Layer", "canvas_to_view", "covering_layer", "hides"]

WHOLE_FRAME_BLENDS = ("REPLACE", "CROSS", "GAMMA_CROSS")
# Blends that draw an opaque pixel of the strip as it is (full opacity).
_OPAQUE_BLENDS = ("ALPHA_OVER", *WHOLE_FRAME_BLENDS)


@dataclass(frozen=True)
class Layer:
    """A strip drawn at the frame (not muted), as far as hiding goes.

    ``opacity`` is ``blend_alpha`` (0..1); ``geometry`` is None when the strip's image size
    is unknown (then only a whole-frame blend can hide). ``content`` is a meta strip's
    drawn strips, or an effect's input (its ``geometry`` then places a canvas-sized
    picture); None for a strip with a picture of its own.
    """

    name: str
    channel: int
    blend: str
    opacity: float
    opaque: bool
    geometry: mapping.StripGeometry | None
    content: tuple[Layer, ...] | None = None


def hides(layer: Layer, vx: float, vy: float, *, alpha_over_whole_frame: bool = False
          ) -> bool:
    """Whether ``layer`` alone hides whatever lies below it at view point ``(vx, vy)``.

    ``alpha_over_whole_frame``: an opaque, full-opacity ``ALPHA_OVER`` hides the whole frame
    (Blender 4.2.0, see the module docstring) rather than only what lies under its image.
    """
    if layer.blend == "REPLACE":
        return True
    full = layer.opacity >= 1.0
    if layer.blend in WHOLE_FRAME_BLENDS:
        return full
    if layer.blend != "ALPHA_OVER" or not full or not layer.opaque:
        return False
    if alpha_over_whole_frame:
        return True
    return _opaque_at(layer, vx, vy, alpha_over_whole_frame)


def _opaque_at(layer: Layer, vx: float, vy: float, whole: bool) -> bool:
    """Whether ``layer``'s own picture is opaque at ``(vx, vy)`` (before its blend)."""
    if layer.opacity < 1.0 or not layer.opaque or layer.geometry is None:
        return False
    if layer.content is None:
        return mapping.view_to_image(layer.geometry, vx, vy) is not None
    inner = _canvas_point(layer.geometry, vx, vy)
    return inner is not None and _content_opaque_at(layer.content, *inner, whole)


def _unplaced(geom: mapping.StripGeometry) -> mapping.StripGeometry:
    return replace(geom, crop=(0.0, 0.0, 0.0, 0.0), offset=(0.0, 0.0), scale=(1.0, 1.0),
                   rotation=0.0, origin=(0.5, 0.5), flip_x=False, flip_y=False)


def _canvas_point(geom: mapping.StripGeometry, vx: float, vy: float
                  ) -> tuple[float, float] | None:
    """A view point as a point of the canvas-sized picture ``geom`` places (a meta's)."""
    pixel = mapping.view_to_image(geom, vx, vy)
    return None if pixel is None else mapping.image_to_view(_unplaced(geom), *pixel)


def canvas_to_view(geom: mapping.StripGeometry, vx: float, vy: float
                   ) -> tuple[float, float] | None:
    """Where a point of a meta strip's canvas-sized picture shows one level up (``geom``:
    the meta's placement), or None when the meta's crop or the canvas cut it away."""
    pixel = mapping.view_to_image(_unplaced(geom), vx, vy)
    if pixel is None:
        return None
    point = mapping.image_to_view(geom, *pixel)
    return point if mapping.view_to_image(geom, *point) is not None else None


def _stops_stack(layer: Layer, whole: bool) -> bool:
    """Whether nothing below ``layer`` is drawn anywhere (its own picture aside)."""
    full = layer.opacity >= 1.0
    return (layer.blend == "REPLACE" or (layer.blend in WHOLE_FRAME_BLENDS and full)
            or (whole and layer.blend == "ALPHA_OVER" and full and layer.opaque))


def _content_opaque_at(layers: Iterable[Layer], vx: float, vy: float, whole: bool) -> bool:
    """Whether strips composited on a transparent canvas leave it opaque at ``(vx, vy)``."""
    for layer in sorted(layers, key=lambda la: -la.channel):
        if layer.blend in _OPAQUE_BLENDS and _opaque_at(layer, vx, vy, whole):
            return True
        if _stops_stack(layer, whole):
            return False
    return False


def covering_layer(channel: int, layers: Iterable[Layer], vx: float, vy: float, *,
                   alpha_over_whole_frame: bool = False) -> Layer | None:
    """The highest layer above ``channel`` hiding view point ``(vx, vy)``, or None."""
    above = sorted((la for la in layers if la.channel > channel), key=lambda la: -la.channel)
    return next((la for la in above
                 if hides(la, vx, vy, alpha_over_whole_frame=alpha_over_whole_frame)), None)
