"""Sources an editor can lose sight of: a missing movie, one that goes missing mid-session,
and a marked strip hidden under another strip. Each is refused with the reason, and the
sandbox (which counts every request) receives nothing."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from .conftest import bpy, drain, render_pixels


def _sent(sandbox) -> int:
    with sandbox.state.lock:
        return sum(sandbox.state.requests.values())


def _plate(path: str):
    """A fresh file with one movie strip on channel 2 from frame 1, made active."""
    from blender_addon import compat

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps = 30
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", path, 2, 1)
    editor.active_strip = strip
    return strip


def _start(strip) -> None:
    from blender_addon.bridge.props import load_selection

    drain()  # nothing left in flight by an earlier test
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    assert load_selection(strip) is not None, bpy.context.window_manager.kling.error


def test_start_editing_names_the_missing_file(connected, sandbox, tmp_path):
    path = str(tmp_path / "gone" / "plate.mp4")
    _plate(path)
    before = _sent(sandbox)
    with pytest.raises(RuntimeError, match="the file is missing: ") as refused:
        bpy.ops.kling.start_session()
    assert path in str(refused.value)
    assert "duration" not in str(refused.value) and "fps" not in str(refused.value)
    drain()
    assert _sent(sandbox) == before


def test_a_movie_that_goes_missing_mid_session_takes_nothing(connected, sandbox, clip,
                                                            tmp_path):
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import edit as ops_edit
    from blender_addon.ops import select as ops_select
    from kling_elements import ValidationError

    path = tmp_path / "plate.mp4"
    shutil.copyfile(clip.path, path)
    strip = _plate(str(path))
    _start(strip)
    ops_select.request_add(bpy.context, strip, 0, [clip.center(0)])
    drain()
    strip.kling.edit.edit_mode = "removal"
    strip.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
    moved = path.rename(tmp_path / "elsewhere.mp4")

    before, points = _sent(sandbox), load_selection(strip).points
    with pytest.raises(ValidationError, match="the file is missing: ") as refused:
        ops_select.request_add(bpy.context, strip, 1, [clip.center(1)])
    assert str(path) in str(refused.value)
    for sender in (lambda: bpy.ops.kling.delete_frame(frame_index=0),
                   lambda: bpy.ops.kling.clear_selection(),
                   lambda: bpy.ops.kling.preview_tracking()):
        with pytest.raises(RuntimeError, match="the file is missing: "):
            sender()
    with pytest.raises(ValueError, match="the file is missing: "):
        ops_edit.request_generate(bpy.context, strip)
    drain()
    assert _sent(sandbox) == before
    assert load_selection(strip).points == points and len(strip.kling.tasks) == 0

    moved.rename(path)  # put back where Blender looks: clicks work again
    ops_select.request_add(bpy.context, strip, 1, [clip.center(1)])
    drain()
    assert load_selection(strip).frames() == [0, 1]


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("other") / "other.mp4", width=1280, height=720,
                     fps=30, seconds=1.0, seed=11)


@pytest.fixture
def covered(movie_strip, other_clip, sandbox):
    """The marked strip under another movie strip on channel 3 (default blend: Alpha
    Over, full opacity, the whole frame), with a session started."""
    from blender_addon import compat

    _start(movie_strip)
    scene = bpy.context.scene
    over = compat.new_movie(scene.sequence_editor, "overlay", str(other_clip.path), 3, 1)
    scene.sequence_editor.active_strip = movie_strip
    scene.frame_set(1)
    return SimpleNamespace(strip=movie_strip, over=over, scene=scene, sandbox=sandbox)


def _add(strip, point):
    from blender_addon.ops import select as ops_select

    ops_select.request_add(bpy.context, strip, 0, [point])


def _refused(case, point) -> None:
    from kling_elements import ValidationError

    before = _sent(case.sandbox)
    with pytest.raises(ValidationError, match="the strip is covered by 'overlay' at this frame"):
        _add(case.strip, point)
    drain()
    assert _sent(case.sandbox) == before


def _taken(case, point) -> None:
    from blender_addon.bridge.props import load_selection

    count = len(load_selection(case.strip).points.get(0, []))
    _add(case.strip, point)
    drain()
    assert len(load_selection(case.strip).points.get(0, [])) == count + 1, \
        bpy.context.window_manager.kling.error


def test_a_click_under_an_opaque_strip_is_refused(covered):
    assert covered.over.blend_type == "ALPHA_OVER"
    _refused(covered, (0.5, 0.5))
    covered.over.mute = True
    _taken(covered, (0.5, 0.5))


def test_only_the_part_the_strip_above_covers_is_hidden(covered):
    over = covered.over
    over.transform.scale_x = over.transform.scale_y = 0.25
    over.transform.offset_x, over.transform.offset_y = 400.0, 200.0  # upper right
    from blender_addon import compat

    _refused(covered, (0.5 + 400 / 1280, 0.5 - 200 / 720))
    if compat.ALPHA_OVER_HIDES_WHOLE_FRAME:  # 4.2.0 draws it over the whole frame
        _refused(covered, (0.25, 0.75))
    else:
        _taken(covered, (0.25, 0.75))  # lower left: the marked strip shows there


def test_replace_hides_the_whole_frame_and_mixing_blends_hide_nothing(covered):
    over = covered.over
    over.transform.scale_x = over.transform.scale_y = 0.25
    over.blend_type = "REPLACE"
    _refused(covered, (0.1, 0.9))  # far outside its picture: Replace draws nothing below
    over.blend_type = "ADD"
    _taken(covered, (0.5, 0.5))
    over.blend_type = "ALPHA_OVER"
    over.blend_alpha = 0.5
    _taken(covered, (0.52, 0.5))


def test_a_strip_not_drawn_at_this_frame_hides_nothing(covered):
    from blender_addon import compat

    compat.set_timing(covered.over, "content_start", 30)  # starts after the playhead
    _taken(covered, (0.5, 0.5))
    compat.set_timing(covered.over, "content_start", 1)
    covered.scene.sequence_editor.channels[3].mute = True
    _taken(covered, (0.55, 0.5))
    covered.scene.sequence_editor.channels[3].mute = False
    _refused(covered, (0.6, 0.5))


def test_the_select_tool_refuses_a_click_on_a_covered_strip(covered):
    """The modal tool's click, from a region pixel, ends in the same refusal."""
    from blender_addon.ops import select as ops_select
    from kling_elements import ValidationError

    region = SimpleNamespace(x=0, y=0, view2d=SimpleNamespace(region_to_view=lambda x, y: (x, y)))
    event = SimpleNamespace(mouse_x=0, mouse_y=0)  # view (0, 0): the canvas centre
    before = _sent(covered.sandbox)
    with pytest.raises(ValidationError, match="covered by 'overlay'"):
        ops_select.KLING_OT_select_points.click(None, bpy.context, covered.strip, region, event,
                                                False)
    drain()
    assert _sent(covered.sandbox) == before


