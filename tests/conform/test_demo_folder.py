"""``make demo`` can run again in the same checkout: the demo owns (and empties) its folder,
and refuses a folder holding someone else's files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("kling_demo", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_new_folder_is_created_and_marked(demo, tmp_path):
    out = tmp_path / "demo-output"
    demo.claim(out)
    assert [p.name for p in out.iterdir()] == [demo.MARKER]


def test_a_second_run_starts_from_an_empty_folder(demo, tmp_path):
    out = tmp_path / "demo-output"
    demo.claim(out)
    (out / "preview.mp4").write_bytes(b"the first run's preview")
    (out / ".sandbox").mkdir()
    (out / ".sandbox" / "state.json").write_text("{}")
    demo.claim(out)
    assert [p.name for p in out.iterdir()] == [demo.MARKER]


def test_a_folder_of_an_older_demo_without_the_marker_is_ours(demo, tmp_path):
    out = tmp_path / "demo-output"
    out.mkdir()
    for name in ("clip.mp4", "preview.mp4", "contact_sheet.png"):
        (out / name).write_bytes(b"x")
    demo.claim(out)
    assert [p.name for p in out.iterdir()] == [demo.MARKER]


def test_a_folder_with_other_files_is_refused_and_kept(demo, tmp_path):
    (tmp_path / "thesis.docx").write_text("years of work")
    (tmp_path / "preview.mp4").write_bytes(b"x")
    with pytest.raises(SystemExit, match="holds files the demo did not write"):
        demo.claim(tmp_path)
    assert (tmp_path / "thesis.docx").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.mp4", "thesis.docx"]
