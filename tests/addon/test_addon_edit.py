"""Edit, tasks and results inside Blender, against an in-process sandbox.

Each test goes the way an editor does: session, a click on the ball, the Edit panel's
settings, Generate; then the add-on's own poller (driven here as its timer would) follows
the task, downloads the result and imports it above the source.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from .conftest import bpy, drain


def settle(timeout: float = 60.0) -> None:
    """Run the add-on's timer body until no task has work left and both workers are idle."""
    from blender_addon.ops import tasks as ops_tasks
    from blender_addon.work.worker import BACKGROUND, LONG, WORKER

    deadline = time.monotonic() + timeout
    while True:
        WORKER.drain()
        BACKGROUND.drain()
        LONG.drain()
        ops_tasks.tick(force=True)
        if not (WORKER.busy or BACKGROUND.busy or LONG.busy or ops_tasks.pending_records()):
            return
        if time.monotonic() > deadline:
            states = [(r.status, r.message) for r in ops_tasks.pending_records()]
            raise TimeoutError(f"tasks still pending: {states}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference_png(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("ref") / "ball.png"
    pixels = np.zeros((400, 400, 3), np.uint8)
    pixels[100:300, 100:300] = (250, 40, 40)
    Image.fromarray(pixels).save(path)
    return str(path)


def _marked(strip, clip):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    assert load_selection(strip) is not None, bpy.context.window_manager.kling.error
    ops_select.request_add(bpy.context, strip, 0, [clip.center(0)])
    drain()
    return load_selection(strip)


def _setup_edit(strip, mode, reference_png):
    from kling_elements import prompts

    edit = strip.kling.edit
    edit.edit_mode = mode
    if mode in ("addition", "swap"):
        edit.image_1 = bpy.data.images.load(reference_png, check_existing=True)
    edit.prompt = prompts.template(mode).replace("[x]", "the red ball")
    return edit


def generate_removal(strip, prompt: str = "Delete the ball from <<<video_1>>>") -> None:
    """Fill in a Remove edit and press Generate (the task is queued, not yet followed)."""
    strip.kling.edit.edit_mode = "removal"
    strip.kling.edit.prompt = prompt
    assert bpy.ops.kling.generate() == {"FINISHED"}


@pytest.mark.parametrize("mode", ["addition", "swap", "removal"])
def test_each_mode_is_created_once_polled_downloaded_and_imported(
        movie_strip, clip, sandbox, reference_png, mode):
    _marked(movie_strip, clip)
    _setup_edit(movie_strip, mode, reference_png)
    assert bpy.ops.kling.generate() == {"FINISHED"}
    settle()

    record = movie_strip.kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert sandbox.state.created[record.external_task_id] == 1
    assert os.path.isfile(bpy.path.abspath(record.result_path))
    scene = bpy.context.scene
    from blender_addon import compat

    result = compat.strip_by_name(scene, record.imported_strip)
    assert result is not None and result.type == "MOVIE"
    assert result.channel == movie_strip.channel + 1
    for handle in ("left_handle", "right_handle"):
        assert compat.timing(result, handle) == compat.timing(movie_strip, handle)
    assert result.kling.video_id == record.video_id != ""
    assert result.kling.task_id == record.task_id
    assert result.kling.prompt == record.prompt
    assert movie_strip.name in result.name
    # A second poll round does not import it again.
    settle()
    imported = [s for s in compat.strips(scene.sequence_editor)
                if s.kling.task_id == record.task_id]
    assert len(imported) == 1


def test_generate_is_refused_with_the_reason_while_something_is_missing(movie_strip, clip):
    from blender_addon.ops.edit import edit_problems_for

    assert edit_problems_for(movie_strip)[0].startswith("Start a session")
    assert not bpy.ops.kling.generate.poll()
    _marked(movie_strip, clip)
    edit = movie_strip.kling.edit
    edit.edit_mode = "swap"
    edit.prompt = "swap it for <<<image_1>>> in <<<video_1>>>"
    assert edit_problems_for(movie_strip) == ["Choose a reference image of the element"]
    assert not bpy.ops.kling.generate.poll()
    assert len(movie_strip.kling.tasks) == 0


def test_a_failed_task_shows_klings_message_and_imports_nothing(movie_strip, clip, sandbox):
    from kling_elements.sandbox.tasks import FAIL_MESSAGE

    _marked(movie_strip, clip)
    generate_removal(movie_strip, "Delete the ball from <<<video_1>>> [[fail]]")
    settle()
    record = movie_strip.kling.tasks[-1]
    assert record.status == "failed"
    assert record.message == FAIL_MESSAGE
    assert record.imported_strip == "" and record.result_path == ""


def test_save_and_reload_with_a_task_in_flight_imports_exactly_once(
        movie_strip, clip, sandbox, tmp_path):
    from blender_addon import compat
    from blender_addon.ops import tasks as ops_tasks
    from blender_addon.work.worker import BACKGROUND, WORKER

    _marked(movie_strip, clip)
    generate_removal(movie_strip, "Delete the ball from <<<video_1>>>")
    drain()  # created, not yet polled
    name = movie_strip.name
    record = movie_strip.kling.tasks[-1]
    external = record.external_task_id
    assert record.status in ("submitted", "processing")
    blend = tmp_path / "project.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # as if Blender had been closed
    assert not WORKER.busy and not BACKGROUND.busy
    settle()

    scene = bpy.context.scene
    source = compat.strip_by_name(scene, name)
    record = source.kling.tasks[-1]
    assert record.external_task_id == external and record.status == "succeed"
    assert sandbox.state.created[external] == 1
    results = [s for s in compat.strips(scene.sequence_editor) if s.kling.task_id]
    assert [s.name for s in results] == [record.imported_strip]
    # Saved next to the .blend, stored relative to it.
    assert record.result_path.startswith("//kling/")
    assert (tmp_path / "kling").is_dir()
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    settle()
    scene = bpy.context.scene
    assert len([s for s in compat.strips(scene.sequence_editor) if s.kling.task_id]) == 1
    assert not ops_tasks.pending_records()


def test_results_of_an_unsaved_file_move_next_to_the_blend_on_save(
        movie_strip, clip, sandbox, tmp_path):
    from blender_addon import compat
    from blender_addon.bridge import results

    _marked(movie_strip, clip)
    generate_removal(movie_strip, "Delete the ball from <<<video_1>>>")
    settle()
    record = movie_strip.kling.tasks[-1]
    assert record.result_path.startswith(results.unsaved_folder())
    blend = tmp_path / "later.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert record.result_path.startswith("//kling/")
    moved = tmp_path / "kling" / os.path.basename(record.result_path)
    assert moved.is_file()
    imported = compat.strip_by_name(bpy.context.scene, record.imported_strip)
    assert bpy.path.abspath(imported.filepath) == str(moved)
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # the saved file holds the new paths too
    source = compat.strip_by_name(bpy.context.scene, "plate")
    assert source.kling.tasks[-1].result_path.startswith("//kling/")


def test_edit_again_starts_from_the_result_video_id_without_upload(
        movie_strip, clip, sandbox):
    from blender_addon import compat
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    _marked(movie_strip, clip)
    generate_removal(movie_strip, "Delete the ball from <<<video_1>>>")
    settle()
    scene = bpy.context.scene
    first = compat.strip_by_name(scene, movie_strip.kling.tasks[-1].imported_strip)
    scene.sequence_editor.active_strip = first
    uploads = len(list((sandbox.data_dir / "uploads").iterdir()))

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    state = load_selection(first)
    assert state is not None, bpy.context.window_manager.kling.error
    assert first.kling.published_url == ""  # started from the video id, nothing published
    ops_select.request_add(bpy.context, first, 0, [(0.2, 0.2)])
    drain()
    generate_removal(first, "Delete the corner from <<<video_1>>>")
    settle()
    second = compat.strip_by_name(scene, first.kling.tasks[-1].imported_strip)
    assert second.channel == first.channel + 1
    assert second.kling.video_id and second.kling.video_id != first.kling.video_id
    assert len(list((sandbox.data_dir / "uploads").iterdir())) == uploads


def test_tracking_preview_is_a_muted_strip_above_the_source(movie_strip, clip):
    from blender_addon import compat

    _marked(movie_strip, clip)
    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    drain()
    scene = bpy.context.scene
    preview = compat.strip_by_name(scene, movie_strip.kling.preview_strip)
    assert preview is not None, bpy.context.window_manager.kling.error
    assert preview.mute and preview.channel == movie_strip.channel + 1
    assert compat.timing(preview, "left_handle") == compat.timing(movie_strip, "left_handle")
    assert bpy.ops.kling.preview_toggle() == {"FINISHED"}
    assert not preview.mute
    assert bpy.ops.kling.preview_remove() == {"FINISHED"}
    assert compat.strip_by_name(scene, "plate · tracking") is None
    assert movie_strip.kling.preview_strip == ""


def test_account_task_list(movie_strip, clip):
    _marked(movie_strip, clip)
    edit = movie_strip.kling.edit
    edit.prompt = "Delete the ball from <<<video_1>>>"
    assert bpy.ops.kling.generate() == {"FINISHED"}
    settle()
    assert bpy.ops.kling.refresh_account_tasks() == {"FINISHED"}
    settle()  # the query runs on the background worker
    listed = [t.task_id for t in bpy.context.window_manager.kling.account_tasks]
    assert movie_strip.kling.tasks[-1].task_id in listed
