"""Overlay textures prepared off the main thread, waiting for the Preview's draw callback.

The mask overlay of a frame is an RGBA float texture of the union of its masks. Making one
(sampled decode, union, colour) takes a few milliseconds at 2160x2160, too long for a draw
callback, so a worker makes it: the click's own job as soon as Kling answers (the new mask
and its texture reach the main thread together), or the overlay worker when the draw
callback finds none ready (another colour, a file just opened). The draw callback only
looks the buffer up and uploads it.

Guarantees:

* A key names everything the pixels depend on: the session, the frame, the masks (their
  RLE and size) and the colour and opacity as an 8-bit texture stores them. A buffer is
  never shown under another key.
* Memory is bounded: ready buffers are kept up to ``max_bytes`` (the oldest go first), and
  the draw callback takes a buffer (``take``) when it uploads it (the GPU texture keeps the
  pixels from then on). A 2160x2160 frame's buffer is 720x720 texels, 8.3 MB; see
  ``buffer_bytes``.
* Thread-safe: workers ``put``, the main thread ``take``; the draw callback asks for a
  missing buffer once (``claim``), and a request another one replaced for the same frame is
  skipped (``wanted``), so dragging the colour picker never queues stale work.

No ``bpy`` here: tested in plain Python.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..pure.overlay_layout import colour_pixels, mask_union, texture_samples

__all__ = ["MAX_BYTES", "OVERLAYS", "OverlayCache", "Prepared", "buffer_bytes", "colour_key",
           "overlay_key", "prepare"]

OverlayKey = tuple[str, int, tuple, tuple[int, int, int, int]]

MAX_BYTES = 32 * 2**20
"""Ready buffers kept at most: four 2160x2160 frames (8.3 MB each)."""


def colour_key(color: tuple[float, float, float], opacity: float) -> tuple[int, int, int, int]:
    """The colour and opacity as the RGBA8 texture stores them: equal keys, equal texels."""
    return tuple(round(min(max(float(v), 0.0), 1.0) * 255) for v in (*color, opacity))


def overlay_key(session_id: str, frame: int, masks: list[dict[str, Any]],
                color: tuple[float, float, float], opacity: float) -> OverlayKey:
    """What a frame's overlay pixels depend on, as a hashable key."""
    return (session_id, int(frame),
            tuple((mask["counts"], tuple(mask["size"])) for mask in masks),
            colour_key(color, opacity))


def buffer_bytes(h: int, w: int) -> int:
    """Bytes of the float RGBA buffer of a ``(h, w)`` frame's overlay."""
    rows, cols = texture_samples(h, w)
    return rows.size * cols.size * 4 * 4


@dataclass(frozen=True)
class Prepared:
    """A frame's overlay, ready for upload: ``pixels`` is ``(h, w, 4)`` float32, top row first."""

    key: OverlayKey
    pixels: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def prepare(key: OverlayKey, masks: list[dict[str, Any]], color: tuple[float, float, float],
            opacity: float) -> Prepared | None:
    """The overlay of ``masks`` under ``key`` (None when there is no mask to draw)."""
    union = mask_union(masks)
    if union is None:
        return None
    return Prepared(key, colour_pixels(union, color, opacity))


class OverlayCache:
    """Ready overlay buffers by key, at most ``max_bytes`` of them; see the module's notes.

    ``enabled`` is False until the add-on has a Preview to draw in (never in background
    mode): without it nobody would take the buffers, so nothing is prepared.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.enabled = False
        self._lock = threading.Lock()
        self._ready: OrderedDict[OverlayKey, Prepared] = OrderedDict()
        self._bytes = 0
        self._claimed: set[OverlayKey] = set()
        self._wanted: dict[tuple[str, int], OverlayKey] = {}

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers waiting to be uploaded."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._ready)

    def put(self, prepared: Prepared) -> None:
        """Keep ``prepared`` until taken; the oldest buffers go when over ``max_bytes``."""
        with self._lock:
            old = self._ready.pop(prepared.key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._ready[prepared.key] = prepared
            self._bytes += prepared.nbytes
            self._claimed.discard(prepared.key)
            while self._bytes > self.max_bytes and len(self._ready) > 1:
                _, dropped = self._ready.popitem(last=False)
                self._bytes -= dropped.nbytes

    def ready(self, key: OverlayKey) -> bool:
        return key in self._ready

    def take(self, key: OverlayKey) -> Prepared | None:
        """The buffer of ``key``, removed from the cache (its uploader keeps it now)."""
        with self._lock:
            prepared = self._ready.pop(key, None)
            if prepared is not None:
                self._bytes -= prepared.nbytes
            return prepared

    def claim(self, key: OverlayKey) -> bool:
        """True once per missing ``key``: the caller should have it prepared.

        It also becomes the one wanted for its frame, so an older request for the same
        frame still queued is skipped (``wanted``).
        """
        with self._lock:
            self._wanted[key[:2]] = key
            if key in self._ready or key in self._claimed:
                return False
            self._claimed.add(key)
            return True

    def wanted(self, key: OverlayKey) -> bool:
        """Whether ``key`` is still the latest asked for its frame (else skip preparing it)."""
        return self._wanted.get(key[:2], key) == key

    def unclaim(self, key: OverlayKey) -> None:
        """A claimed buffer will not come (skipped or failed): a later draw may ask again."""
        with self._lock:
            self._claimed.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._ready.clear()
            self._bytes = 0
            self._claimed.clear()
            self._wanted.clear()


OVERLAYS = OverlayCache()
"""The add-on's one cache: click jobs and the overlay worker fill it, the draw callback takes."""
