"""Ctrl+Z and Ctrl+Shift+Z against state that lives at Kling (points, sessions, tasks).

Blender's undo cannot take back what Kling already holds, so after any undo or redo the
strip must show what Kling has: every point sent, the session, every task record (a record
is a create call that spent credits). What the user forgot on purpose (Reset, Forget Task)
stays an ordinary undoable step.

Background Blender pushes no undo step for an operator, so each test pushes the steps
Blender's UI would (``ed.undo_push`` after an operator marked UNDO, or after an edit the
user makes by hand); worker answers, like in Blender, push nothing.
"""

from __future__ import annotations

import struct

import pytest

from .conftest import bpy, drain
from .test_addon_edit import generate_removal, settle

NAME = "plate"


def _bits(points):
    return [tuple(struct.pack("<d", v) for v in p) for p in points]


def push(message: str) -> None:
    assert bpy.ops.ed.undo_push(message=message) == {"FINISHED"}


def undo() -> None:
    assert bpy.ops.ed.undo() == {"FINISHED"}


def redo() -> None:
    assert bpy.ops.ed.redo() == {"FINISHED"}


def plate():
    """The strip, looked up again: an undo replaces every Blender object."""
    from blender_addon import compat

    return compat.strip_by_name(bpy.context.scene, NAME)


def shown(frame: int = 0):
    from blender_addon.bridge.props import load_selection

    state = load_selection(plate())
    return None if state is None else _bits(state.points.get(frame, []))


def at_kling(sandbox, frame: int = 0):
    from blender_addon.bridge.props import load_selection

    state = load_selection(plate())
    if state is None:
        return None
    return _bits(tuple(p) for p in sandbox.state.session(state.session_id).points.get(frame, []))


def hand_edit(offset: float) -> None:
    """An edit by hand (moving the picture) and the undo step Blender makes for it."""
    plate().transform.offset_x = offset
    push(f"Move to {offset}")


def start_editing() -> None:
    push("Original")
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    push("Start Editing")


def click(point, frame: int = 0) -> None:
    from blender_addon.ops import select as ops_select

    ops_select.request_add(bpy.context, plate(), frame, [point])


@pytest.fixture
def callback_errors(monkeypatch):
    """Exceptions raised by worker callbacks (the worker prints and swallows them)."""
    import sys

    from blender_addon.work import worker

    caught = []
    monkeypatch.setattr(worker.traceback, "print_exc",
                        lambda *a, **k: caught.append(sys.exc_info()[1]))
    yield caught
    settle()  # nothing of this test is left in flight for the next one


@pytest.fixture
def editing(movie_strip, callback_errors):
    """A session on the plate whose answer arrived after the Start Editing step."""
    start_editing()
    drain()
    assert shown() == [], bpy.context.window_manager.kling.error
    return callback_errors


def test_undo_and_redo_after_a_click_keep_the_point_kling_has(editing, clip, sandbox):
    a = clip.center(0)
    click(a)
    drain()
    hand_edit(50.0)
    undo()  # back to "Start Editing": recorded before the session and the click came back
    assert plate().transform.offset_x == 0.0
    assert shown() == _bits([a]) == at_kling(sandbox)
    undo()  # before Start Editing
    assert shown() == _bits([a]) == at_kling(sandbox)
    redo()
    redo()
    assert plate().transform.offset_x == 50.0
    assert shown() == _bits([a]) == at_kling(sandbox)
    assert not editing


def test_a_click_after_an_undo_adds_to_what_kling_has(editing, clip, sandbox):
    a = clip.center(0)
    b = (a[0] + 0.02, a[1] + 0.01)
    hand_edit(10.0)  # a step with the session but no point yet
    click(a)
    drain()
    hand_edit(20.0)
    undo()
    assert shown() == _bits([a])  # not an empty frame that the next click would contradict
    click(b)
    drain()
    assert shown() == _bits([a, b]) == at_kling(sandbox)
    undo()
    redo()
    assert shown() == _bits([a, b]) == at_kling(sandbox)
    assert not editing


def test_undo_does_not_bring_back_points_kling_removed(editing, clip, sandbox):
    from blender_addon.ops import select as ops_select

    a = clip.center(0)
    b = (a[0] + 0.02, a[1] + 0.01)
    click(a)
    click(b)
    drain()
    hand_edit(10.0)  # a step showing both points
    ops_select.request_delete(bpy.context, plate(), 0, [b])
    drain()
    hand_edit(20.0)
    undo()
    assert shown() == _bits([a]) == at_kling(sandbox)
    assert bpy.ops.kling.clear_selection() == {"FINISHED"}
    drain()
    undo()
    assert shown() == [] == at_kling(sandbox)
    assert not editing


