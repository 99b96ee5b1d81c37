"""Classical image processing behind the sandbox: click segmentation, tracking and the edits.

No learned models: GrabCut (OpenCV's colour mixtures and graph cut) seeded by the click and
by what moves under it, a temporal-median background model (camera-compensated when the
camera pans), connected components, template matching and temporal fill. It is meant to
select the clicked object on ordinary footage (a mask that follows it from frame to
frame), not to rival Kling's segmentation; on hard footage (thin parts, an object touching
something of its colour) it degrades to plausible rather than correct masks, never to an
exception. Everything is deterministic: OpenCV's random generator is seeded per call.

Import from this package; its modules are where each part lives:

- ``segment``: clicks to masks on one frame (``segment``, ``point_to_pixel``);
- ``grabcut``: the appearance model: a cut from a click, from a rough hint, or in a band
  around a tracked outline;
- ``motion``: what moves once the camera's own motion is compensated (a hint for a cut);
- ``_clicks``: each point's region and each frame's features, remembered per read-only
  clip, so a click pays only for its new points;
- ``track``: key-frame masks propagated to every frame, re-cut in each (``track``);
- ``fill``: the remove edit, by temporal fill and inpainting (``remove``);
- ``composite``: the swap and add edits, pasting a reference image's subject;
- ``draw``: selection previews and the watermark (``draw_masks``, ``watermark``);
- ``background``: the temporal-median background model both segment and track use;
- ``colour``, ``_morph``, ``_checks``: Lab and grey levels, mask geometry, argument checks.

Conventions shared by every function:

- a frame is ``(h, w, 3)`` uint8 RGB, a video ``(n, h, w, 3)`` uint8, a mask ``(h, w)``
  bool and a mask video ``(n, h, w)`` bool;
- a normalized point ``(x, y)`` in [0, 1] ((0, 0) top-left) is the pixel
  ``(col, row) = (round(x * (w - 1)), round(y * (h - 1)))`` (see ``point_to_pixel``), so
  ``(1, 1)`` is the bottom-right pixel;
- inputs are never modified; each edit returns a new video of the same shape.
"""

from __future__ import annotations

from .background import BackgroundModel, background_model
from .composite import add, swap
from .draw import draw_masks, watermark
from .fill import remove
from .segment import point_to_pixel, segment
from .track import track

__all__ = [
    "BackgroundModel",
    "add",
    "background_model",
    "draw_masks",
    "point_to_pixel",
    "remove",
    "segment",
    "swap",
    "track",
    "watermark",
]
