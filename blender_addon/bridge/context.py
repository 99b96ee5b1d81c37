"""What the operators and panels read from Blender's context, and its redraw.

The active movie strip, the session source stored on a strip, and the one answer to "may a
request about this strip leave now?" (``refusal_for``): Blender's "Allow Online Access" as
the network gate sees it, then the strip's movie file. Every operator that sends asks
here, so the refusal reads the same wherever it is shown.
"""

from __future__ import annotations

from typing import Any

import bpy

from .. import compat
from ..work.online import GATE
from ..work.session_calls import SessionSource
from .prefs import base_url
from .source import missing_media

__all__ = ["active_movie_strip", "online_refusal", "poll_online", "redraw_sequencers",
           "refusal_for", "session_source", "sync_online_access"]


def active_movie_strip(context: bpy.types.Context) -> Any:
    """The active strip of the sequencer the user looks at, if it is a movie; else None."""
    scene = compat.sequencer_scene(context)
    editor = scene.sequence_editor if scene else None
    strip = editor.active_strip if editor else None
    return strip if strip is not None and strip.type == "MOVIE" else None


def redraw_sequencers() -> None:
    """Redraw every Sequencer area (its Preview and sidebar), in every window; nothing in
    background mode, which has none."""
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def session_source(strip: Any) -> SessionSource:
    """Where the strip's session was started from, as the worker's calls take it."""
    return SessionSource(video_url=strip.kling.published_url or strip.kling.video_url,
                         video_id=strip.kling.video_id)


def sync_online_access() -> bool:
    """Hand Blender's switch to the network gate (main thread: only it may read ``bpy``)."""
    allowed = compat.online_access_allowed()
    GATE.set_online(allowed)
    return allowed


def online_refusal(context: bpy.types.Context) -> str:
    """The online gate's message if a request to Kling would be refused now, else "".

    Reads Blender's switch and answers from what the gate already knows (no name lookup),
    so ``poll()`` may call it; the worker's own check at each request is what enforces.
    """
    sync_online_access()
    return GATE.refusal_cached(base_url(context))


def refusal_for(context: bpy.types.Context, strip: Any) -> str:
    """Why nothing about ``strip`` may be sent to Kling now, or "": online access refused,
    then the strip's movie file missing. Cheap (no name lookup, one ``stat``)."""
    return online_refusal(context) or missing_media(strip)


def poll_online(cls: Any, context: bpy.types.Context) -> bool:
    """For ``poll()``: False with the gate's message when online access refuses Kling."""
    refusal = online_refusal(context)
    if refusal:
        cls.poll_message_set(refusal)
    return not refusal