def test_undo_while_a_click_is_in_flight_keeps_the_point(editing, clip, sandbox):
    a = clip.center(0)
    hand_edit(10.0)
    click(a)
    undo()  # the strip the click was made on is gone; the answer must find the new one
    drain()
    assert not editing, editing
    assert plate().transform.offset_x == 0.0
    assert shown() == _bits([a]) == at_kling(sandbox)


def test_undo_of_start_editing_keeps_the_session_kling_made(movie_strip, callback_errors):
    start_editing()
    undo()  # while init-selection is still in flight
    drain()
    assert not callback_errors, callback_errors
    assert shown() == []
    session = plate().kling.selection_json
    redo()
    assert plate().kling.selection_json == session
    undo()
    assert plate().kling.selection_json == session


def test_reset_stays_an_undoable_step(editing, clip, sandbox):
    a = clip.center(0)
    click(a)
    drain()
    assert bpy.ops.kling.reset_session() == {"FINISHED"}
    push("Reset")
    assert shown() is None
    undo()  # Kling still has the session and its point: they come back
    assert shown() == _bits([a]) == at_kling(sandbox)
    redo()
    assert shown() is None and plate().kling.published_url == ""
    undo()
    assert shown() == _bits([a])
    b = (a[0] + 0.02, a[1])
    click(b)
    drain()
    assert shown() == _bits([a, b]) == at_kling(sandbox)


def test_a_loaded_file_does_not_inherit_the_previous_files_session(editing, clip, tmp_path):
    from blender_addon import compat

    click(clip.center(0))
    drain()
    bpy.ops.wm.read_homefile(use_empty=True)  # a new file with a strip of the same name
    scene = bpy.context.scene
    editor = scene.sequence_editor_create()
    editor.active_strip = compat.new_movie(editor, NAME, str(clip.path), 2, 1)
    push("Add movie")
    hand_edit(5.0)
    undo()
    assert shown() is None


# --- tasks ------------------------------------------------------------------------------


def _marked_and_generated(clip):
    click(clip.center(0))
    drain()
    hand_edit(10.0)
    generate_removal(plate())  # Generate pushes no undo step: it spends credits
    return plate().kling.tasks[-1].external_task_id


def _results(task_id: str):
    from blender_addon import compat

    return [s for s in compat.strips(bpy.context.scene.sequence_editor)
            if s.kling.task_id == task_id]


def test_undo_while_a_task_is_created_keeps_its_record_and_result(editing, clip, sandbox):
    external = _marked_and_generated(clip)
    undo()  # the record was never in an undo step
    assert [r.external_task_id for r in plate().kling.tasks] == [external]
    settle()
    assert not editing, editing
    record = plate().kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert sandbox.state.created[external] == 1
    assert [s.name for s in _results(record.task_id)] == [record.imported_strip]


def test_undo_after_a_result_came_back_keeps_the_result(editing, clip, sandbox):
    external = _marked_and_generated(clip)
    settle()
    task_id = plate().kling.tasks[-1].task_id
    assert len(_results(task_id)) == 1
    hand_edit(30.0)
    undo()
    undo()  # to before Generate: the record and the imported strip were not there
    record = plate().kling.tasks[-1]
    assert (record.external_task_id, record.status) == (external, "succeed")
    settle()
    record = plate().kling.tasks[-1]
    assert [s.name for s in _results(task_id)] == [record.imported_strip]
    assert sandbox.state.created[external] == 1
    redo()
    redo()
    assert [r.external_task_id for r in plate().kling.tasks] == [external]
    assert len(_results(task_id)) == 1
    assert not editing, editing


def test_forget_task_stays_an_undoable_step(editing, clip):
    external = _marked_and_generated(clip)
    settle()
    assert bpy.ops.kling.remove_task(index=0) == {"FINISHED"}
    push("Forget Task")
    assert len(plate().kling.tasks) == 0
    undo()
    assert [r.external_task_id for r in plate().kling.tasks] == [external]
    assert plate().kling.tasks[0].status == "succeed"
    redo()
    assert len(plate().kling.tasks) == 0
    hand_edit(40.0)
    undo()
    assert len(plate().kling.tasks) == 0


def test_undo_after_save_keeps_the_results_where_the_save_moved_them(
        editing, clip, tmp_path):
    import os

    _marked_and_generated(clip)
    settle()
    push("Result imported")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project.blend"))
    moved = plate().kling.tasks[-1].result_path
    assert moved.startswith("//kling/")
    hand_edit(30.0)
    undo()  # to a step taken before the save moved the file
    assert plate().kling.tasks[-1].result_path == moved
    assert os.path.isfile(bpy.path.abspath(moved))


