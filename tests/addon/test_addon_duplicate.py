"""A duplicated strip (Shift+D) never shares its original's Kling session or paid tasks.

Blender copies every property of a strip it duplicates, the add-on's too: the session id,
the marks, the task records. The rule (``live_sync.split_copies``): the original keeps its
session, marks, tasks and results; the copy starts with none (it needs Start Editing and
gets a session of its own), so clicks on one never land in the other's session and a paid
result is imported once. Undo and redo of the duplicate keep both sides as Kling has them.
"""

from __future__ import annotations

import pytest

from .conftest import bpy, drain
from .test_addon_edit import _marked, generate_removal, settle
from .test_addon_undo import plate, push, redo, undo


def _results(task_id: str) -> list[str]:
    from blender_addon import compat

    return [s.name for s in compat.strips(bpy.context.scene.sequence_editor)
            if s.kling.task_id == task_id]


def _session_id(strip) -> str:
    from blender_addon.bridge.props import load_selection

    state = load_selection(strip)
    return state.session_id if state is not None else ""


def _generated(clip) -> tuple[str, str]:
    """The plate with a session, a point and a finished task; (session id, task id)."""
    push("Original")
    _marked(plate(), clip)
    generate_removal(plate())
    settle()
    record = plate().kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert len(_results(record.task_id)) == 1
    push("Generated")
    return _session_id(plate()), record.task_id


def duplicate(*operators: str):
    """Shift+D on the plate (or the Sequencer ``operators`` given, in turn, with only the
    plate selected), as the Sequencer's operators do it; returns the copy."""
    from blender_addon import compat

    scene = bpy.context.scene
    editor = scene.sequence_editor
    for strip in compat.strips(editor):
        strip.select = False
    original = plate()
    original.select = True
    editor.active_strip = original
    window = bpy.context.window_manager.windows[0]
    if hasattr(window.workspace, "sequencer_scene"):  # 5.0: the operator edits this scene
        window.workspace.sequencer_scene = scene
    area = window.screen.areas[0]
    old_type, area.type = area.type, "SEQUENCE_EDITOR"
    region = next(r for r in area.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=window, area=area, region=region, scene=scene):
        for name in operators or ("duplicate",):
            assert getattr(bpy.ops.sequencer, name)() == {"FINISHED"}
    area.type = old_type
    (copy,) = [s for s in compat.strips(editor) if s.select and s.name != "plate"]
    copy.channel = 6  # clear of the plate and of the result above it
    return copy


def _copy():
    from blender_addon import compat

    return compat.strip_by_name(bpy.context.scene, "plate.001")


def _points(sandbox, session_id: str) -> dict:
    return {f: list(p) for f, p in sandbox.state.session(session_id).points.items()}


def test_a_duplicate_has_no_session_nor_tasks_and_gets_its_own(connected, movie_strip, clip,
                                                              sandbox):
    from blender_addon.bridge import live_sync
    from blender_addon.ops import select as ops_select
    from kling_elements import ValidationError

    session, task_id = _generated(clip)
    external = plate().kling.tasks[-1].external_task_id
    kling_points = _points(sandbox, session)

    copy = duplicate()
    push("Duplicate")
    assert copy.name == "plate.001"
    assert copy.kling.selection_json == "" and len(copy.kling.tasks) == 0
    assert copy.kling.live_key and copy.kling.live_key != plate().kling.live_key
    assert live_sync.copied_from(copy) == "plate"  # the panel says so
    assert _session_id(plate()) == session
    assert [r.external_task_id for r in plate().kling.tasks] == [external]

    settle()  # the poller sees the task once: one result strip, on the original
    assert _results(task_id) == [plate().kling.tasks[-1].imported_strip]
    assert sandbox.state.created[external] == 1

    with pytest.raises(ValidationError, match="start a session"):
        ops_select.request_add(bpy.context, copy, 0, [clip.center(0)])
    bpy.context.scene.sequence_editor.active_strip = copy
    assert not bpy.ops.kling.generate.poll() and not bpy.ops.kling.preview_tracking.poll()

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    own = _session_id(_copy())
    assert own and own != session, bpy.context.window_manager.kling.error
    ops_select.request_add(bpy.context, _copy(), 5, [clip.center(5)])
    drain()
    assert list(_points(sandbox, own)) == [5]
    assert _points(sandbox, session) == kling_points  # the original's session is untouched
    push("Copy marked")

    undo()  # to "Duplicate": the copy's session came back after it, and stays
    assert _session_id(_copy()) == own and _session_id(plate()) == session
    undo()  # to before the duplicate
    assert _copy() is None
    assert _session_id(plate()) == session
    assert [r.external_task_id for r in plate().kling.tasks] == [external]
    redo()
    assert _session_id(_copy()) == own and len(_copy().kling.tasks) == 0
    redo()
    assert _session_id(_copy()) == own and _session_id(plate()) == session
    assert _copy().kling.live_key != plate().kling.live_key
    settle()
    assert len(_results(task_id)) == 1
    assert sandbox.state.created[external] == 1


