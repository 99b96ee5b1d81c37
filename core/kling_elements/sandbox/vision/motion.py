"""Camera-compensated motion: what moves in a frame once the camera's own motion is undone.

The temporal-median background (``background``) needs a still camera; a pan or a handheld
drift makes every pixel differ from it. Here each sampled frame of the clip is first
aligned to the frame in question (a similarity transform fitted with RANSAC to matched ORB
features, so the background's many features outvote the object's), and only then is the
per-pixel median taken, at a reduced resolution.

The result is a hint, not an outline: it marks the object roughly (its working resolution
is ``SIDE`` px on the long side) and is refined by the appearance model (``grabcut``).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref

import cv2
import numpy as np

from ._morph import _component_at, _open

SIDE = 320
_SAMPLES = 15
_MIN_FRAMES = 5


class _Samples:
    """Frames spread over a clip at the working resolution, as float32 RGB."""

    def __init__(self, context: np.ndarray) -> None:
        n, h, w = context.shape[:3]
        self.factor = max(1.0, max(h, w) / SIDE)
        self.size = (max(1, round(w / self.factor)), max(1, round(h / self.factor)))
        picks = np.unique(np.linspace(0, n - 1, min(n, _SAMPLES)).round().astype(int))
        self.frames = [self.reduce(context[i]) for i in picks]
        self.features = [_features(_gray(f)) for f in self.frames]

    def reduce(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        return small.astype(np.float32)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.uint8)


def _features(gray: np.ndarray, where: np.ndarray | None = None):
    """ORB keypoints' positions (k, 2) float32 and descriptors, or None when too few."""
    orb = cv2.ORB_create(nfeatures=600, fastThreshold=8, edgeThreshold=15, patchSize=15)
    points, descriptors = orb.detectAndCompute(gray, where)
    if descriptors is None or len(points) < 12:
        return None
    return np.float32([p.pt for p in points]), descriptors


def _alignment(target, other) -> np.ndarray | None:
    """The 2x3 similarity that maps ``other``'s pixels onto ``target``'s, from features
    matched both ways and a RANSAC fit; None when it is not well supported."""
    if target is None or other is None:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    matches = matcher.match(target[1], other[1])
    if len(matches) < 12:
        return None
    dst = np.float32([target[0][m.queryIdx] for m in matches])
    src = np.float32([other[0][m.trainIdx] for m in matches])
    cv2.setRNGSeed(0)
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5, maxIters=500,
        confidence=0.99, refineIters=10)
    if matrix is None or inliers is None or int(inliers.sum()) < 10:
        return None
    return matrix.astype(np.float32)


_CACHE: dict[int, tuple[weakref.ref, _Samples]] = {}


def _samples(context: np.ndarray) -> _Samples:
    """The clip's samples, cached per array object while it is alive."""
    cached = _CACHE.get(id(context))
    if cached is not None and cached[0]() is context:
        return cached[1]
    samples = _Samples(context)
    for key in [k for k, (ref, _) in _CACHE.items() if ref() is None]:
        del _CACHE[key]
    with contextlib.suppress(TypeError):
        _CACHE[id(context)] = (weakref.ref(context), samples)
    return samples


def difference(
    frame: np.ndarray, context: np.ndarray, ignore: tuple[int, int] | None = None
) -> tuple[np.ndarray, int, float] | None:
    """The L1 RGB difference of ``frame`` from the camera-compensated median of ``context``
    (working resolution, float32), the threshold above which a pixel moves, and the scale
    factor to full resolution; None when the context cannot help (too short, another size).

    ``ignore``, a full-resolution ``(row, col)`` (the click), and the area around it do not
    take part in finding the camera's motion: a textured object there would otherwise pull
    the alignment onto itself rather than onto the background. Samples that cannot be
    aligned are left out."""
    if context.ndim != 4 or context.shape[1:] != frame.shape or len(context) < _MIN_FRAMES:
        return None
    samples = _samples(context)
    target = samples.reduce(frame)
    gray = _gray(target)
    h, w = gray.shape
    where = np.full((h, w), 255, np.uint8)
    if ignore is not None:
        centre = (round(ignore[1] / samples.factor), round(ignore[0] / samples.factor))
        cv2.circle(where, centre, round(0.3 * min(h, w)), 0, -1)
    target_features = _features(gray, where)
    aligned = []
    for image, other in zip(samples.frames, samples.features, strict=True):
        matrix = _alignment(target_features, other)
        if matrix is not None:
            aligned.append(cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_CONSTANT,
                                          borderValue=(np.nan,) * 3))
    if len(aligned) < _MIN_FRAMES:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels no sample covers
        median = np.nanmedian(np.stack(aligned), axis=0)
    diff = np.abs(target - median).sum(axis=2)
    diff[np.isnan(diff)] = 0
    noise = float(np.median(diff[::3, ::3]))
    threshold = int(np.clip(4.0 * noise + 18.0, 24, 90))
    return diff, threshold, samples.factor


def moving_region(
    frame: np.ndarray, context: np.ndarray, row: int, col: int
) -> np.ndarray | None:
    """The moving region under the full-resolution pixel ``(row, col)``, at full resolution
    (a rough hint), or None when nothing credible moves there (no motion, or motion over
    half the frame)."""
    found = difference(frame, context, ignore=(row, col))
    if found is None:
        return None
    diff, threshold, factor = found
    h, w = diff.shape
    r, c = min(h - 1, int(row / factor)), min(w - 1, int(col / factor))
    moving = _open(diff > threshold)
    region = _component_at(moving, r, c, search=2)
    if region is None:
        return None
    area = np.count_nonzero(region)
    if area < max(12, 2e-3 * h * w) or area > 0.5 * h * w:
        return None
    full = cv2.resize(region.astype(np.float32), (frame.shape[1], frame.shape[0]),
                      interpolation=cv2.INTER_LINEAR) > 0.5
    return full
