"""Clips with known masks built from real photographs (scikit-image's bundled images).

An object is cut out of one photograph by a known shape (a horse silhouette filled with a
cat's fur, a cup and saucer, an astronaut, a cat's face) and moved over another photograph
as the background, so the object has real texture, shading and colours that also occur in
the background, and the ground-truth mask is exact (the cut's alpha >= 0.5). Variants: a
still camera with an object crossing the frame, an object that barely moves (so a
temporal-median background still contains it, as a chewing rabbit would), and a panning
camera (background subtraction sees motion everywhere).

Everything is deterministic: the same name gives the same frames. Only images that ship
inside the scikit-image wheel are used (no download).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage


@dataclass(frozen=True)
class Cutout:
    """An object cut from a photograph: ``rgb`` (h, w, 3) uint8 and ``alpha`` (h, w) float."""

    rgb: np.ndarray
    alpha: np.ndarray


@dataclass(frozen=True)
class PhotoClip:
    """Frames ``(n, h, w, 3)`` uint8 (decoded from an H.264 MP4), their true masks
    ``(n, h, w)`` bool, and the normalized click ``(x, y)`` on frame ``key``."""

    name: str
    frames: np.ndarray
    masks: np.ndarray
    key: int
    click: tuple[float, float]


def _ellipse_alpha(h: int, w: int, box: tuple[float, float, float, float], scale: int = 4):
    """Anti-aliased ellipse inside ``box`` (x0, y0, x1, y1) as a float alpha (h, w)."""
    big = Image.new("L", (w * scale, h * scale), 0)
    ImageDraw.Draw(big).ellipse([v * scale for v in box], fill=255)
    return np.asarray(big.resize((w, h), Image.Resampling.BOX), np.float32) / 255


@cache
def cutout(kind: str) -> Cutout:
    """The named object, cropped to its alpha's bounding box."""
    d = skimage.data
    if kind == "furry-horse":  # a horse silhouette filled with the cat's fur
        shape = ~np.asarray(d.horse())
        h, w = shape.shape
        fur = np.asarray(
            Image.fromarray(d.chelsea()[10:290, 20:330]).resize((w, h), Image.Resampling.BICUBIC)
        )
        alpha = np.asarray(
            Image.fromarray(shape.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(0.7)),
            np.float32,
        ) / 255
        rgb = fur
    elif kind == "cup":  # cup and saucer, cut along the saucer's rim
        rgb = d.coffee()
        alpha = _ellipse_alpha(*rgb.shape[:2], (78, 62, 478, 390))
        upper = _ellipse_alpha(*rgb.shape[:2], (170, 14, 412, 214))
        alpha = np.maximum(alpha, upper)
    elif kind == "astronaut":  # her head and orange suit, cut by a rounded outline
        rgb = d.astronaut()
        head = _ellipse_alpha(*rgb.shape[:2], (150, 12, 305, 190))
        body = _ellipse_alpha(*rgb.shape[:2], (20, 140, 365, 640))
        alpha = np.maximum(head, body)
    elif kind == "cat-face":
        rgb = d.chelsea()
        alpha = _ellipse_alpha(*rgb.shape[:2], (60, 0, 375, 300))
    else:
        raise ValueError(f"unknown cutout {kind!r}")
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    crop = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    return Cutout(np.ascontiguousarray(rgb[crop][..., :3]), alpha[crop])


@cache
def background_photo(kind: str) -> np.ndarray:
    d = skimage.data
    if kind == "motorcycle":
        return d.stereo_motorcycle()[0]
    return np.asarray(getattr(d, kind)())[..., :3]


def _cover(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """The photo scaled (aspect kept) to cover ``width`` x ``height``, centre-cropped."""
    ph, pw = photo.shape[:2]
    scale = max(width / pw, height / ph)
    size = (max(width, round(pw * scale)), max(height, round(ph * scale)))
    image = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BICUBIC))
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return image[top : top + height, left : left + width]


def _scaled(cut: Cutout, height: int) -> Cutout:
    h, w = cut.alpha.shape
    size = (max(1, round(w * height / h)), height)
    rgb = np.asarray(Image.fromarray(cut.rgb).resize(size, Image.Resampling.LANCZOS))
    alpha = np.asarray(Image.fromarray(cut.alpha).resize(size, Image.Resampling.BILINEAR))
    return Cutout(rgb, np.clip(alpha, 0, 1))


