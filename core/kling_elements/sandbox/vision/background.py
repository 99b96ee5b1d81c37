"""Static-camera background model: the temporal median of a clip, which pixels of a frame
differ from it (the foreground), and where a foreground region's outline belongs.

Segmentation uses it to find the moving object under a click, tracking to follow one.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ._checks import _check_video
from ._morph import Box, _close, _fill_holes, _max_filter, _sl

_BG_SAMPLES = 15
_MIN_MODEL_FRAMES = 5


@lru_cache(maxsize=16)
def _sorting_network(size: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort comparators for ``size`` inputs."""
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


def _median_frames(samples: list[np.ndarray]) -> np.ndarray:
    """Per-pixel (lower) median of uint8 images via a min/max sorting network: exact, and an
    order of magnitude faster than ``np.median`` over a stacked array."""
    values = [s.copy() for s in samples]
    for i, j in _sorting_network(len(values)):
        low = np.minimum(values[i], values[j])
        np.maximum(values[i], values[j], out=values[j])
        values[i] = low
    return values[(len(values) - 1) // 2]


@dataclass(frozen=True)
class BackgroundModel:
    """Static-camera background: the per-pixel temporal median of sampled frames.

    A pixel is foreground when its L1 RGB difference from the median exceeds ``threshold``,
    which adapts to the clip's noise (compression, grain). Valid when the camera is still and
    no object covers a pixel in more than half of the sampled frames.
    """

    image: np.ndarray
    threshold: int

    def difference(self, frame: np.ndarray, where: Box | tuple[slice, slice] | None = None):
        """L1 RGB difference from the background (int16), over a box or slices if given."""
        crop = (slice(None), slice(None)) if where is None else where
        if len(crop) == 4:
            crop = _sl(crop)
        per_channel = cv2.absdiff(np.ascontiguousarray(frame[crop]),
                                  np.ascontiguousarray(self.image[crop]))
        total = per_channel[..., 0].astype(np.int16)
        total += per_channel[..., 1]
        total += per_channel[..., 2]
        return total

    def foreground(self, frame: np.ndarray, where: Box | tuple[slice, slice] | None = None):
        return self.difference(frame, where) > self.threshold

    def explains(self, frame: np.ndarray) -> bool:
        """Whether the frame was shot from the model's still camera: under 30% of it (on a
        sparse grid) differs from the background. A pan or a shake makes most of it differ,
        and then no foreground of this model is an object."""
        grid = (slice(None, None, 4), slice(None, None, 4))
        return float(np.mean(self.foreground(frame, grid))) < 0.3


def background_model(frames: np.ndarray, samples: int = _BG_SAMPLES) -> BackgroundModel:
    """Build the temporal-median background of a video from up to ``samples`` frames spread
    evenly over it."""
    frames = _check_video(frames)
    n = len(frames)
    picks = np.unique(np.linspace(0, n - 1, min(n, samples)).round().astype(int))
    median = _median_frames([frames[i] for i in picks])
    model = BackgroundModel(median, 0)
    probes = picks[:: max(1, len(picks) // 5)]
    noise = [np.median(model.difference(frames[i])[::3, ::3]) for i in probes]
    threshold = int(np.clip(4.0 * float(np.median(noise)) + 18.0, 24, 90))
    return BackgroundModel(median, threshold)


_MODEL_CACHE: dict[int, tuple[weakref.ref, BackgroundModel]] = {}


def _context_model(context: np.ndarray | None, shape: tuple[int, ...]) -> BackgroundModel | None:
    """Background model of ``context`` (cached per array object while it is alive), or None
    when the context cannot help (absent, too short, other resolution)."""
    if context is None:
        return None
    if context.ndim != 4 or context.shape[1:] != shape or len(context) < _MIN_MODEL_FRAMES:
        return None
    cached = _MODEL_CACHE.get(id(context))
    if cached is not None and cached[0]() is context:
        return cached[1]
    model = background_model(context)
    for key in [k for k, (ref, _) in _MODEL_CACHE.items() if ref() is None]:
        del _MODEL_CACHE[key]
    with contextlib.suppress(TypeError):  # no weakref support: just do not cache
        _MODEL_CACHE[id(context)] = (weakref.ref(context), model)
    return model


def _half_contrast(diff: np.ndarray, region: np.ndarray, threshold: int) -> np.ndarray:
    """Snap a foreground region's outline to where the difference from the background is
    half the object's local contrast: the anti-aliased edge pixels that are mostly
    background leave, so the outline sits where the object covers half of the pixel."""
    local_max = _max_filter(np.where(region, diff, 0), 2)
    kept = region & (diff > np.maximum(threshold, local_max // 2))
    return _fill_holes(_close(kept))
