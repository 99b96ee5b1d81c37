"""Work that can wait long runs off the worker that serves clicks, can be cancelled, and
leaves nothing behind in the temp folder.

A Generate that meets 1303 (every task slot busy) waits up to ten minutes for a slot, and a
Conform render takes seconds to minutes: meanwhile a click on another strip is answered.
Cancel ends a slot wait without another create call, so nothing is charged. Files made
while the .blend is unsaved (results, conformed clips) end up next to it on save, without
the main thread ever copying a file.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import bpy, drain
from .test_addon_edit import _marked, generate_removal, settle

SLOT_BUSY = {"route": "create", "times": 1000, "error": {"http": 429, "code": 1303}}


def pump(until, timeout: float = 60.0, what: str = "") -> float:
    """Run the add-on's drains (as its timer does) until ``until()``; return the time taken."""
    from blender_addon.work.worker import LONG, WORKER

    started = time.monotonic()
    while not until():
        WORKER.drain()
        LONG.drain()
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"gave up waiting for {what or until}")
        time.sleep(0.01)
    return time.monotonic() - started


class _Panel:
    """Records what ``long_jobs.draw_jobs`` draws: [label, operator, its properties] per row."""

    def __init__(self) -> None:
        self.rows: list = []
        self.enabled = True

    def row(self, **_):
        return self

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.rows.append([text])

    def operator(self, idname: str, text: str = "", icon: str = "NONE"):
        props: dict = {}
        self.rows[-1] += [idname, props]

        class _Props:
            def __setattr__(self, name, value):
                props[name] = value

        return _Props()


def _create_posts_left(sandbox) -> int:
    return sum(rule["times"] for rule in sandbox.state.faults.snapshot()
               if rule["route"] == "create")


def _second_strip(scene, clip, name: str = "other"):
    """Another movie strip with a session of its own, made the active strip."""
    from blender_addon import compat
    from blender_addon.bridge.props import load_selection

    editor = scene.sequence_editor
    strip = compat.new_movie(editor, name, str(clip.path), 4, 1)
    editor.active_strip = strip
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    assert load_selection(strip) is not None, bpy.context.window_manager.kling.error
    return strip


def test_a_click_is_served_while_generate_waits_for_a_task_slot_and_cancel_creates_nothing(
        movie_strip, clip, sandbox, faults):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import long_jobs as ops_jobs
    from blender_addon.ops import select as ops_select
    from blender_addon.ops import tasks as ops_tasks
    from blender_addon.work.worker import LONG, WORKER
    from kling_elements import ValidationError

    scene = bpy.context.scene
    _marked(movie_strip, clip)
    other = _second_strip(scene, clip)
    scene.sequence_editor.active_strip = movie_strip
    faults(SLOT_BUSY)

    generate_removal(movie_strip)
    record = movie_strip.kling.tasks[-1]
    key = ops_jobs.generate_key(record.external_task_id)
    job = LONG.get(key)
    assert job is not None
    pump(lambda: "task slot" in job.text(), what="the first 1303")
    assert "every task slot of the account is busy" in job.text()
    shown = _Panel()
    ops_jobs.draw_jobs(shown)
    (text, operator, props), = shown.rows
    assert text.startswith("Generate (Remove): every task slot of the account is busy")
    assert (operator, props) == ("kling.cancel_job", {"key": key})

    # A click on another strip is answered while the create call keeps waiting.
    ops_select.request_add(bpy.context, other, 3, [clip.center(3)])
    took = pump(lambda: not WORKER.busy, what="the click")
    assert load_selection(other).frames() == [3]
    assert LONG.get(key) is job and not job.cancel.is_set()
    assert record.status == "sending"
    print(f"\nclick answered in {took * 1000:.0f} ms while Generate waited for a slot")

    # A click on the strip being generated would change the marks the task is made from.
    other.mute = True  # "other" lies over the plate: muted, the plate is what is on screen
    with pytest.raises(ValidationError, match="Generate is still sending"):
        ops_select.request_add(bpy.context, movie_strip, 5, [clip.center(5)])
    assert not WORKER.busy

    left = _create_posts_left(sandbox)
    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    took = pump(lambda: LONG.get(key) is None, timeout=10, what="the cancel")
    assert took < 2.0  # the wait for a slot ends at once, not at its next retry
    assert record.status == "cancelled"
    assert "nothing was charged" in record.message
    assert bpy.context.window_manager.kling.error == "Generate (Remove) cancelled"
    time.sleep(0.5)
    assert _create_posts_left(sandbox) == left  # no create call after the cancel
    assert sandbox.state.created[record.external_task_id] == 0
    assert record not in ops_tasks.pending_records()  # nothing left to follow

    ops_select.request_add(bpy.context, movie_strip, 5, [clip.center(5)])  # allowed again
    drain()
    assert 5 in load_selection(movie_strip).frames()


