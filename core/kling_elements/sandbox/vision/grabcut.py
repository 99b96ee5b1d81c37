"""Appearance segmentation: OpenCV's GrabCut (colour models and a graph cut) seeded by a
click or by a rough mask, at a reduced working resolution.

Real footage is where a flood of similar colour fails: a textured, shaded object (fur, a
suit with folds) has no single colour, so a region grown from the click stops at the first
shadow. GrabCut models the object's and its surroundings' colours as mixtures and cuts
along the contrast between them, so the mask follows the whole object.

Guarantees: deterministic (OpenCV's random generator is seeded before every cut), the cost
is bounded by the working resolution (``SEARCH_SIDE`` px on the long side) whatever the
frame's size, and every function returns a full-resolution mask containing its seed, never
an exception for an unlucky image (a failed cut falls back to its seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ._morph import Box, _bbox, _component_at, _fill_holes, _pad_box, _sl

SEARCH_SIDE = 320
"""Long side (px) of the working resolution: a cut there costs tens of milliseconds."""

_SCALES = (0.12, 0.2, 0.32, 0.5)
"""Half-sizes of the squares tried around a click, as fractions of the frame's short side."""

_SPACE = cv2.COLOR_RGB2LAB

_CLOSE = 0.05
"""Separation scores this close to the best are a tie, won by the larger candidate."""

_FG, _BG, _PR_FG, _PR_BG = cv2.GC_FGD, cv2.GC_BGD, cv2.GC_PR_FGD, cv2.GC_PR_BGD


@dataclass(frozen=True)
class Working:
    """A frame at the working resolution: its pixels in RGB and in 8-bit Lab (GrabCut's
    colour models separate shaded, textured objects better there than in RGB), and the
    scale back to the full-resolution ``shape``."""

    rgb: np.ndarray
    image: np.ndarray
    factor: float
    shape: tuple[int, int]

    @classmethod
    def of(cls, frame: np.ndarray, side: int = SEARCH_SIDE) -> Working:
        h, w = frame.shape[:2]
        factor = max(1.0, max(h, w) / side)
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        small = frame if factor == 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        small = np.ascontiguousarray(small)
        return cls(small, cv2.cvtColor(small, _SPACE), factor, (h, w))

    def point(self, row: int, col: int) -> tuple[int, int]:
        hs, ws = self.image.shape[:2]
        return min(hs - 1, int(row / self.factor)), min(ws - 1, int(col / self.factor))

    def down(self, mask: np.ndarray) -> np.ndarray:
        """A full-resolution mask at the working resolution (area coverage >= 1/2)."""
        if self.factor == 1.0:
            return mask.astype(bool, copy=True)
        hs, ws = self.image.shape[:2]
        return cv2.resize(mask.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA) >= 0.5

    def up(self, mask: np.ndarray) -> np.ndarray:
        """A working-resolution mask at full resolution, with a smooth (bilinear) outline."""
        h, w = self.shape
        if self.factor == 1.0:
            return mask.astype(bool, copy=True)
        return cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5


