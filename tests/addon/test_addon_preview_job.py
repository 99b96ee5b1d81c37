"""Preview Tracking runs on a long-job thread: clicks are answered meanwhile, Cancel keeps
nothing, and the answer finds its strip again after an undo.

The preview sends ``preview-selection`` and downloads a video, which can take long; on the
worker that serves clicks it held up every click queued behind it. The sandbox holds the
request (a delay fault) so the tests can act while it is in flight.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import bpy, drain
from .test_addon_edit import _marked
from .test_addon_long_jobs import _Panel, _second_strip, pump
from .test_addon_undo import hand_edit, push, undo

HELD_S = 3.0


def _tracking_files() -> list[str]:
    from blender_addon.bridge import results

    folder = Path(results.result_folder())
    return sorted(p.name for p in folder.glob("*tracking*")) if folder.is_dir() else []


def _tracking_strips(scene) -> list[str]:
    from blender_addon import compat

    return [s.name for s in compat.strips(scene.sequence_editor) if "tracking" in s.name]


def _clean_folder() -> None:
    from blender_addon.bridge import results

    for name in _tracking_files():
        (Path(results.result_folder()) / name).unlink()


def test_a_click_is_answered_while_kling_tracks_and_cancel_adds_nothing(
        movie_strip, clip, sandbox, faults):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import long_jobs as ops_jobs
    from blender_addon.ops import select as ops_select
    from blender_addon.ops.edit import preview_key
    from blender_addon.work.worker import LONG, WORKER

    scene = bpy.context.scene
    _clean_folder()
    _marked(movie_strip, clip)
    other = _second_strip(scene, clip)
    scene.sequence_editor.active_strip = movie_strip
    faults({"route": "preview-selection", "times": 1, "delay_s": HELD_S})

    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    key = preview_key(scene.name, movie_strip.name)
    job = LONG.get(key)
    assert job is not None, "the preview is not a long job"
    pump(lambda: "tracking the marks" in job.text(), what="the preview request")
    assert not bpy.ops.kling.preview_tracking.poll()  # one preview per strip at a time
    shown = _Panel()
    ops_jobs.draw_jobs(shown)
    (text, operator, props), = shown.rows
    assert text.startswith("Preview tracking plate: Kling is tracking the marks")
    assert (operator, props) == ("kling.cancel_job", {"key": key})

    ops_select.request_add(bpy.context, other, 3, [clip.center(3)])
    took = pump(lambda: not WORKER.busy, what="the click")
    assert load_selection(other).frames() == [3]
    assert LONG.get(key) is job, "the click waited for the preview"
    print(f"\nclick answered in {took * 1000:.0f} ms while Kling tracked the other strip")

    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    pump(lambda: LONG.get(key) is None, timeout=HELD_S + 10, what="the cancel")
    assert bpy.context.window_manager.kling.error == "Preview tracking plate cancelled"
    assert movie_strip.kling.preview_strip == ""
    assert _tracking_strips(scene) == [] and _tracking_files() == []

    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}  # allowed again, and works
    drain()
    assert movie_strip.kling.preview_strip in _tracking_strips(scene)
    assert [n for n in _tracking_files() if n.endswith(".mp4")] == _tracking_files()


def test_a_preview_cancelled_mid_download_leaves_no_partial_file(
        movie_strip, clip, sandbox, faults):
    """The first download attempt breaks half way (the core keeps ``.part`` to resume); the
    resumed request is held; Cancel then deletes the partial file too."""
    from blender_addon.ops.edit import preview_key
    from blender_addon.work.worker import LONG

    scene = bpy.context.scene
    _clean_folder()
    _marked(movie_strip, clip)
    faults({"route": "files", "times": 1, "truncate": 0.5},
           {"route": "files", "times": 1, "delay_s": HELD_S})
    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    key = preview_key(scene.name, movie_strip.name)
    job = LONG.get(key)
    # The download's progress is shown, and part of the file is on disk.
    pump(lambda: "%" in job.text() and any(n.endswith(".part") for n in _tracking_files()),
         what="a partial file")

    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    pump(lambda: LONG.get(key) is None, timeout=HELD_S + 10, what="the cancel")
    assert bpy.context.window_manager.kling.error == "Preview tracking plate cancelled"
    assert _tracking_files() == [] and _tracking_strips(scene) == []
    assert movie_strip.kling.preview_strip == ""


def test_the_preview_lands_on_the_strip_an_undo_brought_back(movie_strip, clip, faults):
    from blender_addon import compat

    _clean_folder()
    _marked(movie_strip, clip)
    push("Marked")
    hand_edit(10.0)
    faults({"route": "preview-selection", "times": 1, "delay_s": 1.0})
    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    undo()  # every Blender object is replaced while the preview is in flight
    drain()
    plate = compat.strip_by_name(bpy.context.scene, "plate")
    assert plate.transform.offset_x == 0.0
    preview = compat.strip_by_name(bpy.context.scene, plate.kling.preview_strip)
    assert preview is not None and preview.mute, bpy.context.window_manager.kling.error
    assert plate.kling.selection_json  # the session survived the undo too


def test_a_click_answered_before_the_preview_is_applied_is_kept(movie_strip, clip, faults):
    """The preview's answer carries the session as it was when the preview ended; a click on
    the same strip answered later, but applied first, must not be replaced by that older
    session (the point would vanish from the strip while Kling has it)."""
    import time

    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from blender_addon.ops.edit import preview_key
    from blender_addon.work.worker import LONG, WORKER

    _clean_folder()
    _marked(movie_strip, clip)
    held_s = 2 * HELD_S  # time enough for the preview to end while the click is held
    faults({"route": "add-selection", "times": 1, "delay_s": held_s})
    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    ops_select.request_add(bpy.context, movie_strip, 7, [clip.center(7)])  # held by Kling
    key = preview_key(bpy.context.scene.name, "plate")
    deadline = time.monotonic() + held_s
    while not [n for n in _tracking_files() if n.endswith(".mp4")]:
        assert time.monotonic() < deadline, "the preview did not end before the click"
        time.sleep(0.02)
    time.sleep(0.2)  # the preview's job returns: its answer waits in the long jobs' queue
    while WORKER.busy:  # the click is answered and applied first
        WORKER.drain()
        time.sleep(0.01)
    assert sorted(load_selection(movie_strip).frames()) == [0, 7]
    pump(lambda: LONG.get(key) is None, what="the preview's answer")
    drain()
    assert sorted(load_selection(movie_strip).frames()) == [0, 7]
    assert movie_strip.kling.preview_strip in _tracking_strips(bpy.context.scene)


def test_cancel_after_the_download_ended_still_adds_no_strip(movie_strip, clip):
    """Cancel pressed between the end of the download and the answer being applied (the
    job is still listed with its Cancel button until then)."""
    import time

    from blender_addon.ops.edit import preview_key
    from blender_addon.work.worker import LONG

    _clean_folder()
    _marked(movie_strip, clip)
    assert bpy.ops.kling.preview_tracking() == {"FINISHED"}
    key = preview_key(bpy.context.scene.name, "plate")
    deadline = time.monotonic() + 30
    while not [n for n in _tracking_files() if n.endswith(".mp4")]:
        assert time.monotonic() < deadline, "the preview did not end"
        time.sleep(0.02)
    time.sleep(0.2)  # the job has returned; its answer waits to be applied
    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    pump(lambda: LONG.get(key) is None, what="the preview's answer")
    drain()
    assert bpy.context.window_manager.kling.error == "Preview tracking plate cancelled"
    assert movie_strip.kling.preview_strip == "" and _tracking_strips(bpy.context.scene) == []
