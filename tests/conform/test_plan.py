"""The core's conform plan: what the add-on's tests do not cover (forced rate, variable rate,
records, host-neutral refusals). The shared rules are tested in tests/addon_pure."""

from __future__ import annotations

import json

import pytest

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