def _cut(
    image: np.ndarray, labels: np.ndarray, iterations: int, expect: int = 1
) -> np.ndarray | None:
    """Run GrabCut on ``labels`` (a GC_* trimap, updated in place); the foreground, or None
    when either side has too few pixels to model or OpenCV refuses.

    GrabCut's colour mixtures start from k-means, whose random start sometimes yields a
    degenerate model that gives the whole object to the background. A result with fewer
    than ``expect`` foreground pixels is therefore cut again from other (fixed) seeds, and
    the largest result is kept: deterministic, and robust to one bad start."""
    start = labels.copy()
    foreground = (start == _FG) | (start == _PR_FG)
    if np.count_nonzero(foreground) < 8 or np.count_nonzero(~foreground) < 8:
        return None
    best: np.ndarray | None = None
    for seed in range(3):
        trial = start.copy()
        cv2.setRNGSeed(seed)
        try:
            cv2.grabCut(image, trial, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                        cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            continue
        found = (trial == _FG) | (trial == _PR_FG)
        if best is None or np.count_nonzero(found) > np.count_nonzero(best):
            best = found
            labels[:] = trial
        if np.count_nonzero(found) >= expect:
            break
    return best


def _seed_radius(shape: tuple[int, ...]) -> int:
    return max(2, round(0.012 * min(shape[:2])))


def _cut_in_box(
    work: Working,
    box: Box,
    seed: tuple[int, int],
    hint: np.ndarray | None,
    iterations: int = 3,
    expect: int = 1,
) -> np.ndarray | None:
    """GrabCut on a crop: ``box`` is probable object (or only ``hint`` within it, when given,
    the rest of the box probable background), a margin around it certain background, a disc
    at ``seed`` certain object. The result is the component at the seed, at working size."""
    hs, ws = work.image.shape[:2]
    extent = max(box[1] - box[0], box[3] - box[2])
    crop = _pad_box(box, max(8, round(0.4 * extent)), (hs, ws))
    sl = _sl(crop)
    labels = np.full((crop[1] - crop[0], crop[3] - crop[2]), _BG, np.uint8)
    inner = (slice(box[0] - crop[0], box[1] - crop[0]), slice(box[2] - crop[2], box[3] - crop[2]))
    if hint is None:
        labels[inner] = _PR_FG
    else:
        labels[inner] = np.where(hint[sl][inner], _PR_FG, _PR_BG)
    row, col = seed[0] - crop[0], seed[1] - crop[2]
    cv2.circle(labels, (col, row), _seed_radius(work.image.shape), int(_FG), -1)
    found = _cut(np.ascontiguousarray(work.image[sl]), labels, iterations, expect)
    if found is None:
        return None
    local = _component_at(found, row, col)
    if local is None:
        return None
    out = np.zeros((hs, ws), bool)
    out[sl] = _fill_holes(local, max_hole=0.02 * local.size)
    return out


def _margin_box(mask: np.ndarray, margin: float) -> Box:
    box = _bbox(mask)
    pad = max(3, round(margin * max(box[1] - box[0], box[3] - box[2])))
    return _pad_box(box, pad, mask.shape)


def _touches(mask: np.ndarray, box: Box) -> bool:
    """Whether ``mask`` reaches a side of ``box`` that is not the frame's border."""
    found = _bbox(mask)
    h, w = mask.shape
    return bool(
        (found[0] <= box[0] and box[0] > 0) or (found[1] >= box[1] and box[1] < h)
        or (found[2] <= box[2] and box[2] > 0) or (found[3] >= box[3] and box[3] < w)
    )


def separation(image: np.ndarray, region: np.ndarray) -> float:
    """How unlike its immediate surroundings ``region`` looks: the Bhattacharyya distance
    (0 alike .. 1 disjoint) between the colour histograms of the region and of a ring
    around it about a tenth of its size wide. A whole object scores higher than a part of
    it (whose ring is more of the object) and than the object with background attached."""
    area = int(np.count_nonzero(region))
    if area == 0:
        return 0.0
    width = max(2, round(0.12 * math.sqrt(area)))
    box = _pad_box(_bbox(region), width + 1, region.shape)
    sl = _sl(box)
    local = region[sl].astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = (cv2.dilate(local, disc) > 0) & ~region[sl]
    if np.count_nonzero(ring) < 8:
        return 0.0
    crop = np.ascontiguousarray(image[sl])
    bins, ranges = [8, 8, 8], [0, 256, 0, 256, 0, 256]
    inside = cv2.calcHist([crop], [0, 1, 2], local, bins, ranges)
    outside = cv2.calcHist([crop], [0, 1, 2], ring.astype(np.uint8), bins, ranges)
    return float(cv2.compareHist(inside, outside, cv2.HISTCMP_BHATTACHARYYA))


def sharper(work: Working, cut: np.ndarray, other: np.ndarray, margin: float = 0.02) -> bool:
    """Whether the full-resolution mask ``cut`` stands out from its surroundings clearly
    more than ``other`` (by ``margin`` in ``separation``): the cut fixed a hole or a leak.
    A tie keeps ``other``, typically the still camera's foreground with its sharper edge."""
    ours = separation(work.rgb, work.down(cut))
    return ours > separation(work.rgb, work.down(other)) + margin


def _min_area(shape: tuple[int, ...]) -> int:
    return max(12, int(2e-3 * shape[0] * shape[1]))


def from_click(
    frame: np.ndarray,
    row: int,
    col: int,
    work: Working | None = None,
    extra: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """The object under the click ``(row, col)`` of ``frame``, by appearance alone.

    Squares of several sizes around the click each start a cut, whose result is re-cut in
    its own bounding box with a margin (so an off-centre click still gets the whole object);
    ``extra`` full-resolution candidates (a region grown by colour) compete too, and are
    returned as given when they win. Each candidate is scored by how much it stands out from
    its surroundings (``separation``); a part of an object (a face on a suit) can stand out
    nearly as much as the whole, so among the candidates scoring within ``_CLOSE`` of the
    best, an ``extra`` one wins (its outline is full-resolution), else the largest cut.
    Specks and floods (over 60% of the frame) are not candidates. Always contains the click.
    """
    work = work or Working.of(frame)
    hs, ws = work.image.shape[:2]
    seed = work.point(row, col)
    least, most = _min_area(work.image.shape), 0.6 * hs * ws
    candidates: list[tuple[float, int, np.ndarray]] = []
    for candidate in extra:
        small = work.down(candidate)
        area = int(np.count_nonzero(small))
        if least <= area <= most:
            candidates.append((separation(work.rgb, small), area, candidate))
    for scale in _SCALES:
        half = max(4, round(scale * min(hs, ws)))
        box = _pad_box((seed[0], seed[0] + 1, seed[1], seed[1] + 1), half, (hs, ws))
        found = _cut_in_box(work, box, seed, None, iterations=2, expect=least)
        if found is None or np.count_nonzero(found) < least:
            continue
        area = int(np.count_nonzero(found))
        refit = _cut_in_box(work, _margin_box(found, 0.15), seed, None, expect=area // 2)
        if refit is not None and np.count_nonzero(refit) >= area // 2:
            found, area = refit, int(np.count_nonzero(refit))
        if least <= area <= most:
            candidates.append((separation(work.rgb, found), area, found))
    if not candidates:
        return _at_full(work, None, row, col)
    best = max(score for score, _, _ in candidates)
    close = [c for c in candidates if c[0] >= best - _CLOSE]
    given = [c for c in close if c[2].shape == work.shape and work.factor != 1.0]
    _, _, chosen = given[0] if given else max(close, key=lambda c: c[1])
    if chosen.shape == work.shape and work.factor != 1.0:
        return chosen
    return _at_full(work, chosen, row, col)


def from_hint(
    frame: np.ndarray, hint: np.ndarray, row: int, col: int, work: Working | None = None
) -> np.ndarray:
    """The object a rough full-resolution ``hint`` (a moving region, a tracked mask)
    covers, with the click ``(row, col)`` on it.

    The hint's pixels train the object's colour model and the rest of its box (with a
    margin) the surroundings'; the cut may then take or drop pixels anywhere in that box.
    When the object reaches the box's side (the hint was only a part, a mouth that moved on
    a still face), the box grows that way and the cut runs again, a few times at most."""
    work = work or Working.of(frame)
    seed = work.point(row, col)
    small = work.down(hint)
    small[seed] = True
    box = _margin_box(small, 0.25)
    found = None
    for _ in range(4):
        cut = _cut_in_box(work, box, seed, small, expect=np.count_nonzero(small) // 3)
        if cut is None:
            break
        found = cut
        if not _touches(found, box):
            break
        small = found
        box = _margin_box(found, 0.5)
    return _at_full(work, found, row, col)


def _fit(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    image = mask.astype(np.uint8)
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def _opened(mask: np.ndarray) -> np.ndarray:
    """Specks (compression noise, a flickering pixel) removed by a 3x3 opening."""
    kernel = np.ones((3, 3), np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0


def _at_full(work: Working, found: np.ndarray | None, row: int, col: int) -> np.ndarray:
    h, w = work.shape
    if found is None:
        mask = np.zeros((h, w), bool)
        radius = max(2, round(min(h, w) / 120))
        cv2.circle(mask.view(np.uint8), (col, row), radius, 1, -1)
        return mask
    mask = work.up(found)
    mask[row, col] = True
    kept = _component_at(mask, row, col)
    return kept if kept is not None else mask


def refine(
    frame: np.ndarray,
    mask: np.ndarray,
    work: Working | None = None,
    moving: np.ndarray | None = None,
) -> np.ndarray:
    """``mask`` (a tracked or shifted object, full resolution) with its outline re-cut.

    Only a band around the outline (about 8% of the object's size each way) is open: the
    object's core stays the object, the surroundings beyond the band stay background, so
    one frame's cut can follow a deformation or undo a tracking slip but never jump to
    another object. With ``moving`` (what differs from a still camera's background, at any
    resolution: a strided sample of the frame is enough), motion joins colour: moving parts
    next to the mask (a leg the mask lost) are probably object, and the certain core is
    only where the object moves, so a patch of background the mask dragged along can
    leave. The parts kept are those connected to the core. An empty mask, or one too
    small to model, comes back unchanged."""
    work = work or Working.of(frame)
    small = work.down(mask)
    area = int(np.count_nonzero(small))
    if area < 16:
        return mask.astype(bool, copy=True)
    band = max(2, round(0.08 * math.sqrt(area)))
    hs, ws = small.shape
    box = _pad_box(_bbox(small), 2 * band + 2, (hs, ws))
    sl = _sl(box)
    local = small[sl].astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    core = cv2.erode(local, disc) > 0
    if moving is not None:
        motion = _opened(_fit(moving, (hs, ws)))[sl]
        count, parts = cv2.connectedComponents(motion.astype(np.uint8), connectivity=8)
        near = np.zeros(count, bool)
        near[np.unique(parts[(cv2.dilate(local, disc) > 0) & motion])] = True
        near[0] = False
        local = (local > 0) | near[parts]
        held = core & motion
        core = held if np.count_nonzero(held) >= 0.25 * np.count_nonzero(core) else core
        local = local.astype(np.uint8)
    reach = cv2.dilate(local, disc) > 0
    labels = np.full(local.shape, _BG, np.uint8)
    labels[reach] = _PR_BG
    labels[local > 0] = _PR_FG
    labels[core] = _FG
    found = _cut(np.ascontiguousarray(work.image[sl]), labels, 2, expect=area // 2)
    if found is None or not core.any():
        return mask.astype(bool, copy=True)
    count, components = cv2.connectedComponents(found.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(components[core])] = True
    keep[0] = False
    out = np.zeros((hs, ws), bool)
    out[sl] = _fill_holes(keep[components], max_hole=0.02 * area)
    return work.up(out)
