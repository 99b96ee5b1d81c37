"""Every documented limit, checked locally; each refusal names the value and the limit."""

from __future__ import annotations

import math

import pytest

from kling_elements import validate
from kling_elements.errors import ValidationError
from kling_elements.validate import VideoInfo

OK_VIDEO = VideoInfo(container="mp4", duration_s=4.0, width=1280, height=720, fps=30.0)


def with_(**changes) -> VideoInfo:
    return VideoInfo(**{**OK_VIDEO.__dict__, **changes})


# -- video --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"container": "mp4"}, {"container": "mov"}, {"container": "MP4"}, {"container": ".mov"},
        {"duration_s": 2.0}, {"duration_s": 5.0}, {"duration_s": 7.0}, {"duration_s": 10.0},
        {"duration_s": 3.3}, {"duration_s": 8.5},
        {"width": 720}, {"width": 2160}, {"height": 720}, {"height": 2160},
        {"width": 2160, "height": 2160},
        {"fps": 24.0}, {"fps": 30.0}, {"fps": 60.0}, {"fps": 24},
    ],
)
def test_video_within_limits_is_accepted(changes):
    info = with_(**changes)
    assert validate.video_problems(info) == []
    assert validate.video(info) is info


@pytest.mark.parametrize(
    ("changes", "must_mention"),
    [
        ({"container": "avi"}, ["'avi'", ".mp4", ".mov"]),
        ({"container": "webm"}, ["'webm'", ".mp4"]),
        ({"container": "mkv"}, ["'mkv'", ".mov"]),
        ({"duration_s": 1.99}, ["1.990 s", "2-5 s", "7-10 s"]),
        ({"duration_s": 0.0}, ["0.000 s", "2-5 s"]),
        ({"duration_s": 5.01}, ["5.010 s", "2-5 s", "7-10 s"]),
        ({"duration_s": 6.0}, ["6.000 s", "2-5 s", "7-10 s"]),
        ({"duration_s": 6.99}, ["6.990 s", "7-10 s"]),
        ({"duration_s": 10.01}, ["10.010 s", "7-10 s"]),
        ({"duration_s": 30.0}, ["30.000 s", "7-10 s"]),
        ({"width": 719}, ["width 719 px", "720-2160"]),
        ({"width": 2161}, ["width 2161 px", "720-2160"]),
        ({"height": 719}, ["height 719 px", "720-2160"]),
        ({"height": 2161}, ["height 2161 px", "720-2160"]),
        ({"fps": 25.0}, ["25 fps", "24, 30 or 60"]),
        ({"fps": 29.97}, ["29.97 fps", "24, 30 or 60", "30 fps"]),
        ({"fps": 23.976}, ["23.976 fps", "24 fps"]),
        ({"fps": 50.0}, ["50 fps", "60 fps"]),
        ({"fps": 120.0}, ["120 fps"]),
        ({"fps": 0.0}, ["0 fps"]),
    ],
)
def test_video_outside_limits_is_refused_with_value_and_limit(changes, must_mention):
    info = with_(**changes)
    problems = validate.video_problems(info)
    assert len(problems) == 1
    with pytest.raises(ValidationError) as exc:
        validate.video(info)
    for text in must_mention:
        assert text in str(exc.value)


@pytest.mark.parametrize(("fps", "conform_to"), [(29.97, 30), (30000 / 1001, 30),
                                                (59.94, 60), (60000 / 1001, 60),
                                                (23.976, 24), (24000 / 1001, 24)])
def test_ntsc_rates_are_refused_with_the_rate_to_conform_to(fps, conform_to):
    """Our choice, stated in the message: NTSC rates are conformed, not read as 24/30/60."""
    (problem,) = validate.video_problems(with_(fps=fps))
    assert "(NTSC) is not 24, 30 or 60" in problem
    assert problem.endswith(f"conform the clip to {conform_to} fps")


@pytest.mark.parametrize("seconds", [5.05, 5.125, 5.9, 10.1, 10.9])
def test_kling_results_a_few_frames_over_their_duration_are_accepted(seconds):
    """A result edited again by video_id may run over 5 or 10 s by a few frames."""
    assert validate.video_problems(with_(duration_s=seconds)) != []  # a user's clip: trim it
    assert validate.video_problems(with_(duration_s=seconds), generated=True) == []


