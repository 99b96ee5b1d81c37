"""The core's conform plan (the add-on uses it as is): frame rate, size, duration, which file
frame each output frame shows, forced and variable rates, records, refusals."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kling_elements.conform as core
from kling_elements import validate
from kling_elements.conform import (
    ConformError,
    ConformPlan,
    SourceClip,
    needs_conform,
    plan_conform,
    read_record,
    write_record,
)
from kling_elements.errors import ValidationError


def _clip(**overrides) -> SourceClip:
    values = dict(path="/media/take.mp4", width=1920, height=1080, fps=25.0, first_frame=0,
                  frame_count=300, name="take", file_frames=300, stamp=(5, 6))
    values.update(overrides)
    return SourceClip(**values)


def _plate(**overrides) -> SourceClip:
    """A 6 s, 25 fps, 640x360 plate: every rule but the container needs conforming."""
    values = dict(path="/media/plate.mov", width=640, height=360, fps=25.0, first_frame=0,
                  frame_count=150, name="plate", file_frames=150, stamp=(1000, 7))
    values.update(overrides)
    return SourceClip(**values)


def test_a_conform_error_is_a_validation_error():
    with pytest.raises(ValidationError):
        plan_conform(_clip(frame_count=10))


@pytest.mark.parametrize("fps", [24, 30, 60])
def test_a_forced_rate_is_kept(fps):
    plan = plan_conform(_clip(), fps=fps)
    assert plan.fps == fps and plan.frame_count == 10 * fps
    assert abs(plan.source_frame(plan.frame_count - 1) / 25 - (plan.frame_count - 1) / fps) \
        <= 0.5 / 25


def test_a_rate_kling_refuses_is_refused_with_the_choices():
    with pytest.raises(ConformError, match=r"25.*24, 30, 60"):
        plan_conform(_clip(), fps=25)


def test_the_default_window_of_a_12_s_take_is_its_first_10_s():
    plan = plan_conform(_clip())
    assert (plan.first_frame, plan.last_frame, plan.frame_count) == (0, 249, 240)
    assert "12.0 s → 10.0 s (keeps the start)" in plan.reasons


def _vfr_times(count: int) -> tuple[float, ...]:
    """A phone's clip: about 30 fps, with frames that come late, early or twice as long."""
    times, t = [], 0.0
    for i in range(count):
        times.append(round(t, 6))
        t += (1 / 30) * (1.0, 1.3, 0.7, 1.0, 1.6, 0.4)[i % 6]
    return tuple(times)


def test_a_variable_rate_source_picks_frames_by_time():
    times = _vfr_times(400)
    fps = (len(times) - 1) / times[-1]
    clip = _clip(fps=fps, frame_count=len(times), file_frames=len(times), frame_times=times)
    plan = plan_conform(clip)
    assert plan.fps == 30 and plan.frame_map is not None
    assert any("variable frame rate" in r for r in plan.reasons)
    assert plan.frame_count == 300 and plan.duration_s == 10.0
    for k, shown in enumerate(plan.source_frames()):
        t = k / 30
        nearest = min(range(len(times)), key=lambda i: (abs(times[i] - t), -i))
        assert shown == nearest, k
    assert plan.last_frame == max(plan.frame_map)
    # A plan for a variable-rate clip names its source frames in the record.
    back = ConformPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back == plan and back.source_frames() == plan.source_frames()


def test_a_variable_rate_range_starts_at_its_first_frame():
    times = _vfr_times(400)
    clip = _clip(fps=27.0, first_frame=50, frame_count=200, file_frames=400,
                 frame_times=times)
    plan = plan_conform(clip)
    assert plan.source_frame(0) == 50 and plan.last_frame <= 249
    assert plan.duration_s <= clip.visible_s + 1e-9


def test_needs_conform_names_a_variable_rate():
    info = validate.VideoInfo("mp4", 5.0, 1280, 720, 30.0)
    assert needs_conform(info) == []
    (problem,) = needs_conform(info, variable_rate=True)
    assert "varies" in problem and "30 fps" in problem


