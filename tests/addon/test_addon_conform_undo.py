"""Ctrl+Z never orphans a conformed clip; Clear Conform stays an ordinary undoable step.

A Conform render ends after the last undo step (it runs on a long-job thread and pushes
none), like a Kling answer: an undo right after it must not clear the strip's conformed
clip, or the rendered file is orphaned until the user conforms again.
"""

from __future__ import annotations

import os

import pytest

from .conftest import bpy, drain
from .test_addon_long_jobs import _add_plate25
from .test_addon_undo import push, redo, undo


@pytest.fixture(scope="module")
def plate_clip(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("conform-undo") / "plate25.mp4", width=640,
                     height=360, fps=25, seconds=6.0, seed=11)


def plate25():
    from blender_addon import compat

    return compat.strip_by_name(bpy.context.scene, "plate25")


def short(strip) -> None:
    """2.2 s of the plate: a short render."""
    from blender_addon import compat

    compat.set_timing(strip, "right_handle", compat.timing(strip, "left_handle") + 55)


def moved(offset: float) -> None:
    plate25().transform.offset_x = offset
    push(f"Move to {offset}")


def conform() -> str:
    assert bpy.ops.kling.conform_source() == {"FINISHED"}
    drain(timeout=300)
    path = plate25().kling.conformed_path
    assert path, bpy.context.window_manager.kling.error
    return path


def test_undo_and_redo_after_a_conform_keep_the_conformed_clip(movie_strip, plate_clip):
    from blender_addon.ops import conform as ops_conform

    scene = bpy.context.scene
    strip = _add_plate25(scene, plate_clip, offset=3)
    short(strip)
    push("Plate added")
    moved(5.0)
    path = conform()  # no undo step: the render ended after "Move to 5.0"
    undo()
    assert plate25().transform.offset_x == 0.0
    assert plate25().kling.conformed_path == path
    redo()
    assert plate25().transform.offset_x == 5.0
    assert plate25().kling.conformed_path == path
    assert ops_conform.conform_status(bpy.context.scene, plate25())[2] == ""
    assert os.path.isfile(bpy.path.abspath(path))


def test_clear_conform_is_undoable_and_a_new_conform_is_not_hidden_by_it(
        movie_strip, plate_clip):
    scene = bpy.context.scene
    strip = _add_plate25(scene, plate_clip, offset=3)
    short(strip)
    push("Plate added")
    path = conform()
    assert bpy.ops.kling.clear_conform() == {"FINISHED"}
    push("Clear Conform")
    assert plate25().kling.conformed_path == ""
    undo()  # the clip comes back: it is still on disk
    assert plate25().kling.conformed_path == path
    redo()  # and the clear is redone
    assert plate25().kling.conformed_path == ""
    moved(7.0)
    undo()  # to "Clear Conform": the clip stays forgotten
    assert plate25().kling.conformed_path == ""

    again = conform()  # the same range: the same file, delivered anew
    assert again == path
    moved(9.0)
    undo()
    undo()  # to "Clear Conform", recorded before the new Conform ended
    assert plate25().kling.conformed_path == path


def test_undo_after_a_save_keeps_the_clip_where_the_save_moved_it(
        movie_strip, plate_clip, tmp_path):
    strip = _add_plate25(bpy.context.scene, plate_clip, offset=3)
    short(strip)
    push("Plate added")
    made = conform()
    push("Conformed")  # a step that holds the clip's temporary path
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    stored = plate25().kling.conformed_path
    assert stored.startswith("//kling/conformed/") and not os.path.exists(made)
    moved(3.0)
    undo()  # to "Conformed", recorded before the save moved the clip
    assert plate25().transform.offset_x == 0.0
    assert plate25().kling.conformed_path == stored
    assert os.path.isfile(bpy.path.abspath(stored))
