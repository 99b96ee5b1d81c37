"""Operators of the Edit and Preview steps: images, prompt helpers, Generate, tracking preview.

Generate writes the task record (with its ``external_task_id``) before the create call is
queued. The call runs on a long-job thread of its own, so a wait for a free task slot (up to
``task_calls.SLOT_WAIT_S``) never holds up clicks, and it can be cancelled. It starts once the
clicks queued before Generate are sent, and clicks on the strip are refused until it is
sent (``long_jobs.marks_locked``), so the task is made from exactly the marks the user saw.

Preview Tracking runs on a long-job thread too (a ``preview-selection`` call and a video
download can take long), after the clicks queued before it; Cancel stops it with no file
kept and no strip added.
"""


import threading
import time
import uuid

import bpy

from kling_elements import (
    ConnectionFailed,
    CreateCancelled,
    RateLimitError,
    ServerError,
    prompts,
)

from .. import compat
from ..bridge import live_sync, reference_images, results
from ..bridge.context import (
    active_movie_strip,
    poll_online,
    refusal_for,
    session_source,
    sync_online_access,
)
from ..bridge.prefs import client_settings
from ..bridge.props import load_selection, selection_text
from ..bridge.props_edit import MODE_LABELS
from ..pure import edit_check
from ..work import session_calls, task_calls
from ..work.online import OnlineAccessRefused
from ..work.worker import LONG, WORKER
from .long_jobs import generate_key, preview_key, run_long_job

__all__ = ["CREATING", "classes", "edit_problems_for", "preview_key", "request_generate",
           "request_preview"]

CREATING: set[str] = set()
"""External ids whose create call is queued or running in this Blender session."""


def edit_problems_for(strip) -> list[str]:
    """Every reason the strip's edit cannot be generated yet (empty when it can)."""
    edit = strip.kling.edit
    images = reference_images.slot_images(edit, edit.edit_mode)
    state = load_selection(strip)
    return edit_check.edit_problems(
        edit_mode=edit.edit_mode,
        images=[reference_images.image_facts(img, f"image {n}")
                for n, img in enumerate(images, 1)],
        prompt=edit.prompt, negative_prompt=edit.negative_prompt,
        has_session=state is not None, marked_frames=len(state.frames()) if state else 0,
    )


def align_frame(strip) -> int:
    """Timeline frame of the session video's first frame (a conformed clip starts trimmed)."""
    name = "left_handle" if strip.kling.session_file_frames else "content_start"
    return int(compat.timing(strip, name))


def request_generate(context, strip) -> str:
    """Record the task and queue its creation; returns the ``external_task_id``.

    Refused (``ValueError``, no record, nothing queued) while online access refuses Kling
    or the strip's movie is missing.
    """
    live_sync.split_if_copy(strip)  # a copy's session is its original's: never send it
    problems = edit_problems_for(strip)
    if problems:
        raise ValueError(problems[0])
    refusal = refusal_for(context, strip)
    if refusal:
        raise ValueError(refusal)
    edit = strip.kling.edit
    state = load_selection(strip)
    request = task_calls.EditRequest(
        edit_mode=edit.edit_mode, prompt=edit.prompt,
        external_task_id=f"ke-blender-{uuid.uuid4().hex}",
        images=tuple(reference_images.image_input(img)
                     for img in reference_images.slot_images(edit, edit.edit_mode)),
        negative_prompt=edit.negative_prompt, quality=edit.quality, watermark=edit.watermark,
    )
    where = live_sync.ref(strip)
    record = strip.kling.tasks.add()
    record.external_task_id = request.external_task_id
    record.status = "sending"
    record.edit_mode = request.edit_mode
    record.prompt = request.prompt
    record.watermark = request.watermark
    record.created = int(time.time())
    record.align_frame = align_frame(strip)
    strip.kling.active_task = len(strip.kling.tasks) - 1
    live_sync.remember_tasks(strip)  # Generate is no undo step: undo must not drop it
    CREATING.add(request.external_task_id)

    settings, source, stored = client_settings(context), session_source(strip), state.to_dict()
    external = request.external_task_id

    def done(result) -> None:
        CREATING.discard(external)
        task, new_state = result
        # The create may have restored the session; the click queue says where it now is.
        _session_in_click_order(settings, where, new_state["session_id"], "Generate")
        live_sync.deliver_task(where, external, {"task_id": task.task_id,
                                                 "status": task.status})
        context_status(f"Task {task.task_id} {task.status}")

    def failed(exc: BaseException) -> None:
        CREATING.discard(external)
        # A create can restore the session before it fails: show the one the client holds.
        _session_in_click_order(settings, where, stored["session_id"], "Generate")
        if isinstance(exc, task_calls.TaskNotSent):
            change = {"status": "not_sent",
                      "message": f"nothing was sent (nothing was charged): {exc}"}
        elif isinstance(exc, OnlineAccessRefused):
            # Refused mid-way (a lookup after a lost answer): the create may have reached
            # Kling, so the poller looks it up by its external id once online access is on.
            change = {"message": f"not confirmed yet, checked by its id when allowed: {exc}"}
        elif isinstance(exc, CreateCancelled) and not exc.may_exist:
            change = {"status": "cancelled",
                      "message": "Cancelled before Kling created the task: nothing was charged"}
        elif isinstance(exc, CreateCancelled):
            change = {"message": "Cancelled, but an earlier attempt may have reached Kling: "
                                 "checking by its id"}
        elif isinstance(exc, (ConnectionFailed, ServerError, RateLimitError)):
            # The outcome is unknown: the task poller looks it up by its external id.
            change = {"message": f"Kling did not answer ({exc}); checking again by its id"}
        else:
            change = {"status": "failed", "message": str(exc)}
        live_sync.deliver_task(where, external, change)

    # The create call waits for the clicks queued before it (they set the marks it uses).
    after = threading.Event()
    label = f"Generate ({MODE_LABELS[request.edit_mode]})"
    progress = session_calls.Progress(label)
    run_long_job(context, generate_key(external), label,
                 lambda cancel: task_calls.create_task(settings, source, stored, request,
                                                       cancel=cancel, after=after,
                                                       progress=progress),
                 done, failed, progress=progress)
    # Queued last, after every click queued before Generate: once the interactive worker
    # runs, it competes for the interpreter lock with what the operator still has to do.
    WORKER.submit("Generate: after the queued clicks", after.set, _ignore, _ignore)
    return external