def test_output_frame_inverts_source_frame():
    plan = plan_conform(_clip(first_frame=20, frame_count=130))
    assert plan.output_frame(19) is None and plan.output_frame(plan.last_frame + 1) is None
    for k in range(plan.frame_count):
        back = plan.output_frame(plan.source_frame(k))
        assert back is not None and plan.source_frame(back) == plan.source_frame(k)
        assert back <= k


def test_records_round_trip_and_old_records_still_read(tmp_path):
    plan = plan_conform(_clip(), out_dir=str(tmp_path))
    path = write_record(plan)
    assert path.name == plan.output.rsplit("/", 1)[1] + ".json"
    assert read_record(plan.output) == plan
    old = plan.to_dict()
    old.pop("frame_map")  # records written before variable rates were handled
    path.write_text(json.dumps(old))
    assert read_record(plan.output) == plan
    path.write_text("{not json")
    assert read_record(plan.output) is None


# ------------------------------------------------------------------ frame rate


@pytest.mark.parametrize(("fps", "expected"), [
    (25, 24), (23.976, 24), (24, 24), (29.97, 30), (30, 30), (50, 60), (59.94, 60),
    (120, 60), (15, 24), (1, 24),
    (27, 30), (45, 60),  # ties go to the higher rate: frames repeat rather than drop
])
def test_nearest_fps(fps, expected):
    assert core.nearest_fps(fps) == expected


@pytest.mark.parametrize("fps", [0, -25, math.nan, math.inf])
def test_nearest_fps_refuses_unreadable_rates(fps):
    with pytest.raises(ConformError, match="frame rate"):
        core.nearest_fps(fps)


# ------------------------------------------------------------------ size


@pytest.mark.parametrize(("size", "expected"), [
    ((640, 360), (1280, 720)),
    ((360, 640), (720, 1280)),
    ((1920, 1080), (1920, 1080)),
    ((3840, 2160), (2160, 1216)),
    ((2160, 720), (2160, 720)),
    ((1281, 721), (1282, 722)),
    ((700, 700), (720, 720)),
])
def test_conform_size(size, expected):
    assert core.conform_size(*size) == expected


@pytest.mark.parametrize("size", [(4000, 500), (500, 4000), (2200, 700)])
def test_an_aspect_beyond_3_to_1_is_refused_with_the_numbers(size):
    with pytest.raises(ConformError) as info:
        core.conform_size(*size)
    message = str(info.value)
    assert f"{size[0]}x{size[1]}" in message and "720-2160" in message and "crop" in message


@given(st.integers(16, 9000), st.integers(16, 9000))
def test_conform_size_properties(width, height):
    lo, hi = validate.VIDEO_SIDE_RANGE
    if max(width, height) / min(width, height) > hi / lo:
        with pytest.raises(ConformError):
            core.conform_size(width, height)
        return
    w, h = core.conform_size(width, height)
    assert lo <= w <= hi and lo <= h <= hi
    assert w % 2 == 0 and h % 2 == 0
    assert not validate.video_problems(validate.VideoInfo("mp4", 5.0, w, h, 24))
    # The aspect is kept to within the even rounding (one pixel either way).
    assert abs(w / h - width / height) <= 2.5 * (1 / h + width / height / h)
    if lo <= width <= hi and lo <= height <= hi:
        assert (abs(w - width), abs(h - height)) <= (1, 1)


# ------------------------------------------------------------------ duration


def test_six_seconds_at_25_fps_becomes_five_seconds_at_24():
    plan = core.plan_conform(_plate(), out_dir="/out")
    assert (plan.fps, plan.width, plan.height) == (24, 1280, 720)
    assert plan.frame_count == 120 and plan.duration_s == 5.0
    assert plan.reasons == ("25 fps → 24 fps", "640×360 → 1280×720",
                            "6.0 s → 5.0 s (keeps the start)",
                            "only file frames 0-124 of 0-149")
    assert (plan.first_frame, plan.last_frame) == (0, 124)
    assert plan.output.startswith("/out/plate-") and plan.output.endswith(".mp4")
    info = validate.VideoInfo("mp4", plan.duration_s, plan.width, plan.height, plan.fps)
    assert validate.video_problems(info) == []