def test_a_duplicated_strip_keeps_its_own_tasks(editing, clip):
    """Shift+D copies every property, the live key too; each copy must stay its own. The
    copy starts without the plate's session (``live_sync.split_copies``; Shift+D itself
    in test_addon_duplicate.py), so it gets one of its own before its Generate."""
    from blender_addon import compat
    from blender_addon.ops import select as ops_select

    external = _marked_and_generated(clip)
    settle()
    original = plate()
    editor = bpy.context.scene.sequence_editor
    copy = compat.new_movie(editor, "plate copy", str(clip.path), 5, 1)
    for name in ("live_key", "selection_json", "published_url", "forgotten"):
        setattr(copy.kling, name, getattr(original.kling, name))
    editor.active_strip = copy
    push("Duplicate")
    assert not bpy.ops.kling.generate.poll()  # not on the plate's session
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    copy = compat.strip_by_name(bpy.context.scene, "plate copy")
    ops_select.request_add(bpy.context, copy, 0, [clip.center(0)])
    drain()
    generate_removal(copy)
    second = copy.kling.tasks[-1].external_task_id
    settle()
    hand_edit(30.0)
    undo()  # to "Duplicate": neither strip had the second task then
    copy = compat.strip_by_name(bpy.context.scene, "plate copy")
    assert [r.external_task_id for r in plate().kling.tasks] == [external]
    assert [r.external_task_id for r in copy.kling.tasks] == [second]
    assert copy.kling.live_key != plate().kling.live_key
    assert not editing, editing


def _batch_outcome(clip, folder, status="succeed"):
    """A finished batch job for the plate, as Import Batch Results reads it from a report."""
    import shutil

    from blender_addon.bridge import live_sync
    from blender_addon.pure.batch_results import JobOutcome

    result = folder / "sh010.mp4"
    shutil.copyfile(clip.path, result)
    meta = {"scene": bpy.context.scene.name, "strip": NAME,
            "key": live_sync.ref(plate()).key, "edit_mode": "removal"}
    return JobOutcome(name="sh010", status=status, meta=meta, output=str(result),
                      task_id="farm-task-1", external_task_id="ke-farm-sh010",
                      error="" if status == "succeed" else "refused")


def test_undo_after_import_batch_results_keeps_the_result_once(editing, clip, tmp_path):
    """Import Batch Results pushes no undo step (what the farm paid for cannot be taken
    back): undoing to before it keeps the record and its strip, and importing the same
    folder again adds nothing."""
    from blender_addon.ops import batch as ops_batch

    outcome = _batch_outcome(clip, tmp_path)
    summary = ops_batch.place_outcomes([outcome], str(tmp_path))
    assert summary.imported == 1
    assert len(_results("farm-task-1")) == 1
    hand_edit(20.0)
    undo()
    undo()  # to before the import: the record and the strip were in no undo step
    settle()
    records = [r.external_task_id for r in plate().kling.tasks]
    assert records == ["ke-farm-sh010"]
    assert [s.name for s in _results("farm-task-1")] == [plate().kling.tasks[0].imported_strip]
    again = ops_batch.place_outcomes([outcome], str(tmp_path))
    assert (again.imported, again.already) == (0, 1)
    redo()
    redo()
    settle()
    assert [r.external_task_id for r in plate().kling.tasks] == ["ke-farm-sh010"]
    assert len(_results("farm-task-1")) == 1
    assert not editing, editing


def test_a_click_in_flight_survives_a_rename_and_a_delete_then_undo(editing, clip, sandbox):
    """The answer finds its strip by identity (renamed meanwhile); a strip deleted
    meanwhile takes nothing and raises nothing, and undoing the delete brings it back with
    the point Kling holds."""
    from blender_addon import compat

    a = clip.center(0)
    b = (a[0] + 0.02, a[1] + 0.01)
    click(a)
    plate().name = "renamed"
    push("Rename")
    drain()
    renamed = compat.strip_by_name(bpy.context.scene, "renamed")
    assert renamed is not None and plate() is None
    renamed.name = NAME
    push("Rename back")
    click(b)
    editor = bpy.context.scene.sequence_editor
    compat.top_level(editor).remove(plate())
    push("Delete")
    drain()
    assert not editing, editing
    undo()  # the strip comes back: with both points, as Kling has them
    settle()
    assert shown() == _bits([a, b]) == at_kling(sandbox)
    assert not editing, editing
