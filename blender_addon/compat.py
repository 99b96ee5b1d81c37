"""Every difference between the Blender versions the add-on supports, in one place.

3.4 (Debian's package, for the UI smoke run), 4.2 LTS, 4.5 LTS and 5.x. The notable
breaks: 4.4/5.0 renamed sequences to strips (``bpy.types.Sequence`` -> ``Strip``,
``SequenceEditor.sequences`` -> ``strips``), 5.0 added ``context.sequencer_scene``, and 5.1
renamed the strip timing properties (``timing``/``set_timing``).
"""

from __future__ import annotations

import bpy

from .work.online import GATE

__all__ = [
    "ALPHA_OVER_HIDES_WHOLE_FRAME",
    "STRIP_TYPE",
    "movie_strips",
    "new_movie",
    "online_access_allowed",
    "sequencer_scene",
    "set_timing",
    "strip_by_name",
    "strips",
    "sync_online_access",
    "timing",
    "top_level",
]

# Blender 4.2.0 renders an opaque Alpha Over strip as hiding the whole frame, also outside
# its (scaled) image; 4.2.23, 4.5 and 5.x hide only what lies under the image. Measured with
# real renders (tests/addon/test_addon_sources.py); the 4.2 releases between are unmeasured.
ALPHA_OVER_HIDES_WHOLE_FRAME = tuple(bpy.app.version[:3]) == (4, 2, 0)

STRIP_TYPE = getattr(bpy.types, "Strip", None) or bpy.types.Sequence


def sequencer_scene(context: bpy.types.Context) -> bpy.types.Scene | None:
    """The scene whose sequencer the user is looking at (5.0 can differ from ``context.scene``)."""
    return getattr(context, "sequencer_scene", None) or context.scene


def strips(editor: bpy.types.SequenceEditor, *, recursive: bool = True):
    """All strips of the editor (inside meta strips too when ``recursive``)."""
    if hasattr(editor, "strips_all"):
        return editor.strips_all if recursive else editor.strips
    return editor.sequences_all if recursive else editor.sequences


def top_level(editor: bpy.types.SequenceEditor):
    """The collection new strips are added to."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def new_movie(editor: bpy.types.SequenceEditor, name: str, filepath: str, channel: int,
              frame_start: int):
    return top_level(editor).new_movie(name, filepath, channel, frame_start)


def strip_by_name(scene: bpy.types.Scene | None, name: str):
    """The strip called ``name`` in ``scene``, or None (it may have been renamed or deleted)."""
    editor = scene.sequence_editor if scene else None
    if editor is None or not name:
        return None
    return strips(editor).get(name)


def movie_strips(scene: bpy.types.Scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return [s for s in strips(editor) if s.type == "MOVIE"]


def online_access_allowed() -> bool:
    """Blender's "Allow Online Access" (4.2+); older versions have no such switch."""
    return bool(getattr(bpy.app, "online_access", True))


def sync_online_access() -> bool:
    """Hand Blender's switch to the network gate (main thread: only it may read ``bpy``)."""
    allowed = online_access_allowed()
    GATE.set_online(allowed)
    return allowed


# Strip timing, by the names Blender 5.1 introduced -> the names of 4.2-5.0. 5.1+ still has the
# old names but marks them "expected to be removed in Blender 6.0": each access warns.
TIMING_NAMES: dict[str, str] = {
    "content_start": "frame_start",  # timeline frame of the source's first frame (float)
    "left_handle": "frame_final_start",  # first frame shown
    "right_handle": "frame_final_end",  # first frame no longer shown (exclusive)
    "duration": "frame_final_duration",  # right_handle - left_handle
    "left_handle_offset": "frame_offset_start",
    "right_handle_offset": "frame_offset_end",
    "content_duration": "frame_duration",  # the untrimmed length (read-only)
    "content_trim_start": "animation_offset_start",  # source frames hidden at the start
    "content_trim_end": "animation_offset_end",
}
_timing_attr: dict[tuple[str, str], str | None] = {}


def _timing_attribute(strip, name: str) -> str | None:
    """The attribute that holds timing value ``name`` on this kind of strip, or None."""
    key = (strip.bl_rna.identifier, name)
    if key not in _timing_attr:
        if name not in TIMING_NAMES:
            raise KeyError(f"{name!r} is not a strip timing name; use one of "
                           f"{sorted(TIMING_NAMES)}")
        properties = strip.bl_rna.properties
        _timing_attr[key] = next((attr for attr in (name, TIMING_NAMES[name])
                                  if attr in properties), None)
    return _timing_attr[key]


_MISSING = object()


def timing(strip, name: str, default=_MISSING):
    """The strip's timing value ``name`` (a key of ``TIMING_NAMES``: the 5.1+ name).

    Reads the 5.1+ property where this Blender has it and the 4.2-5.0 one elsewhere, so no
    Blender warns. ``default`` is returned for a kind of strip without that property (e.g.
    ``content_trim_start`` on an effect strip); without a default that raises AttributeError.
    """
    attribute = _timing_attribute(strip, name)
    if attribute is None:
        if default is _MISSING:
            raise AttributeError(f"a {strip.bl_rna.identifier} has no {name!r} "
                                 f"(nor {TIMING_NAMES[name]!r})")
        return default
    return getattr(strip, attribute)


def set_timing(strip, name: str, value) -> None:
    """Write the strip's timing value ``name``, under this Blender's spelling (see ``timing``)."""
    attribute = _timing_attribute(strip, name)
    if attribute is None:
        raise AttributeError(f"a {strip.bl_rna.identifier} has no {name!r} "
                             f"(nor {TIMING_NAMES[name]!r})")
    setattr(strip, attribute, value)
