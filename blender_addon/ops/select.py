"""The selection step: the modal click tool in the Preview, and frame-level operators.

``request_add`` / ``request_delete`` are what a click ends in once mapped to a session
frame and normalized ``(x, y)``; tests call them directly. They check Kling's limits on
the main thread (nothing is queued when a limit is hit) and send the call to the worker.
Every sender first splits a duplicate nobody split yet (``live_sync.split_if_copy``; a
copy made through Python before any depsgraph update) and only then reads the session,
so a click, Delete Frame or Clear All on a copy never reaches its original's session.
"""


import bpy

from kling_elements import ValidationError, validate

from .. import compat
from ..bridge import geometry, live_sync
from ..bridge.context import active_movie_strip, poll_online, refusal_for, session_source
from ..bridge.prefs import client_settings
from ..bridge.props import load_selection
from ..work import session_calls
from ..work.overlay_cache import OVERLAYS
from .long_jobs import marks_locked
from .session import run_job

__all__ = ["classes", "nearest_point", "request_add", "request_clear", "request_delete"]

PICK_RADIUS = 0.05


def _session_of(strip):
    state = load_selection(strip)
    if state is None:
        raise ValidationError("start a session first (Session > Start Editing)")
    return state


def _overlay_look(context):
    """The overlay's colour and opacity, when the Preview draws masks (else None)."""
    settings = compat.sequencer_scene(context).kling
    if not OVERLAYS.enabled or not settings.show_overlay:
        return None
    return tuple(settings.overlay_color), float(settings.overlay_opacity)


def _send(context, strip, label: str, state, action, frame: int | None = None) -> None:
    """Run ``action(settings, source, stored_state)`` on the worker; store what it returns.

    Everything the worker needs is read from ``bpy`` here, on the main thread; the answer
    goes to the strip found again by key (an undo meanwhile replaces every Blender object).
    The worker also serialises the answer and prepares ``frame``'s mask overlay, so the
    main thread only stores them (``session_calls.selection_answer``).
    Refused (``ValidationError``, nothing queued) while online access refuses Kling, while
    the strip's movie is missing, or while a long job locks its marks (``marks_locked``).
    """
    refusal = (refusal_for(context, strip)
               or marks_locked(compat.sequencer_scene(context).name, strip))
    if refusal:
        raise ValidationError(refusal)
    settings, source, stored = client_settings(context), session_source(strip), state.to_dict()
    where, look = live_sync.ref(strip), _overlay_look(context)

    def done(answer: session_calls.SelectionAnswer) -> None:
        if answer.overlay is not None:
            OVERLAYS.put(answer.overlay)
        live_sync.deliver_session(where, answer.session_id, {"selection_json": answer.text})

    run_job(context, label, lambda: session_calls.selection_answer(
        action(settings, source, stored), frame, look), done)


def _refuse_if_covered(context, strip, state, frame_index: int,
                       points: list[tuple[float, float]]) -> None:
    """Refuse points another strip is drawn over: the editor meant what the Preview shows.

    Checked at the playhead's frame when it shows ``frame_index`` (a click), else at the
    scene frame that shows it. A Preview set to show channels up to N (its Channel, not 0)
    draws nothing above N: strips there do not hide, and a strip there is not shown."""
    scene = compat.sequencer_scene(context)
    shown = int(getattr(getattr(context, "space_data", None), "display_channel", 0) or 0)
    channel = geometry.shown_channel(scene, strip)
    if shown and channel > shown:
        raise ValidationError(
            f"this Preview shows channels up to {shown} only, and {strip.name!r} is drawn on "
            f"channel {channel}: set the Preview's Channel to 0 (all) or {channel}")
    frame = scene.frame_current
    if geometry.session_frame(scene, strip, state, frame) != frame_index:
        frame = geometry.scene_frame(scene, strip, state, frame_index)
    if frame is None:
        return
    for point in points:
        try:
            view = geometry.normalized_to_view(scene, strip, *point)
        except ValueError:  # no image size (a missing movie): _send says why
            return
        other = geometry.covering_strip(scene, strip, frame, *view, display_channel=shown)
        if other is not None:
            raise ValidationError(
                f"the strip is covered by {other!r} at this frame: mute {other!r} or move it "
                f"below {strip.name!r}, then click again")


def request_add(context, strip, frame_index: int, points: list[tuple[float, float]]) -> None:
    """Validate locally, then add ``points`` on ``frame_index`` in the background.

    Refused (``ValidationError``, nothing sent) where another strip hides ``strip``.
    """
    live_sync.split_if_copy(strip)  # a copy's session is its original's: never send it
    state = _session_of(strip)
    validate.frame_index(frame_index, state.total_frames)
    exact = validate.points(points)
    state.check_add(frame_index, exact)
    _refuse_if_covered(context, strip, state, frame_index, exact)
    _send(context, strip, "Add point", state,
          lambda *inputs: session_calls.add_points(*inputs, frame_index, exact), frame_index)


def request_delete(context, strip, frame_index: int, points: list[tuple[float, float]]) -> None:
    """Delete points that were added on ``frame_index`` (the stored, exact floats)."""
    live_sync.split_if_copy(strip)
    state = _session_of(strip)
    exact = state.exact_points(frame_index, list(points))
    _send(context, strip, "Delete point", state,
          lambda *inputs: session_calls.delete_points(*inputs, frame_index, exact), frame_index)


