"""Moving files out of the unsaved folder: instant renames, whole copies, no overwrites."""

from __future__ import annotations

import errno
import os

import pytest

from blender_addon.pure import file_moves


def test_movable_files_skip_what_is_still_being_written(tmp_path):
    for name in ("a.mp4", "b.mp4.part", "conformed/c-1a2b.mp4", "conformed/c-1a2b.mp4.json",
                 "conformed/c-1a2b.9f8e7d6c.part.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in file_moves.movable_files(tmp_path)]
    assert found == ["a.mp4", "conformed/c-1a2b.mp4", "conformed/c-1a2b.mp4.json"]
    assert list(file_moves.movable_files(tmp_path / "missing")) == []


def test_a_clash_keeps_both_files_and_a_clip_its_record(tmp_path):
    clip, record = tmp_path / "plate-1a2b.mp4", tmp_path / "plate-1a2b.mp4.json"
    assert file_moves.free_name(clip, "77") == clip  # no clash: the name as is
    clip.write_bytes(b"old")
    record.write_bytes(b"old")
    assert file_moves.free_name(clip, "77").name == "plate-1a2b-77.mp4"
    assert file_moves.free_name(record, "77").name == "plate-1a2b-77.mp4.json"


def test_rename_reports_another_filesystem_instead_of_copying(tmp_path, monkeypatch):
    src = tmp_path / "a.mp4"
    src.write_bytes(b"data")
    assert file_moves.try_rename(src, tmp_path / "kling" / "a.mp4")
    assert (tmp_path / "kling" / "a.mp4").read_bytes() == b"data" and not src.exists()

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", cross_device)
    moved = tmp_path / "kling" / "a.mp4"
    assert file_moves.try_rename(moved, tmp_path / "b.mp4") is False
    assert moved.is_file()


def test_copy_appears_only_whole_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    src = tmp_path / "result.mp4"
    src.write_bytes(os.urandom(3 << 20))
    dest = tmp_path / "kling" / "result.mp4"
    file_moves.copy_file(src, dest)
    assert dest.read_bytes() == src.read_bytes() and src.is_file()
    assert not dest.with_name("result.mp4.part").exists()

    def disk_full(a, b):
        with open(b, "wb") as handle:
            handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_moves.shutil, "copyfile", disk_full)
    other = tmp_path / "kling" / "other.mp4"
    with pytest.raises(OSError, match="No space"):
        file_moves.copy_file(src, other)
    assert sorted(p.name for p in other.parent.iterdir()) == ["result.mp4"]