@pytest.mark.parametrize(("seconds", "hint"), [(5.1, True), (10.3, True), (6.0, False),
                                               (6.2, False), (11.5, False), (1.5, False)])
def test_a_file_as_long_as_a_kling_result_is_told_to_use_its_video_id(seconds, hint):
    """A downloaded result (5.1 s) uploaded again is refused; the way that works is named."""
    (problem,) = validate.video_problems(with_(duration_s=seconds))
    assert ("edit it again by its video id" in problem) is hint, problem


@pytest.mark.parametrize("seconds", [6.1, 6.9, 11.1, 1.9])
def test_generated_videos_still_keep_out_of_the_gap(seconds):
    assert validate.video_problems(with_(duration_s=seconds), generated=True) != []


@pytest.mark.parametrize(("seconds", "choice"), [
    (2.0, "5"), (5.0, "5"), (5.1, "5"), (5.125, "5"), (6.0, "5"),
    (7.0, "10"), (10.0, "10"), (10.1, "10"),
])
def test_duration_for_covers_the_input_within_the_result_margin(seconds, choice):
    """The shortest choice that covers the input within RESULT_OVERRUN_S (1 s): a "5"
    task's result, a few frames over 5 s, is edited again as "5", never as "10"."""
    assert validate.RESULT_OVERRUN_S == 1.0
    assert validate.duration_for(seconds) == choice
    assert validate.duration(None, seconds) == choice
    assert validate.duration(choice, seconds) == choice


def test_six_second_clip_is_told_to_trim():
    (problem,) = validate.video_problems(with_(duration_s=6.0))
    assert "trim" in problem


def test_all_video_violations_are_reported_at_once():
    info = VideoInfo(container="avi", duration_s=6.0, width=719, height=2161, fps=25.0)
    problems = validate.video_problems(info)
    assert len(problems) == 5
    with pytest.raises(ValidationError) as exc:
        validate.video(info)
    text = str(exc.value)
    for fragment in ("'avi'", "6.000 s", "width 719", "height 2161", "25 fps"):
        assert fragment in text


@pytest.mark.parametrize(
    ("url", "video_id", "expected"),
    [
        ("https://cdn.example.com/a.mp4", None, ("video_url", "https://cdn.example.com/a.mp4")),
        ("HTTP://cdn.example.com/a.mov", None, ("video_url", "HTTP://cdn.example.com/a.mov")),
        (None, "vid-123", ("video_id", "vid-123")),
        ("", "vid-123", ("video_id", "vid-123")),
    ],
)
def test_video_source_accepts_exactly_one(url, video_id, expected):
    assert validate.video_source(url, video_id) == expected


@pytest.mark.parametrize(
    ("url", "video_id", "fragment"),
    [
        ("https://x/a.mp4", "vid-1", "both"),
        (None, None, "neither"),
        ("", "", "neither"),
        ("/home/me/clip.mp4", None, "'/home/me/clip.mp4'"),
        ("file:///clip.mp4", None, "http(s)"),
    ],
)
def test_video_source_refusals(url, video_id, fragment):
    with pytest.raises(ValidationError) as exc:
        validate.video_source(url, video_id)
    assert fragment in str(exc.value)


# -- frames and points --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "fragment"),
    [
        (-1, None, "-1"),
        (1.5, None, "1.5"),
        (True, None, "True"),
        ("3", None, "'3'"),
        (120, 120, "119"),
        (500, 120, "500"),
    ],
)
def test_frame_index_refusals(value, total, fragment):
    with pytest.raises(ValidationError) as exc:
        validate.frame_index(value, total)
    assert fragment in str(exc.value)


def test_frame_index_bounds_accepted():
    assert validate.frame_index(0, 120) == 0
    assert validate.frame_index(119, 120) == 119
    assert validate.frame_index(10_000) == 10_000


