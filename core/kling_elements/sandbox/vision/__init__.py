"""Classical image processing behind the sandbox: click segmentation, tracking and the edits.

No learned models: colour statistics in CIE Lab, a temporal-median background model,
connected components, template matching and temporal fill. It is meant for clips like the
ones Kling edits in the sandbox demo (static camera, a distinct moving element), where it
is accurate; on hard footage it degrades to plausible rather than correct masks, never to
an exception.

Import from this package; its modules are where each part lives:

- ``segment``: clicks to masks on one frame (``segment``, ``point_to_pixel``);
- ``track``: key-frame masks propagated to every frame (``track``);
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
