"""Batch with ``"conform": true`` and ``"range"``: validated by --dry-run like every field;
conformed clips cached by content, so a resumed run (or a copy of the plate) never renders
twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import kling_elements as ke
from kling_elements.cli import main
from kling_elements.conform import read_record
from kling_elements.hosting import SandboxHost

from ..support.fixtures import sandbox_fixture
from .conftest import av

REMOVE = "Remove the ball from <<<video_1>>>"


sandbox = sandbox_fixture(scope="module", task_seconds=0.2)


@pytest.fixture(scope="module")
def plate(make_plate):
    """A 25 fps, 640x360 take of 3.2 s: not Kling's rate, size or (after 3 s) a span."""
    return make_plate(640, 360, 25, 3.2, seed=5)


@pytest.fixture
def shots(tmp_path, plate):
    folder = tmp_path / "shots"
    folder.mkdir()
    shutil.copy(plate.path, folder / "plate.mp4")
    return folder


def _job(name: str, plate, **extra) -> dict:
    return {"name": name, "video": "plate.mp4",
            "select": [{"frame": 0, "points": [list(plate.center(0))]}],
            "edit_mode": "removal", "prompt": REMOVE, **extra}


def _manifest(folder: Path, *jobs: dict) -> Path:
    path = folder / "shots.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def _dry_run(manifest: Path, out: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["batch", str(manifest), "--out", str(out), "--dry-run", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_dry_run_validates_conform_and_range(shots, plate, tmp_path, capsys):
    manifest = _manifest(
        shots,
        _job("ok", plate, conform=True),
        _job("span", plate, conform=True, range=["f10", 2.6]),
        _job("raw", plate),
        _job("past", plate, conform=True, range=[4, None]),
        _job("short", plate, conform=True, range=[1, 2.5]),
        _job("shape", plate, conform=True, range="1-3"),
        _job("loose", plate, range=[0, 3]),
        {**_job("url", plate, conform=True), "video": "https://example.com/a.mp4"},
        _job("flag", plate, conform="yes"),
        _job("ten", plate, conform=True, duration="10"),
        _job("match", plate, match_source=True),
    )
    code, report = _dry_run(manifest, tmp_path / "out", capsys)
    assert code == 1
    assert report["jobs"] == ["ok", "span"]
    problems = "\n".join(report["problems"])
    assert "line 3 (raw): frame rate 25 fps is not 24, 30 or 60" in problems
    assert 'line 3 (raw): or add "conform": true to conform the clip first' in problems
    assert "line 4 (past): range start 4 s is past the clip's end (3.20 s)" in problems
    assert "line 5 (short): the range lasts 1.52 s; Kling needs at least 2 s" in problems
    assert "line 6 (shape): range '1-3' must be [start, end]" in problems
    assert 'line 7 (loose): range chooses the span to conform: add "conform": true' in problems
    assert "line 8 (url): conform needs a local clip" in problems
    assert "line 9 (flag): conform must be true or false, got 'yes'" in problems
    assert "line 10 (ten): the range lasts 3.20 s, under the 7 s a 10 s clip needs" in problems
    assert 'line 11 (match): match_source brings a conformed clip\'s result back to the ' \
        'plate: add "conform": true' in problems
    assert not (tmp_path / "out").exists()  # a dry run renders nothing


@pytest.mark.slow
def test_a_batch_conforms_once_per_plate_and_span_and_never_again(
        sandbox, shots, plate, tmp_path):
    manifest = _manifest(shots, _job("a", plate, conform=True),
                         _job("b", plate, conform=True, prompt="Delete the ball from "
                              "<<<video_1>>>"),
                         _job("c", plate, conform=True, range=[0.2, None], match_source=True))
    out = tmp_path / "out"
    events: list[tuple] = []

    def run() -> ke.batch.Report:
        events.clear()
        with ke.Client(sandbox.access_key, sandbox.secret_key,
                       base_url=sandbox.base_url) as client:
            return ke.batch.run(manifest, out, client=client, host=SandboxHost(client.http),
                                concurrency=2,
                                on_event=lambda name, kind, info: events.append(
                                    (name, kind, info)))

    report = run()
    assert report.ok, report.to_dict()
    conformed = {e[0]: e[2] for e in events if e[1] == "conformed"}
    assert sorted(conformed) == ["a", "b", "c"]
    assert sum(info["rendered"] for info in conformed.values()) == 2  # a and b share one
    assert conformed["a"]["path"] == conformed["b"]["path"] != conformed["c"]["path"]
    cache = sorted((out / ".state" / "conformed").glob("*.mp4"))
    assert len(cache) == 2
    plan = read_record(conformed["c"]["path"])
    assert (plan.fps, plan.width, plan.height, plan.first_frame) == (24, 1280, 720, 5)
    for name in "abc":
        with av.open(str(out / f"{name}.mp4")) as container:
            assert float(container.streams.video[0].average_rate) == 24
    with av.open(str(out / "c.source.mp4")) as container:  # back in the plate's terms
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 25 and (stream.width, stream.height) == (640, 360)
        assert sum(1 for _ in container.decode(stream)) == 75  # f5..f79: 3.0 s at 25 fps
    assert not (out / "a.source.mp4").exists()
    stamps = {p: p.stat().st_mtime_ns for p in cache}

    # Resumed: finished jobs are skipped; a job whose result was lost reuses the clip.
    (out / "a.mp4").unlink()
    report = run()
    assert report.ok
    assert sorted(e[0] for e in events if e[1] == "skipped") == ["b", "c"]
    assert [(e[0], e[2]["rendered"]) for e in events if e[1] == "conformed"] == [("a", False)]
    assert {p: p.stat().st_mtime_ns for p in cache} == stamps

    # A lost matched file is made again from the result, with nothing sent to Kling.
    (out / "c.source.mp4").unlink()
    report = run()
    assert report.ok and (out / "c.source.mp4").is_file()
    assert not [e for e in events if e[1] in ("created", "publish")]
    assert [e[0] for e in events if e[1] == "matched"] == ["c"]


def test_the_cache_follows_the_content_not_the_path(shots, plate, tmp_path):
    from kling_elements.batch.manifest import load

    copy = shots / "copy-of-plate.mp4"
    shutil.copy(plate.path, copy)
    manifest = _manifest(shots, _job("a", plate, conform=True),
                         {**_job("b", plate, conform=True), "video": copy.name})
    a, b = load(manifest).jobs
    assert a.conform.key == b.conform.key
    assert a.edit_job(tmp_path).video_path == b.edit_job(tmp_path).video_path
    copy.write_bytes(copy.read_bytes()[:-100] + bytes(100))  # other bytes, other clip
    a, b = load(manifest).jobs
    assert a.conform.key != b.conform.key


def test_the_display_shows_conform_progress_and_its_outcome():
    import io

    from kling_elements.batch.display import BatchDisplay

    stream = io.StringIO()
    with BatchDisplay(stream, live=False) as display:
        display(None, "begin", {"jobs": 1, "concurrency": 1})
        display("sh010", "conform_progress", {"done": 30, "total": 120})
        assert display._running["sh010"] == "conforming  25%"
        display("sh010", "conformed", {"path": "/o/.state/conformed/k.mp4", "rendered": False})
    assert "sh010: reusing conformed clip /o/.state/conformed/k.mp4" in stream.getvalue()