def test_a_generate_queued_behind_a_click_creates_once_the_slot_frees(
        movie_strip, clip, sandbox, faults):
    """The create call waits out a few 1303s and goes through once; the click queued before
    Generate was sent first, so the task is made from both marks."""
    from blender_addon.ops import select as ops_select

    _marked(movie_strip, clip)
    faults({**SLOT_BUSY, "times": 2})
    ops_select.request_add(bpy.context, movie_strip, 9, [clip.center(9)])
    generate_removal(movie_strip)
    settle()
    record = movie_strip.kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert sandbox.state.created[record.external_task_id] == 1
    task = next(t for t in sandbox.state.all_tasks()
                if t.external_task_id == record.external_task_id)
    session = sandbox.state.session(task.session_id)
    assert sorted(session.masks) == [0, 9]
    assert task.selection_version == session.version  # made after the second click


@pytest.fixture(scope="module")
def clip25(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("long-jobs") / "plate25.mp4", width=640,
                     height=360, fps=25, seconds=6.0, seed=11)


def _add_plate25(scene, clip25, offset: int):
    from blender_addon import compat

    # After the plate on the timeline: above it at the same frames it would hide the plate
    # (Blender 4.2.0 draws an opaque Alpha Over strip over the whole frame).
    strip = compat.new_movie(scene.sequence_editor, "plate25", str(clip25.path), 6, 200)
    compat.set_timing(strip, "content_trim_start", offset)  # a plan no other test rendered
    scene.sequence_editor.active_strip = strip
    return strip


def test_a_click_is_served_while_a_conform_renders(movie_strip, clip, clip25):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import conform as ops_conform
    from blender_addon.ops import select as ops_select
    from blender_addon.work.worker import WORKER

    scene = bpy.context.scene
    _marked(movie_strip, clip)
    plate25 = _add_plate25(scene, clip25, offset=7)
    assert bpy.ops.kling.conform_source() == {"FINISHED"}
    job = ops_conform.render_for(scene, plate25)
    pump(lambda: job.state == "running" and job.progress[0] >= 1, timeout=120,
         what="the render's first frame")

    ops_select.request_add(bpy.context, movie_strip, 12, [clip.center(12)])
    took = pump(lambda: not WORKER.busy, what="the click")
    assert 12 in load_selection(movie_strip).frames()
    assert job.state == "running", "the render ended before the click: use a longer one"
    done, total = job.progress
    print(f"\nclick answered in {took * 1000:.0f} ms with the render at frame {done}/{total}")

    scene.sequence_editor.active_strip = plate25
    assert bpy.ops.kling.cancel_conform() == {"FINISHED"}
    drain(timeout=60)
    assert job.state == "cancelled" and plate25.kling.conformed_path == ""
    assert bpy.context.window_manager.kling.error == "Conform plate25 cancelled"


def test_a_clip_conformed_before_the_first_save_moves_next_to_the_blend(
        movie_strip, clip25, tmp_path):
    from blender_addon import compat
    from blender_addon.bridge import results
    from blender_addon.ops import conform as ops_conform
    from blender_addon.work import conform

    scene = bpy.context.scene
    plate25 = _add_plate25(scene, clip25, offset=2)
    compat.set_timing(plate25, "right_handle",
                      compat.timing(plate25, "left_handle") + 55)  # 2.2 s: a short render
    assert bpy.ops.kling.conform_source() == {"FINISHED"}
    drain(timeout=300)
    made = Path(plate25.kling.conformed_path)
    assert made.is_absolute() and made.parent.parent == Path(results.unsaved_folder())

    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    stored = plate25.kling.conformed_path
    assert stored == f"//kling/conformed/{made.name}"
    moved = tmp_path / "kling" / "conformed" / made.name
    assert moved.is_file() and Path(f"{moved}{conform.RECORD_SUFFIX}").is_file()
    assert not made.exists()
    assert ops_conform.conform_status(scene, plate25)[2] == ""

    # Conforming the same range again reuses the moved clip instead of rendering it again.
    assert bpy.ops.kling.clear_conform() == {"FINISHED"}
    assert bpy.ops.kling.conform_source() == {"FINISHED"}
    assert pump(lambda: plate25.kling.conformed_path != "", timeout=5) < 5
    assert plate25.kling.conformed_path == stored

    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    from blender_addon import compat

    reopened = compat.strip_by_name(bpy.context.scene, "plate25")
    assert reopened.kling.conformed_path == stored


