"""Conform inside Blender: a 25 fps, 640x360, 6 s clip becomes a 24 fps 1280x720 5 s MP4
whose frames show the source at the right times; the operator stores it on the strip."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import bpy, drain

av = pytest.importorskip("av")


def _timing(strip, name: str):
    from blender_addon import compat

    return compat.timing(strip, name)


def _set_timing(strip, name: str, value) -> None:
    from blender_addon import compat

    compat.set_timing(strip, name, value)


@pytest.fixture
def conform_ops(addon):
    """The conform operators, registered unless the add-on already does it."""
    from blender_addon.ops import conform as ops_conform

    mine = [cls for cls in ops_conform.classes if not hasattr(bpy.types, cls.__name__)]
    for cls in mine:
        bpy.utils.register_class(cls)
    yield ops_conform
    ops_conform.unregister()
    for cls in reversed(mine):
        bpy.utils.unregister_class(cls)


@pytest.fixture(scope="module")
def clip25(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("conform") / "plate25.mp4", width=640,
                     height=360, fps=25, seconds=6.0, seed=5)


@pytest.fixture
def plate(conform_ops, clip25, tmp_path):
    """A 24 fps scene (unsaved .blend) with the 25 fps clip as its active strip."""
    bpy.ops.wm.read_homefile(use_empty=True)
    from blender_addon import compat

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps, scene.render.fps_base = 24, 1.0
    editor = scene.sequence_editor_create()
    strip = compat.new_movie(editor, "plate", str(clip25.path), 2, 1)
    editor.active_strip = strip
    bpy.context.window_manager.kling.error = ""
    return strip


def _centroid(frame) -> tuple[float, float]:
    """Centre of the sample clip's orange object in a decoded RGB frame (pixels)."""
    rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
    mask = (rgb[..., 0] > 170) & (rgb[..., 0] - rgb[..., 2] > 140) & (rgb[..., 1] < 150)
    rows, cols = np.nonzero(mask)
    assert len(rows) > 100, "the object is not visible"
    return float(cols.mean()), float(rows.mean())


def _expected(clip, source_frame: int, width: int, height: int) -> tuple[float, float]:
    x, y = clip.center(source_frame)  # normalized: pixel col / (w - 1)
    col, row = x * (clip.width - 1), y * (clip.height - 1)
    return ((col + 0.5) * width / clip.width - 0.5, (row + 0.5) * height / clip.height - 0.5)


def _check_movie(path: str, clip, plan, slack: float = 0.5) -> None:
    """Container, codec, size, rate, length, Kling's rules, and what each frame shows: the
    file frame nearest in time (``slack`` 0.5 source frames), or within ``slack`` frames."""
    from kling_elements import media, validate

    assert path.endswith(".mp4")
    validate.video(media.probe(path))  # raises if Kling would refuse it
    with av.open(path) as container:
        assert "mp4" in container.format.name
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (
            plan.width, plan.height)
        assert stream.average_rate == plan.fps
        frames = list(container.decode(video=0))
    assert len(frames) == plan.frame_count
    assert frames[-1].time == pytest.approx((plan.frame_count - 1) / plan.fps, abs=1e-3)
    for k, frame in enumerate(frames):
        cx, cy = _centroid(frame)
        # The file frame it shows: the candidate whose object position matches best.
        nominal = plan.source_frame(k)
        shown = min(range(nominal - 2, nominal + 3),
                    key=lambda s: math.dist((cx, cy), _expected(clip, s, plan.width,
                                                                plan.height)))
        error = math.dist((cx, cy), _expected(clip, shown, plan.width, plan.height))
        assert error < 3.0, f"frame {k}: object {error:.1f} px from file frame {shown}"
        # ... is the nearest to the frame's time (an exact tie may go either way).
        seconds = (shown - plan.first_frame) / clip.fps
        assert abs(seconds - k / plan.fps) <= slack / clip.fps + 1e-9, (k, shown)
        assert plan.first_frame <= shown <= plan.last_frame
        if k % 40 == 0:  # colours pass through (no tone mapping, no dither): ~2 levels
            reference = np.asarray(Image.fromarray(clip.frame(shown)).resize(
                (plan.width, plan.height), Image.Resampling.BILINEAR), np.float32)
            decoded = frame.to_ndarray(format="rgb24").astype(np.float32)
            assert np.abs(decoded - reference).mean() < 6.0, k


def test_conform_a_25_fps_6_s_clip(plate, clip25, conform_ops):
    from blender_addon.work import conform

    scene = bpy.context.scene
    plan = conform_ops.plan_for(scene, plate)
    assert (plan.fps, plan.width, plan.height, plan.frame_count) == (24, 1280, 720, 120)
    assert plan.reasons[:3] == ("25 fps → 24 fps", "640×360 → 1280×720",
                                "6.0 s → 5.0 s (keeps the start)")
    job = conform.ConformRender(plan, blender_binary=bpy.app.binary_path)
    started = time.perf_counter()
    assert job.run() == plan.output
    elapsed = time.perf_counter() - started
    print(f"\nconform render of {plan.frame_count} frames at {plan.width}x{plan.height}: "
          f"{elapsed:.1f} s (bpy {bpy.app.version_string})")
    assert job.progress == (120, 120)
    _check_movie(plan.output, clip25, plan)
    assert conform.read_record(plan.output) == plan
    assert not [p for p in Path(plan.output).parent.iterdir() if ".part" in p.name]


