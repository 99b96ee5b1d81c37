"""Draws the current frame's masks and points over the strip in the Preview.

The GPU part is thin: ``overlay_layout`` gives the texture's pixels (from the core's
``rle.decode`` + ``rle.overlay_rgba``), the visible (cropped) quad with its texture
coordinates, and the dots of visible points; this module uploads the texture once per
(mask, colour) and draws. Nothing is drawn in background mode (no GPU there).
"""

from __future__ import annotations

import bpy

from . import compat, geometry
from .overlay_layout import mask_pixels, mask_quad, visible_dots
from .props import load_selection

__all__ = ["mask_pixels", "register", "unregister"]

_handles: list = []
_textures: dict = {}
_MAX_CACHED = 16


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
    try:
        geom = geometry.strip_geometry(scene, strip)
    except ValueError:  # a movie Blender cannot read: nothing to register the mask on
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    quad = mask_quad(geom)
    color = tuple(settings.overlay_color)
    key = (strip.name, frame, state.session_id, tuple(m["counts"] for m in state.masks[frame]),
           color, round(settings.overlay_opacity, 3))
    texture = _texture(key, state.masks[frame], color, settings.overlay_opacity)
    gpu.state.blend_set("ALPHA")
    if texture is not None:
        shader = gpu.shader.from_builtin("IMAGE")
        batch = batch_for_shader(shader, "TRI_FAN", {
            "pos": quad.positions, "texCoord": quad.texcoords})
        shader.bind()
        shader.uniform_sampler("image", texture)
        batch.draw(shader)
    dots = visible_dots(geom, state.points.get(frame, [])) if settings.show_points else []
    if dots:
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
