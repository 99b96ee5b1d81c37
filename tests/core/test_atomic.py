"""One atomic JSON writer for every state file (edit state, batch report, upload cache,
callback inbox, CLI sessions): the old content or the new, never a mix, no leftovers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from kling_elements import workflow
from kling_elements.atomic import write_json_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"step": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"step": object()})  # json cannot write it
    assert json.loads(path.read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_the_file_is_private_and_its_folder_is_made(tmp_path):
    path = tmp_path / "a" / "b" / "state.json"
    write_json_atomic(path, [1, 2], indent=None)
    assert path.read_text() == "[1, 2]"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_workflow_name_is_the_same_writer():
    assert workflow.write_json_atomic is write_json_atomic


def test_a_shared_text_file_gets_the_usual_permissions_and_a_state_file_stays_private(
        tmp_path):
    from kling_elements.atomic import write_text_atomic

    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "shots.jsonl", "é\n", private=False)
        write_text_atomic(tmp_path / "state.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "shots.jsonl").read_bytes() == "é\n".encode()
    assert (tmp_path / "shots.jsonl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shots.jsonl", "state.json"]
