"""``kling-elements conform`` and ``edit --conform``: what a user runs and reads.

Every refusal is one ``error:`` line (exit status 1) naming the value, the limit and the
fix, and leaves the folder as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kling_elements.cli import main
from kling_elements.conform import read_record

from .conftest import av, read_code


@pytest.fixture
def run(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def call(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture(scope="module")
def take(sources):
    """A 25 fps take of 6 s: the default window is its first 5 s at 24 fps."""
    return sources("cli-25-6s.mp4", width=320, height=240, fps=25, seconds=6.0)


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_conform_prints_the_default_window_and_writes_clip_and_record(run, take, tmp_path):
    code, out, err = run("conform", take.path, "-o", "k.mp4")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "k.mp4")
    assert "window: 0.00-5.00 s of 6.00 s (source frames f0-f124)" in err
    assert "by default the clip is kept from its start" in err and "--start/--end" in err
    assert "25 fps → 24 fps" in err and "conforming: frame 120/120 (100%)" in err
    assert _files(tmp_path) == ["k.mp4", "k.mp4.json"]
    plan = read_record(tmp_path / "k.mp4")
    assert (plan.fps, plan.width, plan.height, plan.frame_count) == (24, 960, 720, 120)


@pytest.mark.slow
def test_conform_with_a_span_rate_and_json(run, take, tmp_path):
    code, out, err = run("conform", take.path, "-o", "k.mp4", "--start", "f25", "--end", "4",
                         "--fps", "30", "--json", "-q")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert (report["fps"], report["frame_count"], report["first_frame"]) == (30, 90, 25)
    assert report["record"] == str(tmp_path / "k.mp4.json")
    with av.open(str(tmp_path / "k.mp4")) as container:
        shown = [read_code(f) for f in container.decode(video=0)]
    assert shown[0] == 25 and shown[-1] == 99 and len(shown) == 90


def test_an_existing_destination_is_refused_unless_forced(run, take, tmp_path):
    (tmp_path / "k.mp4").write_bytes(b"mine")
    code, _, err = run("conform", take.path, "-o", "k.mp4")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: output 'k.mp4' already exists") and "--force" in err
    assert (tmp_path / "k.mp4").read_bytes() == b"mine" and _files(tmp_path) == ["k.mp4"]
    code, _, err = run("conform", take.path, "-o", "k.mp4", "--force", "-q")
    assert code == 0, err
    assert read_record(tmp_path / "k.mp4") is not None


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 48000
        for i in range(10):
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("case", "expected"), [
    ("missing", r"source '.*nope\.mov' does not exist: check the path"),
    ("not-video", r"is not a video FFmpeg can read .*: give a movie file"),
    ("no-video-stream", r"has no video stream \(it holds audio\): give a clip with a picture"),
    ("banner", r"1000x300 px, an aspect of 3\.33:1.*720-2160 px \(at most 3:1\): crop"),
    ("past-end", r"--start 7 s is past the clip's end \(6\.00 s\): choose a start below 6\.00 s"),
    ("short", r"range lasts 1\.00 s; Kling needs at least 2 s.*does not pad: choose a longer"),
    ("too-short-for-10", r"range lasts 6\.00 s, under the 7 s a 10 s clip needs.*choose 5 s"),
    ("bad-time", r"argument --end: time '3x' must be seconds \(e\.g\. 2\.5\) or a source frame"),
    ("not-mp4", r"output 'k\.mkv' must be an \.mp4 file.*name it 'k\.mp4'"),
    ("no-folder", r"the folder of output 'sub/k\.mp4' does not exist: create it first"),
    ("into-itself", r"must be an \.mp4 file|is the source itself"),
])
def test_bad_input_is_one_error_line_and_leaves_nothing(run, take, sources, tmp_path, case,
                                                        expected):
    import re

    argv = {
        "missing": [tmp_path / "nope.mov", "-o", "k.mp4"],
        "past-end": [take.path, "-o", "k.mp4", "--start", "7"],
        "short": [take.path, "-o", "k.mp4", "--start", "2", "--end", "3"],
        "too-short-for-10": [take.path, "-o", "k.mp4", "--duration", "10"],
        "bad-time": [take.path, "-o", "k.mp4", "--end", "3x"],
        "not-mp4": [take.path, "-o", "k.mkv"],
        "no-folder": [take.path, "-o", "sub/k.mp4"],
    }.get(case)
    if case == "not-video":
        (tmp_path / "notes.mov").write_text("not a movie\n" * 100)
        argv = [tmp_path / "notes.mov", "-o", "k.mp4"]
    elif case == "no-video-stream":
        argv = [_audio_only(tmp_path / "voice.m4a"), "-o", "k.mp4"]
    elif case == "banner":
        argv = [sources("cli-banner.mp4", width=1000, height=300, fps=24, seconds=2.5).path,
                "-o", "k.mp4"]
    elif case == "into-itself":
        copy = tmp_path / "same.mp4"
        copy.write_bytes(take.path.read_bytes())
        argv = [copy, "-o", copy, "--force"]
    before = _files(tmp_path)
    code, out, err = run("conform", *argv)
    assert code == (2 if case == "bad-time" else 1) and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(expected, lines[0]), lines[0]
    assert _files(tmp_path) == before


def test_the_command_is_listed(run):
    code, out, _ = run("--help")
    assert code == 0 and "conform" in out
    code, out, _ = run("conform", "--help")
    assert code == 0 and "--start" in out and "f60" in out
