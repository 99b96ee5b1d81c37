"""Pixel values for the vision modules: CIE Lab (where distances approximate perceived
difference), grey levels, a light blur and block means at a reduced resolution."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


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


def _reduce_rgb(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means of a uint8 RGB image (Pillow's reduce; partial edge blocks included)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(factor), np.float32)


def _reduced_gray(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Grey levels of ``rgb`` averaged over ``factor``-sized blocks (float64)."""
    if factor > 1:
        rgb = _reduce_rgb(rgb, factor)
    return _gray(rgb).astype(np.float64)
