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

Whether an image is opaque is the caller's estimate (the render checks the decoded
frame's planes, which only decoding tells): see ``geometry.covering_strip``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import mapping

__all__ = ["WHOLE_FRAME_BLENDS", "Layer", "covering_layer", "hides"]

WHOLE_FRAME_BLENDS = ("REPLACE", "CROSS", "GAMMA_CROSS")


@dataclass(frozen=True)
class Layer:
    """A strip drawn at the frame (not muted), as far as hiding goes.

    ``opacity`` is ``blend_alpha`` (0..1); ``geometry`` is None when the strip's image size
    is unknown (then only a whole-frame blend can hide).
    """

    name: str
    channel: int
    blend: str
    opacity: float
    opaque: bool
    geometry: mapping.StripGeometry | None


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
    return layer.geometry is not None and mapping.view_to_image(layer.geometry, vx, vy) is not None


def covering_layer(channel: int, layers: Iterable[Layer], vx: float, vy: float, *,
                   alpha_over_whole_frame: bool = False) -> Layer | None:
    """The highest layer above ``channel`` hiding view point ``(vx, vy)``, or None."""
    above = sorted((la for la in layers if la.channel > channel), key=lambda la: -la.channel)
    return next((la for la in above
                 if hides(la, vx, vy, alpha_over_whole_frame=alpha_over_whole_frame)), None)