def test_a_clip_at_an_allowed_rate_is_only_scaled(conform_ops, tmp_path):
    """Same rate in and out: a plain strip, no retiming; 640x360 -> 1280x720, 75 frames."""
    from blender_addon.work import conform
    from kling_elements.sandbox.sample import make_clip

    clip = make_clip(tmp_path / "plate30.mp4", width=640, height=360, fps=30, seconds=2.5,
                     seed=2)
    source = conform.SourceClip(str(clip.path), 640, 360, 30.0, 0, clip.frame_count,
                                file_frames=clip.frame_count)
    plan = conform.plan_conform(source, out_dir=str(tmp_path / "out"))
    assert (plan.fps, plan.frame_count, plan.reasons) == (30, 75, ("640×360 → 1280×720",))
    conform.ConformRender(plan, blender_binary=bpy.app.binary_path).run()
    _check_movie(plan.output, clip, plan)


@pytest.mark.skipif(not os.environ.get("KLING_TEST_BLENDER"),
                    reason="set KLING_TEST_BLENDER to a Blender binary to test that launcher")
def test_conform_with_a_blender_binary(clip25, tmp_path):
    """The command line of a real Blender (``--background --factory-startup --python``).

    Blender 3.4 truncates the retimed frame index instead of rounding it, so frames may show
    the file frame just before the nearest one: a slack of one source frame.
    """
    from blender_addon.work import conform

    binary = os.environ["KLING_TEST_BLENDER"]
    source = conform.SourceClip(str(clip25.path), 640, 360, 25.0, 0, clip25.frame_count,
                                file_frames=clip25.frame_count)
    plan = conform.plan_conform(source, out_dir=str(tmp_path))
    job = conform.ConformRender(plan, blender_binary=binary)
    assert conform.render_command("s.py", {}, blender_binary=binary)[0] == binary
    started = time.perf_counter()
    job.run()
    print(f"\nconform render with {binary}: {time.perf_counter() - started:.1f} s")
    _check_movie(plan.output, clip25, plan, slack=1.0)


def test_the_operator_conforms_the_visible_range_and_stores_it(plate, clip25, conform_ops):
    from blender_addon.work import conform

    _set_timing(plate, "content_trim_start", 20)  # file frames 20..149 are visible: 5.2 s
    _set_timing(plate, "right_handle", _timing(plate, "left_handle") + 125)  # 20..144: 5.0 s
    scene = bpy.context.scene
    assert bpy.ops.kling.conform_source(duration="AUTO") == {"FINISHED"}
    job = conform_ops.render_for(scene, plate)
    assert job is not None and job.state in ("queued", "running")
    assert not bpy.ops.kling.conform_source.poll()  # one render per strip at a time
    drain(timeout=300)
    runtime = bpy.context.window_manager.kling
    assert runtime.error == ""
    assert runtime.status.startswith("Conformed plate: ")
    assert conform_ops.render_for(scene, plate) is None

    found = conform_ops.conformed_clip(scene, plate)
    assert found is not None
    path, plan = found
    assert plate.kling.conformed_path and bpy.path.abspath(plate.kling.conformed_path) == path
    assert (plan.first_frame, plan.last_frame, plan.frame_count) == (20, 144, 120)
    _check_movie(path, clip25, plan)

    # Moving a handle makes the clip stale; clearing forgets it (the file stays).
    _set_timing(plate, "left_handle", _timing(plate, "left_handle") + 5)
    assert "changed" in conform_ops.conform_status(scene, plate)[2]
    assert conform_ops.conformed_clip(scene, plate) is None
    plate.kling.selection_json = "{}"  # a session refers to the conformed clip's frames
    assert not bpy.ops.kling.clear_conform.poll()
    assert not bpy.ops.kling.conform_source.poll()
    plate.kling.selection_json = ""
    assert bpy.ops.kling.clear_conform() == {"FINISHED"}
    assert plate.kling.conformed_path == "" and Path(path).is_file()
    assert conform.read_record(path) == plan


def test_a_strip_blender_retimes_is_read_by_its_time(plate, clip25, conform_ops):
    """A strip added with "Adjust Playback Rate" (the UI's default) shows all 150 file frames
    in 144 scene frames; the visible range is still the file's frames 0..149."""
    from blender_addon.child import conform_render

    scene = bpy.context.scene
    retimed = conform_render._add_retimed_strip(bpy, scene, str(clip25.path))
    assert _timing(retimed, "duration") == 144
    clip = conform_ops.read_source(scene, retimed)
    assert (clip.first_frame, clip.frame_count, clip.file_frames) == (0, 150, 150)
    _set_timing(retimed, "left_handle", 25)  # shows file frame round(24 * 25/24) = 25
    clip = conform_ops.read_source(scene, retimed)
    assert (clip.first_frame, clip.frame_count) == (25, 125)


