"""Job keys by content (``job_key``): the same edit on any mount path, a different one never."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kling_elements import job_key
from kling_elements.job_key import content_key, file_fingerprint, legacy_key, match_state
from kling_elements.workflow import EditJob, _load_state

REMOVE = "Remove the ball from <<<video_1>>>"


def _job(video: Path, *images: Path, **extra) -> EditJob:
    return EditJob(output=str(video.parent / "out.mp4"), edit_mode="swap", prompt=REMOVE,
                   video_path=str(video), images=tuple(str(i) for i in images),
                   selections=((0, ((0.25, 0.5),)),), **extra)


def _files(folder: Path, clip: bytes = b"clip" * 1000, image: bytes = b"png") -> tuple:
    folder.mkdir(parents=True)
    (folder / "plate.mp4").write_bytes(clip)
    (folder / "ref.png").write_bytes(image)
    return folder / "plate.mp4", folder / "ref.png"


def test_the_same_files_at_another_path_give_the_same_key(tmp_path):
    here, there = _files(tmp_path / "mnt" / "show"), _files(tmp_path / "S" / "show")
    assert content_key(_job(*here)) == content_key(_job(*there))
    assert legacy_key(_job(*here)) != legacy_key(_job(*there))  # what broke farm resumes


@pytest.mark.parametrize("change", ["clip", "image", "prompt", "point"])
def test_any_change_of_content_or_field_gives_another_key(tmp_path, change):
    base = content_key(_job(*_files(tmp_path / "a")))
    video, image = _files(tmp_path / "b", clip=b"clip" * 999 + b"CLIP" if change == "clip"
                          else b"clip" * 1000, image=b"PNG" if change == "image" else b"png")
    job = _job(video, image)
    if change == "prompt":
        job = _job(video, image, negative_prompt="blur")
    if change == "point":
        job = EditJob(**{**job.__dict__, "selections": ((0, ((0.25, 0.5000001),)),)})
    assert content_key(job) != base


def test_big_files_are_fingerprinted_from_a_bounded_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(job_key, "FULL_HASH_LIMIT", 64 << 10)
    monkeypatch.setattr(job_key, "SAMPLE_BYTES", 4 << 10)
    data = bytearray(range(256)) * 4096  # 1 MiB, far above the (lowered) limit
    big = tmp_path / "big.mov"
    big.write_bytes(bytes(data))
    read = []
    real_open = open

    class Counting:
        def __init__(self, *args):
            self.handle = real_open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def seek(self, offset):
            self.handle.seek(offset)

        def read(self, size):
            chunk = self.handle.read(size)
            read.append(len(chunk))
            return chunk

    monkeypatch.setattr(job_key, "open", Counting, raising=False)
    first = file_fingerprint(big)
    assert first.startswith("sampled:")
    assert sum(read) == job_key.SAMPLES * (4 << 10)  # 64 KiB of a 1 MiB file
    copy = tmp_path / "elsewhere" / "big.mov"
    copy.parent.mkdir()
    copy.write_bytes(bytes(data))
    assert file_fingerprint(copy) == first
    data[-1] ^= 0xFF  # the last block is always sampled (an MP4's index may live there)
    copy.write_bytes(bytes(data))
    assert file_fingerprint(copy) != first
    copy.write_bytes(bytes(data[:-1]))
    assert file_fingerprint(copy) != first


def test_a_conformed_clip_counts_by_its_conform_key_not_its_rendered_bytes(tmp_path):
    """Another machine's encoder may render the same plan to other bytes."""
    video, image = _files(tmp_path / "a")
    job = _job(video, image, video_digest="conform:abc")
    video.write_bytes(b"rendered elsewhere")
    assert content_key(job) == content_key(_job(video, image, video_digest="conform:abc"))
    assert content_key(job) != content_key(_job(video, image, video_digest="conform:abd"))


def test_old_keys_are_taken_when_they_match_or_cannot_be_checked(tmp_path):
    job = _job(*_files(tmp_path / "a"))
    other = _job(*_files(tmp_path / "b", clip=b"other"))
    assert match_state(content_key(job), job) == "same"
    assert match_state(legacy_key(job), job) == "same"  # same machine, before the upgrade
    assert match_state(legacy_key(other), job) == "legacy"  # moved: cannot be checked
    assert match_state(content_key(other), job) == "other"
    assert match_state(None, job) == "other"


def test_an_old_state_that_cannot_be_checked_keeps_its_task_not_its_session(tmp_path):
    job = _job(*_files(tmp_path / "a"))
    path = tmp_path / "state.json"
    path.write_text(json.dumps({
        "job": legacy_key(_job(*_files(tmp_path / "old-mount"))), "external_task_id": "ke-1",
        "task_id": "t1", "selection": {"session_id": "s"}, "video_url": "http://x/v.mp4",
        "cost": {"steps": []}}))
    state = _load_state(path, job)
    assert state["job"] == job.key() and state["external_task_id"] == "ke-1"
    assert state["task_id"] == "t1" and state["cost"] == {"steps": []}
    assert "selection" not in state and "video_url" not in state


def test_a_state_of_another_edit_is_still_refused(tmp_path):
    job = _job(*_files(tmp_path / "a"))
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"job": content_key(_job(*_files(tmp_path / "b", clip=b"x")))}))
    with pytest.raises(ValueError, match="belongs to a different edit"):
        _load_state(path, job)