def test_a_pasted_copy_starts_empty_and_the_result_is_imported_once(connected, movie_strip,
                                                                    clip, sandbox):
    from blender_addon.bridge import live_sync

    session, task_id = _generated(clip)
    copy = duplicate("copy", "paste")
    assert copy.name == "plate.001"
    assert copy.kling.selection_json == "" and len(copy.kling.tasks) == 0
    assert live_sync.copied_from(copy) == "plate"
    assert _session_id(plate()) == session and len(plate().kling.tasks) == 1
    settle()
    assert len(_results(task_id)) == 1


def _copy_by_hand(keep_key: bool):
    """A copy as Python (or an older add-on that re-keyed copies) leaves it: every Kling
    property of the plate, task records included."""
    from blender_addon import compat

    original = plate()
    copy = compat.new_movie(bpy.context.scene.sequence_editor, "plate.001",
                            original.filepath, 6, 1)
    names = ["selection_json", "published_url", "forgotten"] + (["live_key"] if keep_key else [])
    for name in names:
        setattr(copy.kling, name, getattr(original.kling, name))
    if not keep_key:
        copy.kling.live_key = "an-older-add-ons-own-key"
    from blender_addon.bridge.props_edit import KlingTaskRecord

    for record in original.kling.tasks:
        twin = copy.kling.tasks.add()
        for name in KlingTaskRecord.__annotations__:
            setattr(twin, name, getattr(record, name))
    return copy


def test_a_copy_made_before_any_update_is_split_before_anything_is_sent(
        connected, movie_strip, clip, sandbox):
    """No depsgraph update yet: Generate on the copy must not spend on the plate's session;
    an undo back to a step holding the unsplit copy brings back the copy's own state."""
    session, task_id = _generated(clip)
    copy = _copy_by_hand(keep_key=True)
    bpy.context.scene.sequence_editor.active_strip = copy
    push("Copied")
    created = dict(sandbox.state.created)
    copy.kling.edit.edit_mode = "removal"
    copy.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
    from blender_addon.ops import edit as ops_edit

    with pytest.raises(ValueError, match="Start Editing"):
        ops_edit.request_generate(bpy.context, copy)
    assert dict(sandbox.state.created) == created  # nothing was paid for on its behalf
    assert _copy().kling.selection_json == "" and len(_copy().kling.tasks) == 0
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    own = _session_id(_copy())
    assert own and own != session
    push("Copy started")
    undo()  # "Copied": the copy as Python made it, sharing the plate's key and session
    assert _session_id(_copy()) == own  # the session Kling made for the copy, not the plate's
    assert _copy().kling.live_key != plate().kling.live_key
    assert len(_copy().kling.tasks) == 0 and len(plate().kling.tasks) == 1
    redo()
    assert _session_id(_copy()) == own and _session_id(plate()) == session
    settle()
    assert len(_results(task_id)) == 1


def test_a_file_whose_copy_shares_a_session_opens_with_the_copy_split(
        connected, movie_strip, clip, sandbox, tmp_path):
    """A file saved by an older add-on: the copy has a key of its own but the plate's
    session id and task records. On load the first strip keeps them."""
    from blender_addon.bridge import live_sync

    session, task_id = _generated(clip)
    _copy_by_hand(keep_key=False)
    blend = tmp_path / "older.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert _session_id(plate()) == session and len(plate().kling.tasks) == 1
    assert _copy().kling.selection_json == "" and len(_copy().kling.tasks) == 0
    assert live_sync.copied_from(_copy()) == "plate"  # the panel says what happened
    settle()
    assert len(_results(task_id)) == 1


def _sender_click(copy, clip):
    from blender_addon.ops import select as ops_select

    ops_select.request_add(bpy.context, copy, 3, [clip.center(3)])


def _sender_delete(copy, clip):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    ops_select.request_delete(bpy.context, copy, 0, load_selection(copy).points[0])


def _sender_clear(copy, clip):
    from blender_addon.ops import select as ops_select

    ops_select.request_clear(bpy.context, copy)


@pytest.mark.parametrize("send", [_sender_click, _sender_delete, _sender_clear],
                         ids=["click", "delete", "clear all"])
def test_a_copy_made_before_any_update_never_sends_on_the_originals_session(
        connected, movie_strip, clip, sandbox, send):
    """A copy made through Python (no depsgraph update since) holds the plate's key and
    session: a click, a delete (Delete Frame, Shift+click) or Clear All on it must split it
    first and send nothing, leaving the plate's marks at Kling and on the plate as they
    were."""
    from kling_elements import ValidationError

    _marked(movie_strip, clip)
    session = _session_id(plate())
    marks = _points(sandbox, session)
    assert marks
    copy = _copy_by_hand(keep_key=True)
    bpy.context.scene.sequence_editor.active_strip = copy
    try:
        send(copy, clip)
    except ValidationError as exc:  # refused: the copy has no session
        assert "Start Editing" in str(exc)
    drain()
    assert _points(sandbox, session) == marks  # nothing reached the plate's session
    assert _copy().kling.selection_json == "" and _copy().kling.live_key != \
        plate().kling.live_key
    assert _session_id(plate()) == session and plate().kling.selection_json
