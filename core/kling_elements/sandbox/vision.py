"""Classical image processing behind the sandbox: click segmentation, tracking and the edits.

No learned models: colour statistics in CIE Lab, a temporal-median background model,
connected components, template matching and temporal fill. It is meant for clips like the
ones Kling edits in the sandbox demo (static camera, a distinct moving element), where it
is accurate; on hard footage it degrades to plausible rather than correct masks, never to
an exception.

Conventions shared by every function:

- a frame is ``(h, w, 3)`` uint8 RGB, a video ``(n, h, w, 3)`` uint8, a mask ``(h, w)``
  bool and a mask video ``(n, h, w)`` bool;
- a normalized point ``(x, y)`` in [0, 1] ((0, 0) top-left) is the pixel
  ``(col, row) = (round(x * (w - 1)), round(y * (h - 1)))`` (see ``point_to_pixel``), so
  ``(1, 1)`` is the bottom-right pixel;
- inputs are never modified; each edit returns a new video of the same shape.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage, signal

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

Box = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)

_EIGHT = np.ones((3, 3), bool)
_BG_SAMPLES = 15
_MIN_MODEL_FRAMES = 5
_PALETTE = ((255, 64, 64), (64, 160, 255), (80, 220, 100), (255, 200, 40), (200, 90, 255))


# ================================================================ geometry helpers


def point_to_pixel(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """Map a normalized point to the ``(col, row)`` pixel it designates, clamped inside."""
    col = round(float(x) * (width - 1))
    row = round(float(y) * (height - 1))
    return min(max(col, 0), width - 1), min(max(row, 0), height - 1)


def _bbox(mask: np.ndarray) -> Box | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _pad_box(box: Box, pad: int, shape: tuple[int, ...]) -> Box:
    r0, r1, c0, c1 = box
    return max(0, r0 - pad), min(shape[0], r1 + pad), max(0, c0 - pad), min(shape[1], c1 + pad)


def _union_box(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _sl(box: Box) -> tuple[slice, slice]:
    return slice(box[0], box[1]), slice(box[2], box[3])


def _grow_once(mask: np.ndarray, square: bool) -> np.ndarray:
    """One step of binary dilation by a 3x3 square or a plus-shaped cross (numpy slicing:
    an order of magnitude faster than scipy's generic morphology on small crops)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    source = out.copy() if square else mask
    out[:, 1:] |= source[:, :-1]
    out[:, :-1] |= source[:, 1:]
    return out


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """Dilation by an octagon of radius ``steps`` (alternating cross and square steps); for
    large radii a square, whose cost does not depend on the radius."""
    if steps > 4:
        grown = ndimage.maximum_filter1d(mask.view(np.uint8), 2 * steps + 1, axis=0)
        return ndimage.maximum_filter1d(grown, 2 * steps + 1, axis=1).view(bool)
    for step in range(steps):
        mask = _grow_once(mask, square=step % 2 == 1)
    return mask


def _shrink(mask: np.ndarray, steps: int) -> np.ndarray:
    """Erosion by an octagon of radius ``steps``; the array border does not erode."""
    return ~_grow(~mask, steps)


def _open(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    return _grow(_shrink(mask, steps), steps)


def _close(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """Closing that does not glue the object to the array border."""
    padded = np.pad(mask, steps + 1)
    return _shrink(_grow(padded, steps), steps)[steps + 1 : -steps - 1, steps + 1 : -steps - 1]


def _fill_holes(mask: np.ndarray, max_hole: float | None = None) -> np.ndarray:
    """Fill background pockets that do not reach the array border (only those of at most
    ``max_hole`` pixels when given)."""
    labels, count = ndimage.label(~mask)
    if count == 0:
        return mask
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    hole = np.ones(count + 1, bool)
    hole[edge] = False
    hole[0] = False
    if max_hole is not None:
        hole &= np.bincount(labels.ravel(), minlength=count + 1) <= max_hole
    return mask | hole[labels]


def _max_filter(values: np.ndarray, steps: int) -> np.ndarray:
    """Grey dilation (local maximum) over a (2*steps+1)^2 square."""
    out = values.copy()
    for _ in range(steps):
        source = out.copy()
        np.maximum(out[1:], source[:-1], out=out[1:])
        np.maximum(out[:-1], source[1:], out=out[:-1])
        source = out.copy()
        np.maximum(out[:, 1:], source[:, :-1], out=out[:, 1:])
        np.maximum(out[:, :-1], source[:, 1:], out=out[:, :-1])
    return out


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Octagonal dilation of a full-size mask, computed only around it."""
    out = np.zeros_like(mask, dtype=bool)
    box = _bbox(mask)
    if box is None:
        return out
    steps = max(0, round(radius))
    crop = _sl(_pad_box(box, steps + 1, mask.shape))
    out[crop] = _grow(mask[crop], steps)
    return out


def _shift_mask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a mask by whole pixels; what leaves the frame is lost, what enters is empty."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def _centroid(mask: np.ndarray) -> np.ndarray:
    box = _bbox(mask)
    if box is None:
        return np.zeros(2)
    rows, cols = np.nonzero(mask[_sl(box)])
    return np.array([rows.mean() + box[0], cols.mean() + box[2]])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _component_at(mask: np.ndarray, row: int, col: int, search: int = 0) -> np.ndarray | None:
    """The 8-connected component of ``mask`` containing (row, col), or the nearest one
    within ``search`` pixels; None when there is none."""
    if not mask[row, col]:
        if search <= 0:
            return None
        r0, r1 = max(0, row - search), min(mask.shape[0], row + search + 1)
        c0, c1 = max(0, col - search), min(mask.shape[1], col + search + 1)
        rows, cols = np.nonzero(mask[r0:r1, c0:c1])
        if rows.size == 0:
            return None
        nearest = np.argmin((rows + r0 - row) ** 2 + (cols + c0 - col) ** 2)
        row, col = int(rows[nearest] + r0), int(cols[nearest] + c0)
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    return labels == labels[row, col]


# ================================================================ input checks


def _check_frame(frame: np.ndarray) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB frame, got shape {array.shape}")
    return array if array.dtype == np.uint8 else np.clip(array, 0, 255).astype(np.uint8)


def _check_video(frames: np.ndarray) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"expected an (n, h, w, 3) RGB video, got shape {array.shape}")
    return array if array.dtype == np.uint8 else np.clip(array, 0, 255).astype(np.uint8)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask.astype(bool, copy=False)
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((width, height), Image.Resampling.NEAREST)) > 127


def _fit_masks(masks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(n, h, w)`` bool masks matching the video; a single ``(h, w)`` mask applies to every
    frame, and masks of another resolution are resized (nearest)."""
    n, h, w = shape[:3]
    if masks is None:
        raise ValueError("this edit needs the selection's masks, got None")
    array = np.asarray(masks)
    if array.ndim == 2:
        return np.broadcast_to(_resize_mask(array, h, w), (n, h, w))
    if array.ndim != 3 or array.shape[0] != n:
        raise ValueError(f"expected ({n}, h, w) masks for a {n}-frame video, got {array.shape}")
    if array.shape[1:] == (h, w):
        return array.astype(bool, copy=False)
    return np.stack([_resize_mask(m, h, w) for m in array])


# ================================================================ colour


def _srgb_lut() -> np.ndarray:
    values = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
    return linear.astype(np.float32)


_LINEAR = _srgb_lut()
_RGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
    np.float32,
) / np.array([[0.95047], [1.0], [1.08883]], np.float32)


def _lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) as float32; Euclidean distances in it approximate perceived difference."""
    xyz = _LINEAR[image] @ _RGB_TO_XYZ.T
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def _blur(image: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """Light Gaussian blur: tames noise and texture without moving edges (it is symmetric,
    so an edge's half-way point stays put)."""
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


# ================================================================ background model


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
        diff = np.abs(frame[crop].astype(np.int16) - self.image[crop].astype(np.int16))
        return diff.sum(axis=2, dtype=np.int16)

    def foreground(self, frame: np.ndarray, where: Box | tuple[slice, slice] | None = None):
        return self.difference(frame, where) > self.threshold


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


# ================================================================ segmentation


def segment(
    frame: np.ndarray,
    points: Sequence[tuple[float, float]],
    *,
    context: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Masks of the objects under normalized ``points`` on ``frame``.

    Each point grows one region: with ``context`` (the whole video, same resolution) the
    moving foreground component under the point when there is one; otherwise (or for a still
    object) a colour region grown in Lab from the seed with the tolerance chosen where the
    region's area is stable (before it leaks into the background). Regions that overlap are
    merged into one object; the result lists disjoint objects in the order of the first point
    that produced each. Every point yields a non-empty region; no points yields ``[]``.
    """
    frame = _check_frame(frame)
    if len(points) == 0:
        return []
    h, w = frame.shape[:2]
    model = _context_model(None if context is None else np.asarray(context), frame.shape)
    lab: np.ndarray | None = None
    regions = []
    for x, y in points:
        col, row = point_to_pixel(x, y, w, h)
        region = _motion_region(frame, model, row, col) if model else None
        if region is None:
            if lab is None:
                lab = _lab(_blur(frame))
            region = _colour_region(lab, row, col)
        regions.append(region)
    return _merge_overlapping(regions)


def _merge_overlapping(regions: list[np.ndarray]) -> list[np.ndarray]:
    objects: list[np.ndarray] = []
    for region in regions:
        hits = [k for k, obj in enumerate(objects) if np.any(obj & region)]
        if not hits:
            objects.append(region.copy())
            continue
        merged = objects[hits[0]] | region
        for k in reversed(hits[1:]):
            merged |= objects.pop(k)
        objects[hits[0]] = merged
    return objects


def _min_area(h: int, w: int) -> int:
    return max(16, int(2e-4 * h * w))


def _motion_region(frame: np.ndarray, model: BackgroundModel, row: int, col: int):
    """Foreground component under the seed, holes filled; None if the seed is not moving."""
    h, w = frame.shape[:2]
    fg = _open(model.foreground(frame))
    region = _component_at(fg, row, col, search=max(2, round(min(h, w) / 240)))
    if region is None:
        return None
    box = _pad_box(_bbox(region), 4, region.shape)
    diff = model.difference(frame, box)
    region[_sl(box)] = _half_contrast(diff, region[_sl(box)], model.threshold)
    area = np.count_nonzero(region)
    if area < _min_area(h, w) or area > 0.5 * h * w or not region[row, col]:
        return None
    return region


def _half_contrast(diff: np.ndarray, region: np.ndarray, threshold: int) -> np.ndarray:
    """Snap a foreground region's outline to where the difference from the background is
    half the object's local contrast: the anti-aliased edge pixels that are mostly
    background leave, so the outline sits where the object covers half of the pixel."""
    local_max = _max_filter(np.where(region, diff, 0), 2)
    kept = region & (diff > np.maximum(threshold, local_max // 2))
    return _fill_holes(_close(kept))


def _seed_colour(lab: np.ndarray, row: int, col: int) -> np.ndarray:
    """Seed colour: median of the 3x3 pixels around the click (robust to one odd pixel, and
    small enough not to mix two surfaces when the click lands near an edge)."""
    window = lab[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2].reshape(-1, 3)
    return np.median(window, axis=0)


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return image
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _choose_tolerance(distance: np.ndarray, row: int, col: int) -> float:
    """Pick the colour tolerance for the region grown from (row, col).

    Tolerances rise geometrically and the region's area is recorded for each. The object is
    the first *stable* region (MSER-like: the area barely changes across neighbouring
    tolerances) before any leak into the surroundings. The tolerance returned is the middle
    of that region's plateau (the range over which the area stays within 15%), about half
    the object's contrast with its surroundings, so the outline passes where edge pixels
    are half object, half background.
    """
    h, w = distance.shape
    levels = 2.0 * 1.15 ** np.arange(31)  # 2 .. 133 (Lab units)
    areas = []
    for tol in levels:
        region = _component_at(distance < tol, row, col, search=1)
        areas.append(0 if region is None else int(np.count_nonzero(region)))
        if areas[-1] > 0.5 * h * w:
            break
    area = np.array(areas, float)
    stable = _most_stable_level(area, _min_area(h, w), 0.5 * h * w)
    if stable is None:
        grown = np.flatnonzero((area > 0) & (area <= 0.5 * h * w))
        return float(levels[grown[-1]] if grown.size else levels[0])
    low = high = stable
    while low > 0 and area[low - 1] * 1.15 >= area[stable]:
        low -= 1
    while high + 1 < len(area) and area[high + 1] <= 1.15 * area[stable]:
        high += 1
    return float(levels[low] + levels[high]) / 2


def _most_stable_level(area: np.ndarray, min_area: float, max_area: float) -> int | None:
    """Index of the first local minimum of the relative growth rate below 5% (else the
    global minimum), among levels whose regions are neither specks nor floods."""
    d = 2
    index = np.arange(d, len(area) - d)
    if index.size == 0:
        return None
    growth = (area[index + d] - area[index - d]) / np.maximum(area[index], 1)
    valid = (area[index] >= min_area) & (area[index + d] <= max_area)
    if not valid.any():
        return None
    growth = np.where(valid, growth, np.inf)
    padded = np.concatenate([[np.inf], growth, [np.inf]])
    minima = (growth <= padded[:-2]) & (growth <= padded[2:]) & (growth < 0.05)
    pick = int(np.flatnonzero(minima)[0]) if minima.any() else int(np.argmin(growth))
    return int(index[pick])


def _colour_region(lab: np.ndarray, row: int, col: int) -> np.ndarray:
    """Region of similar colour around the seed, cleaned (opened, holes filled, connected)."""
    h, w = lab.shape[:2]
    colour = _seed_colour(lab, row, col)
    factor = max(1, math.ceil(max(h, w) / 480))
    small = _downsample(lab, factor)
    small_distance = np.linalg.norm(small - colour, axis=2)
    srow, scol = min(row // factor, small.shape[0] - 1), min(col // factor, small.shape[1] - 1)
    tolerance = _choose_tolerance(small_distance, srow, scol)
    distance = np.linalg.norm(lab - colour, axis=2)
    region = _component_at(distance < tolerance, row, col, search=max(2, factor))
    if region is None:
        region = _dilate(_point_mask(h, w, row, col), max(2, round(min(h, w) / 120)))
    return _clean_region(region, row, col)


def _point_mask(h: int, w: int, row: int, col: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[row, col] = True
    return mask


def _clean_region(region: np.ndarray, row: int, col: int) -> np.ndarray:
    """Fill holes, cut thin leaks (opening) and keep the component at the seed.

    A region touching the frame border is likely background (floor, wall, sky): only its
    specks are filled, so the objects standing on it stay out of it."""
    h, w = region.shape

    def _inside(box: Box) -> bool:
        return box[0] > 0 and box[2] > 0 and box[1] < h and box[3] < w

    box = _bbox(region)
    crop = _sl(_pad_box(box, 2, region.shape))
    filled = np.zeros_like(region)
    filled[crop] = _fill_holes(region[crop], max_hole=None if _inside(box) else 1e-3 * h * w)
    radius = max(1, round(min(h, w) / 360))
    opened = np.zeros_like(region)
    opened[crop] = _open(filled[crop], radius)
    kept = _component_at(opened, row, col, search=radius + 1)
    return kept if kept is not None else filled


# ================================================================ tracking


def track(frames: np.ndarray, key_masks: dict[int, np.ndarray]) -> np.ndarray:
    """Propagate the selection from key frames to every frame: ``(n, h, w)`` bool.

    Key frames keep their mask exactly. Every other frame is reached from its nearest key
    frame, frame by frame (forward and backward). Each step takes the foreground components
    (temporal-median background subtraction) that overlap the motion-predicted mask; when
    they do not fit (static object, moving camera, occlusion) the last such mask is shifted
    to where template matching of the object's own pixels finds it. Key masks of another
    resolution than the video are resized. An empty key mask yields empty masks around it.
    """
    frames = _check_video(frames)
    n, h, w = frames.shape[:3]
    keys = {int(k): _resize_mask(np.asarray(m), h, w) for k, m in key_masks.items()}
    bad = [k for k in keys if not 0 <= k < n]
    if bad:
        raise ValueError(f"key frame indices {bad} are outside 0..{n - 1}")
    out = np.zeros((n, h, w), bool)
    if not keys:
        return out
    model = background_model(frames) if n >= _MIN_MODEL_FRAMES else None
    order = sorted(keys)
    for k in order:
        out[k] = keys[k]
    _propagate(frames, model, out, order[0], 0, -1)
    for a, b in itertools.pairwise(order):
        middle = (a + b) // 2
        _propagate(frames, model, out, a, middle, 1)
        _propagate(frames, model, out, b, middle + 1, -1)
    _propagate(frames, model, out, order[-1], n - 1, 1)
    return out


def _propagate(
    frames: np.ndarray,
    model: BackgroundModel | None,
    out: np.ndarray,
    start: int,
    stop: int,
    step: int,
) -> None:
    """Fill ``out[start + step .. stop]`` (inclusive) from ``out[start]``.

    Shift-mode frames match the *anchor* (the last frame whose mask came from a key or from
    background subtraction) rather than the previous frame, so errors do not accumulate."""
    velocity = np.zeros(2)
    anchor, anchor_mask, offset = start, out[start].copy(), np.zeros(2)
    for t in range(start + step, stop + step, step):
        previous = out[t - step]
        if not previous.any():
            return
        dy, dx = np.round(velocity).astype(int)
        predicted = _shift_mask(previous, dy, dx) if dy or dx else previous
        candidate = _motion_candidate(frames[t], model, predicted, previous) if model else None
        if candidate is None:
            offset = _displacement(frames[anchor], frames[t], anchor_mask, offset + velocity)
            whole = np.round(offset).astype(int)
            candidate = _shift_mask(anchor_mask, int(whole[0]), int(whole[1]))
        else:
            anchor, anchor_mask, offset = t, candidate, np.zeros(2)
        out[t] = candidate
        velocity = _centroid(candidate) - _centroid(previous) if candidate.any() else velocity


def _motion_candidate(
    frame: np.ndarray, model: BackgroundModel, predicted: np.ndarray, previous: np.ndarray
) -> np.ndarray | None:
    """Foreground components around the prediction, if they plausibly are the object.

    Works on a crop around the prediction; a large crop is subsampled (to ~120k pixels) and
    the result scaled back, so the cost per frame stays bounded for large objects."""
    pred_box = _bbox(predicted)
    if pred_box is None:
        return None
    box = _union_box(pred_box, _bbox(previous))
    size = max(box[1] - box[0], box[3] - box[2])
    crop = _pad_box(box, max(8, int(0.4 * size)), frame.shape)
    height, width = crop[1] - crop[0], crop[3] - crop[2]
    step = max(1, math.ceil(math.sqrt(height * width / 120_000)))
    sample = (slice(crop[0], crop[1], step), slice(crop[2], crop[3], step))
    local = _select_foreground(
        model.difference(frame, sample), predicted[sample], previous[sample], model.threshold
    )
    if local is None:
        return None
    result = np.zeros_like(previous)
    result[_sl(crop)] = _upsample_mask(local, step, (height, width))
    return result


def _select_foreground(
    diff: np.ndarray, pred: np.ndarray, previous: np.ndarray, threshold: int
) -> np.ndarray | None:
    """The foreground components (``diff > threshold``) that overlap the predicted mask, with
    their outline snapped to half contrast; None when they are not a credible continuation
    (foreground everywhere, or an area/overlap too different from the previous mask)."""
    fg = _open(diff > threshold)
    if np.mean(fg & ~_grow(pred, 3)) > 0.3:
        return None  # foreground everywhere: moving camera, flicker or noise
    labels, count = ndimage.label(fg, structure=_EIGHT)
    if count == 0:
        return None
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    overlap = np.bincount(labels[pred], minlength=count + 1)
    keep = (overlap > 0) & ((overlap >= 0.25 * areas) | (overlap >= 0.1 * pred.sum()))
    keep[0] = False
    if not keep.any():
        return None
    local = _half_contrast(diff, keep[labels], threshold)
    expected = max(1, np.count_nonzero(previous))
    if np.count_nonzero(local) > 1.5 * expected:
        box = _bbox(pred)
        local &= _grow(pred, max(3, round(0.1 * max(box[1] - box[0], box[3] - box[2]))))
    area = np.count_nonzero(local)
    if not 0.67 * expected <= area <= 1.5 * expected or _iou(local, pred) < 0.3:
        return None
    return local


def _upsample_mask(mask: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Scale a subsampled mask back to ``shape`` with smooth (bilinear) outlines."""
    if step == 1:
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    size = (mask.shape[1] * step, mask.shape[0] * step)
    grown = np.asarray(image.resize(size, Image.Resampling.BILINEAR)) > 127
    return grown[: shape[0], : shape[1]]


def _reduced_gray(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Grey levels of ``rgb`` averaged over ``factor``-sized blocks (float64)."""
    if factor > 1:
        rgb = _reduce_rgb(rgb, factor)
    return _gray(rgb).astype(np.float64)


def _reduced_coverage(mask: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of each ``factor``-sized block covered by ``mask`` (float64)."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    if factor > 1:
        image = image.reduce(factor)
    return np.asarray(image, np.float64) / 255.0


def _clamped_crop(image: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``image[r0:r1, c0:c1]`` where the parts outside the image repeat its edge pixels."""
    h, w = image.shape[:2]
    if r1 <= 0 or c1 <= 0 or r0 >= h or c0 >= w:  # entirely outside: clamp coordinates
        return image[np.clip(np.arange(r0, r1), 0, h - 1)][:, np.clip(np.arange(c0, c1), 0, w - 1)]
    a0, a1, b0, b1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    pad = ((a0 - r0, r1 - a1), (b0 - c0, c1 - b1)) + ((0, 0),) * (image.ndim - 2)
    inside = image[a0:a1, b0:b1]
    return np.pad(inside, pad, mode="edge") if any(sum(p) for p in pad) else inside


def _displacement(
    before: np.ndarray, after: np.ndarray, mask: np.ndarray, guess: np.ndarray
) -> np.ndarray:
    """Sub-pixel (dy, dx) by which the object under ``mask`` moved from ``before`` to
    ``after``: the shift minimizing the masked sum of squared grey-level differences
    (template matching through FFT correlations), searched around ``guess``. Only the
    object's own pixels are compared, so a static background cannot pin it in place."""
    box = _bbox(mask)
    size = max(box[1] - box[0], box[3] - box[2])
    factor = max(1, math.ceil(size / 96))
    reach = min(0.25 * size, 0.1 * size + 24) + float(np.abs(guess).max())
    radius = max(4, math.ceil(reach / factor))
    rows, cols = (box[1] - box[0]) // factor * factor, (box[3] - box[2]) // factor * factor
    if rows == 0 or cols == 0:
        return np.asarray(guess, float)
    region = (slice(box[0], box[0] + rows), slice(box[2], box[2] + cols))
    template = _reduced_gray(before[region], factor)
    weight = _reduced_coverage(mask[region], factor)
    gy, gx = (int(v) for v in np.round(guess))
    pad = radius * factor
    top, left = box[0] + gy - pad, box[2] + gx - pad
    window = _clamped_crop(after, top, top + rows + 2 * pad, left, left + cols + 2 * pad)
    search = _reduced_gray(window, factor)
    cross = signal.fftconvolve(search, (weight * template)[::-1, ::-1], mode="valid")
    energy = signal.fftconvolve(search**2, weight[::-1, ::-1], mode="valid")
    ssd = energy - 2 * cross + float(np.sum(weight * template**2))
    # Among equally good matches (flat or repetitive content) take the one nearest the guess.
    near = ssd <= ssd.min() + 0.5 * float(weight.sum())
    grid_rows, grid_cols = np.nonzero(near)
    closest = np.argmin((grid_rows - radius) ** 2 + (grid_cols - radius) ** 2)
    peak = (int(grid_rows[closest]), int(grid_cols[closest]))
    offset = np.array([_subpixel(-ssd, peak, axis) for axis in (0, 1)]) - radius
    return offset * factor + np.array([gy, gx], float)


def _subpixel(surface: np.ndarray, peak: tuple[int, ...], axis: int) -> float:
    """Peak position along ``axis`` refined by a parabola through its two neighbours."""
    if not 0 < peak[axis] < surface.shape[axis] - 1:
        return float(peak[axis])
    index = list(peak)
    index[axis] = peak[axis] - 1
    left = surface[tuple(index)]
    index[axis] = peak[axis] + 1
    right = surface[tuple(index)]
    centre = surface[peak]
    denominator = left - 2 * centre + right
    offset = 0.5 * (left - right) / denominator if denominator < 0 else 0.0
    return float(peak[axis] + np.clip(offset, -0.5, 0.5))


# ================================================================ removal


@dataclass(frozen=True)
class _FillRegion:
    """Pixels of one frame to replace, within ``box``: ``area`` (bool) and the weight of the
    replacement per pixel (``alpha``, float32, 0 outside ``area``)."""

    box: Box
    area: np.ndarray
    alpha: np.ndarray


def _fill_region(mask: np.ndarray, core: int, feather: int) -> _FillRegion | None:
    """The mask grown by ``core`` px (weight 1) plus a ``feather`` px ramp (weights < 1)."""
    box = _bbox(mask)
    if box is None:
        return None
    box = _pad_box(box, core + feather + 1, mask.shape)
    grown = mask[_sl(box)]
    steps = np.zeros(grown.shape, np.uint8)
    for step in range(1, core + feather + 1):
        wider = _grow_once(grown, square=step % 2 == 0)
        steps[wider & ~grown] = step
        grown = wider
    ramp = (core + feather + 1 - steps.astype(np.float32)) / (feather + 1)
    return _FillRegion(box, grown, np.where(grown, np.clip(ramp, 0.0, 1.0), np.float32(0)))


def _temporal_sources(
    regions: list[_FillRegion | None],
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """For each region pixel: the nearest earlier and later frame where that pixel is not
    to be replaced (-1 / n when there is none). Two passes over time, touching only the
    union of the regions' boxes."""
    n = len(regions)
    boxes = [r.box for r in regions if r is not None]
    if not boxes:
        return [None] * n
    union = boxes[0]
    for box in boxes[1:]:
        union = _union_box(union, box)
    coords = [None if r is None else _region_coords(r, union) for r in regions]
    before = _sweep(coords, union, range(n), -1)
    after = _sweep(coords, union, range(n - 1, -1, -1), n)
    return [None if b is None else (b, a) for b, a in zip(before, after, strict=True)]


def _region_coords(region: _FillRegion, union: Box) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(region.area)
    return rows + (region.box[0] - union[0]), cols + (region.box[2] - union[2])


def _sweep(coords, union: Box, order: range, missing: int) -> list[np.ndarray | None]:
    latest = np.full((union[1] - union[0], union[3] - union[2]), missing, np.int32)
    found: list[np.ndarray | None] = [None] * len(coords)
    for t in order:
        if coords[t] is None:
            latest.fill(t)
            continue
        rows, cols = coords[t]
        found[t] = latest[rows, cols].copy()
        latest.fill(t)
        latest[rows, cols] = found[t]
    return found


def remove(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Erase the masked object from every frame.

    The mask is first grown by ~0.4% of the short side (the object's anti-aliased edge and
    small tracking errors go too) with a short feathered transition. Each replaced pixel is
    interpolated in time between the nearest earlier and later frames where that pixel is
    clear of the (grown) mask, so with a static camera the true background reappears; pixels
    that no frame reveals are inpainted from their surroundings (nearest neighbour, smoothed).
    """
    frames = _check_video(frames)
    masks = _fit_masks(masks, frames.shape)
    n, h, w = frames.shape[:3]
    core = max(2, round(min(h, w) / 240))
    feather = max(1, round(min(h, w) / 360))
    regions = [_fill_region(masks[t], core, feather) for t in range(n)]
    sources = _temporal_sources(regions)
    out = frames.copy()
    for t, region in enumerate(regions):
        if region is not None:
            _fill_frame(out, frames, t, region, sources[t])
    return out


def _fill_frame(
    out: np.ndarray,
    frames: np.ndarray,
    t: int,
    region: _FillRegion,
    source: tuple[np.ndarray, np.ndarray],
) -> None:
    """Replace the region's pixels of ``out[t]``: temporal interpolation where some frame
    reveals the pixel, spatial inpainting elsewhere; blended by the region's weights."""
    rows, cols = np.nonzero(region.area)
    before, after = source
    known = (before >= 0) | (after < len(frames))
    crop = out[t][_sl(region.box)]
    fill = crop.astype(np.float32)
    if known.any():
        fill[rows[known], cols[known]] = _interpolate(
            frames, t, region.box, rows[known], cols[known], before[known], after[known]
        )
    if not known.all():
        fill = _inpaint_within(out[t], region.box, fill, rows[~known], cols[~known])
    alpha = region.alpha[..., None]
    crop[:] = np.clip(alpha * fill + (1 - alpha) * crop + 0.5, 0, 255)


def _interpolate(
    frames: np.ndarray,
    t: int,
    box: Box,
    rows: np.ndarray,
    cols: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
) -> np.ndarray:
    """Per pixel, linear interpolation in time between the frames ``before`` and ``after``
    (whichever exists when only one does); float32 ``(k, 3)``."""
    rows, cols = rows + box[0], cols + box[2]
    has_before, has_after = before >= 0, after < len(frames)
    both = has_before & has_after
    weight = np.where(both, (t - before) / np.maximum(after - before, 1), has_after)
    weight = weight.astype(np.float32)[:, None]
    value = np.zeros((rows.size, 3), np.float32)
    sel = has_before
    value[sel] += (1 - weight[sel]) * frames[before[sel], rows[sel], cols[sel]]
    sel = has_after
    value[sel] += weight[sel] * frames[after[sel], rows[sel], cols[sel]]
    return value


def _inpaint_within(
    frame: np.ndarray, box: Box, fill: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Inpaint the (box-local) pixels ``rows, cols`` of ``fill``, using the frame around the
    box as extra context so that even a box that is all hole has known surroundings."""
    outer = _pad_box(box, 16, frame.shape)
    context = frame[_sl(outer)].astype(np.float32)
    inner = (
        slice(box[0] - outer[0], box[1] - outer[0]),
        slice(box[2] - outer[2], box[3] - outer[2]),
    )
    context[inner] = fill
    hole = np.zeros(context.shape[:2], bool)
    hole[rows + inner[0].start, cols + inner[1].start] = True
    return _inpaint(context, hole)[inner]


def _inpaint(image: np.ndarray, hole: np.ndarray, budget: int = 40_000) -> np.ndarray:
    """``image`` (float32) with its ``hole`` pixels filled from the nearest pixels outside
    it, then smoothed (the other pixels keep their values).

    Large areas are filled at a reduced resolution (at most ~``budget`` pixels) and scaled
    back: the fill is smooth anyway, and the cost per frame stays bounded. With no pixel
    outside the hole, the image is returned unchanged."""
    h, w = hole.shape
    factor = max(1, math.ceil(math.sqrt(hole.size / budget)))
    if factor > 1:
        small = _reduce_rgb(np.clip(image + 0.5, 0, 255).astype(np.uint8), factor)
        coverage = _reduced_coverage(hole, factor)
    else:
        small, coverage = image.astype(np.float32), hole.astype(np.float32)
    small_hole = coverage > 0
    if small_hole.all():
        small_hole = coverage > 0.5
    if small_hole.all():
        return image
    _, (near_rows, near_cols) = ndimage.distance_transform_edt(small_hole, return_indices=True)
    filled = small[near_rows, near_cols]
    for _ in range(3):
        blurred = ndimage.uniform_filter(filled, size=(5, 5, 1))
        filled[small_hole] = blurred[small_hole]
    if factor > 1:
        size = (filled.shape[1] * factor, filled.shape[0] * factor)
        image8 = Image.fromarray(np.clip(filled + 0.5, 0, 255).astype(np.uint8))
        filled = np.asarray(image8.resize(size, Image.Resampling.BILINEAR), np.float32)
    return np.where(hole[..., None], filled[:h, :w], image)


def _reduce_rgb(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means of a uint8 RGB image (Pillow's reduce; partial edge blocks included)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(factor), np.float32)


# ================================================================ compositing


@dataclass(frozen=True)
class _Subject:
    """The reference image's subject, cropped to it, with a soft alpha matte."""

    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def image(self) -> Image.Image:
        rgba = np.dstack([self.rgb, np.round(self.alpha * 255).astype(np.uint8)])
        return Image.fromarray(rgba)


class _Scaler:
    """Resized copies of a subject, cached by size (a tracked box keeps nearly the same
    size from frame to frame, so most frames reuse a previous resize)."""

    def __init__(self, subject: _Subject) -> None:
        self._image = subject.image
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        key = (width, height)
        if key not in self._cache:
            image = self._image.resize(key, Image.Resampling.LANCZOS, reducing_gap=3.0)
            array = np.asarray(image, np.float32)
            self._cache[key] = (array[..., :3], array[..., 3] / 255.0)
        return self._cache[key]


def _extract_subject(reference: np.ndarray) -> _Subject:
    """Separate the subject from a plain background: pixels whose colour differs from the
    border's median colour (or the image's own alpha channel when it has one)."""
    ref = np.asarray(reference)
    if ref.ndim == 2:
        ref = np.repeat(ref[..., None], 3, axis=2)
    if ref.dtype != np.uint8:
        ref = np.clip(ref, 0, 255).astype(np.uint8)
    rgb = np.ascontiguousarray(ref[..., :3])
    if ref.shape[2] == 4 and ref[..., 3].min() < 250:
        alpha = ref[..., 3].astype(np.float32) / 255.0
        return _crop_subject(rgb, alpha, alpha > 0.05)
    lab = _lab(rgb)
    h, w = rgb.shape[:2]
    ring = max(2, round(min(h, w) * 0.02))
    border = np.concatenate(
        [
            lab[:ring].reshape(-1, 3),
            lab[-ring:].reshape(-1, 3),
            lab[:, :ring].reshape(-1, 3),
            lab[:, -ring:].reshape(-1, 3),
        ]
    )
    background = np.median(border, axis=0)
    spread = float(np.percentile(np.linalg.norm(border - background, axis=1), 95))
    distance = np.linalg.norm(lab - background, axis=2)
    solid = _fill_holes(_open(distance > max(10.0, 2 * spread + 4)))
    solid = _significant_components(solid)
    if np.count_nonzero(solid) < 0.01 * h * w:
        return _Subject(rgb, np.ones((h, w), np.float32))
    alpha = ndimage.gaussian_filter(solid.astype(np.float32), 0.8)
    return _crop_subject(rgb, alpha, solid)


def _significant_components(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=_EIGHT)
    if count <= 1:
        return mask
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    return (areas >= 0.05 * areas.max())[labels]


def _crop_subject(rgb: np.ndarray, alpha: np.ndarray, solid: np.ndarray) -> _Subject:
    box = _bbox(solid)
    if box is None:
        return _Subject(rgb, np.ones(rgb.shape[:2], np.float32))
    box = _pad_box(box, 1, solid.shape)
    return _Subject(rgb[_sl(box)].copy(), alpha[_sl(box)].astype(np.float32))


def _paste(
    frame: np.ndarray,
    rgb: np.ndarray,
    alpha: np.ndarray,
    top: int,
    left: int,
    protect: np.ndarray | None = None,
) -> None:
    """Alpha-composite a float image onto ``frame`` in place at (top, left), clipped to the
    frame; pixels of ``protect`` stay in front (unchanged)."""
    h, w = frame.shape[:2]
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(h, top + rgb.shape[0]), min(w, left + rgb.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    src = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
    weight = alpha[src][..., None]
    if protect is not None:
        weight = weight * ~protect[r0:r1, c0:c1, None]
    region = frame[r0:r1, c0:c1].astype(np.float32)
    frame[r0:r1, c0:c1] = np.clip(rgb[src] * weight + region * (1 - weight) + 0.5, 0, 255)


def _mask_boxes(masks: np.ndarray, smooth: int = 2) -> np.ndarray:
    """Per-frame (top, bottom, left, right) of each mask, averaged over +-``smooth`` frames
    (so a composited subject does not jitter); NaN rows where the mask is empty."""
    n = len(masks)
    boxes = np.full((n, 4), np.nan)
    for t in range(n):
        box = _bbox(masks[t])
        if box is not None:
            boxes[t] = box
    smoothed = np.full_like(boxes, np.nan)
    for t in range(n):
        if np.isnan(boxes[t, 0]):
            continue
        window = boxes[max(0, t - smooth) : t + smooth + 1]
        smoothed[t] = np.nanmean(window, axis=0)
    return smoothed


def swap(frames: np.ndarray, masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Replace the masked object with the reference image's subject.

    The object is first removed (see ``remove``); then on every frame where the mask is not
    empty, the subject (segmented from the reference's plain background) is scaled to fit the
    mask's bounding box, keeping its aspect ratio, and composited centred in it.
    """
    frames = _check_video(frames)
    masks = _fit_masks(masks, frames.shape)
    out = remove(frames, masks)
    subject = _extract_subject(reference)
    sw, sh = subject.size
    scaled = _Scaler(subject)
    for t, (top, bottom, left, right) in enumerate(_mask_boxes(masks)):
        if np.isnan(top):
            continue
        scale = min((right - left) / sw, (bottom - top) / sh)
        width, height = max(1, round(sw * scale)), max(1, round(sh * scale))
        rgb, alpha = scaled(width, height)
        row = round((top + bottom) / 2 - height / 2)
        col = round((left + right) / 2 - width / 2)
        _paste(out[t], rgb, alpha, row, col)
    return out


def add(frames: np.ndarray, masks: np.ndarray | None, reference: np.ndarray) -> np.ndarray:
    """Composite the reference image's subject into the scene, ~25% of the frame height tall
    and the same size on every frame.

    With ``masks`` (the selected region), the subject stands beside the region (to its right
    when it fits, else to its left), bottom-aligned with it and following it; the region
    itself stays in front. Without masks (or with all-empty masks) it stands at a fixed place
    in the lower third, right side. Pixels farther than the subject's box are never changed.
    """
    frames = _check_video(frames)
    n, h, w = frames.shape[:3]
    subject = _extract_subject(reference)
    sw, sh = subject.size
    height = max(1, round(0.25 * h))
    width = max(1, round(sw * height / sh))
    if width > 0.45 * w:
        width = max(1, round(0.45 * w))
        height = max(1, round(sh * width / sw))
    rgb, alpha = _Scaler(subject)(width, height)
    fitted = None if masks is None else _fit_masks(masks, frames.shape)
    if fitted is None or not fitted.any():
        places = np.tile([round(0.93 * h) - height, round(0.8 * w - width / 2)], (n, 1))
        fitted = None
    else:
        places = _places_beside(_mask_boxes(fitted), width, height, w)
    out = frames.copy()
    for t in range(n):
        top = int(min(max(places[t, 0], 0), h - height))
        left = int(min(max(places[t, 1], 0), w - width))
        _paste(out[t], rgb, alpha, top, left, None if fitted is None else fitted[t])
    return out


def _places_beside(boxes: np.ndarray, width: int, height: int, frame_width: int) -> np.ndarray:
    """(top, left) per frame beside the region boxes; empty frames reuse the nearest box."""
    valid = ~np.isnan(boxes[:, 0])
    index = np.arange(len(boxes))
    filled = np.column_stack([np.interp(index, index[valid], boxes[valid, k]) for k in range(4)])
    gap = max(4, round(0.02 * frame_width))
    right_fits = np.median(filled[:, 3]) + gap + width <= frame_width
    left = filled[:, 3] + gap if right_fits else filled[:, 2] - gap - width
    top = filled[:, 1] - height
    return np.round(np.column_stack([top, left])).astype(int)


# ================================================================ overlays


def _mask_layers(masks: np.ndarray | list, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Normalize ``masks`` to a list of ``(n, h, w)`` layers: one ``(n, h, w)`` array, a
    ``(k, n, h, w)`` array, a list of ``(n, h, w)`` arrays (one per object) or a list of n
    ``(h, w)`` arrays (one per frame)."""
    if isinstance(masks, np.ndarray):
        layers = [masks] if masks.ndim <= 3 else list(masks)
    else:
        items = [np.asarray(m) for m in masks]
        layers = [np.stack(items)] if items and items[0].ndim == 2 else items
    return [_fit_masks(layer, shape) for layer in layers]


def draw_masks(
    frames: np.ndarray,
    masks: np.ndarray | list,
    color: tuple[int, int, int] = (255, 64, 64),
    alpha: float = 0.5,
) -> np.ndarray:
    """Preview of a selection: masked pixels tinted with ``color`` at ``alpha`` and outlined
    opaquely. Several objects (see ``_mask_layers``) get ``color`` then distinct colours."""
    frames = _check_video(frames)
    layers = _mask_layers(masks, frames.shape)
    h, w = frames.shape[1:3]
    width = max(1, round(min(h, w) / 360))
    colours = [tuple(color)] + [c for c in _PALETTE if c != tuple(color)]
    out = frames.copy()
    for t in range(len(frames)):
        for k, layer in enumerate(layers):
            _tint(out[t], layer[t], np.array(colours[k % len(colours)], np.float32), alpha, width)
    return out


def _tint(frame: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float, width: int):
    box = _bbox(mask)
    if box is None:
        return
    crop = _sl(_pad_box(box, 1, mask.shape))
    local = mask[crop]
    region = frame[crop]
    region[local] = np.clip(region[local] * (1 - alpha) + colour * alpha + 0.5, 0, 255)
    edge = local & ~_shrink(local, width)
    region[edge] = colour.astype(np.uint8)


@lru_cache(maxsize=8)
def _watermark_overlay(text: str, height: int) -> np.ndarray:
    """RGBA uint8 image of the watermark text, about ``height`` px tall."""
    try:
        font = ImageFont.load_default(size=height)
        scale = 1
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: small bitmap font
        font = ImageFont.load_default()
        scale = max(1, round(height / 11))
    stroke = max(1, height // 12) if scale == 1 else 0
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    image = Image.new("RGBA", (x1 - x0 + 2, y1 - y0 + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text(
        (1 - x0, 1 - y0),
        text,
        font=font,
        fill=(255, 255, 255, 190),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 150),
    )
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return np.asarray(image)


def watermark(frames: np.ndarray, text: str = "KLING SANDBOX") -> np.ndarray:
    """Stamp a visible semi-transparent text watermark in the bottom-right corner of every
    frame (scaled to the frame height; shrunk if it would not fit the width)."""
    frames = _check_video(frames)
    n, h, w = frames.shape[:3]
    overlay = _watermark_overlay(text, max(10, round(h / 20)))
    if overlay.shape[1] > 0.9 * w or overlay.shape[0] > 0.5 * h:
        factor = min(0.9 * w / overlay.shape[1], 0.5 * h / overlay.shape[0])
        size = (max(1, int(overlay.shape[1] * factor)), max(1, int(overlay.shape[0] * factor)))
        overlay = np.asarray(Image.fromarray(overlay).resize(size, Image.Resampling.LANCZOS))
    margin = max(2, round(h / 40))
    top, left = h - margin - overlay.shape[0], w - margin - overlay.shape[1]
    rgb = overlay[..., :3].astype(np.float32)
    weight = overlay[..., 3:].astype(np.float32) / 255.0
    out = frames.copy()
    for t in range(n):
        _paste(out[t], rgb, weight[..., 0], top, left)
    return out
