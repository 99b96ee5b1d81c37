"""The add-on's side of conform, without Blender: the visible range of a strip, the render
command line and the render job. The plan itself is the core's (tests/conform/test_plan.py)."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time

import pytest

from blender_addon.work import conform
from blender_addon.work.conform import (
    ConformCancelled,
    ConformError,
    ConformRender,
    SourceClip,
    StripTimes,
)


def _clip(**overrides) -> SourceClip:
    values = dict(path="/media/plate.mov", width=640, height=360, fps=25.0, first_frame=0,
                  frame_count=150, name="plate", file_frames=150, stamp=(1000, 7))
    values.update(overrides)
    return SourceClip(**values)


def test_the_plan_is_the_cores():
    import kling_elements.conform as core

    for name in ("plan_conform", "ConformPlan", "SourceClip", "ConformError", "read_record",
                 "nearest_fps", "conform_size", "duration_options", "DURATION_CHOICES"):
        assert getattr(conform, name) is getattr(core, name), name


# ------------------------------------------------------------------ visible range


def _times(**overrides) -> StripTimes:
    values = dict(frame_start=1.0, frame_final_start=1, frame_final_end=151,
                  frame_offset_start=0.0, frame_offset_end=0.0, frame_duration=150,
                  animation_offset_start=0, animation_offset_end=0, scene_fps=24.0,
                  source_fps=25.0, file_frames=150)
    values.update(overrides)
    return StripTimes(**values)


def test_visible_range_of_a_strip_blender_does_not_retime():
    assert conform.visible_file_frames(_times()) == (0, 150)
    assert conform.visible_file_frames(_times(file_frames=None)) == (0, 150)
    trimmed = _times(animation_offset_start=10, frame_final_start=6, frame_final_end=141,
                     frame_offset_start=5.0, frame_duration=140)
    assert conform.visible_file_frames(trimmed) == (15, 135)


# RNA values measured in bpy 4.2.23 and 5.0.1 for a 150-frame 25 fps movie added with
# "Adjust Playback Rate" to a 24 fps scene, then given animation_offset_start=10,
# frame_offset_start=5 and frame_final_end=100.
@pytest.mark.parametrize("frame_duration", [140, 134], ids=["4.2", "5.0"])
def test_visible_range_of_a_retimed_strip(frame_duration):
    times = _times(frame_final_start=6, frame_final_end=100, frame_offset_start=5.0,
                   frame_offset_end=35.0, frame_duration=frame_duration,
                   animation_offset_start=10)
    # Scene frame 6 shows round((6 - 1) * 25 / 24) + 10 = 15; frame 99 shows 102 + 10.
    assert conform.visible_file_frames(times) == (15, 98)


def test_visible_range_without_the_file_length_still_reads_4_2_retimed_strips():
    times = _times(frame_final_end=145, frame_duration=150, file_frames=None)
    assert conform.visible_file_frames(times) == (0, 150)


def test_a_strip_of_unknown_retiming_is_refused():
    with pytest.raises(ConformError, match="retiming"):
        conform.visible_file_frames(_times(frame_final_end=101, frame_duration=100,
                                           file_frames=150))


# ------------------------------------------------------------------ output and records


def test_conform_dir():
    assert conform.conform_dir("/proj/edit.blend", "/tmp") == "/proj/kling/conformed"
    assert conform.conform_dir("", "/tmp/unsaved") == "/tmp/unsaved/conformed"


# ------------------------------------------------------------------ command line


def test_render_command_with_the_bpy_module(tmp_path):
    command = conform.render_command("/s/conform_render.py", {"a": 1}, blender_binary="",
                                     python="/venv/bin/python")
    assert command == ["/venv/bin/python", "/s/conform_render.py", '{"a": 1}']


def test_render_command_with_a_blender_binary(tmp_path):
    blender = tmp_path / "blender"
    blender.write_text("")
    command = conform.render_command("/s/r.py", {"a": 1}, blender_binary=str(blender),
                                     python="/venv/bin/python")
    assert command[:3] == [str(blender), "--background", "--factory-startup"]
    assert command[-4:] == ["--python", "/s/r.py", "--", '{"a": 1}']
    # A missing binary, or one that is the Python itself, falls back to the Python.
    assert conform.render_command("/s/r.py", {}, blender_binary=str(tmp_path / "nope"),
                                  python="/p")[0] == "/p"
    assert conform.render_command("/s/r.py", {}, blender_binary=str(blender),
                                  python=str(blender))[1] == "/s/r.py"


def test_the_render_script_reads_its_arguments_both_ways():
    from blender_addon.child import conform_render

    plan = conform.plan_conform(_clip())
    payload = json.dumps(plan.render_args("/o/x.part.mp4"))
    for argv in (["conform_render.py", payload],
                 ["blender", "--background", "--python", "r.py", "--", payload]):
        assert conform_render.parse_argv(argv)["frame_count"] == 120
    with pytest.raises(ValueError, match=r"\.mp4"):
        conform_render.parse_argv(["r.py", json.dumps(plan.render_args("/o/x.part"))])
    with pytest.raises(ValueError, match="lack"):
        conform_render.parse_argv(["r.py", "{}"])


# ------------------------------------------------------------------ the job

_FAKE = textwrap.dedent("""
    import json, os, sys, time
    args = json.loads(sys.argv[1])
    mode = os.environ["FAKE_MODE"]
    with open(args["tmp_output"], "wb") as f:
        f.write(b"partial")
    for i in range(1, args["frame_count"] + 1):
        print("noise line", flush=True)
        print(f"KLING_PROGRESS {i} {args['frame_count']}", flush=True)
        if mode == "slow":
            time.sleep(0.05)
        if mode == "fail" and i == 3:
            print("KLING_ERROR the movie could not be read", file=sys.stderr, flush=True)
            sys.exit(1)
    os.replace(args["tmp_output"], args["output"])
    print("KLING_DONE " + args["output"], flush=True)