def request_clear(context, strip) -> None:
    live_sync.split_if_copy(strip)
    state = load_selection(strip)
    if state is not None:
        _send(context, strip, "Clear selection", state, session_calls.clear_points)


def nearest_point(points: list[tuple[float, float]], x: float, y: float,
                  radius: float = PICK_RADIUS) -> tuple[float, float] | None:
    """The stored point closest to ``(x, y)`` within ``radius`` (normalized units)."""
    best = min(points, key=lambda p: (p[0] - x) ** 2 + (p[1] - y) ** 2, default=None)
    if best is None or (best[0] - x) ** 2 + (best[1] - y) ** 2 > radius ** 2:
        return None
    return best


class KLING_OT_select_points(bpy.types.Operator):
    """Click the element in the Preview to mark it; Shift+click or right-click removes the
    nearest point; Enter or Esc leaves"""

    bl_idname = "kling.select_points"
    bl_label = "Select Elements"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None or load_selection(strip) is None:
            cls.poll_message_set("Start a session on a movie strip first")
            return False
        return poll_online(cls, context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.area is None or context.area.type != "SEQUENCE_EDITOR":
            self.report({"ERROR"}, "Run this from the Sequencer's Preview")
            return {"CANCELLED"}
        context.window_manager.modal_handler_add(self)
        self._hint(context)
        return {"RUNNING_MODAL"}

    def _hint(self, context: bpy.types.Context) -> None:
        context.area.header_text_set(
            "Kling: click the element to mark it | Shift+click / right-click: remove nearest "
            "point | Enter/Esc: done")

    def _finish(self, context: bpy.types.Context) -> set[str]:
        context.area.header_text_set(None)
        return {"FINISHED"}

    def _preview_region(self, context: bpy.types.Context, event: bpy.types.Event):
        for region in context.area.regions:
            if region.type == "PREVIEW" and (
                region.x <= event.mouse_x < region.x + region.width
                and region.y <= event.mouse_y < region.y + region.height
            ):
                return region
        return None

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type in {"ESC", "RET", "NUMPAD_ENTER"} and event.value == "PRESS":
            return self._finish(context)
        removing = event.type == "RIGHTMOUSE" or (event.type == "LEFTMOUSE" and event.shift)
        if event.type not in {"LEFTMOUSE", "RIGHTMOUSE"} or event.value != "PRESS":
            return {"PASS_THROUGH"}
        region = self._preview_region(context, event)
        if region is None:
            return {"PASS_THROUGH"}
        strip = active_movie_strip(context)
        if strip is None:
            self.report({"WARNING"}, "The active strip is not a movie strip any more")
            return self._finish(context)
        try:
            self.click(context, strip, region, event, removing)
        except ValidationError as exc:
            self.report({"WARNING"}, str(exc))
        return {"RUNNING_MODAL"}

    def click(self, context, strip, region, event, removing: bool) -> None:
        scene = compat.sequencer_scene(context)
        live_sync.split_if_copy(strip)
        state = _session_of(strip)
        rx, ry = event.mouse_x - region.x, event.mouse_y - region.y
        vx, vy = region.view2d.region_to_view(rx, ry)
        point = geometry.click_to_normalized(scene, strip, vx, vy)
        if point is None:
            raise ValidationError("That click is outside the strip's image: click on the picture")
        frame = geometry.session_frame(scene, strip, state, scene.frame_current)
        if frame is None:
            raise ValidationError("The playhead is outside the session's clip")
        if removing:
            target = nearest_point(state.points.get(frame, []), *point)
            if target is None:
                raise ValidationError(f"No point near the click on frame {frame}")
            request_delete(context, strip, frame, [target])
        else:
            request_add(context, strip, frame, [point])


class KLING_OT_delete_frame(bpy.types.Operator):
    """Delete every point marked on this frame"""

    bl_idname = "kling.delete_frame"
    bl_label = "Delete Frame's Points"
    frame_index: bpy.props.IntProperty()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip = active_movie_strip(context)
        if strip is not None:
            live_sync.split_if_copy(strip)
        state = load_selection(strip) if strip else None
        if state is None or not state.points.get(self.frame_index):
            return {"CANCELLED"}
        try:
            request_delete(context, strip, self.frame_index,
                           list(state.points[self.frame_index]))
        except ValidationError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class KLING_OT_clear_selection(bpy.types.Operator):
    """Remove every marked point on every frame"""

    bl_idname = "kling.clear_selection"
    bl_label = "Clear All"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip = active_movie_strip(context)
        if strip is None:
            return {"CANCELLED"}
        try:
            request_clear(context, strip)
        except ValidationError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class KLING_OT_jump_to_frame(bpy.types.Operator):
    """Move the playhead to this marked frame"""

    bl_idname = "kling.jump_to_frame"
    bl_label = "Jump"
    frame_index: bpy.props.IntProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip = active_movie_strip(context)
        state = load_selection(strip) if strip else None
        if state is None:
            return {"CANCELLED"}
        scene = compat.sequencer_scene(context)
        frame = geometry.scene_frame(scene, strip, state, self.frame_index)
        if frame is None:
            self.report({"WARNING"}, f"Frame {self.frame_index} is trimmed off the strip")
            return {"CANCELLED"}
        scene.frame_set(frame)
        return {"FINISHED"}


classes = (KLING_OT_select_points, KLING_OT_delete_frame, KLING_OT_clear_selection,
           KLING_OT_jump_to_frame)
