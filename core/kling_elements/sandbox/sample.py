"""Synthetic, deterministic test material with known ground truth.

A sample clip is a static textured background (muted noise, stripes, a tiled floor with a
terracotta tile colour close enough to the object's orange that a sloppy flood fill leaks)
and one saturated orange ellipse gliding across it. Because the background and the object's
path are analytic, tests can score segmentation (IoU against ``SampleClip.mask``) and removal
(error against ``SampleClip.background``) exactly. Coordinates follow the vision module's
convention: pixel ``(col, row)`` is the normalized point ``(col / (w - 1), row / (h - 1))``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .video import atomic_path, write_mp4

__all__ = [
    "SampleClip",
    "make_background",
    "make_clip",
    "make_reference_image",
    "object_mask_at",
    "render_frame",
]

_OBJECT_RGB = np.array([238, 104, 22], np.float32)
_SEMI_AXES = (0.11, 0.075)  # fractions of frame height: 22% wide, 15% tall


# ---------------------------------------------------------------- background


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1]: a coarse random grid upsampled bicubically to full size."""
    grid_w = max(2, cells)
    grid_h = max(2, round(cells * height / width))
    coarse = rng.uniform(-1.0, 1.0, (grid_h, grid_w)).astype(np.float32)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float32)


def make_background(width: int, height: int, seed: int) -> np.ndarray:
    """A static ``(height, width, 3)`` uint8 background: muted, textured, deterministic.

    Layers: multi-scale value noise blending two muted colours (wall), a band of soft
    diagonal stripes, and a tiled floor in the lower third whose tiles alternate beige and
    a muted terracotta (the leak trap for colour-based segmentation of the orange object).
    """
    rng = np.random.default_rng(seed)
    noise = sum(
        amp * _smooth_noise(rng, width, height, cells)
        for amp, cells in ((0.5, 4), (0.3, 9), (0.15, 23), (0.08, 61))
    )
    mix = np.clip(0.5 + 0.9 * noise, 0.0, 1.0)[..., None]
    wall_a = np.array([100, 112, 98], np.float32)
    wall_b = np.array([166, 158, 144], np.float32)
    image = wall_a * (1.0 - mix) + wall_b * mix
    image = _add_stains(image, rng)

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    period = max(8.0, height / 18)
    stripes = np.sin(2 * np.pi * (cols + 0.6 * rows) / period)
    band = (rows > 0.12 * height) & (rows < 0.42 * height)
    image += (band * 14.0 * stripes)[..., None] * np.array([1.0, 0.9, 1.1], np.float32)

    image = _add_floor(image, rows, cols, rng)
    fine = rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
    return np.clip(image + fine, 0, 255).astype(np.uint8)


def _add_stains(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft muted brown/rose blotches on the wall: colour texture without saturation."""
    height, width = image.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(7):
        cy, cx = rng.uniform(0, 0.66 * height), rng.uniform(0, width)
        radius = rng.uniform(0.05, 0.14) * height
        weight = np.exp(-(((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * radius**2)))
        tint = rng.choice([[150, 118, 104], [128, 112, 120], [140, 132, 100]]).astype(np.float32)
        image = image * (1 - 0.7 * weight[..., None]) + tint * (0.7 * weight[..., None])
    return image


def _add_floor(
    image: np.ndarray, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Checkered floor over the lower third: beige and terracotta tiles, dark grout."""
    height = image.shape[0]
    top = 0.66 * height
    tile = max(8.0, height / 9)
    floor = rows >= top
    checker = ((np.floor(cols / tile) + np.floor((rows - top) / tile)) % 2).astype(bool)
    beige = np.array([176, 164, 140], np.float32)
    terracotta = np.array([172, 112, 84], np.float32)
    tiles = np.where(checker[..., None], terracotta, beige)
    tiles += rng.uniform(-6, 6, 3).astype(np.float32)
    grout = ((cols % tile) < 2) | (((rows - top) % tile) < 2)
    tiles = np.where(grout[..., None], np.array([96, 92, 86], np.float32), tiles)
    return np.where(floor[..., None], tiles, image)


# ---------------------------------------------------------------- the object


def _object_pose(t: float, width: int, height: int) -> tuple[float, float, float, float, float]:
    """Centre (col, row) in pixels, semi-axes (a, b) in pixels and rotation at time ``t``.

    The path is smooth, starts at the left, crosses to the right over 5 s and comes back by
    10 s, bobbing vertically; with the semi-axes it stays inside the frame for 0 <= t <= 10.
    """
    x_norm = 0.5 - 0.34 * np.cos(2 * np.pi * t / 10.0)
    y_norm = 0.47 + 0.2 * np.sin(2 * np.pi * t / 5.0)
    a = _SEMI_AXES[0] * height
    b = _SEMI_AXES[1] * height
    angle = 0.25 * np.sin(2 * np.pi * t / 7.0)
    return x_norm * (width - 1), y_norm * (height - 1), a, b, float(angle)


def _object_field(
    t: float, width: int, height: int
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray]:
    """Bounding slices of the object and, inside them, the ellipse radius rho, the coverage
    (anti-aliased alpha) and the shading factor."""
    cx, cy, a, b, angle = _object_pose(t, width, height)
    reach = max(a, b) + 2
    r0, r1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 2)
    c0, c1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 2)
    rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dx, dy = cols - cx, rows - cy
    cos, sin = np.cos(angle), np.sin(angle)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    grad = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) / np.maximum(rho, 1e-6)
    distance = (rho - 1.0) / np.maximum(grad, 1e-6)
    coverage = np.clip(0.5 - distance, 0.0, 1.0)
    shading = 1.0 - 0.10 * (u / a) * 0.6 - 0.10 * (v / b) * 0.8 - 0.06 * rho**2
    return (slice(r0, r1), slice(c0, c1)), rho, coverage, shading