# name: (object, background, object height / frame height, path x0 -> x1 (fraction of the
# frame width free for the object), vertical bob, camera pan in px per frame)
CASES: dict[str, tuple[str, str, float, tuple[float, float], float, float]] = {
    # the rabbit: a still face whose mouth alone moves, clicked on the mouth
    "still-cat-chews": ("cat-face", "coffee", 0.6, (0.5, 0.5), 0.0, 0.0),
    "furry-horse-on-table": ("furry-horse", "coffee", 0.55, (0.1, 0.9), 0.04, 0.0),
    "cup-on-astronaut": ("cup", "astronaut", 0.5, (0.85, 0.15), 0.03, 0.0),
    "astronaut-at-launch": ("astronaut", "rocket", 0.7, (0.2, 0.75), 0.02, 0.0),
    "cat-face-on-motorcycle": ("cat-face", "motorcycle", 0.5, (0.7, 0.2), 0.03, 0.0),
    "chewing-cat-barely-moves": ("cat-face", "rocket", 0.55, (0.48, 0.52), 0.005, 0.0),
    "horse-camera-pans": ("furry-horse", "rocket", 0.5, (0.3, 0.6), 0.02, 2.0),
    "cup-camera-pans": ("cup", "motorcycle", 0.45, (0.6, 0.4), 0.02, -2.5),
}


def _click(mask: np.ndarray) -> tuple[int, int]:
    """Where a user clicks: the pixel deepest inside the object (row, col)."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(row), int(col)


def _chewing(obj: Cutout, t: int) -> Cutout:
    """The object with a mouth-sized patch around its centre moving up and down (the rest
    of it still): only this patch differs from a still background."""
    oh, ow = obj.alpha.shape
    mouth = _ellipse_alpha(oh, ow, (0.38 * ow, 0.42 * oh, 0.62 * ow, 0.62 * oh))[..., None]
    moved = np.roll(obj.rgb, round(4 * np.sin(2 * np.pi * t / 6)), axis=0)
    rgb = mouth * moved + (1 - mouth) * obj.rgb
    return Cutout(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), obj.alpha)


def build(name: str, width: int = 640, height: int = 360, count: int = 40) -> PhotoClip:
    """Render the named case, encode it as H.264 and decode it back (as the sandbox sees
    clips); the click lands on frame ``count // 3``, on the object's deepest pixel."""
    obj_kind, bg_kind, rel_height, (x0, x1), bob, pan = CASES[name]
    still = _scaled(cutout(obj_kind), round(rel_height * height))
    oh, ow = still.alpha.shape
    travel = abs(pan) * (count - 1)
    wide = _cover(background_photo(bg_kind), width + int(np.ceil(travel)) + 2, height)
    frames = np.empty((count, height, width, 3), np.uint8)
    masks = np.zeros((count, height, width), bool)
    for t in range(count):
        obj = _chewing(still, t) if name == "still-cat-chews" else still
        u = t / (count - 1)
        shift = round(travel * u) if pan > 0 else round(travel * (1 - u))
        frame = wide[:, shift : shift + width].astype(np.float32)
        left = round((x0 + (x1 - x0) * u) * (width - ow))
        top = round((height - oh) * (0.55 + bob * np.sin(2 * np.pi * 1.5 * u)))
        rows = slice(max(0, top), min(height, top + oh))
        cols = slice(max(0, left), min(width, left + ow))
        local = (slice(rows.start - top, rows.stop - top),
                 slice(cols.start - left, cols.stop - left))
        alpha = obj.alpha[local][..., None]
        frame[rows, cols] = alpha * obj.rgb[local] + (1 - alpha) * frame[rows, cols]
        frames[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        masks[t, rows, cols] = obj.alpha[local] >= 0.5
    frames = _through_h264(frames)
    key = count // 3
    row, col = _click(masks[key])
    return PhotoClip(name, frames, masks, key, (col / (width - 1), row / (height - 1)))


def _through_h264(frames: np.ndarray) -> np.ndarray:
    from kling_elements.sandbox.video import read_frames, write_mp4

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        write_mp4(path, frames, 30)
        decoded, _ = read_frames(path)
    return decoded