""")


@pytest.fixture
def fake_job(tmp_path, monkeypatch):
    script = tmp_path / "fake_render.py"
    script.write_text(_FAKE)
    out_dir = tmp_path / "out"

    def make(mode: str, **overrides) -> ConformRender:
        monkeypatch.setenv("FAKE_MODE", mode)
        clip = _clip(fps=24.0, width=1280, height=720, frame_count=overrides.pop("frames", 48),
                     path=str(tmp_path / "src.mp4"), **overrides)
        plan = conform.plan_conform(clip, out_dir=str(out_dir))
        return ConformRender(plan, python=sys.executable, script=str(script))

    return make


def _files(job: ConformRender) -> list[str]:
    folder = job.plan.output.rsplit("/", 1)[0]
    import os

    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_a_job_reports_progress_and_leaves_the_clip_and_its_record(fake_job):
    job = fake_job("ok")
    assert job.state == "queued" and job.fraction == 0
    assert job.run() == job.plan.output
    assert job.state == "done" and job.progress == (48, 48) and job.fraction == 1.0
    assert conform.read_record(job.plan.output) == job.plan
    name = job.plan.output.rsplit("/", 1)[1]
    assert _files(job) == [name, name + ".json"]


def test_an_existing_result_is_reused_without_rendering(fake_job):
    fake_job("ok").run()
    again = fake_job("fail")  # would fail if it ran
    assert again.run() == again.plan.output and again.state == "done"


def test_a_failed_render_names_the_cause_and_leaves_nothing(fake_job):
    job = fake_job("fail")
    with pytest.raises(ConformError, match=r"exit status 1.*could not be read"):
        job.run()
    assert job.state == "failed" and job.progress == (3, 48)
    assert _files(job) == []


def test_a_missing_render_program_fails_clearly(fake_job):
    job = fake_job("ok")
    job._python = "/nonexistent/python"
    with pytest.raises(ConformError, match=r"cannot start.*/nonexistent/python"):
        job.run()
    assert _files(job) == []


def test_cancel_stops_the_render_and_leaves_nothing(fake_job):
    job = fake_job("slow", frames=120)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            job.run()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while job.progress[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], ConformCancelled) and job.state == "cancelled"
    assert job.progress[0] < 120
    assert _files(job) == []


def test_cancel_before_start_never_launches(fake_job):
    job = fake_job("ok")
    job.cancel()
    with pytest.raises(ConformCancelled):
        job.run()
    assert _files(job) == []