def object_mask_at(t: float, width: int, height: int) -> np.ndarray:
    """Ground-truth ``(height, width)`` bool mask of the object at time ``t`` seconds: the
    pixels whose centre lies inside the ellipse (equivalently, coverage >= 0.5)."""
    mask = np.zeros((height, width), bool)
    box, rho, _, _ = _object_field(t, width, height)
    mask[box] = rho <= 1.0
    return mask


def render_frame(background: np.ndarray, t: float) -> np.ndarray:
    """The clip's frame at time ``t``: the background with the shaded, anti-aliased object."""
    height, width = background.shape[:2]
    frame = background.copy()
    box, _, coverage, shading = _object_field(t, width, height)
    colour = np.clip(_OBJECT_RGB * shading[..., None], 0, 255)
    alpha = coverage[..., None]
    frame[box] = (colour * alpha + frame[box] * (1.0 - alpha) + 0.5).astype(np.uint8)
    return frame


# ---------------------------------------------------------------- clips


@dataclass(frozen=True)
class SampleClip:
    """A written sample video and its ground truth (frame ``i`` is at ``t = i / fps``)."""

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    background: np.ndarray = field(repr=False)

    def time(self, frame_index: int) -> float:
        return frame_index / self.fps

    def mask(self, frame_index: int) -> np.ndarray:
        """Ground-truth object mask of frame ``frame_index``."""
        return object_mask_at(self.time(frame_index), self.width, self.height)

    def center(self, frame_index: int) -> tuple[float, float]:
        """Normalized ``(x, y)`` of the object's centre on that frame: a click on the object."""
        cx, cy, *_ = _object_pose(self.time(frame_index), self.width, self.height)
        return float(cx) / (self.width - 1), float(cy) / (self.height - 1)

    def frame(self, frame_index: int) -> np.ndarray:
        """The uncompressed frame as rendered before encoding."""
        return render_frame(self.background, self.time(frame_index))


def make_clip(
    path: str | os.PathLike,
    width: int = 1280,
    height: int = 720,
    fps: float = 30,
    seconds: float = 5.0,
    seed: int = 0,
) -> SampleClip:
    """Render and write (H.264 MP4, atomically) a sample clip; return its ground truth.

    Frames are generated and encoded one at a time, so memory stays at a few frames.
    """
    background = make_background(width, height, seed)
    count = round(seconds * fps)

    def frames() -> Iterator[np.ndarray]:
        for index in range(count):
            yield render_frame(background, index / fps)

    write_mp4(path, frames(), fps)
    return SampleClip(Path(path), width, height, float(fps), count, background)


# ---------------------------------------------------------------- reference images


def _star_polygon(cx: float, cy: float, outer: float, inner: float, turn: float) -> list:
    points = []
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        theta = turn - np.pi / 2 + k * np.pi / 5
        points.append((cx + radius * np.cos(theta), cy + radius * np.sin(theta)))
    return points


def _draw_star(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    size = min(w, h)
    turn = float(rng.uniform(-0.15, 0.15))
    outer, inner = 0.42 * size, 0.18 * size
    draw.polygon(_star_polygon(w / 2, h / 2, outer, inner, turn), fill=(28, 64, 200))
    draw.polygon(_star_polygon(w / 2, h / 2, outer * 0.6, inner * 0.6, turn), fill=(52, 98, 232))


def _draw_cube(draw: ImageDraw.ImageDraw, w: int, h: int, rng: np.random.Generator) -> None:
    size = min(w, h) * float(rng.uniform(0.36, 0.4))
    cx, cy = w / 2, h / 2 + 0.08 * size
    dx, dy = 0.87 * size, 0.5 * size
    top = (cx, cy - 2 * dy)
    left, right, centre = (cx - dx, cy - dy), (cx + dx, cy - dy), (cx, cy)
    bottom = (cx, cy + 2 * dy)
    draw.polygon([top, right, centre, left], fill=(110, 214, 96))
    draw.polygon([left, centre, bottom, (cx - dx, cy + dy)], fill=(40, 150, 52))
    draw.polygon([centre, right, (cx + dx, cy + dy), bottom], fill=(24, 104, 36))


def make_reference_image(
    path: str | os.PathLike,
    kind: str = "star",
    size: tuple[int, int] = (512, 512),
    seed: int = 0,
) -> Path:
    """Write a PNG of one distinct subject (a blue star or a green cube) on a plain light
    background, anti-aliased, and return its path. ``size`` is ``(width, height)``."""
    painters = {"star": _draw_star, "cube": _draw_cube}
    if kind not in painters:
        raise ValueError(f"kind must be one of {sorted(painters)}, got {kind!r}")
    width, height = size
    scale = 4
    canvas = Image.new("RGB", (width * scale, height * scale), (236, 234, 228))
    painters[kind](
        ImageDraw.Draw(canvas), width * scale, height * scale, np.random.default_rng(seed)
    )
    image = canvas.resize((width, height), Image.Resampling.LANCZOS)
    with atomic_path(path, ".png") as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
