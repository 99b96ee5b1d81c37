"""The one cache of a movie's index numbers (``media.mp4_frame_count`` / ``mp4_frame_rate``):
read once per file version, read again when the file changes."""

from __future__ import annotations

import shutil

from kling_elements import media
from kling_elements.sandbox.sample import make_clip


def test_the_index_is_read_once_per_file_version(tmp_path, monkeypatch):
    short = make_clip(tmp_path / "short.mp4", width=720, height=720, fps=24, seconds=2.0)
    long = make_clip(tmp_path / "long.mp4", width=720, height=720, fps=24, seconds=3.0)
    reads: list[object] = []
    real = media._find_moov
    monkeypatch.setattr(media, "_find_moov", lambda handle: reads.append(1) or real(handle))
    target = tmp_path / "shot.mp4"
    shutil.copyfile(short.path, target)
    assert media.mp4_frame_count(target) == 48
    assert media.mp4_frame_rate(target) == 24.0 and media.mp4_frame_count(target) == 48
    assert len(reads) == 1
    shutil.copyfile(long.path, target)  # the same path, another file
    assert media.mp4_frame_count(target) == 72 and len(reads) == 2
    assert media.mp4_frame_count(tmp_path / "missing.mp4") is None
