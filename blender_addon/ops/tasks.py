"""The Tasks step: background polling, download and import of results, and task actions.

``tick`` runs from the add-on's timer. Every few seconds it gathers, from every strip of
every scene, the tasks that are not finished (records are saved in the .blend, so this
resumes by itself when a file is reopened), and hands one polling job to the background
worker: look each task up, download finished results. The answers are applied on the main
thread, where a finished result is imported once: the record keeps the imported strip's
name, and nothing imports a record that has one. Answers go through ``live_sync``, so an
undo meanwhile loses neither the record nor its result.

Refresh Account Tasks and Check Balance run on the background worker as well: Kling
answers one account query a second, and a click must never wait for one.
"""


import os
import time

import bpy

from kling_elements import KlingError

from .. import compat
from ..bridge import live_sync, results
from ..bridge.context import active_movie_strip, online_refusal, poll_online
from ..bridge.prefs import client_settings
from ..bridge.props_edit import ACTIVE_STATUSES, MODE_LABELS
from ..pure import cost_text
from ..work import task_calls
from ..work.online import OnlineAccessRefused
from ..work.worker import BACKGROUND
from .edit import CREATING
from .session import run_job

__all__ = ["classes", "pending_records", "tick"]

POLL_INTERVAL_S = 3.0
_poll = {"busy": False, "last": 0.0}


def _all_records():
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        if editor is None:
            continue
        for strip in compat.strips(editor):
            if strip.type != "MOVIE":
                continue
            for record in strip.kling.tasks:
                yield scene, strip, record


def _needs_poll(record) -> bool:
    if record.status in ACTIVE_STATUSES:
        return record.external_task_id not in CREATING
    return record.status == "succeed" and not record.result_path


def pending_records() -> list:
    """Records the poller still has work for (tests and the panel use it)."""
    return [rec for _scene, _strip, rec in _all_records()
            if _needs_poll(rec) or (rec.status == "succeed" and not rec.imported_strip)]


def _stem(strip, record) -> str:
    return f"{results.safe_stem(strip.name)}-{record.edit_mode}-{record.task_id[-12:]}"


def import_record(scene, strip, record):
    """Import the record's result above ``strip`` (also used by Re-import)."""
    path = bpy.path.abspath(record.result_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the result file {path} is missing: download it again with "
                                "Re-import")
    new = results.import_movie(scene, strip, path, MODE_LABELS.get(record.edit_mode, "Kling"),
                               record.align_frame)
    new.kling.video_id = record.video_id
    new.kling.task_id = record.task_id
    new.kling.prompt = record.prompt
    new.kling.source_strip = strip.name
    new.kling.edit.edit_mode = "removal"
    record.imported_strip = new.name
    if strip.kling.edit.mute_source:
        strip.mute = True
    live_sync.remember_tasks(strip)
    return new


def _changes(record: dict, outcome) -> dict:
    """What one poll outcome changes in a task record (given as its last known values)."""
    if outcome.task is None:
        if record.get("status") == "sending":
            return {"status": "not_sent",
                    "message": "the request never reached Kling (nothing was charged): "
                               "Generate again"}
        return {"status": "failed", "message": "Kling no longer knows this task"}
    task = outcome.task
    changes = {"task_id": task.task_id, "status": task.status, "message": task.status_msg}
    if task.cost.known:
        changes["cost"] = str(task.cost)
    if task.videos:
        changes.update(video_id=task.videos[0].id, video_url=task.videos[0].url,
                       watermark_url=task.videos[0].watermark_url)
    if task.done and not record.get("finished"):
        changes["finished"] = int(time.time())
    if outcome.files is not None:
        changes["result_path"] = results.stored_path(outcome.files.path)
        changes["watermark_path"] = (results.stored_path(outcome.files.watermark_path)
                                     if outcome.files.watermark_path else "")
    return changes


def _apply(where: live_sync.StripRef, external: str, outcome) -> None:
    """Record what a poll learned (also when an undo took the strip's record away)."""
    record = live_sync.task_values(where, external)
    if record is None:
        return
    if isinstance(outcome, BaseException):
        live_sync.deliver_task(where, external,
                               {"message": f"checking failed, will retry: {outcome}"})
        return
    shown = live_sync.deliver_task(where, external, _changes(record, outcome))
    if shown is None:
        return
    strip, record = shown
    if record.status == "succeed" and record.result_path and not record.imported_strip:
        _import_safely(strip.id_data, strip, record)


def _import_safely(scene, strip, record) -> None:
    try:
        import_record(scene, strip, record)
    except (OSError, ValueError, RuntimeError) as exc:
        record.message = f"import failed: {exc}"
        live_sync.remember_tasks(strip)


def _poll_all(settings, items) -> list:
    """Worker side: one lookup per task, then the downloads; one failure stays local."""
    outcomes = []
    for where, external, ref, folder, stem, watermark in items:
        try:
            task = task_calls.poll_task(settings, ref)
            files = None
            if task is not None and task.status == "succeed":
                files = task_calls.fetch_result(settings, task, folder, stem, watermark)
            outcome = task_calls.TaskUpdate(task, files)
        except (KlingError, OSError, ValueError) as exc:
            outcome = exc
        outcomes.append((where, external, outcome))
    return outcomes


