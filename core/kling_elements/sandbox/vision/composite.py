"""Compositing for the swap and add edits: the reference image's subject, separated from
its plain background, scaled and alpha-blended into every frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ._checks import _check_video, _fit_masks
from ._morph import _EIGHT, _bbox, _fill_holes, _open, _pad_box, _sl
from .colour import _lab
from .fill import remove


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