@pytest.mark.parametrize(
    ("points", "fragment"),
    [
        ([(math.nan, 0.5)], "x=nan"),
        ([(0.5, math.inf)], "y=inf"),
        ([(0.5, -math.inf)], "y=-inf"),
        ([(-1, 0.5)], "x=-1"),
        ([(0.5, 1.0000001)], "y=1.0000001"),
        ([(-1e-12, 0.5)], "x=-1e-12"),
        ([("0.5", 0.5)], "x='0.5'"),
        ([(0.5, None)], "y=None"),
        ([(True, 0.5)], "x=True"),
        ([(0.5, False)], "y=False"),
        ([(0.1, 0.2, 0.3)], "(0.1, 0.2, 0.3)"),
        ([0.5], "0.5"),
        ([{"x": 0.5}], "y=None"),
        ([{"x": 2.0, "y": 0.5}], "x=2.0"),
        ([], "no points"),
        ("0.5,0.5", "string"),
        ([(i / 20, 0.5) for i in range(11)], "11 points"),
    ],
)
def test_point_refusals_name_the_value_and_limit(points, fragment):
    with pytest.raises(ValidationError) as exc:
        validate.points(points)
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    "points", [[(math.nan, 0.5)], [(0.5, 1.0000001)], [(-1, 0.5)]]
)
def test_out_of_range_points_mention_the_range(points):
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        validate.points(points)


def test_eleven_points_mention_the_limit():
    with pytest.raises(ValidationError, match="limit of 10"):
        validate.points([(0.5, 0.5)] * 11)


def test_points_accepted_forms_and_normalisation():
    got = validate.points([(0, 1), [0.25, 0.75], {"x": 0.5, "y": 0.125}, (1.0, 0.0)])
    assert got == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.125), (1.0, 0.0)]
    assert all(type(c) is float for p in got for c in p)
    assert len(validate.points([(0.5, 0.5)] * 10)) == 10


def test_negative_zero_is_normalised_to_positive_zero():
    ((x, y),) = validate.points([(-0.0, -0.0)])
    assert math.copysign(1.0, x) == 1.0 and math.copysign(1.0, y) == 1.0


def test_points_keep_floats_bit_exact():
    awkward = 0.1 + 0.2
    ((x, _),) = validate.points([(awkward, 0.5)])
    assert x == awkward and repr(x) == "0.30000000000000004"


# -- task arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "count", "ok"),
    [
        ("addition", 0, False), ("addition", 1, True), ("addition", 2, True),
        ("addition", 3, False),
        ("swap", 0, False), ("swap", 1, True), ("swap", 2, False),
        ("removal", 0, True), ("removal", 1, False),
    ],
)
def test_image_counts_per_mode(mode, count, ok):
    if ok:
        validate.image_count(mode, count)
        return
    with pytest.raises(ValidationError) as exc:
        validate.image_count(mode, count)
    text = str(exc.value)
    assert mode in text and f"got {count}" in text
    assert {"addition": "1-2 images", "swap": "exactly 1 image", "removal": "no images"}[
        mode
    ] in text


@pytest.mark.parametrize("mode", ["replace", "Addition", "", "remove"])
def test_unknown_edit_mode(mode):
    with pytest.raises(ValidationError) as exc:
        validate.edit_mode(mode)
    assert repr(mode) in str(exc.value) and "addition, swap, removal" in str(exc.value)


@pytest.mark.parametrize("value", ["std", "pro"])
def test_mode_accepted(value):
    assert validate.mode(value) == value


@pytest.mark.parametrize("value", ["STD", "fast", "", None])
def test_mode_refused(value):
    with pytest.raises(ValidationError) as exc:
        validate.mode(value)
    assert repr(value) in str(exc.value) and "'std' or 'pro'" in str(exc.value)


OK_PROMPT = "Delete the cup from <<<video_1>>>"


@pytest.mark.parametrize(
    ("text", "images"),
    [
        (OK_PROMPT, 0),
        ("x" * (2500 - len(OK_PROMPT)) + OK_PROMPT, 0),
        ("swap the hat from <<<image_1>>> for the cap from <<<video_1>>>", 1),
        ("Using the context of <<<video_1>>>, add <<<image_1>>> and <<<image_2>>>", 2),
        ("删除<<<video_1>>>中的【杯子】", 0),
    ],
)
def test_prompt_accepted(text, images):
    assert validate.prompt(text, images) == text
    assert validate.prompt_advice(text) == []


@pytest.mark.parametrize("text", ["Delete the cup from the video", "Delete the cup from "
                                  "<<<video_1>>", "删除视频中的【杯子】"])
def test_a_prompt_without_video_1_is_advised_not_refused(text):
    """Kling's docs recommend <<<video_1>>> (templates) but do not require it."""
    assert validate.prompt(text, 0) == text
    (advice,) = validate.prompt_advice(text)
    assert "<<<video_1>>>" in advice


