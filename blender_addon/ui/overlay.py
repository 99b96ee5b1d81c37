"""Draws the current frame's masks and points over the strip in the Preview.

The GPU part is thin. ``plan`` does the draw callback's Python work: the frame shown, the
visible (cropped) quad with its texture coordinates (``overlay_layout``), the dots of
visible points, and the overlay's key. Its pixels are never made here: a worker prepares
them (``overlay_cache``) and ``_draw`` only uploads a ready buffer once per key. While a
frame's buffer is being prepared (another colour, a file just opened) the texture last
drawn for that frame stays up, so nothing blinks. Nothing is drawn in background mode (no
GPU there), and then nothing is prepared either.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import bpy

from .. import compat
from ..bridge import geometry
from ..bridge.context import redraw_sequencers
from ..bridge.props import load_selection
from ..pure.overlay_layout import MaskQuad, mask_pixels, mask_quad, visible_dots
from ..work.overlay_cache import OVERLAYS, OverlayKey, overlay_key, prepare
from ..work.worker import OVERLAY

__all__ = ["Plan", "mask_pixels", "plan", "register", "request", "unregister"]

_handles: list = []
_textures: OrderedDict[OverlayKey, Any] = OrderedDict()
_shown: dict[tuple[str, int], OverlayKey] = {}
_MAX_TEXTURES = 16


@dataclass(frozen=True)
class Plan:
    """What one redraw draws: the mask texture to use (``key``, else ``fallback``), where."""

    key: OverlayKey | None
    fallback: OverlayKey | None
    quad: MaskQuad
    dots: list[tuple[float, float]]


def request(key: OverlayKey, masks: list[dict], color, opacity: float) -> None:
    """Have the overlay worker prepare ``key`` unless it is ready or already asked for."""
    if not OVERLAYS.enabled or not OVERLAYS.claim(key):
        return

    def work():
        if not OVERLAYS.wanted(key):  # a newer colour or mask set for this frame came first
            OVERLAYS.unclaim(key)
            return None
        prepared = prepare(key, masks, color, opacity)
        if prepared is not None:
            OVERLAYS.put(prepared)
        return prepared

    OVERLAY.submit("Overlay", work, lambda prepared: prepared and redraw_sequencers(), _print_error)


def _print_error(exc: BaseException) -> None:
    print(f"Kling: the mask overlay could not be prepared: {exc}")


def plan(context) -> Plan | None:
    """The Python half of the draw callback (timed by ``scripts/bench_ui_thread.py``).

    Asks the overlay worker for the frame's buffer when it is neither uploaded nor ready.
    Nothing is drawn where the Preview does not show the strip (its Channel set below the
    strip's): a mask over another picture would mislead, and clicks there are refused.
    """
    scene = compat.sequencer_scene(context)
    settings = getattr(scene, "kling", None) if scene else None
    editor = scene.sequence_editor if scene else None
    strip = editor.active_strip if editor else None
    if settings is None or not settings.show_overlay or strip is None or strip.type != "MOVIE":
        return None
    state = load_selection(strip)
    if state is None:
        return None
    shown = getattr(getattr(context, "space_data", None), "display_channel", 0)
    if shown and geometry.shown_channel(scene, strip) > shown:
        return None
    frame = geometry.session_frame(scene, strip, state, scene.frame_current)
    if frame is None or frame not in state.masks:
        return None
    try:
        geom = geometry.strip_geometry(scene, strip)
    except ValueError:  # a movie Blender cannot read: nothing to register the mask on
        return None
    masks = state.masks[frame]
    color, opacity = tuple(settings.overlay_color), settings.overlay_opacity
    key = overlay_key(state.session_id, frame, masks, color, opacity) if masks else None
    if key is not None and key not in _textures and not OVERLAYS.ready(key):
        request(key, masks, color, opacity)
    dots = visible_dots(geom, state.points.get(frame, [])) if settings.show_points else []
    fallback = _shown.get((state.session_id, frame)) if key is not None else None
    return Plan(key, fallback, mask_quad(geom), dots)


def _texture(key: OverlayKey | None):
    """The GPU texture of ``key``: cached, else made from its ready buffer, else None."""
    import gpu

    if key is None:
        return None
    texture = _textures.get(key)
    if texture is not None:
        _textures.move_to_end(key)
        return texture
    prepared = OVERLAYS.take(key)
    if prepared is None:
        return None
    h, w = prepared.pixels.shape[:2]
    buffer = gpu.types.Buffer("FLOAT", w * h * 4, prepared.pixels.reshape(-1))
    texture = gpu.types.GPUTexture((w, h), format="RGBA8", data=buffer)
    _textures[key] = texture
    while len(_textures) > _MAX_TEXTURES:
        _textures.popitem(last=False)
    return texture


def _draw() -> None:
    drawn = plan(bpy.context)
    if drawn is None:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    texture = _texture(drawn.key)
    if texture is not None:
        _shown[drawn.key[:2]] = drawn.key
    elif drawn.fallback in _textures:
        texture = _textures[drawn.fallback]
    gpu.state.blend_set("ALPHA")
    if texture is not None:
        shader = gpu.shader.from_builtin("IMAGE")
        batch = batch_for_shader(shader, "TRI_FAN", {
            "pos": drawn.quad.positions, "texCoord": drawn.quad.texcoords})
        shader.bind()
        shader.uniform_sampler("image", texture)
        batch.draw(shader)
    if drawn.dots:
        shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        gpu.state.point_size_set(9.0)
        batch = batch_for_shader(shader, "POINTS", {"pos": drawn.dots})
        shader.uniform_float("color", (1.0, 0.85, 0.1, 1.0))
        batch.draw(shader)
    gpu.state.blend_set("NONE")


def register() -> None:
    if bpy.app.background:
        return
    OVERLAYS.enabled = True
    _handles.append(bpy.types.SpaceSequenceEditor.draw_handler_add(
        _draw, (), "PREVIEW", "POST_VIEW"))


def unregister() -> None:
    while _handles:
        bpy.types.SpaceSequenceEditor.draw_handler_remove(_handles.pop(), "PREVIEW")
    OVERLAYS.enabled = False
    OVERLAYS.clear()
    _textures.clear()
    _shown.clear()
