"""What a clip's clicks share: each frame's features and each point's region, remembered.

A click re-segments every point of its frame (the answer lists the frame's objects), and an
editor clicks the same frames again: a second point, a point deleted, the same selection
made again in another session. Segmentation is deterministic and each point's region
depends only on the frame, the point and the clip, so a point already cut is looked up,
not cut again, and a frame's features (its working-resolution copy for GrabCut, whether the
still camera explains it, its foreground) are computed once per frame.

Only a read-only clip is remembered (the sandbox's decoded clips are): its pixels cannot
change under the cache. Entries live while the clip's array does, at most ``FRAMES``
frames' features and ``REGIONS`` regions (bit-packed) per clip, the most recent kept.
"""

from __future__ import annotations

import struct
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

FRAMES = 4
REGIONS = 64

_lock = threading.Lock()
_clips: dict[int, tuple[weakref.ref, ClipMemory]] = {}


class ClipMemory:
    """The features and regions remembered for one clip (thread-safe; a value computed
    twice at once by two threads is the same value, the second one is simply dropped)."""

    def __init__(self) -> None:
        self._features: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._regions: OrderedDict[tuple[int, bytes], tuple[np.ndarray, int]] = OrderedDict()

    def features(self, index: int) -> dict[str, Any]:
        """The frame's feature dict (filled lazily by the caller, see ``feature``)."""
        with _lock:
            found = self._features.get(index)
            if found is None:
                found = self._features[index] = {}
                while len(self._features) > FRAMES:
                    self._features.popitem(last=False)
            else:
                self._features.move_to_end(index)
            return found

    def region(self, index: int, point: tuple[float, float],
               compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The region of ``point`` on frame ``index`` (a new array), cut once."""
        key = (index, struct.pack("<dd", float(point[0]), float(point[1])))
        with _lock:
            found = self._regions.get(key)
            if found is not None:
                self._regions.move_to_end(key)
        if found is not None:
            packed, width = found
            return np.unpackbits(packed, axis=-1, count=width).astype(bool)
        region = compute()
        with _lock:
            self._regions[key] = (np.packbits(region, axis=-1), region.shape[-1])
            while len(self._regions) > REGIONS:
                self._regions.popitem(last=False)
        return region


def feature(features: dict[str, Any], name: str, compute: Callable[[], Any]) -> Any:
    """``features[name]``, computed by ``compute()`` the first time it is asked for."""
    if name not in features:
        features[name] = compute()
    return features[name]


def memory(context: np.ndarray | None) -> ClipMemory | None:
    """The memory of a read-only ``(n, h, w, 3)`` clip, or None (no clip, or a writable
    one, whose pixels could change behind the cache)."""
    if context is None or context.ndim != 4 or context.flags.writeable:
        return None
    with _lock:
        found = _clips.get(id(context))
        if found is not None and found[0]() is context:
            return found[1]
        for key in [k for k, (ref, _) in _clips.items() if ref() is None]:
            del _clips[key]
        try:
            ref = weakref.ref(context)
        except TypeError:
            return None
        clip = ClipMemory()
        _clips[id(context)] = (ref, clip)
        return clip


def frame_index(frame: np.ndarray, context: np.ndarray) -> int | None:
    """The index ``i`` for which ``frame`` is the view ``context[i]``, else None (a copy, or
    another array: nothing is known about it)."""
    if frame.shape != context.shape[1:] or frame.strides != context.strides[1:]:
        return None
    offset = frame.__array_interface__["data"][0] - context.__array_interface__["data"][0]
    step = context.strides[0]
    if step <= 0 or offset < 0 or offset % step:
        return None
    index = offset // step
    return index if index < len(context) else None
