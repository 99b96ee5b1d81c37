"""Every difference between the Blender versions the add-on supports, in one place.

3.4 (Debian's package, for the UI smoke run), 4.2 LTS, 4.5 LTS and 5.x. The notable
break: 4.4/5.0 renamed sequences to strips (``bpy.types.Sequence`` -> ``Strip``,
``SequenceEditor.sequences`` -> ``strips``), and 5.0 added ``context.sequencer_scene``.
"""

from __future__ import annotations

import bpy

from .online import GATE

__all__ = [
    "STRIP_TYPE",
    "movie_strips",
    "new_movie",
    "online_access_allowed",
    "sequencer_scene",
    "strip_by_name",
    "strips",
    "sync_online_access",
    "top_level",
]

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
