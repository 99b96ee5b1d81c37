"""Mask geometry shared by the vision modules: boxes, binary morphology, components.

A mask is an ``(h, w)`` bool array and a ``Box`` its ``(row0, row1, col0, col1)``
(half-open). Operations on full-size masks work on a crop around the mask, so their cost
follows the object's size rather than the frame's.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

Box = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open)

_EIGHT = np.ones((3, 3), bool)


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


def _reduced_coverage(mask: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of each ``factor``-sized block covered by ``mask`` (float64)."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    if factor > 1:
        image = image.reduce(factor)
    return np.asarray(image, np.float64) / 255.0
