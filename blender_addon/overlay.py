"""Draws the current frame's masks and points over the strip in the Preview.

The GPU part is thin: pixels come from the core (``rle.decode`` + ``rle.overlay_rgba``), are
uploaded once per (mask, colour) into a texture, and drawn with one call on the strip's
image quad from ``mapping``. Nothing is drawn in background mode (no GPU there).
"""

from __future__ import annotations

import bpy
import numpy as np

from kling_elements import rle

from . import compat, geometry
from .props import load_selection

__all__ = ["mask_pixels", "register", "unregister"]

_handles: list = []
_textures: dict = {}
_MAX_CACHED = 16


TEXTURE_MAX_SIDE = 800


def mask_pixels(masks: list[dict], color: tuple[float, float, float], opacity: float
                ) -> np.ndarray | None:
    """RGBA float pixels (bottom row first, as GPU textures want) of all masks of a frame.

    Sampled down to at most ``TEXTURE_MAX_SIDE`` texels a side: the texture is stretched
    over the strip anyway, and a full-size float texture would cost the main thread ~10 ms
    at 720p (see ``scripts/bench_ui_thread.py``).
    """
    if not masks:
        return None
    union = None
    for mask in masks:
        decoded = rle.decode(mask["counts"], tuple(mask["size"]))
        union = decoded if union is None else np.maximum(union, decoded)
    step = max(1, -(-max(union.shape) // TEXTURE_MAX_SIDE))
    rgba = rle.overlay_rgba(union[::-step, ::step], color, opacity)
    return rgba.astype(np.float32) / 255.0


def _texture(key: tuple, masks: list[dict], color, opacity):
    import gpu

    texture = _textures.get(key)
    if texture is None:
        pixels = mask_pixels(masks, color, opacity)
        if pixels is None:
            return None
        h, w = pixels.shape[:2]
        buffer = gpu.types.Buffer("FLOAT", w * h * 4, pixels.ravel())
        texture = gpu.types.GPUTexture((w, h), format="RGBA8", data=buffer)
        if len(_textures) >= _MAX_CACHED:
            _textures.clear()
        _textures[key] = texture
    return texture


def _draw() -> None:
    context = bpy.context
    scene = compat.sequencer_scene(context)
    settings = getattr(scene, "kling", None) if scene else None
    editor = scene.sequence_editor if scene else None
    strip = editor.active_strip if editor else None
    if settings is None or not settings.show_overlay or strip is None or strip.type != "MOVIE":
        return
    state = load_selection(strip)
    if state is None:
        return
    frame = geometry.session_frame(scene, strip, state, scene.frame_current)
    if frame is None or frame not in state.masks:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    quad = [geometry.normalized_to_view(scene, strip, x, y)
            for x, y in ((0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0))]
    color = tuple(settings.overlay_color)
    key = (strip.name, frame, state.session_id, tuple(m["counts"] for m in state.masks[frame]),
           color, round(settings.overlay_opacity, 3))
    texture = _texture(key, state.masks[frame], color, settings.overlay_opacity)
    gpu.state.blend_set("ALPHA")
    if texture is not None:
        shader = gpu.shader.from_builtin("IMAGE")
        batch = batch_for_shader(shader, "TRI_FAN", {
            "pos": quad, "texCoord": ((0, 0), (1, 0), (1, 1), (0, 1))})
        shader.bind()
        shader.uniform_sampler("image", texture)
        batch.draw(shader)
    if settings.show_points and state.points.get(frame):
        dots = [geometry.normalized_to_view(scene, strip, x, y) for x, y in state.points[frame]]
        shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        gpu.state.point_size_set(9.0)
        batch = batch_for_shader(shader, "POINTS", {"pos": dots})
        shader.uniform_float("color", (1.0, 0.85, 0.1, 1.0))
        batch.draw(shader)
    gpu.state.blend_set("NONE")


def register() -> None:
    if bpy.app.background:
        return
    _handles.append(bpy.types.SpaceSequenceEditor.draw_handler_add(
        _draw, (), "PREVIEW", "POST_VIEW"))


def unregister() -> None:
    while _handles:
        bpy.types.SpaceSequenceEditor.draw_handler_remove(_handles.pop(), "PREVIEW")
    _textures.clear()
