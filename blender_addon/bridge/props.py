"""Properties: the session of each strip, overlay settings per scene, runtime status.

The selection (session id, the exact floats sent, masks as RLE) is stored on the strip as
the core's ``SelectionState`` JSON: Blender's float properties are single precision and
would break Kling's bit-identical delete, while JSON round-trips Python floats exactly.
Everything here is saved in the .blend except the window-manager status; no key is.
"""


import copy
import json
import uuid
from typing import Any

import bpy

from kling_elements import SelectionState

from .. import compat
from .context import redraw_sequencers
from .props_edit import KlingEditSettings, KlingTaskRecord
from .props_edit import classes as edit_classes

__all__ = ["KlingRuntime", "KlingSceneSettings", "KlingStripSession", "classes",
           "load_selection", "register_pointers", "save_selection", "selection_text",
           "unregister_pointers"]


def _redraw(self: Any, context: bpy.types.Context) -> None:
    redraw_sequencers()


def _new_selection_token(self: Any, context: bpy.types.Context) -> None:
    self.selection_token = uuid.uuid4().hex


class KlingStripSession(bpy.types.PropertyGroup):
    selection_json: bpy.props.StringProperty(
        name="Selection", description="Session id, exact points and masks (JSON)",
        update=_new_selection_token)
    selection_token: bpy.props.StringProperty(
        name="Selection token", description="A new value with every change of the selection "
        "(undo restores it with the selection): the add-on's parsed copy is found by it")
    video_url: bpy.props.StringProperty(
        name="Video URL", description="A URL Kling can download this clip from (optional "
        "with the local sandbox, which receives an upload)")
    video_id: bpy.props.StringProperty(
        name="Kling video id", description="Set when the strip is a Kling result: edits chain "
        "from it without an upload")
    published_url: bpy.props.StringProperty(name="Published URL")
    session_first_frame: bpy.props.IntProperty(
        name="Session first file frame", description="The movie frame at the session's time 0 "
        "(not 0 when the session was started from a conformed clip)", min=0)
    session_file_frames: bpy.props.IntProperty(
        name="Movie frames", description="Frames of the strip's movie when the session was "
        "started from a conformed clip (0: the whole movie was sent)", min=0)
    edit: bpy.props.PointerProperty(type=KlingEditSettings)
    tasks: bpy.props.CollectionProperty(type=KlingTaskRecord)
    active_task: bpy.props.IntProperty(name="Active task")
    preview_strip: bpy.props.StringProperty(
        name="Tracking preview strip", description="The muted strip showing the tracked masks")
    # Set on a strip imported from a Kling result (video_id above chains the next edit).
    task_id: bpy.props.StringProperty(name="Kling task id")
    prompt: bpy.props.StringProperty(name="Prompt of the edit that made this strip")
    source_strip: bpy.props.StringProperty(name="Source strip")
    conformed_path: bpy.props.StringProperty(
        name="Conformed clip", description="A compliant MP4 rendered "
        "from this strip's visible range; when set, the session uses it instead of the file")
    # Kling's side of this strip is also kept outside Blender's undo (see live_sync).
    live_key: bpy.props.StringProperty(
        name="Live key", description="Finds this strip's session and tasks in the add-on's "
        "copy of Kling's state, which Ctrl+Z does not take back")
    forgotten: bpy.props.StringProperty(
        name="Forgotten", description="Session and task ids forgotten here on purpose "
        "(Reset, Forget Task), space-separated; undoing those brings them back")


class KlingSceneSettings(bpy.types.PropertyGroup):
    show_overlay: bpy.props.BoolProperty(name="Show Masks", default=True, update=_redraw)
    overlay_color: bpy.props.FloatVectorProperty(
        name="Mask Color", subtype="COLOR", size=3, min=0.0, max=1.0,
        default=(0.1, 0.9, 0.3), update=_redraw)
    overlay_opacity: bpy.props.FloatProperty(
        name="Opacity", subtype="FACTOR", min=0.0, max=1.0, default=0.45, update=_redraw)
    show_points: bpy.props.BoolProperty(name="Show Points", default=True, update=_redraw)


class KlingAccountTask(bpy.types.PropertyGroup):
    task_id: bpy.props.StringProperty(name="Task id")
    status: bpy.props.StringProperty(name="Status")
    message: bpy.props.StringProperty(name="Message")
    created: bpy.props.IntProperty(name="Created (Unix s)")


class KlingRuntime(bpy.types.PropertyGroup):
    account_tasks: bpy.props.CollectionProperty(type=KlingAccountTask)
    account_index: bpy.props.IntProperty()
    tasks_status: bpy.props.StringProperty(name="Tasks", update=_redraw)
    status: bpy.props.StringProperty(name="Status", update=_redraw)
    error: bpy.props.StringProperty(name="Last Error", update=_redraw)
    busy: bpy.props.BoolProperty(name="Busy", update=_redraw)
    account_left: bpy.props.StringProperty(
        name="Account", description="What the account's resource packs have left",
        update=_redraw)


_by_token: dict[str, SelectionState | None] = {}
_by_text: dict[int, tuple[str, SelectionState | None]] = {}
_PARSED_MAX = 64


def _parsed(strip: Any) -> SelectionState | None:
    """The strip's session as last parsed: found by the strip's selection token, which any
    write of ``selection_json`` renews (and undo restores along with it), so the JSON itself
    is not read again; a strip from a file saved before tokens is found by its text."""
    kling = strip.kling
    token = kling.selection_token
    if token in _by_token:
        return _by_token[token]
    text = kling.selection_json
    known = _by_text.get(strip.as_pointer())
    if known is not None and known[0] == text:
        state = known[1]
    else:
        state = SelectionState.from_dict(json.loads(text)) if text else None
        if len(_by_text) >= _PARSED_MAX:
            _by_text.clear()
        _by_text[strip.as_pointer()] = (text, state)
    if token:
        if len(_by_token) >= _PARSED_MAX:
            _by_token.clear()
        _by_token[token] = state
    return state


def load_selection(strip: Any) -> SelectionState | None:
    """The strip's session, parsed once per change (a copy the caller may change).

    Panels, ``poll()`` and the overlay's draw callback read it on every redraw; with ten
    frames of 2160x2160 masks the JSON is hundreds of kB: parsing it, or even reading it
    from the property (a copy and a UTF-8 decode), each time would cost the main thread
    milliseconds per redraw.
    """
    state = _parsed(strip)
    if state is None:
        return None
    state = copy.copy(state)
    state.points = {f: list(p) for f, p in state.points.items()}
    state.masks = dict(state.masks)
    return state


def selection_text(state: SelectionState | dict[str, Any]) -> str:
    """The JSON stored in ``selection_json`` for ``state``."""
    return json.dumps(state.to_dict() if isinstance(state, SelectionState) else state)


def save_selection(strip: Any, state: SelectionState | dict[str, Any] | None) -> None:
    strip.kling.selection_json = "" if state is None else selection_text(state)


classes = (*edit_classes, KlingStripSession, KlingSceneSettings, KlingAccountTask, KlingRuntime)


def register_pointers() -> None:
    compat.STRIP_TYPE.kling = bpy.props.PointerProperty(type=KlingStripSession)
    bpy.types.Scene.kling = bpy.props.PointerProperty(type=KlingSceneSettings)
    bpy.types.WindowManager.kling = bpy.props.PointerProperty(type=KlingRuntime)


def unregister_pointers() -> None:
    del bpy.types.WindowManager.kling
    del bpy.types.Scene.kling
    del compat.STRIP_TYPE.kling
