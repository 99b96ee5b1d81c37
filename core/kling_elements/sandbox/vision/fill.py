"""Removal: a masked object erased by temporal fill.

Each pixel to replace is interpolated between the nearest earlier and later frames that
reveal the background there; pixels no frame reveals are inpainted from their surroundings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ._checks import _check_video, _fit_masks
from ._morph import Box, _bbox, _grow_once, _pad_box, _reduced_coverage, _sl, _union_box
from .colour import _reduce_rgb


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