def test_session_checks_and_conform_count_frames_from_one_read_of_the_index(
        conform_ops, clip25, tmp_path, monkeypatch):
    """The Source checks, the session's frame count and Conform's plan ask one reader, which
    opens a file's MP4 index once per version of the file, and again once the file changes.
    (The frame rate may be read by the same open or one of its own: at most two.)"""
    import builtins
    import shutil

    from blender_addon import compat
    from blender_addon.bridge import source
    from kling_elements.sandbox.sample import make_clip

    path = tmp_path / "fresh.mp4"
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(source, "STAT_TTL_S", 0.0)
    shutil.copyfile(clip25.path, path)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    strip = compat.new_movie(scene.sequence_editor_create(), "fresh", str(path), 1, 1)
    monkeypatch.setattr(builtins, "open", counting_open)
    assert source.clip_info(strip, str(path)).frame_count == 150
    assert source.source_file_frames(strip, str(path)) == 150
    assert conform_ops.read_source(scene, strip).file_frames == 150
    first_version = len(opened)
    assert 1 <= first_version <= 2, opened

    monkeypatch.setattr(builtins, "open", real_open)
    make_clip(path, width=640, height=360, fps=25, seconds=2.0, seed=5)  # a new version
    monkeypatch.setattr(builtins, "open", counting_open)
    assert source.source_file_frames(strip, str(path)) == 50
    assert source.movie_frames(str(path)) == 50
    assert len(opened) == first_version + 1, opened  # the count; the rate was not asked


def test_too_short_a_range_is_refused_before_anything_runs(plate, conform_ops):
    _set_timing(plate, "right_handle", _timing(plate, "left_handle") + 40)  # 1.6 s
    with pytest.raises(RuntimeError, match=r"1\.60 s.*at least 2 s.*does not pad"):
        bpy.ops.kling.conform_source()
    assert conform_ops.render_for(bpy.context.scene, plate) is None
    _set_timing(plate, "right_handle", _timing(plate, "left_handle") + 150)
    with pytest.raises(RuntimeError, match="7 s"):
        bpy.ops.kling.conform_source(duration="10")
    assert plate.kling.conformed_path == ""


def test_progress_reaches_the_status_line(plate, conform_ops):
    from blender_addon.work import conform

    plan = conform_ops.plan_for(bpy.context.scene, plate)
    job = conform.ConformRender(plan)
    job.state, job.progress = "running", (45, 120)
    conform_ops._renders[("Scene", "plate")] = job
    assert conform_ops._progress_tick() == conform_ops.PROGRESS_INTERVAL_S
    assert bpy.context.window_manager.kling.status == "Conforming plate… 38%"
    job.state = "done"
    assert conform_ops._progress_tick() is None and not conform_ops._renders


def test_cancel_stops_the_render_and_keeps_nothing(plate, conform_ops):
    scene = bpy.context.scene
    _set_timing(plate, "content_trim_start", 3)  # a plan no other test rendered
    assert bpy.ops.kling.conform_source() == {"FINISHED"}
    job = conform_ops.render_for(scene, plate)
    deadline = time.monotonic() + 120
    while job.progress[0] < 5 and job.state in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert bpy.ops.kling.cancel_conform() == {"FINISHED"}
    drain(timeout=60)
    assert job.state == "cancelled"
    assert "cancelled" in bpy.context.window_manager.kling.error
    assert plate.kling.conformed_path == ""
    folder = Path(job.plan.output).parent
    assert not [p for p in folder.iterdir() if p.name.startswith(Path(job.plan.output).stem)]


class _Layout:
    """Records what ``draw_conform`` draws (no UI in background mode)."""

    def __init__(self, log: list) -> None:
        self.log, self.alert, self.enabled = log, False, True

    def row(self, **_):
        return _Layout(self.log)

    column = row

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.log.append(("label", text))

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.log.append(("progress", text))

    def operator(self, idname: str, text: str = "", icon: str = "NONE"):
        self.log.append(("operator", idname, text, self.enabled))

        class _Props:
            pass

        return _Props()


def test_draw_conform(plate, conform_ops):
    from blender_addon.ui import conform_panel as conform_ui

    log: list = []
    conform_ui.draw_conform(_Layout(log), bpy.context, plate)
    labels = [entry[1] for entry in log if entry[0] == "label"]
    assert any(text.startswith("duration 6.000 s") for text in labels)
    assert "25 fps → 24 fps" in labels and "640×360 → 1280×720" in labels
    buttons = [entry[1:] for entry in log if entry[0] == "operator"]
    assert buttons == [("kling.conform_source", "Conform Clip", True),
                       ("kling.conform_source", "5 s", True),
                       ("kling.conform_source", "10 s", False)]

    log.clear()
    plate.kling.conformed_path = "//nowhere/plate-0.mp4"
    conform_ui.draw_conform(_Layout(log), bpy.context, plate)
    labels = [entry[1] for entry in log if entry[0] == "label"]
    assert labels[0] == "plate-0.mp4" and "missing" in labels[1]
    assert ("operator", "kling.clear_conform", "", True) in log
