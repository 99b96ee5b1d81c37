"""Answers that meet in one timer tick: the strip ends with the latest session, and a click
is never held up by a slow account query.

The timer drains the click worker, the background worker and the long jobs one after the
other, each within a small time budget (at least one answer per drain), so a long job's
answer can land between two click answers queued before it. These tests drive the drains
in that order by hand, with the sandbox's faults to make Kling slow or forgetful.
"""

from __future__ import annotations

import json
import time

import pytest

from .conftest import bpy, drain
from .test_addon_edit import _marked, generate_removal, settle


def _session_id(strip) -> str:
    return json.loads(strip.kling.selection_json)["session_id"]


def _wait(until, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_generate_that_restored_the_session_is_not_undone_by_a_click_answer(
        movie_strip, clip, sandbox, faults):
    """Kling says the session is gone when the create call arrives (1203): the create
    restores it (a new session, the same points, charged again) and makes the task there.
    Two clicks queued before Generate were answered on the old session; when the second
    one's answer is drained after Generate's (the click drain's budget ran out after the
    first), the strip must still end on the restored session: the old one is gone at
    Kling, and a later restore from it would be charged again."""
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from blender_addon.ops.long_jobs import generate_key
    from blender_addon.work.worker import LONG, WORKER

    _marked(movie_strip, clip)
    old = _session_id(movie_strip)
    faults({"route": "create", "times": 1, "error": {"code": 1203}})
    ops_select.request_add(bpy.context, movie_strip, 3, [clip.center(3)])
    ops_select.request_add(bpy.context, movie_strip, 7, [clip.center(7)])
    generate_removal(movie_strip)
    external = movie_strip.kling.tasks[-1].external_task_id

    _wait(lambda: sandbox.state.created[external] == 1, "the create call")
    # The create's answer (and both clicks' answers) now wait to be drained.
    _wait(lambda: not LONG._results.empty(), "Generate's answer")
    assert WORKER.drain(budget_s=0.0) == 1  # one tick: the first click's answer...
    assert LONG.drain() == 1  # ...then Generate's, whose job is over
    assert LONG.get(generate_key(external)) is None
    drain()  # the next ticks: the second click's answer, and what Generate queued

    task = next(t for t in sandbox.state.all_tasks() if t.external_task_id == external)
    assert task.session_id != old  # the create restored the session
    assert _session_id(movie_strip) == task.session_id
    assert sorted(load_selection(movie_strip).frames()) == [0, 3, 7]
    assert movie_strip.kling.tasks[-1].task_id == task.id
    settle()  # the task is followed as usual
    assert movie_strip.kling.tasks[-1].status == "succeed"


@pytest.mark.parametrize("button, route", [("refresh_account_costs", "account"),
                                           ("refresh_account_tasks", "list")],
                         ids=["check balance", "list tasks"])
def test_a_click_is_answered_while_an_account_query_is_held(
        movie_strip, clip, sandbox, faults, button, route):
    """Kling answers one account query a second and may be slow: a click right after
    Check Balance or List Tasks is answered while the query is still held, and the query's
    answer is shown as before once it comes."""
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from blender_addon.work.worker import BACKGROUND, WORKER

    held_s = 4.0
    _marked(movie_strip, clip)
    wm = bpy.context.window_manager
    wm.kling.account_left = ""
    wm.kling.account_tasks.clear()
    wm.kling.account_tasks.add().task_id = "listed-before"
    faults({"route": route, "times": 1, "delay_s": held_s})
    started = time.monotonic()
    assert getattr(bpy.ops.kling, button)() == {"FINISHED"}
    ops_select.request_add(bpy.context, movie_strip, 5, [clip.center(5)])
    while 5 not in load_selection(movie_strip).frames():  # the add-on's timer, by hand
        assert time.monotonic() - started < held_s, "the click waited for the account query"
        WORKER.drain()
        BACKGROUND.drain()
        time.sleep(0.01)
    assert BACKGROUND.busy  # the query is still held by Kling

    deadline = time.monotonic() + 60
    while BACKGROUND.busy:
        assert time.monotonic() < deadline, "the account query never ended"
        BACKGROUND.drain()
        time.sleep(0.01)
    assert time.monotonic() - started >= held_s
    assert wm.kling.error == "" and wm.kling.status == ""
    if route == "account":
        assert wm.kling.account_left.startswith("Account: ") and "units left" in \
            wm.kling.account_left
    else:
        listed = {item.task_id for item in wm.kling.account_tasks}
        known = {t.id for t in sandbox.state.all_tasks()}
        assert "listed-before" not in listed  # the list was replaced by Kling's answer
        assert listed <= known and len(listed) == min(len(known), 30)


def test_undo_after_a_slow_copy_keeps_the_paths_it_moved_the_files_to(
        movie_strip, clip, tmp_path, monkeypatch):
    """The first save of a file whose results sit in the temp folder on another
    filesystem: the copies end after the save, on a long job, and repoint the task record
    and the conformed clip. An undo to a step recorded before the save must show the moved
    paths, not the temporary ones, which the next save deletes."""
    from pathlib import Path

    from blender_addon.bridge import live_sync, results
    from blender_addon.pure import file_moves
    from blender_addon.work.worker import BACKGROUND, LONG

    from .test_addon_long_jobs import pump
    from .test_addon_undo import plate, push, redo, undo

    _marked(movie_strip, clip)
    generate_removal(movie_strip)
    settle()
    temp_result = Path(movie_strip.kling.tasks[-1].result_path)
    assert temp_result.is_absolute() and temp_result.is_file()
    temp_clip = Path(results.unsaved_folder()) / "conformed" / "plate-live-races.mp4"
    temp_clip.parent.mkdir(parents=True, exist_ok=True)
    temp_clip.write_bytes(clip.path.read_bytes())
    live_sync.deliver_conformed(live_sync.ref(movie_strip), str(temp_clip))
    push("Before the save")  # a step holding both temporary paths

    monkeypatch.setattr(file_moves, "try_rename", lambda src, dest: False)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    pump(lambda: not LONG.busy, what="the copies")
    moved_result = f"//kling/{temp_result.name}"
    moved_clip = f"//kling/conformed/{temp_clip.name}"
    assert plate().kling.tasks[-1].result_path == moved_result
    assert plate().kling.conformed_path == moved_clip

    plate().transform.offset_x = 4.0
    push("Moved")
    undo()  # to "Before the save"
    assert plate().transform.offset_x == 0.0
    assert plate().kling.tasks[-1].result_path == moved_result
    assert plate().kling.conformed_path == moved_clip
    redo()
    assert plate().kling.tasks[-1].result_path == moved_result
    assert plate().kling.conformed_path == moved_clip

    bpy.ops.wm.save_mainfile()  # no saved .blend needs the temporary files any more
    deadline = time.monotonic() + 10
    while BACKGROUND.busy or temp_result.exists() or temp_clip.exists():
        BACKGROUND.drain()
        assert time.monotonic() < deadline, "the temporary files were not removed"
        time.sleep(0.01)
    undo()
    from blender_addon import compat

    result = compat.strip_by_name(bpy.context.scene, plate().kling.tasks[-1].imported_strip)
    for stored in (plate().kling.tasks[-1].result_path, plate().kling.conformed_path,
                   result.filepath):
        assert Path(bpy.path.abspath(stored)).is_file(), stored


def test_a_generate_that_restored_the_session_then_failed_shows_the_restored_session(
        movie_strip, clip, sandbox, faults):
    """The create meets 1203 (the session is gone), restores it, and the create on the new
    session is refused: nothing was made, but the marks now live on the new session, which
    the strip must show (the old one is gone; restoring it again would be charged again)."""
    from blender_addon.bridge.prefs import client_settings
    from blender_addon.bridge.props import load_selection
    from blender_addon.work import session_calls

    _marked(movie_strip, clip)
    old = _session_id(movie_strip)
    faults({"route": "create", "times": 1, "error": {"code": 1203}},
           {"route": "create", "times": 1, "error": {"code": 1201, "message": "refused"}})
    generate_removal(movie_strip)
    drain()
    record = movie_strip.kling.tasks[-1]
    assert record.status == "failed" and "refused" in record.message, record.message
    held = session_calls.client_for(client_settings(bpy.context)).sessions[old]
    assert held.session_id != old  # the client restored it before the refusal
    assert _session_id(movie_strip) == held.session_id
    assert sorted(load_selection(movie_strip).frames()) == [0]


@pytest.mark.parametrize("running", ["generate", "preview"])
def test_no_new_session_while_a_job_works_on_the_old_one(movie_strip, clip, sandbox, faults,
                                                         running):
    """A Generate still sending its task, or a Preview Tracking, ends by showing the session
    it worked on: Start Editing and Reset wait for it (greyed, saying why; a script calling
    them anyway is refused) and send nothing; once the job is cancelled they work again."""
    from blender_addon.ops import long_jobs
    from blender_addon.work.worker import LONG

    from .test_addon_long_jobs import SLOT_BUSY, pump

    _marked(movie_strip, clip)
    scene = bpy.context.scene
    if running == "generate":
        faults(SLOT_BUSY)  # every task slot busy: Generate waits for one
        generate_removal(movie_strip)
        key = long_jobs.generate_key(movie_strip.kling.tasks[-1].external_task_id)
        pump(lambda: "task slot" in LONG.get(key).text(), what="the first 1303")
    else:
        faults({"route": "preview-selection", "times": 1, "delay_s": 3.0})
        assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
        key = long_jobs.preview_key(scene.name, movie_strip.name)
    assert LONG.get(key) is not None
    before = _session_id(movie_strip)

    def inits() -> int:
        with sandbox.state.lock:
            return sum(n for k, n in sandbox.state.requests.items()
                       if k.endswith("/init-selection"))

    inits_before = inits()

    reason = long_jobs.session_locked(scene.name, movie_strip)
    assert ("Generate is still sending" if running == "generate" else "Preview Tracking") \
        in reason and "Cancel it" in reason
    assert not bpy.ops.kling.start_session.poll()
    assert not bpy.ops.kling.reset_session.poll()
    from blender_addon.ops.session import KLING_OT_reset_session, KLING_OT_start_session

    class Reports:
        def __init__(self) -> None:
            self.said: list[str] = []

        def report(self, _kind, text: str) -> None:
            self.said.append(text)

    for operator in (KLING_OT_start_session, KLING_OT_reset_session):
        caller = Reports()
        assert operator.execute(caller, bpy.context) == {"CANCELLED"}
        assert caller.said == [reason]
    assert _session_id(movie_strip) == before
    assert inits() == inits_before

    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    pump(lambda: LONG.get(key) is None, timeout=30, what="the cancel")
    sandbox.state.faults.clear()
    drain()
    assert bpy.ops.kling.start_session.poll() and bpy.ops.kling.reset_session.poll()
