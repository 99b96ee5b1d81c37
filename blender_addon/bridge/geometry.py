"""Reads a strip's placement and timing from ``bpy`` into the pure ``mapping`` functions.

Only this module knows both sides: which Blender properties feed which mapping input.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kling_elements import SelectionState

from .. import compat
from ..pure import cover, mapping
from . import source


def bpy_abspath(path: str) -> str:
    import bpy

    return bpy.path.abspath(path)

__all__ = ["click_to_normalized", "covering_strip", "normalized_to_view", "scene_frame",
           "session_frame", "shown_channel", "strip_geometry"]


def strip_geometry(scene: Any, strip: Any) -> mapping.StripGeometry:
    element = strip.elements[0]
    return _placed(scene, strip, int(element.orig_width), int(element.orig_height))


def _placed(scene: Any, strip: Any, image_w: int, image_h: int) -> mapping.StripGeometry:
    """Where ``strip``'s picture of ``image_w`` x ``image_h`` px lies in the Preview."""
    crop, transform = strip.crop, strip.transform
    render = scene.render
    return mapping.StripGeometry(
        image_w=image_w,
        image_h=image_h,
        crop=(float(crop.min_x), float(crop.max_x), float(crop.min_y), float(crop.max_y)),
        offset=(float(transform.offset_x), float(transform.offset_y)),
        scale=(float(transform.scale_x), float(transform.scale_y)),
        rotation=float(transform.rotation),
        origin=(float(transform.origin[0]), float(transform.origin[1])),
        flip_x=bool(strip.use_flip_x),
        flip_y=bool(strip.use_flip_y),
        canvas_w=int(render.resolution_x),
        canvas_h=int(render.resolution_y),
        pixel_aspect=float(render.pixel_aspect_x) / float(render.pixel_aspect_y),
    )


def click_to_normalized(scene: Any, strip: Any, vx: float, vy: float
                        ) -> tuple[float, float] | None:
    """Preview view coordinates -> Kling's normalized (x, y), or None off the image."""
    return mapping.view_to_normalized(strip_geometry(scene, strip), vx, vy)


def normalized_to_view(scene: Any, strip: Any, x: float, y: float) -> tuple[float, float]:
    return mapping.normalized_to_view(strip_geometry(scene, strip), x, y)


def _timings(scene: Any, strip: Any, state: SelectionState
             ) -> tuple[mapping.StripTiming, mapping.SessionTiming]:
    """Blender's strip timing and the session's, from RNA plus what init-selection said.

    When the whole file is sent to Kling, the file's frame count is the session's length in
    file frames; that also tells whether Blender retimes the strip (the flag is not in RNA).
    A session from a conformed clip stored the movie's frame count and its first frame.
    """
    render = scene.render
    scene_fps = render.fps / render.fps_base
    source_fps = source.source_fps(strip, bpy_abspath(strip.filepath)) or scene_fps
    session_fps = float(state.fps or source_fps)
    path = bpy_abspath(strip.filepath)
    total = int(state.total_frames or source.source_file_frames(strip, path))
    offset_start = int(compat.timing(strip, "content_trim_start", 0))
    offset_end = int(compat.timing(strip, "content_trim_end", 0))
    # A conformed session covers part of the movie: its frame count was stored at start.
    file_frames = int(strip.kling.session_file_frames) or max(
        round(total * source_fps / session_fps), 1)
    content = max(file_frames - offset_start - offset_end, 1)
    try:
        retimed = mapping.infer_auto_playback_rate(
            source.timeline_frames(strip), content, source_fps, scene_fps)
    except ValueError:
        retimed = False
    timing = mapping.StripTiming(
        frame_start=float(compat.timing(strip, "content_start")),
        frame_final_start=int(compat.timing(strip, "left_handle")),
        frame_final_end=int(compat.timing(strip, "right_handle")),
        scene_fps=scene_fps,
        source_fps=source_fps,
        auto_playback_rate=retimed,
        animation_offset_start=offset_start,
        content_frames=content,
    )
    return timing, mapping.SessionTiming(fps=session_fps, total_frames=total,
                                         source_fps=source_fps,
                                         source_start_frame=int(strip.kling.session_first_frame))


def session_frame(scene: Any, strip: Any, state: SelectionState, frame: int) -> int | None:
    """The normalized video's frame shown at scene ``frame``, or None outside the clip."""
    timing, session = _timings(scene, strip, state)
    return mapping.scene_to_session_frame(timing, session, frame)


def scene_frame(scene: Any, strip: Any, state: SelectionState, index: int) -> int | None:
    """A scene frame that shows the normalized video's frame ``index`` (None if trimmed off)."""
    timing, session = _timings(scene, strip, state)
    return mapping.session_to_scene_frame(timing, session, index)


# Effects that draw one input strip's picture (processed, or at another time) in its place:
# in the Preview the input is seen only through them, whether or not the input is muted.
_ONE_INPUT_EFFECTS = ("SPEED", "GLOW", "GAUSSIAN_BLUR", "TRANSFORM")
_CANVAS_TYPES = ("META", "COLOR", *_ONE_INPUT_EFFECTS)  # each draws a canvas-sized picture
_COVERING_TYPES = ("MOVIE", "IMAGE", *_CANVAS_TYPES)
# Image formats that cannot carry alpha; any other image strip may be see-through. Movies
# count as opaque (an alpha channel in a movie is rare: mute such an overlay to click under).
_OPAQUE_IMAGES = (".jpg", ".jpeg", ".bmp")


