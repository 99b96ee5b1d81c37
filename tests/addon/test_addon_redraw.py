"""What a redraw does on the main thread: little, and nothing that waits.

The mask overlay's pixels are made off the main thread and wait, ready, for the draw.
Background bpy has no GPU: these tests check what the draw callback would upload
(``overlay.plan`` and the ready buffer), not the upload itself. ``OVERLAYS.enabled`` stands
in for a Blender with a Preview to draw in. Panels read the session parsed once per text,
and the movie's facts without a system call per redraw.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import bpy, drain


@pytest.fixture
def preview(monkeypatch):
    from blender_addon.work.overlay_cache import OVERLAYS

    OVERLAYS.clear()
    monkeypatch.setattr(OVERLAYS, "enabled", True)
    yield OVERLAYS
    OVERLAYS.clear()


def _session_with_a_mask(strip, clip) -> int:
    from blender_addon.bridge import geometry
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    frame = 12
    scene = bpy.context.scene
    scene.frame_set(geometry.scene_frame(scene, strip, load_selection(strip), frame))
    ops_select.request_add(bpy.context, strip, frame, [clip.center(frame)])
    drain()
    return frame


def _drain_overlays(timeout: float = 30.0) -> None:
    from blender_addon.work.worker import OVERLAY

    deadline = time.monotonic() + timeout
    while OVERLAY.busy:
        OVERLAY.drain()
        assert time.monotonic() < deadline, "the overlay worker did not finish"
        time.sleep(0.01)


def test_a_clicks_answer_brings_its_overlay_ready_to_upload(movie_strip, clip, preview):
    from blender_addon.bridge.props import load_selection
    from blender_addon.pure.overlay_layout import mask_pixels
    from blender_addon.ui import overlay

    frame = _session_with_a_mask(movie_strip, clip)
    state = load_selection(movie_strip)
    settings = bpy.context.scene.kling
    drawn = overlay.plan(bpy.context)
    assert drawn is not None and drawn.key[:2] == (state.session_id, frame)
    assert preview.ready(drawn.key)  # prepared by the click's own job: nothing was asked
    from blender_addon.work.worker import OVERLAY

    assert not OVERLAY.busy
    prepared = preview.take(drawn.key)
    expected = mask_pixels(state.masks[frame], tuple(settings.overlay_color),
                           settings.overlay_opacity)
    np.testing.assert_array_equal(prepared.pixels, expected)
    assert preview.nbytes == 0  # handed over to the uploader


def test_another_colour_is_prepared_by_the_overlay_worker(movie_strip, clip, preview):
    from blender_addon.ui import overlay
    from blender_addon.work.overlay_cache import colour_key

    _session_with_a_mask(movie_strip, clip)
    first = overlay.plan(bpy.context).key
    bpy.context.scene.kling.overlay_color = (0.9, 0.1, 0.1)
    drawn = overlay.plan(bpy.context)
    assert drawn.key != first and drawn.key[:2] == first[:2]
    assert not preview.ready(drawn.key)  # asked for, not made in the draw callback
    _drain_overlays()
    prepared = preview.take(drawn.key)
    assert prepared is not None
    painted = prepared.pixels[prepared.pixels[..., 3] > 0]
    settings = bpy.context.scene.kling
    as_stored = colour_key(tuple(settings.overlay_color), settings.overlay_opacity)
    assert as_stored[:3] == (229, 26, 26)  # the property's float32 0.9 is 229.49...
    assert painted.size and (painted == np.float32(as_stored) / np.float32(255)).all()


def test_nothing_is_prepared_without_a_preview_or_with_masks_hidden(movie_strip, clip,
                                                                   preview, monkeypatch):
    from blender_addon.ui import overlay

    bpy.context.scene.kling.show_overlay = False
    try:
        _session_with_a_mask(movie_strip, clip)
        assert len(preview) == 0 and overlay.plan(bpy.context) is None
    finally:
        bpy.context.scene.kling.show_overlay = True
    monkeypatch.setattr(preview, "enabled", False)  # background Blender: no draw callback
    from blender_addon.ops import select as ops_select

    ops_select.request_add(bpy.context, movie_strip, 20, [clip.center(20)])
    drain()
    assert len(preview) == 0


def test_the_timer_ticks_at_the_click_pace_while_a_click_is_out(movie_strip, clip):
    import blender_addon
    from blender_addon.ops import select as ops_select

    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    ops_select.request_add(bpy.context, movie_strip, 0, [clip.center(0)])
    assert bpy.app.timers.is_registered(blender_addon._drain)  # woken, still registered
    assert blender_addon._drain() == blender_addon.CLICK_INTERVAL_S
    drain()
    assert blender_addon._drain() == blender_addon.IDLE_INTERVAL_S


def test_load_selection_parses_once_per_change_and_hands_out_copies(movie_strip, clip):
    from blender_addon.bridge import props
    from blender_addon.bridge.props import load_selection

    _session_with_a_mask(movie_strip, clip)
    first = load_selection(movie_strip)
    first.points.clear()
    first.masks.clear()
    again = load_selection(movie_strip)
    assert again.points and again.masks  # the caller's changes never reach the cache
    kling = movie_strip.kling
    text, token = kling.selection_json, kling.selection_token
    assert token
    kling.selection_json = text.replace(again.session_id, "other-session")
    assert kling.selection_token != token  # every write renews it
    assert load_selection(movie_strip).session_id == "other-session"
    # Undo puts back the text and its token together: the earlier parse is the right one.
    kling.selection_json = text
    kling.selection_token = token
    assert load_selection(movie_strip).session_id == again.session_id
    # A file saved before tokens existed: read by its text, which is compared each time.
    props._by_token.clear()
    kling.selection_token = ""
    assert load_selection(movie_strip).session_id == again.session_id
    kling.selection_json = text.replace(again.session_id, "third-session")
    kling.selection_token = ""
    assert load_selection(movie_strip).session_id == "third-session"
    kling.selection_json = ""
    assert load_selection(movie_strip) is None


def test_an_undo_shows_the_selection_it_restored(movie_strip, clip):
    from blender_addon.bridge.props import load_selection

    _session_with_a_mask(movie_strip, clip)
    before = load_selection(movie_strip)
    bpy.ops.ed.undo_push(message="marked")
    movie_strip.kling.selection_json = movie_strip.kling.selection_json.replace(
        before.session_id, "edited-session")
    bpy.ops.ed.undo_push(message="edited")
    name = movie_strip.name
    assert load_selection(movie_strip).session_id == "edited-session"
    bpy.ops.ed.undo()
    from blender_addon import compat

    restored = compat.strip_by_name(bpy.context.scene, name)
    assert load_selection(restored).session_id == before.session_id


def test_redraws_stat_the_movie_at_most_once_a_second(movie_strip, clip, monkeypatch):
    import os

    from blender_addon.bridge import geometry, source
    from blender_addon.bridge.props import load_selection

    _session_with_a_mask(movie_strip, clip)
    scene, state = bpy.context.scene, load_selection(movie_strip)
    now = [1000.0]
    stats = []
    real_stat = os.stat
    monkeypatch.setattr(source.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(source.os, "stat", lambda path: stats.append(path) or real_stat(path))
    source._stats.clear()
    path = bpy.path.abspath(movie_strip.filepath)
    for _ in range(20):  # a second of redraws: the frame shown, the Source panel's checks
        geometry.session_frame(scene, movie_strip, state, scene.frame_current)
        source.clip_info(movie_strip, path)
    assert stats.count(path) == 1
    now[0] += source.STAT_TTL_S
    geometry.session_frame(scene, movie_strip, state, scene.frame_current)
    assert stats.count(path) == 2  # a file changed on disk is seen within a second


def test_no_overlay_where_the_previews_channel_hides_the_strip(movie_strip, clip, preview):
    """A Preview set to show channels below the marked strip's draws another picture: the
    strip's mask is not laid over it (clicks there are refused as well)."""
    from types import SimpleNamespace

    from blender_addon.ui import overlay

    _session_with_a_mask(movie_strip, clip)

    class Seen:
        def __init__(self, channel: int) -> None:
            self.space_data = SimpleNamespace(display_channel=channel)

        def __getattr__(self, name):
            return getattr(bpy.context, name)

    channel = movie_strip.channel
    assert overlay.plan(Seen(channel - 1)) is None
    assert overlay.plan(Seen(channel)) is not None
    assert overlay.plan(Seen(0)) is not None  # 0: every channel
