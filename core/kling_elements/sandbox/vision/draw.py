"""Drawing on frames: the selection preview (tinted, outlined masks) and the sandbox's
visible watermark."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._checks import _check_video, _fit_masks
from ._morph import _bbox, _pad_box, _shrink, _sl
from .composite import _paste

_PALETTE = ((255, 64, 64), (64, 160, 255), (80, 220, 100), (255, 200, 40), (200, 90, 255))


def _mask_layers(masks: np.ndarray | list, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Normalize ``masks`` to a list of ``(n, h, w)`` layers: one ``(n, h, w)`` array, a
    ``(k, n, h, w)`` array, a list of ``(n, h, w)`` arrays (one per object) or a list of n
    ``(h, w)`` arrays (one per frame)."""
    if isinstance(masks, np.ndarray):
        layers = [masks] if masks.ndim <= 3 else list(masks)
    else:
        items = [np.asarray(m) for m in masks]
        layers = [np.stack(items)] if items and items[0].ndim == 2 else items
    return [_fit_masks(layer, shape) for layer in layers]


def draw_masks(
    frames: np.ndarray,
    masks: np.ndarray | list,
    color: tuple[int, int, int] = (255, 64, 64),
    alpha: float = 0.5,
) -> np.ndarray:
    """Preview of a selection: masked pixels tinted with ``color`` at ``alpha`` and outlined
    opaquely. Several objects (see ``_mask_layers``) get ``color`` then distinct colours."""
    frames = _check_video(frames)
    layers = _mask_layers(masks, frames.shape)
    h, w = frames.shape[1:3]
    width = max(1, round(min(h, w) / 360))
    colours = [tuple(color)] + [c for c in _PALETTE if c != tuple(color)]
    out = frames.copy()
    for t in range(len(frames)):
        for k, layer in enumerate(layers):
            _tint(out[t], layer[t], np.array(colours[k % len(colours)], np.float32), alpha, width)
    return out


def _tint(frame: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: float, width: int):
    box = _bbox(mask)
    if box is None:
        return
    crop = _sl(_pad_box(box, 1, mask.shape))
    local = mask[crop]
    region = frame[crop]
    region[local] = np.clip(region[local] * (1 - alpha) + colour * alpha + 0.5, 0, 255)
    edge = local & ~_shrink(local, width)
    region[edge] = colour.astype(np.uint8)


@lru_cache(maxsize=8)
def _watermark_overlay(text: str, height: int) -> np.ndarray:
    """RGBA uint8 image of the watermark text, about ``height`` px tall."""
    try:
        font = ImageFont.load_default(size=height)
        scale = 1
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: small bitmap font
        font = ImageFont.load_default()
        scale = max(1, round(height / 11))
    stroke = max(1, height // 12) if scale == 1 else 0
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    image = Image.new("RGBA", (x1 - x0 + 2, y1 - y0 + 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text(
        (1 - x0, 1 - y0),
        text,
        font=font,
        fill=(255, 255, 255, 190),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 150),
    )
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return np.asarray(image)


def watermark(frames: np.ndarray, text: str = "KLING SANDBOX") -> np.ndarray:
    """Stamp a visible semi-transparent text watermark in the bottom-right corner of every
    frame (scaled to the frame height; shrunk if it would not fit the width)."""
    frames = _check_video(frames)
    n, h, w = frames.shape[:3]
    overlay = _watermark_overlay(text, max(10, round(h / 20)))
    if overlay.shape[1] > 0.9 * w or overlay.shape[0] > 0.5 * h:
        factor = min(0.9 * w / overlay.shape[1], 0.5 * h / overlay.shape[0])
        size = (max(1, int(overlay.shape[1] * factor)), max(1, int(overlay.shape[0] * factor)))
        overlay = np.asarray(Image.fromarray(overlay).resize(size, Image.Resampling.LANCZOS))
    margin = max(2, round(h / 40))
    top, left = h - margin - overlay.shape[0], w - margin - overlay.shape[1]
    rgb = overlay[..., :3].astype(np.float32)
    weight = overlay[..., 3:].astype(np.float32) / 255.0
    out = frames.copy()
    for t in range(n):
        _paste(out[t], rgb, weight[..., 0], top, left)
    return out