def _ignore(_result) -> None:
    """Nothing to apply: the barrier job only marks its place in the click queue."""


def _session_in_click_order(settings, where: live_sync.StripRef, session_id: str,
                           label: str) -> None:
    """Show the session a long job ended with, read again in the click queue.

    A long job's answer (Generate's create, which may restore the session; Preview
    Tracking) carries the session as it was when the job ended, and it is applied in
    whatever order the drains meet it. Clicks answered around it hold their own copies, so
    writing the job's copy could put back a session without a newer click's point, or be
    overwritten by an older click's answer on the session the job replaced. The session is
    therefore read from the client again by a job on the click worker, and delivered after
    every click answer queued before it and before every later one: the strip ends with
    the client's latest session.
    """
    def known(state: dict | None) -> None:
        if state is not None:
            live_sync.deliver_session(where, state["session_id"],
                                      {"selection_json": selection_text(state)})

    WORKER.submit(f"{label}: the session as Kling has it",
                  lambda: task_calls.session_snapshot(settings, session_id), known, _ignore)


def context_status(text: str) -> None:
    bpy.context.window_manager.kling.status = text


class _StripOperator:
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_movie_strip(context) is None:
            cls.poll_message_set("Select a movie strip first")
            return False
        return True


class KLING_OT_open_reference(_StripOperator, bpy.types.Operator):
    """Open an image file as a reference image of the element"""

    bl_idname = "kling.open_reference"
    bl_label = "Open Reference Image"
    bl_options = {"REGISTER", "UNDO"}

    slot: bpy.props.IntProperty(min=1, max=2, default=1)
    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            image = bpy.data.images.load(self.filepath, check_existing=True)
        except RuntimeError as exc:
            self.report({"ERROR"}, f"Cannot open {self.filepath}: {exc}")
            return {"CANCELLED"}
        setattr(active_movie_strip(context).kling.edit, f"image_{self.slot}", image)
        return {"FINISHED"}


class KLING_OT_prompt_template(_StripOperator, bpy.types.Operator):
    """Replace the prompt with Kling's template for this edit; fill in the [x] / 【】 parts"""

    bl_idname = "kling.prompt_template"
    bl_label = "Use Template"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        edit = active_movie_strip(context).kling.edit
        edit.prompt = prompts.template(edit.edit_mode, edit.language)
        return {"FINISHED"}


class KLING_OT_prompt_insert(_StripOperator, bpy.types.Operator):
    """Append a reference to an input to the prompt"""

    bl_idname = "kling.prompt_insert"
    bl_label = "Insert Reference"
    bl_options = {"REGISTER", "UNDO"}

    token: bpy.props.StringProperty(default="<<<video_1>>>")

    def execute(self, context: bpy.types.Context) -> set[str]:
        edit = active_movie_strip(context).kling.edit
        edit.prompt = (edit.prompt.rstrip() + " " + self.token).lstrip()
        return {"FINISHED"}


