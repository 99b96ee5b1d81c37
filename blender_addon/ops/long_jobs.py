"""Long jobs from the operators' side: start one with its progress, and the Cancel button.

Anything that can wait long (a Conform render, publishing a clip at Start Editing, a
Generate waiting for a free task slot, copying results next to a saved .blend) runs on
``worker.LONG``, a thread per job, never on the worker that serves clicks. Each job is
listed in the main panel with its progress and a Cancel button until its callback has run.

A job's key names what it works on, so an operator can tell whether that thing is busy:
``strip_key("conform", scene, strip)`` for work on one strip, ``generate_key(external id)``
for a create call. Callbacks look Blender data up again by name when they run; nothing
here holds a ``bpy`` reference across the job.
"""


from collections.abc import Callable
from typing import Any

import bpy

from ..work.worker import LONG, LongJob

__all__ = ["classes", "draw_jobs", "generate_key", "marks_locked", "preview_key",
           "run_long_job", "session_locked", "start_key", "strip_key"]


def strip_key(kind: str, scene_name: str, strip_name: str) -> str:
    return f"{kind}:{scene_name}/{strip_name}"


def start_key(scene_name: str, strip_name: str) -> str:
    """The job starting the strip's session (Start Editing)."""
    return strip_key("start", scene_name, strip_name)


def generate_key(external_task_id: str) -> str:
    return f"generate:{external_task_id}"


def preview_key(scene_name: str, strip_name: str) -> str:
    """The job making the strip's tracking preview (Preview Tracking)."""
    return strip_key("preview", scene_name, strip_name)


def _generate_sending(strip: Any) -> bool:
    return any(LONG.get(generate_key(record.external_task_id)) is not None
               for record in strip.kling.tasks if record.status == "sending")


def marks_locked(scene_name: str, strip: Any) -> str:
    """Why the strip's marks must not change now, or ``""`` when a click may go ahead.

    While its session is being started, a click would go to the session being replaced.
    While a Generate of the strip has not sent its create call (it may be waiting minutes
    for a free task slot), Kling would build the task from the marks as they are when the
    call arrives: a click would change what the user is paying for.
    """
    if LONG.get(start_key(scene_name, strip.name)) is not None:
        return "This strip's session is still being started: click again once it is ready"
    if _generate_sending(strip):
        return ("Generate is still sending this strip's task (it may be waiting for a free "
                "task slot), and a click would change the marks it is made from: wait for "
                "it, or Cancel it in the Kling panel")
    return ""


def session_locked(scene_name: str, strip: Any) -> str:
    """Why the strip's session must not be replaced or forgotten now (Start Editing, Reset),
    or ``""``.

    A Generate still sending its task, or a Preview Tracking, works on the strip's session
    and ends by showing that session as Kling has it (it may have restored it): a session
    started or forgotten meanwhile would be replaced by it, or its task made from marks the
    user no longer sees.
    """
    if LONG.get(start_key(scene_name, strip.name)) is not None:
        return "This strip's session is being started"
    if _generate_sending(strip):
        return ("Generate is still sending this strip's task from its session: wait for it, "
                "or Cancel it in the Kling panel")
    if LONG.get(preview_key(scene_name, strip.name)) is not None:
        return ("Preview Tracking of this strip is still running on its session: wait for "
                "it, or Cancel it in the Kling panel")
    return ""


def run_long_job(context: bpy.types.Context, key: str, label: str, work: Callable[[Any], Any],
                 on_done: Callable[[Any], None],
                 on_error: Callable[[BaseException], None] | None = None, *,
                 progress: Any = None, on_cancel: Callable[[], None] | None = None) -> LongJob:
    """Start ``work(cancel_event)`` on a thread of its own; callbacks on the main thread.

    A failure is shown in the panel's error line (``"<label> failed: …"``, or ``"<label>
    cancelled"`` when the job was cancelled); ``on_error(exc)``, when given, runs after.
    Raises ValueError when a job with this key is already running.
    """

    def failed(exc: BaseException) -> None:
        runtime = bpy.context.window_manager.kling
        if job.cancel.is_set():
            runtime.error = f"{label} cancelled"
        else:
            runtime.error = f"{label} failed: {exc}"
            print(f"Kling: {label} failed: {exc}")
        if on_error is not None:
            on_error(exc)

    context.window_manager.kling.error = ""
    job = LONG.submit(key, label, work, on_done, failed, progress=progress,
                      on_cancel=on_cancel)
    return job


class KLING_OT_cancel_job(bpy.types.Operator):
    """Stop this long job: a render or an upload stops at once; a Generate that is still
    waiting for a free task slot sends nothing more, so nothing is charged"""

    bl_idname = "kling.cancel_job"
    bl_label = "Cancel"

    key: bpy.props.StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not LONG.cancel(self.key):
            self.report({"WARNING"}, "That job has already finished")
            return {"CANCELLED"}
        return {"FINISHED"}


def draw_jobs(layout: Any) -> None:
    """One row per long job: its progress, and Cancel (greyed once asked)."""
    for job in list(LONG.jobs.values()):
        row = layout.row(align=True)
        row.label(text=job.text(), icon="SORTTIME")
        sub = row.row(align=True)
        sub.enabled = not job.cancel.is_set()
        sub.operator("kling.cancel_job", text="", icon="CANCEL").key = job.key


classes = (KLING_OT_cancel_job,)
