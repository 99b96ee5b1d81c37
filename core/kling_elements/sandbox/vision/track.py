"""Tracking: key-frame masks propagated to every frame of a video.

Background subtraction follows an object that moves against a still background; where it
cannot (static object, moving camera, occlusion), template matching of the object's own
pixels shifts the last good mask.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from PIL import Image
from scipy import ndimage, signal

from . import grabcut
from ._checks import _check_video, _resize_mask
from ._morph import (
    _EIGHT,
    _bbox,
    _centroid,
    _grow,
    _iou,
    _open,
    _pad_box,
    _reduced_coverage,
    _shift_mask,
    _sl,
    _union_box,
)
from .background import _MIN_MODEL_FRAMES, BackgroundModel, _half_contrast, background_model
from .colour import _reduced_gray

_REPRODUCED = 0.9
"""IoU between a key mask and its own re-cut above which the mask is an outline GrabCut
agrees with, so re-cutting it in other frames follows the object rather than reshaping
an arbitrary region."""


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
    recut = {}
    for k in order:
        out[k] = keys[k]
        recut[k] = _iou(grabcut.refine(frames[k], keys[k]), keys[k]) >= _REPRODUCED
    _propagate(frames, model, out, order[0], 0, -1, recut[order[0]])
    for a, b in itertools.pairwise(order):
        middle = (a + b) // 2
        _propagate(frames, model, out, a, middle, 1, recut[a])
        _propagate(frames, model, out, b, middle + 1, -1, recut[b])
    _propagate(frames, model, out, order[-1], n - 1, 1, recut[order[-1]])
    return out


def _propagate(
    frames: np.ndarray,
    model: BackgroundModel | None,
    out: np.ndarray,
    start: int,
    stop: int,
    step: int,
    recut: bool = True,
) -> None:
    """Fill ``out[start + step .. stop]`` (inclusive) from ``out[start]``.

    With ``recut``, each frame's mask is re-cut by GrabCut in a band around its outline
    (``grabcut.refine``), which follows deformations and undoes slips; the re-cut replaces
    the still camera's foreground only when it stands out clearly more (``sharper``).
    Without it (a key mask the cut does not reproduce: a region that is no object's
    outline), shift-mode frames match the *anchor* (the last frame whose mask came from a
    key or from background subtraction) rather than the previous frame, so errors do not
    accumulate."""
    velocity = np.zeros(2)
    anchor, anchor_mask, offset = start, out[start].copy(), np.zeros(2)
    for t in range(start + step, stop + step, step):
        previous = out[t - step]
        if not previous.any():
            return
        dy, dx = np.round(velocity).astype(int)
        predicted = _shift_mask(previous, dy, dx) if dy or dx else previous
        still = model is not None and model.explains(frames[t])
        candidate = _motion_candidate(frames[t], model, predicted, previous) if still else None
        found_moving = candidate is not None
        if candidate is None:
            offset = _displacement(frames[anchor], frames[t], anchor_mask, offset + velocity)
            whole = np.round(offset).astype(int)
            candidate = _shift_mask(anchor_mask, int(whole[0]), int(whole[1]))
        elif not recut:
            anchor, anchor_mask, offset = t, candidate, np.zeros(2)
        if recut:
            candidate = _recut(frames[t], model if still else None, candidate, found_moving)
            anchor, anchor_mask, offset = t, candidate, np.zeros(2)
        out[t] = candidate
        velocity = _centroid(candidate) - _centroid(previous) if candidate.any() else velocity


def _recut(
    frame: np.ndarray, model: BackgroundModel | None, mask: np.ndarray, moving: bool
) -> np.ndarray:
    """``mask`` re-cut in a band (with the still camera's motion when ``model`` is given);
    a foreground mask (``moving``) is kept unless the re-cut is clearly sharper."""
    work = grabcut.Working.of(frame)
    motion = None
    if model is not None:
        stride = max(1, int(work.factor))
        motion = model.foreground(frame, (slice(None, None, stride),) * 2)
    refined = grabcut.refine(frame, mask, work, motion)
    if moving and not grabcut.sharper(work, refined, mask):
        return mask
    return refined


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