class KLING_OT_generate(bpy.types.Operator):
    """Send this edit to Kling (this spends credits); the result is imported above the strip"""

    bl_idname = "kling.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        if strip is None:
            cls.poll_message_set("Select a movie strip first")
            return False
        problems = edit_problems_for(strip)
        if problems:
            cls.poll_message_set(problems[0])
            return False
        return poll_online(cls, context)

    def invoke(self, context, event):
        edit = active_movie_strip(context).kling.edit
        quality = "Pro" if edit.quality == "pro" else "Standard"
        return compat.invoke_confirm(
            context, self, event, title=f"Generate {MODE_LABELS[edit.edit_mode]} ({quality})?",
            message="This spends Kling credits.", confirm_text="Generate")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            request_generate(context, active_movie_strip(context))
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class KLING_OT_preview_tracking(bpy.types.Operator):
    """Let Kling track the marked elements through the clip and show it as a muted strip"""

    bl_idname = "kling.preview_tracking"
    bl_label = "Preview Tracking"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = active_movie_strip(context)
        state = load_selection(strip) if strip else None
        if state is None or not state.frames():
            cls.poll_message_set("Mark an element first")
            return False
        if LONG.get(preview_key(compat.sequencer_scene(context).name, strip.name)):
            cls.poll_message_set("This strip's tracking preview is being made")
            return False
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            request_preview(context, active_movie_strip(context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


def request_preview(context, strip) -> str:
    """Queue the strip's tracking preview on a long-job thread; returns the job's key.

    It runs after the clicks queued before it (Kling tracks the marks the user saw), never
    holds up a click, and shows its progress and Cancel in the panel. Its answer goes to the
    strip found again by key (an undo or a rename meanwhile); a cancelled or refused preview
    imports nothing. Refused (``ValueError``, nothing queued) while online access refuses
    Kling, the strip's movie is missing, or a preview of the strip is already running.
    """
    live_sync.split_if_copy(strip)  # a copy's session is its original's: never send it
    refusal = refusal_for(context, strip)
    if refusal:
        raise ValueError(refusal)
    key = preview_key(compat.sequencer_scene(context).name, strip.name)
    if LONG.get(key) is not None:
        raise ValueError(f"the tracking preview of {strip.name!r} is already being made: "
                         "wait for it, or Cancel it in the Kling panel")
    state = load_selection(strip)
    if state is None or not state.frames():
        raise ValueError(f"{strip.name!r} has no marked element: start a session and click "
                         "on the element first")
    settings, source, stored = client_settings(context), session_source(strip), state.to_dict()
    folder, where = results.result_folder(), live_sync.ref(strip)
    stem, align = results.safe_stem(strip.name), align_frame(strip)
    label = f"Preview tracking {strip.name}"

    def done(result) -> None:
        path, new_state = result
        # Restored, or with the preview's cost: shown in the order of the clicks' answers.
        _session_in_click_order(settings, where, new_state["session_id"], "Preview tracking")
        if job.cancel.is_set():  # asked after the download ended: still nothing is added
            bpy.context.window_manager.kling.error = f"{label} cancelled"
            return
        target = live_sync.find(where)
        if target is None:
            return
        scene = target.id_data
        remove_preview(scene, target)
        preview = results.import_movie(scene, target, path, "tracking", align)
        preview.mute = True
        target.kling.preview_strip = preview.name
        context_status(f"Tracking preview of {target.name} ready (muted: Show to see it)")

    def failed(exc: BaseException) -> None:
        if isinstance(exc, OnlineAccessRefused):
            bpy.context.window_manager.kling.error = f"{label} was not sent: {exc}"

    after = threading.Event()
    progress = session_calls.Progress(label)
    sync_online_access()
    job = run_long_job(context, key, label,
                       lambda cancel: task_calls.preview_tracking(
                           settings, source, stored, folder, stem, cancel=cancel,
                           after=after, progress=progress),
                       done, failed, progress=progress)
    WORKER.submit("Preview tracking: after the queued clicks", after.set, _ignore, _ignore)
    return key


def remove_preview(scene, strip) -> None:
    preview = compat.strip_by_name(scene, strip.kling.preview_strip)
    if preview is not None:
        compat.top_level(scene.sequence_editor).remove(preview)
    strip.kling.preview_strip = ""


class KLING_OT_preview_toggle(_StripOperator, bpy.types.Operator):
    """Show or hide the tracking preview strip"""

    bl_idname = "kling.preview_toggle"
    bl_label = "Show/Hide Tracking"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene, strip = compat.sequencer_scene(context), active_movie_strip(context)
        preview = compat.strip_by_name(scene, strip.kling.preview_strip)
        if preview is None:
            return {"CANCELLED"}
        preview.mute = not preview.mute
        return {"FINISHED"}


class KLING_OT_preview_remove(_StripOperator, bpy.types.Operator):
    """Remove the tracking preview strip"""

    bl_idname = "kling.preview_remove"
    bl_label = "Remove Tracking Preview"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        remove_preview(compat.sequencer_scene(context), active_movie_strip(context))
        return {"FINISHED"}


classes = (KLING_OT_open_reference, KLING_OT_prompt_template, KLING_OT_prompt_insert,
           KLING_OT_generate, KLING_OT_preview_tracking, KLING_OT_preview_toggle,
           KLING_OT_preview_remove)