@pytest.mark.parametrize(("seconds", "choice", "expected_s"), [
    (3.0, "AUTO", 3.0), (3.0, "5", 3.0), (2.0, "AUTO", 2.0), (5.0, "AUTO", 5.0),
    (6.0, "AUTO", 5.0), (6.96, "AUTO", 5.0), (7.0, "AUTO", 7.0), (8.0, "AUTO", 8.0),
    (8.0, "5", 5.0), (8.0, "10", 8.0), (12.0, "AUTO", 10.0), (12.0, "10", 10.0),
    (12.0, "5", 5.0),
])
def test_duration_choices(seconds, choice, expected_s):
    clip = _plate(fps=30.0, width=1280, height=720, frame_count=round(seconds * 30),
                 file_frames=None)
    plan = core.plan_conform(clip, choice)
    assert plan.duration_s == pytest.approx(expected_s, abs=1 / 30)
    assert not validate.video_problems(
        validate.VideoInfo("mp4", plan.duration_s, plan.width, plan.height, plan.fps))


def test_conforming_never_pads():
    with pytest.raises(ConformError, match=r"1\.20 s.*at least 2 s.*does not pad"):
        core.plan_conform(_plate(frame_count=30))
    with pytest.raises(ConformError, match=r"6\.00 s.*7 s.*choose 5 s"):
        core.plan_conform(_plate(), "10")
    six = core.duration_options(6.0)
    assert (six["AUTO"], six["5"]) == ("", "") and "7 s" in six["10"]
    assert all(core.duration_options(1.0).values())
    assert not any(core.duration_options(7.5).values())


def test_an_unknown_choice_is_refused():
    with pytest.raises(ConformError, match="'7'"):
        core.plan_conform(_plate(), "7")


def test_short_ranges_keep_their_length_within_one_output_frame():
    # 87 frames at 25 fps (3.48 s) -> 83 frames at 24 fps (3.458 s): never longer than the
    # content, never a "trim" reason.
    plan = core.plan_conform(_plate(frame_count=87, file_frames=87))
    assert plan.frame_count == 83
    assert not any("→" in r and " s" in r and "fps" not in r and "×" not in r
                   for r in plan.reasons)


# ------------------------------------------------------------------ time mapping


def test_output_frames_show_the_nearest_file_frame_by_time():
    plan = core.plan_conform(_plate(first_frame=10, frame_count=140, file_frames=150))
    for k in range(plan.frame_count):
        shown = plan.source_frame(k)
        assert abs((shown - 10) / 25 - k / 24) <= 0.5 / 25 + 1e-12
    assert plan.source_frame(0) == 10
    assert plan.source_frame(12) == 10 + 13  # 12.5 -> 13: a tie goes to the later frame
    with pytest.raises(ValueError):
        plan.source_frame(plan.frame_count)


def test_upsampling_never_shows_a_frame_past_the_visible_range():
    plan = core.plan_conform(_plate(fps=10.0, width=1280, height=720, frame_count=30,
                                      file_frames=40))
    assert plan.fps == 24 and plan.frame_count == 72
    assert max(plan.source_frame(k) for k in range(plan.frame_count)) <= 29 == plan.last_frame


# ------------------------------------------------------------------ output


def test_the_output_name_follows_the_source_file_and_the_plan():
    base = core.plan_conform(_plate(), out_dir="/o")
    assert core.plan_conform(_plate(), out_dir="/o") == base
    assert core.plan_conform(_plate(stamp=(1000, 8)), out_dir="/o").output != base.output
    assert core.plan_conform(_plate(first_frame=1, frame_count=149),
                                out_dir="/o").output != base.output
    assert core.plan_conform(_plate(name="a/b c?"), out_dir="/o").output.startswith(
        "/o/a_b_c-")


def test_needs_conform_lists_the_broken_rules():
    problems = core.needs_conform(_plate(path="/media/plate.mkv").info())
    assert [p.split()[0] for p in problems] == ["container", "duration", "width", "height",
                                                 "frame"]
    ok = _plate(path="/m/ok.mp4", width=1280, height=720, fps=24.0, frame_count=120)
    assert core.needs_conform(ok.info()) == []