def _drawn(level: Any, frame: int):
    """A test for whether a strip of ``level`` (an editor or a meta) draws at ``frame``."""
    channels = getattr(level, "channels", None)

    def drawn(other: Any) -> bool:
        muted = other.mute or (channels is not None and channels[other.channel].mute)
        return (not muted and other.type in _COVERING_TYPES
                and compat.timing(other, "left_handle") <= frame
                < compat.timing(other, "right_handle"))

    return drawn


def _content(scene: Any, strip: Any, frame: int) -> tuple[cover.Layer, ...] | None:
    """What a canvas-sized strip composites: a meta's drawn strips; an effect's input, alone
    on the canvas at full opacity; None for a strip that shows a picture of its own."""
    if strip.type == "META":
        drawn = _drawn(strip, frame)
        return tuple(_layer(scene, inner, frame) for inner in compat.meta_strips(strip)
                     if drawn(inner))
    if strip.type in _ONE_INPUT_EFFECTS:
        source = getattr(strip, "input_1", None)
        if source is None or source.type not in _COVERING_TYPES:
            return ()
        return (replace(_layer(scene, source, frame), blend="ALPHA_OVER", opacity=1.0),)
    return None


def _layer(scene: Any, strip: Any, frame: int) -> cover.Layer:
    """``strip`` as ``cover`` sees it: a meta or an effect with what it composites, a colour
    strip as an opaque canvas-sized picture."""
    try:
        if strip.type in _CANVAS_TYPES:
            geom = _placed(scene, strip, int(scene.render.resolution_x),
                           int(scene.render.resolution_y))
        else:
            geom = strip_geometry(scene, strip)
    except (ValueError, IndexError):
        geom = None
    opaque = strip.type == "MOVIE" or strip.type in _CANVAS_TYPES or (
        len(strip.elements) > 0 and strip.elements[0].filename.lower().endswith(_OPAQUE_IMAGES))
    return cover.Layer(name=strip.name, channel=int(strip.channel), blend=strip.blend_type,
                       opacity=float(strip.blend_alpha), opaque=opaque, geometry=geom,
                       content=_content(scene, strip, frame))


def _containers(editor: Any, strip: Any) -> list[Any]:
    """The meta strips ``strip`` lies in, innermost first, up to the level the Preview shows
    (the meta being edited, else the top); None when that level does not hold ``strip``."""
    parent = {}
    for meta in compat.strips(editor):
        if meta.type == "META":
            for inner in compat.meta_strips(meta):
                parent[inner.as_pointer()] = meta
    stack = list(getattr(editor, "meta_stack", ()))
    shown = stack[-1].as_pointer() if stack else None
    chain: list[Any] = []
    current = parent.get(strip.as_pointer())
    while current is not None and current.as_pointer() != shown:
        chain.append(current)
        current = parent.get(current.as_pointer())
    if shown is not None and current is None:
        return None
    return chain


def shown_channel(scene: Any, strip: Any) -> int:
    """The channel ``strip`` is drawn on at the level the Preview shows: its own, or that of
    the meta strip holding it there (0 when that level does not hold it)."""
    editor = scene.sequence_editor
    chain = _containers(editor, strip) if editor else None
    if chain is None:
        return 0
    return int((chain[-1] if chain else strip).channel)


def covering_strip(scene: Any, strip: Any, frame: int, vx: float, vy: float, *,
                   display_channel: int = 0) -> str | None:
    """The name of a strip drawn over ``strip`` at view point ``(vx, vy)`` on scene
    ``frame`` (see ``cover``), or None. Inside a meta strip: its strips above ``strip``,
    then whatever hides the meta at its own level, up to the level the Preview shows; the
    point follows each meta's crop and transform. Movie, image, colour, meta strips and
    effects that show one input strip (Speed, Glow, Blur) can hide. ``display_channel``:
    the Preview's Channel (0: all); strips above it are not drawn there."""
    editor = scene.sequence_editor
    chain = _containers(editor, strip) if editor else None
    if chain is None:
        return None
    element, point = strip, (vx, vy)
    for container in [*chain, None]:
        level = container if container is not None else editor
        if container is None and getattr(editor, "meta_stack", None):
            level = editor.meta_stack[-1]
        siblings = compat.meta_strips(level) if level is not editor else compat.strips(
            editor, recursive=False)
        drawn = _drawn(level, frame)
        top = display_channel if container is None and display_channel else None
        layers = [_layer(scene, other, frame) for other in siblings
                  if other.channel > element.channel and drawn(other)
                  and (top is None or other.channel <= top)]
        found = cover.covering_layer(int(element.channel), layers, *point,
                                     alpha_over_whole_frame=compat.ALPHA_OVER_HIDES_WHOLE_FRAME)
        if found is not None:
            return found.name
        if container is None:
            return None
        try:
            outer = _placed(scene, container, int(scene.render.resolution_x),
                            int(scene.render.resolution_y))
        except ValueError:
            return None
        point = cover.canvas_to_view(outer, *point)
        if point is None:  # cut away by the meta: nothing shows the strip there
            return None
        element = container
    return None
