"""Timeline -> farm -> timeline: Export Batch, ``kling-elements batch``, Import Batch Results.

Four shots are marked the way an editor does (Start Editing, a click, the Edit panel): a
whole clip; a trimmed strip of the same clip with a Swap and a reference image; a trimmed
25 fps plate conformed by the add-on whose conformed clip is then gone (so the batch conforms
the same span with the core and writes the plate-rate ``.source.mp4``); and a shot the
sandbox refuses. The batch runs as a farm would (the CLI in another process), then the
results come back above their strips, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import bpy, drain

pytest.importorskip("av")

CORE = Path(__file__).resolve().parents[2] / "core"


@pytest.fixture(scope="module")
def plate25(tmp_path_factory):
    from kling_elements.sandbox.sample import make_clip

    return make_clip(tmp_path_factory.mktemp("roundtrip") / "plate25.mp4", width=640,
                     height=360, fps=25, seconds=3.0, seed=8)


@pytest.fixture(scope="module")
def star(tmp_path_factory) -> str:
    from kling_elements.sandbox.sample import make_reference_image

    return str(make_reference_image(tmp_path_factory.mktemp("refs") / "star.png"))


def _strip(editor, name: str, path, channel: int, frame: int, trim: tuple[int, int] = (0, 0)):
    from blender_addon import compat

    strip = compat.new_movie(editor, name, str(path), channel, frame)
    left, right = trim
    if left:
        compat.set_timing(strip, "left_handle", compat.timing(strip, "left_handle") + left)
    if right:
        compat.set_timing(strip, "right_handle", compat.timing(strip, "right_handle") - right)
    return strip


def _mark(strip, frame: int, point) -> None:
    from blender_addon.bridge.props import load_selection
    from blender_addon.ops import select as ops_select

    bpy.context.scene.sequence_editor.active_strip = strip
    assert bpy.ops.kling.start_session() == {"FINISHED"}
    drain()
    assert load_selection(strip) is not None, bpy.context.window_manager.kling.error
    ops_select.request_add(bpy.context, strip, frame, [point])
    drain()
    assert load_selection(strip).frames() == [frame]


def _run_batch(sandbox, manifest: Path, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLINGAI_")}
    env.update(KLINGAI_BASE_URL=sandbox.base_url, KLINGAI_ACCESS_KEY=sandbox.access_key,
               KLINGAI_SECRET_KEY=sandbox.secret_key, PYTHONPATH=str(CORE))
    command = [sys.executable, "-c", "import sys; from kling_elements.cli import main; "
               "sys.exit(main())", "batch", str(manifest), "--out", str(out)]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert dry.returncode == 0, dry.stderr
    done = subprocess.run([*command, "--host-with", "sandbox", "--json"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr  # one shot is refused, on purpose
    return json.loads(done.stdout)


def _results(scene, strip) -> list:
    from blender_addon import compat

    return [s for s in compat.strips(scene.sequence_editor) if s.kling.source_strip == strip.name]


def test_marked_timeline_goes_to_the_farm_and_its_results_come_back_above_their_strips(
        connected, clip, plate25, star, sandbox, tmp_path):
    from blender_addon import compat
    from blender_addon.work import conform
    from kling_elements import prompts
    from kling_elements.batch.manifest import load

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.fps, scene.render.fps_base = 30, 1.0
    editor = scene.sequence_editor_create()
    whole = _strip(editor, "sh010", clip.path, 2, 1)
    trimmed = _strip(editor, "sh020 swap", clip.path, 2, 80, trim=(10, 5))
    plate = _strip(editor, "sh030", plate25.path, 2, 160, trim=(5, 0))
    refused = _strip(editor, "sh040", clip.path, 2, 400)
    unmarked = _strip(editor, "sh050", clip.path, 2, 300)

    _mark(whole, 0, clip.center(0))
    whole.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
    _mark(trimmed, 20, clip.center(20))
    trimmed.kling.edit.edit_mode = "swap"
    trimmed.kling.edit.image_1 = bpy.data.images.load(star, check_existing=True)
    trimmed.kling.edit.prompt = prompts.template("swap").replace("[x]", "the ball")
    editor.active_strip = plate
    assert bpy.ops.kling.conform_source(duration="AUTO") == {"FINISHED"}
    drain(timeout=300)
    assert plate.kling.conformed_path, bpy.context.window_manager.kling.error
    _mark(plate, 0, plate25.center(5))
    plate.kling.edit.prompt = "Delete the ball from <<<video_1>>>"
    _mark(refused, 0, clip.center(0))
    refused.kling.edit.prompt = "Delete the ball from <<<video_1>>> [[fail]]"

    folder = tmp_path / "farm" / "batch"
    manifest = folder / "shots.jsonl"
    for strip in compat.strips(editor):
        strip.select = strip == unmarked
    with pytest.raises(RuntimeError, match=r"sh050.*Start a session"):
        bpy.ops.kling.export_batch(filepath=str(manifest), selected_only=True)
    assert not folder.exists()  # a bad strip: nothing written

    # The add-on's conformed clip is reused while it is there.
    conformed = Path(bpy.path.abspath(plate.kling.conformed_path))
    assert bpy.ops.kling.export_batch(filepath=str(manifest)) == {"FINISHED"}
    drain()
    first = {json.loads(x)["meta"]["strip"]: json.loads(x) for x in manifest.read_text()
             .splitlines()}
    assert first["sh030"]["video"] == os.path.relpath(conformed, folder).replace(os.sep, "/")
    assert "conform" not in first["sh030"] and first["sh030"]["meta"]["source"] == "conformed"
    assert load(manifest).problems == []
    written = manifest.read_bytes()

    plan = conform.read_record(str(conformed))
    conformed.unlink()  # e.g. a temp folder cleaned: the batch must conform it itself
    Path(f"{conformed}{conform.RECORD_SUFFIX}").unlink()
    right = compat.timing(plate, "right_handle")
    compat.set_timing(plate, "right_handle", right - 20)  # its marks no longer fit the span
    with pytest.raises(RuntimeError, match=r"sh030.*trimmed since its session started"):
        bpy.ops.kling.export_batch(filepath=str(manifest))
    assert manifest.read_bytes() == written  # refused: the old manifest is untouched
    compat.set_timing(plate, "right_handle", right)

    assert bpy.ops.kling.export_batch(filepath=str(manifest)) == {"FINISHED"}
    drain()
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    by_strip = {line["meta"]["strip"]: line for line in lines}
    assert sorted(by_strip) == ["sh010", "sh020 swap", "sh030", "sh040"]  # sh050: no marks
    assert by_strip["sh010"]["select"] == [{"frame": 0, "points": [list(clip.center(0))]}]
    assert by_strip["sh020 swap"]["images"] == [
        f"images/{by_strip['sh020 swap']['name']}-image1.png"]
    assert (by_strip["sh030"]["conform"], by_strip["sh030"]["range"]) == (
        True, [f"f{plan.first_frame}", f"f{plan.last_frame + 1}"])
    assert by_strip["sh030"]["video"] == os.path.relpath(plate25.path, folder).replace(
        os.sep, "/")
    assert sorted(p.name for p in folder.iterdir()) == ["images", "shots.jsonl"]

    for strip in compat.strips(editor):
        strip.select = strip in (whole, trimmed)
    picked = folder / "picked.jsonl"
    assert bpy.ops.kling.export_batch(filepath=str(picked), selected_only=True) == {"FINISHED"}
    drain()
    assert [json.loads(x)["name"] for x in picked.read_text().splitlines()] == [
        by_strip["sh010"]["name"], by_strip["sh020 swap"]["name"]]  # the same names
    picked.unlink()

    out = tmp_path / "farm" / "results"
    report = _run_batch(sandbox, manifest, out)
    status = {job["meta"]["strip"]: job["status"] for job in report["jobs"]}
    assert status == {"sh010": "succeed", "sh020 swap": "succeed", "sh030": "succeed",
                      "sh040": "failed"}

    # The editor trims the plate while the farm works: its result still lies over the same
    # picture (its first frame over the conformed span's first frame), cut to what shows.
    span_start = compat.timing(plate, "left_handle")
    compat.set_timing(plate, "left_handle", span_start + 3)
    names = {line["meta"]["strip"]: line["name"] for line in lines}
    names["sh020 renamed"] = names["sh020 swap"]
    trimmed.name = "sh020 renamed"  # found again by its identity, not its name
    assert bpy.ops.kling.import_batch_results(directory=str(out)) == {"FINISHED"}
    drain()
    for source in (whole, trimmed, plate):
        placed = _results(scene, source)
        assert len(placed) == 1, (source.name, bpy.context.window_manager.kling.status)
        result = placed[0]
        record = next(r for r in source.kling.tasks if r.imported_strip == result.name)
        assert record.status == "succeed" and record.task_id == result.kling.task_id != ""
        assert result.kling.video_id == record.video_id != ""  # chains the next edit
        assert result.channel == source.channel + 1
        for handle in ("left_handle", "right_handle"):
            assert compat.timing(result, handle) == compat.timing(source, handle), source.name
        expected = out / (f"{names[source.name]}.source.mp4" if source == plate
                          else f"{names[source.name]}.mp4")
        assert Path(bpy.path.abspath(result.filepath)).resolve() == expected.resolve()
    # Generate's alignment: the session's clip starts where the movie does, or at the left
    # handle for a conformed span (whose plate-rate result lies over the plate 1:1).
    assert compat.timing(_results(scene, trimmed)[0], "content_start") == compat.timing(
        trimmed, "content_start")
    assert compat.timing(_results(scene, plate)[0], "content_start") == span_start
    failure = [r for r in refused.kling.tasks]
    assert [r.status for r in failure] == ["failed"]
    assert "content safety" in failure[0].message and not _results(scene, refused)

    strips_before = len(list(compat.strips(editor)))
    records_before = {s.name: len(s.kling.tasks) for s in (whole, trimmed, plate, refused)}
    assert bpy.ops.kling.import_batch_results(directory=str(out)) == {"FINISHED"}
    drain()
    assert len(list(compat.strips(editor))) == strips_before
    assert {s.name: len(s.kling.tasks) for s in (whole, trimmed, plate, refused)} == \
        records_before
    assert "3 already imported" in bpy.context.window_manager.kling.status


def test_the_operators_are_in_the_file_menus_and_a_folder_without_a_report_says_so(
        addon, tmp_path):
    from blender_addon.ops import batch as ops_batch

    for menu, entry in ops_batch.MENUS:
        assert entry in getattr(bpy.types, menu)._dyn_ui_initialize()
    runtime = bpy.context.window_manager.kling
    runtime.error = ""
    assert bpy.ops.kling.import_batch_results(directory=str(tmp_path)) == {"FINISHED"}
    drain()
    assert "Import Batch Results failed" in runtime.error and "report.json" in runtime.error
    with pytest.raises(RuntimeError, match="not a folder"):
        bpy.ops.kling.import_batch_results(directory=str(tmp_path / "nope"))


def test_a_result_goes_to_its_strip_by_identity_never_to_another_strip_of_that_name(
        addon, clip):
    from blender_addon import compat
    from blender_addon.ops import batch as ops_batch

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    strip = compat.new_movie(scene.sequence_editor_create(), "sh010", str(clip.path), 1, 1)
    meta = {"scene": scene.name, "strip": "sh010", "key": "exported-key"}
    strip.kling.live_key = "another-strip"
    assert ops_batch._strip_for(meta) is None  # the exported strip was deleted
    strip.kling.live_key = ""
    assert ops_batch._strip_for(meta) == strip  # a strip with no identity yet: by name
    strip.kling.live_key = "exported-key"
    strip.name = "renamed"
    assert ops_batch._strip_for(meta) == strip