def tick(force: bool = False) -> None:
    """Start one background poll of every unfinished task, at most every few seconds
    (``force``: now, unless a poll is still running)."""
    now = time.monotonic()
    if _poll["busy"] or (not force and now - _poll["last"] < POLL_INTERVAL_S):
        return
    _poll["last"] = now
    live_sync.split_copies()  # a copy's records are its original's: never polled twice
    items = []
    folder = None
    for scene, strip, record in _all_records():
        if record.status == "succeed" and record.result_path and not record.imported_strip:
            _import_safely(scene, strip, record)  # downloaded before the .blend was closed
            continue
        if not _needs_poll(record):
            continue
        folder = folder or results.result_folder()
        items.append((live_sync.ref(strip), record.external_task_id,
                      record.task_id or record.external_task_id, folder,
                      _stem(strip, record) if record.task_id else "", record.watermark))
    if not items:
        return
    context = bpy.context
    settings = client_settings(context)
    refusal = online_refusal(context)
    if refusal:
        context.window_manager.kling.tasks_status = f"Tasks are not checked: {refusal}"
        return
    _poll["busy"] = True

    def done(outcomes) -> None:
        _poll["busy"] = False
        bpy.context.window_manager.kling.tasks_status = ""
        for outcome in outcomes:
            _apply(*outcome)

    def failed(exc: BaseException) -> None:
        _poll["busy"] = False
        runtime = bpy.context.window_manager.kling
        if isinstance(exc, OnlineAccessRefused):
            runtime.tasks_status = f"Tasks are not checked: {exc}"
        else:
            runtime.tasks_status = f"Checking tasks failed, will retry: {exc}"

    BACKGROUND.submit("Check tasks", lambda: _poll_all(settings, items), done, failed)


@bpy.app.handlers.persistent
def on_load(*_args) -> None:
    """A reopened .blend: look at its unfinished tasks at the next timer tick."""
    _poll["last"] = 0.0
    _poll["busy"] = False


class _TaskOperator:
    index: bpy.props.IntProperty()

    def record(self, context):
        strip = active_movie_strip(context)
        if strip is None or not 0 <= self.index < len(strip.kling.tasks):
            return None, None
        return strip, strip.kling.tasks[self.index]


class KLING_OT_reimport_task(_TaskOperator, bpy.types.Operator):
    """Import this task's result again (downloading it again if the file is gone)"""

    bl_idname = "kling.reimport_task"
    bl_label = "Re-import"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip, record = self.record(context)
        if record is None or record.status != "succeed":
            return {"CANCELLED"}
        if not os.path.isfile(bpy.path.abspath(record.result_path)):
            record.result_path = ""  # the poller downloads it again, then imports it
            record.imported_strip = ""
            live_sync.remember_tasks(strip)
            tick(force=True)
            return {"FINISHED"}
        import_record(compat.sequencer_scene(context), strip, record)
        return {"FINISHED"}


class KLING_OT_open_task_folder(_TaskOperator, bpy.types.Operator):
    """Open the folder holding this task's result in the file browser"""

    bl_idname = "kling.open_task_folder"
    bl_label = "Open Folder"

    def execute(self, context: bpy.types.Context) -> set[str]:
        _strip, record = self.record(context)
        if record is None or not record.result_path:
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=os.path.dirname(bpy.path.abspath(record.result_path)))
        return {"FINISHED"}


class KLING_OT_remove_task(_TaskOperator, bpy.types.Operator):
    """Forget this task here (Kling keeps it; its files and strips stay)"""

    bl_idname = "kling.remove_task"
    bl_label = "Forget Task"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        strip, record = self.record(context)
        if record is None:
            return {"CANCELLED"}
        live_sync.forget(strip, record.external_task_id)
        strip.kling.tasks.remove(self.index)
        return {"FINISHED"}


class KLING_OT_refresh_account_tasks(bpy.types.Operator):
    """List the account's recent edits (all projects and tools)"""

    bl_idname = "kling.refresh_account_tasks"
    bl_label = "Refresh Account Tasks"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = client_settings(context)

        def done(tasks) -> None:
            wm = bpy.context.window_manager
            wm.kling.account_tasks.clear()
            for task in tasks:
                item = wm.kling.account_tasks.add()
                item.task_id = task.task_id
                item.status = task.status
                item.message = task.status_msg
                item.created = int(task.created_at // 1000)

        run_job(context, "List tasks", lambda: task_calls.list_account_tasks(settings), done,
                worker=BACKGROUND)
        return {"FINISHED"}


class KLING_OT_refresh_account_costs(bpy.types.Operator):
    """Ask Kling what the account's resource packs have left (free; may lag up to 12 h)"""

    bl_idname = "kling.refresh_account_costs"
    bl_label = "Check Balance"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_online(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = client_settings(context)

        def done(costs) -> None:
            bpy.context.window_manager.kling.account_left = cost_text.account_text(costs)

        run_job(context, "Check balance", lambda: task_calls.account_costs(settings), done,
                worker=BACKGROUND)
        return {"FINISHED"}


classes = (KLING_OT_reimport_task, KLING_OT_open_task_folder, KLING_OT_remove_task,
           KLING_OT_refresh_account_tasks, KLING_OT_refresh_account_costs)
