"""Probing a source and reading the user's range: refusals name the value, limit and fix."""

from __future__ import annotations

import os

import pytest

from kling_elements.conform import ConformError, plan_conform
from kling_elements.conform.source import Mark, probe_source, source_clip

from .conftest import av


@pytest.fixture(scope="module")
def take(sources):
    """A 25 fps take of 4 s (100 frames)."""
    return sources("25-4s.mp4", width=320, height=240, fps=25, seconds=4.0)


def test_probe_counts_frames_in_display_order(take):
    media = probe_source(take.path)
    assert (media.width, media.height, media.fps, media.frame_count) == (320, 240, 25.0, 100)
    assert not media.variable_rate and media.duration_s == pytest.approx(4.0)
    assert media.times[:3] == pytest.approx((0.0, 0.04, 0.08))
    assert media.frame_index(media.pts[37]) == 37


@pytest.mark.parametrize(("text", "start", "end"), [
    ("0", 0, None), ("1", 25, None), ("1.01", 25, None), ("f30", 30, None), ("2.5s", 62, None),
])
def test_marks_as_start(take, text, start, end):
    assert Mark.parse(text).start_frame(probe_source(take.path)) == start


def test_marks_as_end_are_exclusive(take):
    media = probe_source(take.path)
    assert Mark.parse("3").end_frame(media) == 75
    assert Mark.parse("f80").end_frame(media) == 80
    assert Mark.parse("4").end_frame(media) == 100
    clip = source_clip(media, Mark.parse("1"), Mark.parse("3.5"))
    # Frames that start before the end are in: 3.48 s (f87) is, 3.52 s (f88) is not.
    assert (clip.first_frame, clip.frame_count) == (25, 63)
    assert clip.visible_s == pytest.approx(2.52)


@pytest.mark.parametrize(("start", "end", "match"), [
    ("5", None, r"--start 5 s is past the clip's end \(4\.00 s\): choose a start below"),
    ("f100", None, r"--start f100 is past the clip's last frame f99.*below f100"),
    (None, "4.5", r"--end 4\.5 s is past the clip's end \(4\.00 s\): choose at most 4\.00"),
    (None, "f101", r"--end f101 is past the clip's end f100.*at most f100"),
    ("3", "2", r"range 3\.\.2 is empty.*--end must come after --start"),
])
def test_a_range_outside_the_clip_is_refused(take, start, end, match):
    media = probe_source(take.path)
    with pytest.raises(ConformError, match=match):
        source_clip(media, start and Mark.parse(start), end and Mark.parse(end))


@pytest.mark.parametrize("text", ["", "abc", "-1", "f-2", "1:00", "f1.5"])
def test_a_malformed_time_shows_the_two_forms(text):
    with pytest.raises(ConformError, match=r"seconds \(e\.g\. 2\.5\) or a source frame"):
        Mark.parse(text)


def test_manifest_times(take):
    assert Mark.of(1.5).seconds == 1.5 and Mark.of("f10").frame == 10
    for bad in (True, None, [1], -1, float("nan")):
        with pytest.raises(ConformError):
            Mark.of(bad)


def test_a_range_too_short_to_conform_says_so(take):
    clip = source_clip(probe_source(take.path), Mark.parse("1"), Mark.parse("2.5"))
    with pytest.raises(ConformError, match=r"1\.52 s.*at least 2 s.*--start/--end"):
        plan_conform(clip)


# ------------------------------------------------------------------ bad files


def test_missing_empty_and_not_video(tmp_path):
    with pytest.raises(ConformError, match="does not exist: check the path"):
        probe_source(tmp_path / "nope.mp4")
    with pytest.raises(ConformError, match="not a file"):
        probe_source(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ConformError, match=r"empty file \(0 bytes\): export"):
        probe_source(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("these are my notes, not a movie\n" * 50)
    with pytest.raises(ConformError, match=r"not a video FFmpeg can read.*\.mp4, \.mov"):
        probe_source(tmp_path / "notes.mp4")


def test_no_video_stream(tmp_path):
    import numpy as np

    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 48000
        for i in range(20):
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ConformError, match=r"no video stream \(it holds audio\)"):
        probe_source(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a user that file permissions apply to")
def test_unreadable(take, tmp_path):
    path = tmp_path / "locked.mp4"
    path.write_bytes(take.path.read_bytes())
    path.chmod(0)
    with pytest.raises(ConformError, match="permission denied"):
        probe_source(path)


def test_an_aspect_beyond_3_to_1_is_refused(sources):
    banner = sources("banner.mp4", width=1000, height=300, fps=24, seconds=2.5)
    with pytest.raises(ConformError, match=r"1000x300.*3\.33:1.*720-2160.*crop"):
        plan_conform(source_clip(probe_source(banner.path)))