def test_a_reference_image_made_in_blender_is_sent_without_a_temp_file(
        movie_strip, clip, sandbox, monkeypatch):
    """Top half red, bottom half blue (Blender stores rows bottom-up): Kling gets exactly
    that picture, and nothing is written to the temp folder for it."""
    from kling_elements.sandbox import tasks as sandbox_tasks

    received = []
    decode = sandbox_tasks._image

    def recording(state, index, item):
        received.append(decode(state, index, item))
        return received[-1]

    monkeypatch.setattr(sandbox_tasks, "_image", recording)  # the sandbox runs in-process
    _marked(movie_strip, clip)
    width, height = 400, 300
    image = bpy.data.images.new("painted", width, height)
    rows = np.zeros((height, width, 4), np.float32)
    rows[:, :, 3] = 1.0
    rows[: height // 2, :, 2] = 1.0  # bottom rows: blue
    rows[height // 2:, :, 0] = 1.0  # top rows: red
    image.pixels.foreach_set(rows.ravel())
    edit = movie_strip.kling.edit
    edit.edit_mode, edit.image_1 = "swap", image
    edit.prompt = "Swap the ball in <<<video_1>>> for <<<image_1>>>"
    temp = Path(tempfile.gettempdir())
    before = set(temp.iterdir())

    assert bpy.ops.kling.generate() == {"FINISHED"}
    settle()
    record = movie_strip.kling.tasks[-1]
    assert record.status == "succeed", record.message
    assert sandbox.state.created[record.external_task_id] == 1
    (sent,) = received
    assert sent.shape == (height, width, 3)
    assert (sent[10, 10] == (255, 0, 0)).all() and (sent[-10, -10] == (0, 0, 255)).all()
    new = {p.name for p in set(temp.iterdir()) - before}
    assert not [n for n in new if n.startswith("kling-ref") or n.endswith(".png")], new


def test_save_renames_on_one_filesystem_and_copies_off_the_main_thread_across_two(
        movie_strip, clip, tmp_path, monkeypatch):
    """The temp folder as if on another filesystem: the save itself copies nothing; the copy
    runs on a long-job thread after it, then strips point at the copy; the temp file is
    deleted once the .blend has been saved again with the new paths."""
    from blender_addon import compat
    from blender_addon.bridge import results
    from blender_addon.pure import file_moves
    from blender_addon.work.worker import BACKGROUND, LONG

    _marked(movie_strip, clip)
    generate_removal(movie_strip)
    settle()
    record = movie_strip.kling.tasks[-1]
    temp_file = Path(record.result_path)
    assert temp_file.is_absolute() and temp_file.is_file()

    copies: list[str] = []
    copy, slow_disk = file_moves.copy_file, threading.Event()

    def recording_copy(src, dest):
        copies.append(threading.current_thread().name)
        slow_disk.wait(10)
        copy(src, dest)

    monkeypatch.setattr(file_moves, "try_rename", lambda src, dest: False)
    monkeypatch.setattr(file_moves, "copy_file", recording_copy)
    blend = tmp_path / "later.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # returns while the copy is held up
    assert threading.main_thread().name not in copies
    assert record.result_path == str(temp_file) and temp_file.is_file()  # still valid
    assert [job.label for job in LONG.jobs.values()] == ["Copying files next to the .blend"]

    slow_disk.set()
    pump(lambda: not LONG.busy, what="the copy")
    assert copies and threading.main_thread().name not in copies
    assert all(name.startswith("kling-long-move-files") for name in copies)
    assert record.result_path == f"//kling/{temp_file.name}"
    copied = tmp_path / "kling" / temp_file.name
    assert copied.read_bytes() == temp_file.read_bytes()  # the saved .blend still uses it
    imported = compat.strip_by_name(bpy.context.scene, record.imported_strip)
    assert bpy.path.abspath(imported.filepath) == str(copied)

    bpy.ops.wm.save_mainfile()
    deadline = time.monotonic() + 10
    while BACKGROUND.busy or LONG.busy or temp_file.exists():
        BACKGROUND.drain()
        LONG.drain()
        assert time.monotonic() < deadline, "the temp file was not removed"
        time.sleep(0.01)
    kept = [p.name for p in (tmp_path / "kling").iterdir() if p.name.startswith(temp_file.stem)]
    assert kept == [temp_file.name]  # copied once, not again by the second save
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    source = compat.strip_by_name(bpy.context.scene, "plate")
    assert source.kling.tasks[-1].result_path == f"//kling/{temp_file.name}"
    assert [p for p in Path(results.unsaved_folder()).rglob("*") if p.is_file()] == []


def test_a_generate_cancelled_after_a_lost_answer_is_still_looked_up_by_its_id(
        movie_strip, clip, sandbox, faults):
    """The first create call's connection drops, so it may have reached Kling (and the next
    meets 1303): a Cancel then sends nothing more, but the record is not closed; the poller
    looks the task up by its external id and only then says it never reached Kling."""
    from blender_addon.ops import long_jobs as ops_jobs
    from blender_addon.work.worker import LONG

    _marked(movie_strip, clip)
    faults({"route": "create", "times": 1, "drop": "before_commit"}, SLOT_BUSY)
    generate_removal(movie_strip)
    record = movie_strip.kling.tasks[-1]
    key = ops_jobs.generate_key(record.external_task_id)
    job = LONG.get(key)
    pump(lambda: "retrying" in job.text() or "slot" in job.text(), what="the lost answer")
    assert bpy.ops.kling.cancel_job(key=key) == {"FINISHED"}
    pump(lambda: LONG.get(key) is None, timeout=10)
    assert record.status == "sending"
    assert "may have reached Kling" in record.message
    settle()  # the poller asks Kling for the external id
    assert record.status == "not_sent" and "nothing was charged" in record.message
    assert sandbox.state.created[record.external_task_id] == 0
