"""Click segmentation: the masks of the objects under normalized points on one frame.

With the whole video as context, what moves under the click (against the still camera's
background, or once a pan is compensated) is a hint that GrabCut turns into the object:
the hint trains the colour models, the cut finds the outline, and a hint that was only
part of the object (a mouth chewing on a still face) grows to the whole. Unless the cut
stands out from its surroundings clearly more than the still camera's foreground (it
filled a hole, dropped a shadow), that foreground and its sharper outline are kept. A
still object (or no context) is cut by appearance alone, from squares around the click;
a flat-coloured region grown from the click competes with those cuts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager

import numpy as np
from scipy import ndimage

from . import _clicks, grabcut, motion
from ._checks import _check_frame
from ._morph import _EIGHT, Box, _bbox, _component_at, _dilate, _fill_holes, _open, _pad_box, _sl
from .background import BackgroundModel, _context_model, _half_contrast
from .colour import _blur, _lab


def point_to_pixel(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """Map a normalized point to the ``(col, row)`` pixel it designates, clamped inside."""
    col = round(float(x) * (width - 1))
    row = round(float(y) * (height - 1))
    return min(max(col, 0), width - 1), min(max(row, 0), height - 1)


def segment(
    frame: np.ndarray,
    points: Sequence[tuple[float, float]],
    *,
    context: np.ndarray | None = None,
    gate: AbstractContextManager | None = None,
) -> list[np.ndarray]:
    """Masks of the objects under normalized ``points`` on ``frame``.

    Each point yields one region: with ``context`` (the whole video, same resolution) the
    object that moves under the point, cut by GrabCut from that motion; otherwise (or for a
    still object) the best of GrabCut's cuts around the point and a colour region grown in
    Lab from it, by how much each stands out from its surroundings. Regions that overlap are
    merged into one object; the result lists disjoint objects in the order of the first
    point that produced each. Every point yields a non-empty region containing it; no points
    yield ``[]``. Deterministic: the same frame, points and context give the same masks.
    When ``frame`` is a view of a read-only ``context`` (as the sandbox passes them), each
    point's region and the frame's features are remembered (``_clicks``): a point cut
    before on that frame costs a look-up, so a click pays for its new points only.
    ``gate`` (a semaphore, say) is held around each point actually cut, never around a
    look-up: a caller can bound how many cuts run at once without queueing look-ups.
    """
    frame = _check_frame(frame)
    if len(points) == 0:
        return []
    clip = None if context is None else np.asarray(context)
    model = _context_model(clip, frame.shape)
    memory = _clicks.memory(clip)
    index = None if memory is None else _clicks.frame_index(frame, clip)
    features = {} if memory is None or index is None else memory.features(index)
    regions = []
    for x, y in points:
        def cut(x: float = x, y: float = y) -> np.ndarray:
            with gate if gate is not None else contextlib.nullcontext():
                return _point_region(frame, (x, y), clip, model, features)

        if memory is None or index is None:
            regions.append(cut())
        else:
            regions.append(memory.region(index, (x, y), cut))
    return _merge_overlapping(regions)


def _point_region(
    frame: np.ndarray,
    point: tuple[float, float],
    clip: np.ndarray | None,
    model: BackgroundModel | None,
    features: dict,
) -> np.ndarray:
    """The region of one point (see ``segment``); ``features`` holds what the frame's
    points share, filled as needed."""
    h, w = frame.shape[:2]
    col, row = point_to_pixel(*point, w, h)
    work = _clicks.feature(features, "work", lambda: grabcut.Working.of(frame))
    still = model is not None and _clicks.feature(
        features, "still", lambda: model.explains(frame))
    moving = None
    if still:
        foreground = _clicks.feature(
            features, "foreground", lambda: _open(model.foreground(frame)))
        moving = _motion_region(frame, model, foreground, row, col)
    hint = None if moving is None else moving[0]
    precise = hint if moving is not None and moving[1] else None
    if hint is None and model is not None and not still:
        hint = motion.moving_region(frame, clip, row, col)
    if hint is not None:
        region = grabcut.from_hint(frame, hint, row, col, work)
        if precise is not None and not grabcut.sharper(work, region, precise):
            return precise
        if precise is not None or moving is None or _kept(region, hint):
            return region
    grown = _colour_region(_lab(_blur(frame)), row, col)  # float32 Lab: too big to keep
    return grabcut.from_click(frame, row, col, work, extra=[grown])


def _kept(region: np.ndarray, hint: np.ndarray) -> bool:
    """Whether a cut kept at least half of the motion hint it grew from: a cut that
    shrank below that (a sliver moving on a large still object) found no object there."""
    return np.count_nonzero(region & hint) >= 0.5 * np.count_nonzero(hint)


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


def _motion_region(
    frame: np.ndarray, model: BackgroundModel, foreground: np.ndarray, row: int, col: int
) -> tuple[np.ndarray, bool] | None:
    """The component of ``foreground`` (the model's, opened) at the seed, holes filled,
    and whether it is the object's outline (``True``) or only a hint of it; None if
    nothing credible moves there.

    An object crossing its own place in the background median (the frames where it sits
    over where it spends most of the clip) shows as a crescent with the click in its gap:
    that crescent is still the object's colour, a hint for the cut, not its outline."""
    h, w = frame.shape[:2]
    region = _component_at(foreground, row, col, search=max(2, round(min(h, w) / 240)))
    if region is None or np.count_nonzero(region) < _min_area(h, w):
        region = _around(foreground, row, col, round(_GAP * min(h, w)), _min_area(h, w))
        if region is None:
            return None
    box = _pad_box(_bbox(region), 4, region.shape)
    diff = model.difference(frame, box)
    region[_sl(box)] = _half_contrast(diff, region[_sl(box)], model.threshold)
    area = np.count_nonzero(region)
    if area < _min_area(h, w) or area > 0.5 * h * w:
        return None
    return region, bool(region[row, col])


_GAP = 0.05
"""Farthest a click in the gap of a crescent may be from it, as a fraction of the frame's
short side."""


def _around(
    foreground: np.ndarray, row: int, col: int, reach: int, least: int
) -> np.ndarray | None:
    """The largest component of ``foreground`` of at least ``least`` pixels that comes
    within ``reach`` pixels of ``(row, col)`` and whose bounding box holds it (a ring or a
    crescent around the click), or None."""
    sl = _sl(_pad_box((row, row + 1, col, col + 1), reach, foreground.shape))
    if not foreground[sl].any():
        return None
    labels, _ = ndimage.label(foreground, structure=_EIGHT)
    sizes = np.bincount(labels.ravel())
    for label in sorted(set(np.unique(labels[sl])) - {0}, key=lambda k: -sizes[k]):
        if sizes[label] < least:
            break
        region = labels == label
        r0, r1, c0, c1 = _bbox(region)
        if r0 <= row < r1 and c0 <= col < c1:
            return region
    return None


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