@pytest.mark.parametrize(
    ("text", "images", "fragments"),
    [
        ("x" * (2501 - len(OK_PROMPT)) + OK_PROMPT, 0, ["2501 characters", "2500"]),
        ("add <<<image_3>>> to <<<video_1>>>", 2, ["<<<image_3>>>", "2 image(s)"]),
        ("add <<<image_1>>> to <<<video_1>>>", 0, ["<<<image_1>>>", "0 image(s)"]),
        ("add <<<image_0>>> to <<<video_1>>>", 1, ["<<<image_0>>>"]),
        ("merge <<<video_2>>> into <<<video_1>>>", 0, ["<<<video_2>>>", "only <<<video_1>>>"]),
        ("", 0, ["required"]),
        ("   ", 0, ["required"]),
        (None, 0, ["required"]),
    ],
)
def test_prompt_refused(text, images, fragments):
    with pytest.raises(ValidationError) as exc:
        validate.prompt(text, images)
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_negative_prompt_limits():
    assert validate.negative_prompt(None) is None
    assert validate.negative_prompt("") is None
    assert validate.negative_prompt("blurry") == "blurry"
    assert validate.negative_prompt("n" * 2500) == "n" * 2500
    with pytest.raises(ValidationError, match=r"2501 characters.*2500"):
        validate.negative_prompt("n" * 2501)
    with pytest.raises(ValidationError, match="string"):
        validate.negative_prompt(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "session_s", "expected"),
    [
        (None, None, None),
        (None, 2.0, "5"),
        (None, 5.0, "5"),
        (None, 7.0, "10"),
        (None, 10.0, "10"),
        ("5", 4.0, "5"),
        (5, None, "5"),
        ("10", 9.96, "10"),
        (10, None, "10"),
    ],
)
def test_duration_accepted(value, session_s, expected):
    assert validate.duration(value, session_s) == expected


@pytest.mark.parametrize(
    ("value", "session_s", "fragments"),
    [
        ("10", 4.0, ["'10'", "4.00 s", "'5'"]),
        ("5", 9.0, ["'5'", "9.00 s", "'10'"]),
        ("7", None, ["'7'", "'5'", "'10'"]),
        (5.0, None, ["5.0"]),
        (True, None, ["True"]),
        ("", None, ["''"]),
    ],
)
def test_duration_refused(value, session_s, fragments):
    with pytest.raises(ValidationError) as exc:
        validate.duration(value, session_s)
    for fragment in fragments:
        assert fragment in str(exc.value)


@pytest.mark.parametrize(("page", "size"), [(1, 1), (1, 30), (1000, 500), (7, 250)])
def test_page_accepted(page, size):
    assert validate.page(page, size) == (page, size)


@pytest.mark.parametrize(
    ("page", "size", "fragments"),
    [
        (0, 30, ["page 0", "1-1000"]),
        (1001, 30, ["page 1001", "1-1000"]),
        (1, 0, ["page_size 0", "1-500"]),
        (1, 501, ["page_size 501", "1-500"]),
        (True, 30, ["page True"]),
        ("1", 30, ["page '1'"]),
        (1.0, 30, ["page 1.0"]),
        (1, None, ["page_size None"]),
    ],
)
def test_page_refused(page, size, fragments):
    with pytest.raises(ValidationError) as exc:
        validate.page(page, size)
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_documented_limits_live_here():
    assert validate.VIDEO_CONTAINERS == ("mp4", "mov")
    assert validate.VIDEO_FPS == (24, 30, 60)
    assert validate.VIDEO_SIDE_RANGE == (720, 2160)
    assert validate.VIDEO_DURATION_RANGES_S == ((2.0, 5.0), (7.0, 10.0))
    assert validate.MAX_FRAMES_PER_SESSION == validate.MAX_POINTS_PER_FRAME == 10
    assert validate.PROMPT_MAX_CHARS == 2500
    assert validate.IMAGE_MIN_SIDE == 300
    assert validate.PAGE_NUM_RANGE == (1, 1000) and validate.PAGE_SIZE_RANGE == (1, 500)


def test_numpy_numbers_are_accepted_as_points_and_frames():
    np = pytest.importorskip("numpy")
    pts = validate.points([np.array([np.float64(0.25), np.float64(0.5)])])
    assert pts == [(0.25, 0.5)] and all(type(v) is float for v in pts[0])
    assert validate.frame_index(np.int64(3), 10) == 3
