"""Argument checks of the public vision functions: frames and videos come out as uint8
RGB arrays, masks fitted to the video (one mask broadcast to every frame, other resolutions
resized); anything else is a ``ValueError`` that says what shape was expected."""

from __future__ import annotations

import numpy as np
from PIL import Image


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
