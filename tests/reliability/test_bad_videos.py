"""Bad videos: every clip Kling would refuse is refused locally, before anything is sent or
published, with a message naming the value, the limit and the fix; the sandbox refuses the
same clips (1201) without opening a session.

Clips are made once per module with PyAV (flat frames, fastest preset): see tests/support/media.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.hosting import check_clip
from kling_elements.media import probe
from kling_elements.workflow import EditJob, run_edit

from ..support.media import audio_only, write_clip
from ..support.sandbox import REMOVE_PROMPT, refused, upload
from .conftest import API

# id -> (how to make it, words the message must contain: value, limit, fix)
CASES: dict[str, tuple] = {
    "mkv-container": (lambda p: write_clip(p.with_suffix(".mkv"), container="matroska"),
                      ["'mkv'", ".mp4, .mov", "conform the clip to MP4"]),
    "avi-container": (lambda p: write_clip(p.with_suffix(".avi"), container="avi"),
                      ["'avi'", ".mp4, .mov", "conform the clip to MP4"]),
    "6s": (lambda p: write_clip(p, seconds=6), ["6.000 s", "2-5 s and 7-10 s", "trim"]),
    "11s": (lambda p: write_clip(p, seconds=11), ["11.000 s", "2-5 s and 7-10 s", "trim"]),
    "5.5s-in-the-gap": (lambda p: write_clip(p, seconds=5.5),
                        ["5.500 s", "2-5 s and 7-10 s", "trim"]),
    "1.5s": (lambda p: write_clip(p, seconds=1.5),
             ["1.500 s", "2-5 s and 7-10 s", "at least 2 s"]),
    "719px-wide": (lambda p: write_clip(p, width=719),
                   ["width 719 px", "720-2160 px", "upscale"]),
    "719px-tall": (lambda p: write_clip(p, height=719),
                   ["height 719 px", "720-2160 px", "upscale"]),
    "2161px-wide": (lambda p: write_clip(p, width=2161),
                    ["width 2161 px", "720-2160 px", "downscale"]),
    "25fps": (lambda p: write_clip(p, fps=25),
              ["25 fps", "24, 30 or 60", "conform the clip to 24 fps"]),
    "29.97fps": (lambda p: write_clip(p, fps=29.97),
                 ["29.97 fps", "24, 30 or 60", "conform the clip to 30 fps"]),
    "every-rule-at-once": (lambda p: write_clip(p.with_suffix(".mkv"), width=719, fps=25,
                                                seconds=6, container="matroska"),
                           ["'mkv'", "6.000 s", "width 719 px", "25 fps"]),
    "corrupt-bytes": (lambda p: _write(p, os.urandom(4096)),
                      ["cannot be read", "not a video", "export it again as .mp4"]),
    "truncated-mp4": (lambda p: _truncated(p), ["cannot be read", "export it again as .mp4"]),
    "text-named-mp4": (lambda p: _write(p, b"this is not a video\n" * 10),
                       ["cannot be read", "export it again as .mp4"]),
    "zero-byte": (lambda p: _write(p, b""), ["empty file", "export it again"]),
    "audio-only": (lambda p: audio_only(p), ["no video stream", "clip with a video track"]),
    "missing-file": (lambda p: p.with_name("missing.mp4"), ["does not exist", "check the path"]),
    "a-folder": (lambda p: _folder(p), ["does not exist or is not a file", "check the path"]),
}
LOCAL_ONLY = {"missing-file", "a-folder"}  # nothing to upload to the sandbox


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    whole = write_clip(path.with_name("whole.mp4")).read_bytes()
    return _write(path, whole[: len(whole) // 2])


def _folder(path: Path) -> Path:
    folder = path.with_suffix(".mp4.d")
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = {}
    for name, (make, _words) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        made[name] = make(folder / "clip.mp4")
    return made


def _assert_names(message: str, words: list[str]) -> None:
    for word in words:
        assert word in message, (word, message)


class _RecordingHost:
    """A hosting provider that must never be asked to publish."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, path, on_progress=None) -> str:
        self.published.append(str(path))
        return "http://127.0.0.1:9/never.mp4"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_video_is_refused_locally_with_value_limit_and_fix(name, clips):
    with pytest.raises(ke.ValidationError) as exc:
        check_clip(clips[name])
    _assert_names(str(exc.value), CASES[name][1])


@pytest.mark.parametrize("name", list(CASES))
def test_an_edit_of_a_bad_video_sends_and_publishes_nothing(name, clips, client, recorder,
                                                            tmp_path):
    host = _RecordingHost()
    job = EditJob(output=str(tmp_path / "out.mp4"), edit_mode="removal", prompt=REMOVE_PROMPT,
                  video_path=str(clips[name]), selections=((0, ((0.5, 0.5),)),))
    state = tmp_path / "out.mp4.kling.json"
    with pytest.raises(ke.ValidationError) as exc:
        run_edit(client, job, host=host, state_path=state)
    _assert_names(str(exc.value), CASES[name][1])
    assert recorder.requests == [] and host.published == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no state, part or output file"


@pytest.mark.parametrize("name", [n for n in CASES if n not in LOCAL_ONLY])
def test_the_sandbox_refuses_the_same_clip_without_opening_a_session(name, clips, sandbox,
                                                                     admin):
    url = upload(admin, clips[name])
    sessions = len(sandbox.state.sessions)
    response = admin.post(f"{API}/init-selection", json={"video_url": url})
    message = refused(response, 400, 1201)
    words = [w for w in CASES[name][1] if "export" not in w and "path" not in w]
    _assert_names(message, words[:2])
    assert len(sandbox.state.sessions) == sessions
    incoming = sandbox.data_dir / "incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []


@pytest.mark.parametrize(
    ("video_url", "video_id", "words"),
    [
        ("file:///tmp/clip.mp4", None, ["'file:///tmp/clip.mp4'", "http(s) URL", "publish"]),
        ("ftp://example.invalid/clip.mp4", None, ["ftp://", "http(s) URL", "publish"]),
        ("clip.mp4", None, ["'clip.mp4'", "http(s) URL", "publish"]),
        ("http://example.invalid/c.mp4", "123", ["exactly one", "both"]),
        (None, None, ["exactly one", "neither"]),
        ("", "", ["exactly one", "neither"]),
    ],
    ids=["file-url", "ftp-url", "bare-path-as-url", "url-and-id", "neither", "empty-strings"],
)
def test_a_video_source_that_cannot_be_sent_is_refused_before_sending(
    client, recorder, video_url, video_id, words
):
    with pytest.raises(ke.ValidationError) as exc:
        client.init_selection(video_url=video_url, video_id=video_id)
    _assert_names(str(exc.value), words)
    assert recorder.requests == []


def test_the_corpus_clips_really_are_what_their_names_say(clips):
    """Guards the corpus itself: a clip made wrong would make a case test nothing."""
    info = probe(clips["29.97fps"])
    assert abs(info.fps - 30000 / 1001) < 1e-6 and (info.width, info.height) == (720, 720)
    assert probe(clips["719px-wide"]).width == 719
    assert probe(clips["2161px-wide"]).width == 2161
    assert round(probe(clips["11s"]).duration_s, 3) == 11.0
    assert probe(clips["mkv-container"]).container == "mkv"