class _PreviewContext:
    """Blender's context as seen from a Preview whose Channel is set to ``channel``."""

    def __init__(self, channel: int) -> None:
        self.space_data = SimpleNamespace(display_channel=channel)

    def __getattr__(self, name):
        return getattr(bpy.context, name)


def test_a_preview_showing_channels_up_to_the_strip_takes_the_click(covered):
    """A Preview set to channel 2 draws nothing above it: the overlay on channel 3 hides
    nothing there, and set to channel 1 the marked strip itself is not on screen."""
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select
    from kling_elements import ValidationError

    before = _sent(covered.sandbox)
    with pytest.raises(ValidationError, match=r"shows channels up to 1 only.*channel 2"):
        ops_select.request_add(_PreviewContext(1), covered.strip, 0, [(0.5, 0.5)])
    with pytest.raises(ValidationError, match="covered by 'overlay'"):
        ops_select.request_add(_PreviewContext(0), covered.strip, 0, [(0.5, 0.5)])
    drain()
    assert _sent(covered.sandbox) == before
    ops_select.request_add(_PreviewContext(2), covered.strip, 0, [(0.5, 0.5)])
    drain()
    assert len(load_selection(covered.strip).points.get(0, [])) == 1, \
        bpy.context.window_manager.kling.error


@pytest.mark.parametrize(("blend", "alpha", "scale", "point"), [
    ("ALPHA_OVER", 1.0, 1.0, (0.3, 0.6)),
    ("ALPHA_OVER", 1.0, 0.25, (0.5, 0.5)),    # inside the inset
    ("ALPHA_OVER", 1.0, 0.25, (0.15, 0.2)),   # outside it
    ("ALPHA_OVER", 0.5, 1.0, (0.3, 0.6)),
    ("REPLACE", 1.0, 0.25, (0.15, 0.2)),
    ("CROSS", 1.0, 0.25, (0.15, 0.2)),
    ("CROSS", 0.5, 1.0, (0.3, 0.6)),
    ("ADD", 1.0, 1.0, (0.3, 0.6)),
    ("ALPHA_UNDER", 1.0, 1.0, (0.3, 0.6)),
])
def test_hidden_means_what_the_sequencer_renders(covered, tmp_path, blend, alpha, scale, point):
    """Reference: a real render. Hidden at a point = the rendered pixel there is the same
    whether the marked strip is drawn or muted."""
    import numpy as np

    from blender_addon.bridge import geometry

    over, scene, strip = covered.over, covered.scene, covered.strip
    over.blend_type, over.blend_alpha = blend, alpha
    over.transform.scale_x = over.transform.scale_y = scale
    view = geometry.normalized_to_view(scene, strip, *point)
    [shown] = render_pixels(scene, tmp_path, view)
    strip.mute = True
    [without] = render_pixels(scene, tmp_path, view)
    strip.mute = False
    hidden = bool(np.allclose(shown, without, atol=1 / 255))
    found = geometry.covering_strip(scene, strip, scene.frame_current, *view)
    assert (found == "overlay") is hidden
